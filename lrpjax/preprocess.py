"""Image preprocessing for converted VGG checkpoints, and the z^B bounds it implies.

A checkpoint's metadata carries a ``preprocessing`` dict that says how images must
be prepared for its network:

``name``
    a label (``"torchvision"`` or ``"vggface"`` for the presets).
``pixel_range``
    ``[low, high]``: the values black and white map to before normalisation
    (``[0, 1]`` for torchvision, ``[0, 255]`` for VGG-Face).
``mean``, ``std``
    per-channel (R, G, B) values subtracted from, then divided into, the scaled pixels.
``resize``
    the side the *shorter* image side is resized to (``None``: no resize).
``crop``
    the side of the centred square crop taken after resizing (``None``: no crop).

Resizing uses PIL's bilinear filter (with its antialiasing on downscale), image by
image in numpy, exactly as torchvision's ``Resize`` does on PIL images, so a uint8
image gives the same numbers as ``Resize -> CenterCrop -> ToTensor -> Normalize``.
uint8 images are resized as 8-bit RGB images (as torchvision does); float images
are resized channel by channel in PIL's 32-bit float mode.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

TORCHVISION: Mapping[str, Any] = MappingProxyType({
    "name": "torchvision",
    "pixel_range": (0.0, 1.0),
    "mean": (0.485, 0.456, 0.406),
    "std": (0.229, 0.224, 0.225),
    "resize": 256,
    "crop": 224,
})
"""torchvision's ImageNet preprocessing: RGB in [0, 1], ImageNet mean/std, resize 256, crop 224."""

VGGFACE: Mapping[str, Any] = MappingProxyType({
    "name": "vggface",
    "pixel_range": (0.0, 255.0),
    "mean": (129.186279296875, 104.76238250732422, 93.59396362304688),
    "std": (1.0, 1.0, 1.0),
    "resize": 224,
    "crop": 224,
})
"""VGG-Face's preprocessing: RGB in [0, 255] minus the VGG-Face mean face colour, resize 224, crop 224."""

PRESETS: Mapping[str, Mapping[str, Any]] = MappingProxyType({"torchvision": TORCHVISION, "vggface": VGGFACE})

_KEYS = ("name", "pixel_range", "mean", "std", "resize", "crop")


def preset(name: str) -> dict[str, Any]:
    """A fresh, JSON-ready copy of the preset ``name`` (``"torchvision"`` or ``"vggface"``)."""
    if name not in PRESETS:
        raise ValueError(f"preset name={name!r} is unknown; choose one of {sorted(PRESETS)}")
    return validate_preprocessing(PRESETS[name])


