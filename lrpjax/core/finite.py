"""Refusing non-finite numbers at the boundary: NaN or ±inf in images, output relevance or weights would give
all-NaN relevance without any error, so every entry point checks them once, on the host where it can."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def nonfinite_rows(array: Any) -> list[int]:
    """Indices along the first axis of the rows holding a NaN or ±inf (numpy on host arrays, one reduction on
    the device for device arrays: either costs less than moving the array)."""
    if isinstance(array, jax.Array):
        bad = jnp.logical_not(jnp.isfinite(array).reshape(array.shape[0], -1).all(axis=1))
        return np.flatnonzero(np.asarray(bad)).tolist()
    values = np.asarray(array)
    if not np.issubdtype(values.dtype, np.inexact) or values.size == 0:
        return []
    return np.flatnonzero(~np.isfinite(values.reshape(values.shape[0], -1)).all(axis=1)).tolist()


def require_finite_rows(name: str, array: Any) -> None:
    """``ValueError`` naming ``name`` and the rows (e.g. images) that hold NaN or ±inf."""
    bad = nonfinite_rows(array)
    if bad:
        shown = ", ".join(map(str, bad[:10])) + (", ..." if len(bad) > 10 else "")
        raise ValueError(f"{name} holds NaN or infinite values in {len(bad)} of {np.shape(array)[0]} rows "
                         f"(indices {shown}); only finite values can be explained")


def nonfinite_parameters(tree: Mapping[str, Any] | Any) -> list[str]:
    """The paths (``params/conv1_1/kernel``) of the leaves of a variables tree that hold NaN or ±inf."""
    bad = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        values = np.asarray(leaf)
        if np.issubdtype(values.dtype, np.inexact) and not np.isfinite(values).all():
            bad.append("/".join(str(getattr(key, "key", getattr(key, "idx", key))) for key in path))
    return bad
