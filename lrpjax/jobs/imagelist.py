"""The images of an explain run: a folder listed in a stable order, its labels, and the targets to explain.

Ids are paths relative to the images folder (``/``-separated, sorted); labels come from ``labels.csv``
(``id,label``) or from each id's first folder, as class indices or names mapped through the checkpoint's
class names.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lrpjax.io.imagefiles import IMAGE_EXTENSIONS, list_image_files


@dataclass(frozen=True)
class ImageList:
    """Images of a folder in a stable order: ids (relative paths), absolute paths, labels (-1 unknown), and the
    files that could not be listed (``skipped``: a name that is not UTF-8)."""

    root: str
    ids: tuple[str, ...]
    paths: tuple[str, ...]
    labels: np.ndarray
    label_names: tuple[str, ...] | None = None
    skipped: tuple[tuple[str, str], ...] = ()  # (path, reason) of files left out of the listing


def list_images(images_dir: str | os.PathLike[str], *, labels_csv: str | os.PathLike[str] | None = None,
                labels_from_folders: bool = False, class_names: Sequence[str] | None = None,
                exclude: Sequence[str | os.PathLike[str]] = ()) -> ImageList:
    """Every image file under ``images_dir`` (recursively; hidden files and the folders ``exclude``, e.g. an
    output folder inside it, skipped), sorted by relative path.

    Labels come from ``labels_csv`` (columns ``id,label``; default ``images_dir/labels.csv`` when present)
    or, with ``labels_from_folders``, from each id's first folder. Labels are class indices, or names
    mapped through ``class_names`` (or, without them, numbered in sorted order, kept as ``label_names``).

    Raises:
      FileNotFoundError: ``images_dir`` or ``labels_csv`` does not exist.
      ValueError: no images; a labels file without ``id,label`` columns; a label name not in ``class_names``.
    """
    root = os.path.abspath(os.fspath(images_dir))
    listing = list_image_files(root, exclude=exclude)
    ids = listing.ids
    if not ids:
        raise ValueError(f"images folder {root!r} holds no image files ({', '.join(IMAGE_EXTENSIONS)})"
                         + (f"; {len(listing.skipped)} skipped: {listing.skipped[0][1]}" if listing.skipped else ""))
    if labels_from_folders:
        names: list[str | None] = [i.split("/")[0] if "/" in i else None for i in ids]
        source = f"folder names in {root!r}"
    else:
        default = os.path.join(root, "labels.csv")
        labels_csv = labels_csv if labels_csv is not None else (default if os.path.isfile(default) else None)
        table = _read_labels_csv(labels_csv) if labels_csv is not None else {}
        names, source = [table.get(i) for i in ids], f"labels file {os.fspath(labels_csv or '')!r}"
    labels, label_names = _label_indices(names, class_names, source)
    paths = tuple(os.path.join(root, *i.split("/")) for i in ids)
    return ImageList(root, tuple(ids), paths, labels, label_names, tuple(listing.skipped))


def _read_labels_csv(path: str | os.PathLike[str]) -> dict[str, str]:
    """``id -> label`` from a CSV file with a header holding ``id`` and ``label``."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"labels file {os.fspath(path)!r} does not exist")
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"id", "label"} <= set(reader.fieldnames):
            raise ValueError(f"labels file {os.fspath(path)!r} needs a header with 'id' and 'label', "
                             f"got {reader.fieldnames}")
        return {row["id"].strip().replace(os.sep, "/"): row["label"].strip() for row in reader}


def _label_indices(names: Sequence[str | None], class_names: Sequence[str] | None,
                   source: str) -> tuple[np.ndarray, tuple[str, ...] | None]:
    """Label strings -> int64 indices (-1 for None): integers as they are, names through a vocabulary."""
    known = [n for n in names if n not in (None, "")]
    if all(re.fullmatch(r"-?\d+", n) for n in known):
        return np.array([int(n) if n not in (None, "") else -1 for n in names], np.int64), None
    vocab = tuple(class_names) if class_names else tuple(sorted(set(known)))
    missing = sorted(set(known) - set(vocab))
    if missing:
        raise ValueError(f"{source}: label(s) {missing[:5]} are not among the checkpoint's class names "
                         f"{list(vocab)[:10]}")
    index = {name: i for i, name in enumerate(vocab)}
    return np.array([index[n] if n not in (None, "") else -1 for n in names], np.int64), vocab


def parse_target(target: str | int, num_classes: int, images: ImageList) -> np.ndarray | None:
    """Per-image targets for ``label`` or a class index; None for ``predicted``."""
    if target == "predicted":
        return None
    if target == "label":
        unknown = [i for i, label in zip(images.ids, images.labels) if label < 0]
        if unknown:
            raise ValueError(f"target='label' but {len(unknown)} image(s) have no label (e.g. {unknown[0]!r}); "
                             "give labels.csv or --labels-from-folders")
        bad = sorted({int(v) for v in images.labels if v >= num_classes})
        if bad:
            raise ValueError(f"target='label': labels {bad[:5]} out of range for {num_classes} classes")
        return images.labels
    if not re.fullmatch(r"\d+", str(target)) or int(target) >= num_classes:
        raise ValueError(f"target={target!r}: choose 'label', 'predicted' or a class index in [0, {num_classes})")
    return np.full(len(images.ids), int(target), np.int64)