def validate_preprocessing(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Check a preprocessing dict (or a checkpoint's metadata holding one) and return a plain copy.

    Lists replace tuples so the result is JSON-ready. Raises ``ValueError`` naming the bad key.
    """
    spec = _preprocessing_of(metadata)
    missing = [key for key in _KEYS if key not in spec]
    if missing:
        raise ValueError(f"preprocessing metadata lacks key(s) {missing}; it has {sorted(spec)}")
    out: dict[str, Any] = {key: spec[key] for key in spec}
    for key, length in (("pixel_range", 2), ("mean", 3), ("std", 3)):
        try:
            values = [float(v) for v in spec[key]]
        except (TypeError, ValueError) as error:
            raise ValueError(f"preprocessing[{key!r}]={spec[key]!r} is not a list of numbers") from error
        if len(values) != length:
            raise ValueError(f"preprocessing[{key!r}]={spec[key]!r} must have {length} numbers")
        out[key] = values
    if not out["pixel_range"][0] < out["pixel_range"][1]:
        raise ValueError(f"preprocessing['pixel_range']={spec['pixel_range']!r} must be increasing")
    if any(s <= 0 for s in out["std"]):
        raise ValueError(f"preprocessing['std']={spec['std']!r} must be positive")
    for key in ("resize", "crop"):
        value = spec[key]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"preprocessing[{key!r}]={value!r} must be a positive int or None")
    if out["resize"] is not None and out["crop"] is not None and out["crop"] > out["resize"]:
        raise ValueError(f"preprocessing crop={out['crop']} is larger than resize={out['resize']}")
    return out


def _preprocessing_of(metadata: Mapping[str, Any]) -> Mapping[str, Any]:
    """Accept either the preprocessing dict itself or a checkpoint's metadata that holds one."""
    if not isinstance(metadata, Mapping):
        raise TypeError(f"metadata must be a mapping, got {type(metadata).__name__}")
    if "preprocessing" in metadata:
        inner = metadata["preprocessing"]
        if not isinstance(inner, Mapping):
            raise ValueError(f"metadata['preprocessing'] must be a mapping, got {inner!r}")
        return inner
    return metadata


def zbox_bounds(metadata: Mapping[str, Any]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel ``(low, high)`` of the network's input: black and white after normalisation.

    torchvision: ``((0 - mean) / std, (1 - mean) / std)``; VGG-Face: ``(-mean, 255 - mean)``.
    These are the bounds of the z^B rule at the input layer.
    """
    spec = validate_preprocessing(metadata)
    (black, white), mean, std = spec["pixel_range"], spec["mean"], spec["std"]
    mean, std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
    low = tuple(float(v) for v in (np.float32(black) - mean) / std)
    high = tuple(float(v) for v in (np.float32(white) - mean) / std)
    return low, high


def pixel_std_to_input(std: float | Sequence[float], metadata: Mapping[str, Any]) -> np.ndarray:
    r"""A standard deviation in [0, 1] pixel units as per-channel ``[C]`` input units of a checkpoint.

    Pixels :math:`u \in [0, 1]` reach the network as :math:`x_c = (b + u (w - b) - \mu_c) / s_c`
    (``pixel_range`` :math:`[b, w]`, ``mean`` :math:`\mu`, ``std`` :math:`s`), so a std :math:`\sigma` of
    :math:`u` is :math:`\sigma (w - b) / s_c` in input units (e.g. ROAD's noise, 0.01).

    >>> pixel_std_to_input(0.01, TORCHVISION).round(4).tolist()
    [0.0437, 0.0446, 0.0444]

    Raises:
      ValueError: a negative std, one of the wrong length, or invalid preprocessing metadata.
    """
    spec = validate_preprocessing(metadata)
    value = np.asarray(std, np.float64)
    if value.ndim == 0:
        value = np.full(3, float(value))
    if value.shape != (3,) or not np.all(np.isfinite(value)) or np.any(value < 0):
        raise ValueError(f"std={np.asarray(std).tolist()!r} must be a non-negative number or one per channel (3)")
    black, white = spec["pixel_range"]
    return value * (white - black) / np.asarray(spec["std"], np.float64)


def preprocess(images: Any, metadata: Mapping[str, Any]) -> jax.Array:
    """Resize, centre-crop, scale and normalise RGB images for a network.

    Args:
      images: a batch ``[B, H, W, 3]``, a single image ``[H, W, 3]``, or a list of ``[H, W, 3]``
        images of possibly different sizes; uint8 with values 0-255, or float with values in [0, 1].
      metadata: a preprocessing dict (e.g. :data:`TORCHVISION`) or a checkpoint's metadata holding one.

    Returns:
      float32 ``[B, crop, crop, 3]`` (a single image gives ``B = 1``), NHWC.
    """
    spec = validate_preprocessing(metadata)
    batch = [_prepare_one(image, index, spec) for index, image in enumerate(_as_image_list(images))]
    shapes = {image.shape for image in batch}
    if len(shapes) > 1:
        raise ValueError(f"images have different sizes after preprocessing {sorted(shapes)}; set a 'crop'")
    return jnp.asarray(np.stack(batch), dtype=jnp.float32)


def _as_image_list(images: Any) -> list[np.ndarray]:
    if isinstance(images, Sequence) and not isinstance(images, (str, bytes)):
        if not images:
            raise ValueError("images is an empty list")
        return [np.asarray(image) for image in images]
    array = np.asarray(images)
    if array.ndim == 3:
        return [array]
    if array.ndim == 4:
        return list(array)
    raise ValueError(f"images must be [B, H, W, 3] or [H, W, 3], got shape {array.shape}")


def _prepare_one(image: np.ndarray, index: int, spec: Mapping[str, Any]) -> np.ndarray:
    """One ``[H, W, 3]`` image -> normalised float32 ``[crop, crop, 3]``."""
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"images[{index}] must be [H, W, 3] RGB, got shape {image.shape}")
    if image.dtype == np.uint8:
        unit = resize_shorter(image, spec["resize"]).astype(np.float32) / np.float32(255)
    elif np.issubdtype(image.dtype, np.floating):
        low, high = float(np.min(image)), float(np.max(image))
        if low < -1e-6 or high > 1 + 1e-6:
            raise ValueError(
                f"images[{index}] is float with values in [{low:g}, {high:g}]; float images must be in "
                "[0, 1] (pass uint8 for 0-255 images)"
            )
        unit = _resize_float(image.astype(np.float32), spec["resize"])
    else:
        raise ValueError(f"images[{index}] has dtype {image.dtype}; expected uint8 or float")
    unit = _center_crop(unit, spec["crop"], index)
    black, white = (np.float32(v) for v in spec["pixel_range"])
    scaled = unit if (black, white) == (0, 1) else black + unit * (white - black)
    mean = np.asarray(spec["mean"], np.float32)
    std = np.asarray(spec["std"], np.float32)
    return ((scaled - mean) / std).astype(np.float32)


def resized_size(height: int, width: int, resize: int) -> tuple[int, int]:
    """torchvision's ``Resize(resize)`` output size: shorter side ``resize``, longer side truncated."""
    short, long = min(height, width), max(height, width)
    new_long = int(resize * long / short)
    return (resize, new_long) if height <= width else (new_long, resize)


def resize_shorter(image: np.ndarray, resize: int | None) -> np.ndarray:
    """uint8 RGB with its shorter side to ``resize`` (PIL bilinear with antialiasing, torchvision's ``Resize``);
    ``None``: as is."""
    if resize is None:
        return image
    size = resized_size(*image.shape[:2], resize)
    if size == image.shape[:2]:
        return image
    pil = Image.fromarray(np.ascontiguousarray(image), mode="RGB")
    return np.asarray(pil.resize(size[::-1], Image.Resampling.BILINEAR))


def _resize_float(image: np.ndarray, resize: int | None) -> np.ndarray:
    if resize is None:
        return image
    size = resized_size(*image.shape[:2], resize)
    if size == image.shape[:2]:
        return image
    channels = [
        np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c]), mode="F").resize(
            size[::-1], Image.Resampling.BILINEAR
        ))
        for c in range(image.shape[-1])
    ]
    return np.stack(channels, axis=-1).astype(np.float32)


def _center_crop(image: np.ndarray, crop: int | None, index: int) -> np.ndarray:
    """torchvision's ``CenterCrop(crop)``: offsets ``round((side - crop) / 2)``."""
    if crop is None:
        return image
    height, width = image.shape[:2]
    if height < crop or width < crop:
        raise ValueError(f"images[{index}] is {height}x{width} after resizing, smaller than crop={crop}")
    top = round((height - crop) / 2.0)
    left = round((width - crop) / 2.0)
    return image[top : top + crop, left : left + crop]


def load_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file as uint8 RGB ``[H, W, 3]`` (grayscale, palette and RGBA are converted).

    Raises ``FileNotFoundError`` if ``path`` does not exist and ``ValueError`` naming the file
    if it is not a readable image.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"image file {os.fspath(path)!r} does not exist")
    try:
        with Image.open(path) as image:
            return np.array(image.convert("RGB"), dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ValueError(f"cannot read image file {os.fspath(path)!r}: {error}") from error
