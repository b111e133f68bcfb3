"""Image preprocessing for converted checkpoints: images (arrays or files) resized, cropped and normalised into
network inputs as a checkpoint's ``preprocessing`` metadata says (:mod:`lrpjax.core.preprocessing` defines and
validates it; its names are available here too, so ``lrpjax.preprocess.zbox_bounds`` and
``lrpjax.preprocess.VGGFACE2`` work).

Resizing uses PIL's bilinear filter (with its antialiasing on downscale), image by
image in numpy, exactly as torchvision's ``Resize`` does on PIL images, so a uint8
image gives the same numbers as ``Resize -> CenterCrop -> ToTensor -> Normalize``.
uint8 images are resized as 8-bit RGB images (as torchvision does); float images
are resized channel by channel in PIL's 32-bit float mode.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from lrpjax.core.preprocessing import (
    CHANNEL_ORDERS,
    PRESETS,
    TORCHVISION,
    VGGFACE,
    VGGFACE2,
    pixel_std_to_input,
    preset,
    validate_preprocessing,
    zbox_bounds,
)
from lrpjax.io.imagefiles import load_image

__all__ = ["TORCHVISION", "VGGFACE", "VGGFACE2", "CHANNEL_ORDERS", "PRESETS", "center_offsets", "load_image",
           "normalize", "pixel_std_to_input", "preprocess", "preset", "resize_shorter", "resized_size",
           "validate_preprocessing", "zbox_bounds"]


def preprocess(images: Any, metadata: Mapping[str, Any]) -> jax.Array:
    """Resize, centre-crop, scale and normalise RGB images for a network (reordered to BGR where it says so).

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
        return normalize(_center_crop(resize_shorter(image, spec["resize"]), spec["crop"], index), spec)
    if not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"images[{index}] has dtype {image.dtype}; expected uint8 or float")
    low, high = float(np.min(image)), float(np.max(image))
    if low < -1e-6 or high > 1 + 1e-6:
        raise ValueError(
            f"images[{index}] is float with values in [{low:g}, {high:g}]; float images must be in "
            "[0, 1] (pass uint8 for 0-255 images)"
        )
    return normalize(_center_crop(_resize_float(image.astype(np.float32), spec["resize"]), spec["crop"], index), spec)


def normalize(image: np.ndarray, spec: Mapping[str, Any]) -> np.ndarray:
    r"""Pixels to network input: uint8 (0-255) or float in [0, 1] -> float32 scaled to ``pixel_range`` and
    normalised, :math:`x = (\text{black} + u\,(\text{white} - \text{black}) - \text{mean}) / \text{std}` with
    :math:`u = v / 255` for uint8 :math:`v`. The one implementation for :func:`preprocess` and the data pipeline
    (cropping commutes with it, so both give the same bits)."""
    unit = image.astype(np.float32) / np.float32(255) if image.dtype == np.uint8 else image.astype(np.float32)
    black, white = (np.float32(v) for v in spec["pixel_range"])
    scaled = unit if (black, white) == (0, 1) else black + unit * (white - black)
    if spec.get("channel_order") == "BGR":
        scaled = scaled[..., ::-1]
    mean = np.asarray(spec["mean"], np.float32)
    std = np.asarray(spec["std"], np.float32)
    return ((scaled - mean) / std).astype(np.float32)


def center_offsets(height: int, width: int, crop: int) -> tuple[int, int]:
    """torchvision's ``CenterCrop(crop)`` offsets ``(top, left)``: ``round((side - crop) / 2)``."""
    return round((height - crop) / 2.0), round((width - crop) / 2.0)


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
    top, left = center_offsets(height, width, crop)
    return image[top : top + crop, left : left + crop]
