"""Image files: which files are images, listing a folder of them, and decoding one to 8-bit RGB.

Every reader in lrpjax (the explain job, the data pipeline, the gallery, the demo, crosscheck, the study) goes
through :func:`decode_image`, so every reader treats 16-bit files, EXIF orientation and broken files alike:

- 16-bit grayscale (PIL modes ``I;16*`` and ``I``) is scaled to 8 bits, :math:`v_8 = \\mathrm{round}(255\\,
  v_{16} / 65535)`, instead of being clipped to 255 (PIL's ``convert("RGB")`` clips it: an all-white image);
  16-bit RGB(A) PNGs PIL already reads as their high bytes. 32-bit float images (mode ``F``) are read as
  values in [0, 1].
- The EXIF orientation tag is applied (``PIL.ImageOps.exif_transpose``), so a phone photo stored sideways
  with a rotation tag is read upright.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
from PIL import Image, ImageOps

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
"""The file endings (lower case) read as images everywhere in lrpjax."""

_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def is_image_file(name: str) -> bool:
    """Whether ``name`` ends in one of :data:`IMAGE_EXTENSIONS` (any case) and is not hidden."""
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


class Listing(NamedTuple):
    """Image files of a folder: ``ids`` (relative paths with ``/``, sorted) and ``skipped`` ``(path, reason)``."""

    ids: list[str]
    skipped: list[tuple[str, str]]


def list_image_files(root: str | os.PathLike[str], *, recursive: bool = True,
                     exclude: Sequence[str | os.PathLike[str]] = ()) -> Listing:
    """Every image file under ``root`` (hidden files and folders and the folders ``exclude`` left out), sorted.

    A name that is not valid UTF-8 (the file system holds bytes that Python shows as surrogates) cannot be an
    id in a UTF-8 store or CSV; such a file is left out and reported in ``skipped`` with the reason, and the
    listing goes on.

    Raises:
      FileNotFoundError: ``root`` is not a folder.
    """
    root = os.path.abspath(os.fspath(root))
    if not os.path.isdir(root):
        raise FileNotFoundError(f"images folder {root!r} does not exist")
    ids, skipped, skip = [], [], {os.path.abspath(os.fspath(e)) for e in exclude}
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if recursive and not d.startswith(".")
                         and os.path.join(folder, d) not in skip)
        rel = os.path.relpath(folder, root)
        for name in files:
            if not is_image_file(name):
                continue
            image_id = name if rel == "." else f"{rel}/{name}".replace(os.sep, "/")
            try:
                image_id.encode("utf-8")
            except UnicodeEncodeError:
                shown = image_id.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
                skipped.append((os.path.join(root, shown), "the file name is not valid UTF-8; rename the file"))
                continue
            ids.append(image_id)
    ids.sort()
    return Listing(ids, skipped)


def decode_image(data: Any) -> np.ndarray:
    """Encoded bytes (PNG, JPEG, ...) or an in-memory uint8 ``[H, W]`` / ``[H, W, 3]`` array -> uint8 RGB
    ``[H, W, 3]``, upright by the EXIF orientation, 16-bit values scaled to 8 bits (see the module docstring).

    Raises:
      ValueError: the bytes are not a readable image, or the array is not uint8 of rank 2 or 3.
    """
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8 or data.ndim not in (2, 3):
            raise ValueError(f"an in-memory image must be uint8 [H, W] or [H, W, 3], got {data.dtype} {data.shape}")
        return np.repeat(data[..., None], 3, -1) if data.ndim == 2 else data
    try:
        with Image.open(io.BytesIO(data)) as image:
            return _rgb8(ImageOps.exif_transpose(image))
    except Exception as error:  # PIL raises OSError, SyntaxError, ValueError, ... for broken files
        reason = re.sub(r" <_io\.BytesIO object at 0x[0-9a-fA-F]+>", "", str(error))  # the same every run
        raise ValueError(f"cannot decode image: {type(error).__name__}: {reason}") from error


def _rgb8(image: Image.Image) -> np.ndarray:
    if image.mode in _SIXTEEN_BIT:
        values = np.asarray(image).astype(np.float64)
        gray = np.clip(np.rint(values * (255.0 / 65535.0)), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, -1)
    if image.mode == "F":
        if not np.isfinite(np.asarray(image)).all():
            raise ValueError("the image holds NaN or infinite values")
        gray = np.clip(np.rint(np.asarray(image, np.float64) * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, -1)
    return np.array(image.convert("RGB"), dtype=np.uint8)


def verify_image_file(path: str | os.PathLike[str]) -> str | None:
    """``None`` if PIL can open and verify ``path`` (its structure, without decoding every pixel), else the
    reason: the cheap check made when a data set is built."""
    try:
        with Image.open(path) as image:
            image.verify()
        return None
    except Exception as error:  # PIL raises many types for broken files
        return f"{type(error).__name__}: {error}"


def load_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file as uint8 RGB ``[H, W, 3]`` with :func:`decode_image` (grayscale, palette, RGBA and
    16-bit are converted; EXIF orientation applied).

    Raises:
      FileNotFoundError: ``path`` does not exist.
      ValueError: naming the file, if it is not a readable image.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"image file {os.fspath(path)!r} does not exist")
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise ValueError(f"cannot read image file {os.fspath(path)!r}: {error}") from error
    try:
        return decode_image(data)
    except ValueError as error:
        raise ValueError(f"cannot read image file {os.fspath(path)!r}: {error}") from error
