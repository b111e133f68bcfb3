"""A torch state dict against a layout: the entries a converter expects, every mismatch listed at once, and the
Flax variables built from a clean dict. Shared by the VGG (:mod:`weights_conversion.convert`) and ResNet
(:mod:`weights_conversion.resnet`) converters; never imports torch."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import numpy as np


class Entry(NamedTuple):
    """One torch tensor of a layout: its key and shape, where it goes and how it is reshaped.

    ``transform`` is ``conv``, ``dense``, ``fc6`` (dense with rows permuted from C, H, W to H, W, C
    of ``fc6_input``) or ``copy``. ``required=False`` marks a tensor that may be absent and is dropped.
    """

    key: str
    shape: tuple[int, ...]
    target: tuple[str, ...] | None
    transform: str = "copy"
    fc6_input: tuple[int, int, int] | None = None
    required: bool = True


def to_numpy(value: Any) -> np.ndarray:
    """A torch tensor or array-like as numpy; floating values become float32."""
    if hasattr(value, "detach"):  # a torch tensor; bfloat16/half go through float32
        value = value.detach().cpu()
        if value.is_floating_point():
            value = value.float()
        value = value.numpy()
    array = np.asarray(value)
    return array.astype(np.float32, copy=False) if np.issubdtype(array.dtype, np.floating) else array


def _shape_of(value: Any) -> tuple[int, ...] | None:
    shape = getattr(value, "shape", None)
    return None if shape is None else tuple(int(n) for n in shape)


def mismatches(state_dict: Mapping[str, Any], entries: Iterable[Entry]) -> list[str]:
    """Every problem of ``state_dict`` against a layout: missing, unexpected and mis-shaped keys."""
    entries = list(entries)
    known = {entry.key: entry for entry in entries}
    problems = [f"missing key {e.key!r} {e.shape}" for e in entries if e.required and e.key not in state_dict]
    for key, value in state_dict.items():
        entry = known.get(key)
        if entry is None:
            problems.append(f"unexpected key {key!r} {_shape_of(value)}")
        elif _shape_of(value) != entry.shape:
            problems.append(f"key {key!r} has shape {_shape_of(value)}, expected {entry.shape}")
        elif entry.target is not None and not _is_floating(value):
            problems.append(f"key {key!r} has dtype {value.dtype}, expected floating point")
    return problems


def _is_floating(value: Any) -> bool:
    if hasattr(value, "is_floating_point"):  # torch
        return bool(value.is_floating_point())
    return np.issubdtype(np.asarray(value).dtype, np.floating)


def variables_from(state_dict: Mapping[str, Any], entries: Iterable[Entry]) -> dict[str, Any]:
    """Build the Flax variables tree from a state dict that :func:`mismatches` found clean."""
    variables: dict[str, Any] = {}
    for entry in entries:
        if entry.target is None or entry.key not in state_dict:
            continue
        array = _transform(to_numpy(state_dict[entry.key]), entry)
        if np.issubdtype(array.dtype, np.inexact) and not np.isfinite(array).all():
            raise ValueError(f"key {entry.key!r} holds NaN or infinite values "
                             f"({int(np.size(array) - np.isfinite(array).sum())} of {np.size(array)}); "
                             "these weights cannot be explained")
        node = variables
        for part in entry.target[:-1]:
            node = node.setdefault(part, {})
        node[entry.target[-1]] = np.ascontiguousarray(array)
    return variables


def _transform(array: np.ndarray, entry: Entry) -> np.ndarray:
    if entry.transform == "conv":
        return array.transpose(2, 3, 1, 0)
    if entry.transform == "dense":
        return array.T
    if entry.transform == "fc6":
        channels, height, width = entry.fc6_input
        out = array.shape[0]
        return array.reshape(out, channels, height, width).transpose(2, 3, 1, 0).reshape(-1, out)
    return array


def _check_keys(state_dict: Any) -> None:
    if not isinstance(state_dict, Mapping):
        # the weights file's content is wrong, not an argument's type
        raise ValueError(
            f"expected a state dict (a mapping of names to tensors), got {type(state_dict).__name__}"
        )
    bad = [repr(key) for key, value in state_dict.items()
           if not isinstance(key, str) or _shape_of(value) is None]
    if bad:
        raise ValueError(f"state dict entries that are not named tensors: {', '.join(bad)}")
