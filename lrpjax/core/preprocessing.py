r"""What a checkpoint's preprocessing means for its network's input: the presets, their validation, the z^B
bounds, and pixel units in input units.

A checkpoint's metadata carries a ``preprocessing`` dict that says how images must
be prepared for its network:

``name``
    a label (``"torchvision"``, ``"vggface"`` or ``"vggface2"`` for the presets).
``pixel_range``
    ``[low, high]``: the values black and white map to before normalisation
    (``[0, 1]`` for torchvision, ``[0, 255]`` for VGG-Face).
``mean``, ``std``
    per-channel values subtracted from, then divided into, the scaled pixels.
``resize``
    the side the *shorter* image side is resized to (``None``: no resize).
``crop``
    the side of the centred square crop taken after resizing (``None``: no crop).
``channel_order`` (optional)
    ``"RGB"`` (the default) or ``"BGR"`` (Caffe-trained networks such as the VGGFace2 models): the
    order of the network's input channels; ``mean`` and ``std`` are then given in that order.

The image operations that apply it live in :mod:`lrpjax.io.preprocess` (public path ``lrpjax.preprocess``,
which also carries these names).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np

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

VGGFACE2: Mapping[str, Any] = MappingProxyType({
    "name": "vggface2",
    "pixel_range": (0.0, 255.0),
    "mean": (91.4953, 103.8827, 131.0912),
    "std": (1.0, 1.0, 1.0),
    "resize": 256,
    "crop": 224,
    "channel_order": "BGR",
})
"""The VGGFace2 models' preprocessing (Cao et al. 2018, as the PyTorch port of cydonia999 applies it):
resize 256, crop 224, BGR in [0, 255] minus the mean (B, G, R) = (91.4953, 103.8827, 131.0912), no std."""

PRESETS: Mapping[str, Mapping[str, Any]] = MappingProxyType({"torchvision": TORCHVISION, "vggface": VGGFACE,
                                                             "vggface2": VGGFACE2})
CHANNEL_ORDERS = ("RGB", "BGR")



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
    if "channel_order" in spec and spec["channel_order"] not in CHANNEL_ORDERS:
        raise ValueError(f"preprocessing['channel_order']={spec['channel_order']!r}; choose one of {CHANNEL_ORDERS}")
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
