"""The layer functions of the networks (VGG, ResNet), shared by the Flax modules and the LRP engine.

Every function takes a batch in NHWC layout (or ``[N, F]`` after flattening) and
is pure, so the network that is trained and the network that is explained are
the same code. Parameters follow Flax: a conv ``kernel`` is ``[kh, kw, in, out]``
(HWIO), a dense ``kernel`` is ``[in, out]``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

CONV_DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def conv2d(x: Array, kernel: Array, bias: Array | None = None, stride: int = 1,
           padding: int | None = None) -> Array:
    """Convolution with torch's geometry: ``stride``, ``padding`` zeros on every side (``None``: ``k // 2``,
    'same' for an odd kernel at stride 1, as in VGG)."""
    kh, kw = kernel.shape[:2]
    pad = ((kh // 2, kh // 2), (kw // 2, kw // 2)) if padding is None else ((padding, padding),) * 2
    z = jax.lax.conv_general_dilated(x, kernel, (stride, stride), pad, dimension_numbers=CONV_DIMENSIONS)
    return z if bias is None else z + bias


def dense(x: Array, kernel: Array, bias: Array | None = None) -> Array:
    """``x @ kernel + bias`` contracting the stored ``[in, out]`` kernel directly (no transposed copy)."""
    z = jax.lax.dot_general(x, kernel, (((x.ndim - 1,), (0,)), ((), ())))
    return z if bias is None else z + bias


def relu(x: Array) -> Array:
    return jnp.maximum(x, 0)


def _pool_windows(x: Array) -> Array:
    """``[N, H, W, C]`` -> ``[N, H//2, W//2, C, 4]``, dropping an odd last row/column (floor mode, as torch)."""
    n, h, w, c = x.shape
    x = x[:, : h - h % 2, : w - w % 2]
    x = x.reshape(n, h // 2, 2, w // 2, 2, c)
    return x.transpose(0, 1, 3, 5, 2, 4).reshape(n, h // 2, w // 2, c, 4)


def _unpool_windows(windows: Array, shape: tuple[int, ...]) -> Array:
    """Inverse of :func:`_pool_windows`; the dropped row/column gets zeros."""
    n, h, w, c = shape
    x = windows.reshape(n, h // 2, w // 2, c, 2, 2).transpose(0, 1, 4, 2, 5, 3)
    x = x.reshape(n, h - h % 2, w - w % 2, c)
    return jnp.pad(x, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)))


PoolGeometry = tuple[int, int, int, bool]
"""A pool's ``(window, stride, padding, ceil_mode)``, as torch's ``MaxPool2d`` takes them."""
VGG_POOL: PoolGeometry = (2, 2, 0, False)


def _pool_padding(side: int, geometry: PoolGeometry) -> tuple[int, int]:
    """Padding before/after one spatial axis so that a VALID window reproduces torch's output size.

    torch: ``out = floor_or_ceil((side + 2p - k) / s) + 1``, and in ceil mode the last window must
    start inside the image or its left padding.
    """
    window, stride, padding, ceil_mode = geometry
    span = side + 2 * padding - window
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= side + padding:
        out -= 1
    return padding, max(0, (out - 1) * stride + window - side - padding)


def _reduce_pool(x: Array, geometry: PoolGeometry, init: float, op) -> Array:
    window, stride = geometry[:2]
    pad = ((0, 0), _pool_padding(x.shape[1], geometry), _pool_padding(x.shape[2], geometry), (0, 0))
    return jax.lax.reduce_window(x, np.array(init, x.dtype), op, (1, window, window, 1),
                                 (1, stride, stride, 1), pad)


def max_pool(x: Array, geometry: PoolGeometry = VGG_POOL) -> Array:
    """Max pooling (default 2x2 with stride 2); padding counts as -inf, as in torch."""
    if tuple(geometry) == VGG_POOL:
        return _pool_windows(x).max(axis=-1)
    return _reduce_pool(x, geometry, -jnp.inf, jax.lax.max)


def max_pool_winner_mask(x: Array) -> Array:
    """One-hot mask of each 2x2 window's first maximum (row-major), as torch's max-pool backward routes it."""
    windows = _pool_windows(x)
    is_max = windows == windows.max(axis=-1, keepdims=True)
    first = jnp.cumsum(is_max, axis=-1) == 1
    return _unpool_windows((is_max & first).astype(x.dtype), x.shape)


def max_pool_backward_winner(x: Array, relevance: Array, geometry: PoolGeometry = VGG_POOL) -> Array:
    """Send each window's relevance to its first maximum (winner-take-all); overlapping windows add up,
    as torch's max-pool gradient (XLA's select-and-scatter keeps the first maximum too)."""
    if tuple(geometry) != VGG_POOL:
        return jax.vjp(lambda v: max_pool(v, geometry), x)[1](relevance)[0]
    spread = jnp.repeat(jnp.repeat(relevance, 2, axis=1), 2, axis=2)
    n, h, w, c = x.shape
    spread = jnp.pad(spread, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)))
    return spread * max_pool_winner_mask(x)


def avg_pool(x: Array, geometry: PoolGeometry = VGG_POOL) -> Array:
    """Average pooling over a max pool's windows (its proportional view; padding counts as zero)."""
    if tuple(geometry) == VGG_POOL:
        return _pool_windows(x).mean(axis=-1)
    return _reduce_pool(x, geometry, 0, jax.lax.add) / geometry[0] ** 2


@functools.cache
def _adaptive_matrix(size_in: int, size_out: int) -> np.ndarray:
    """torch's AdaptiveAvgPool bins: output i averages [floor(i*n/m), ceil((i+1)*n/m))."""
    matrix = np.zeros((size_out, size_in))
    for i in range(size_out):
        start = (i * size_in) // size_out
        stop = -((-(i + 1) * size_in) // size_out)
        matrix[i, start:stop] = 1.0 / (stop - start)
    return matrix


def adaptive_avg_pool(x: Array, output_size: int) -> Array:
    """torch's ``AdaptiveAvgPool2d(output_size)`` in NHWC, as two small averaging matrices."""
    rows = jnp.asarray(_adaptive_matrix(x.shape[1], output_size), x.dtype)
    cols = jnp.asarray(_adaptive_matrix(x.shape[2], output_size), x.dtype)
    return jnp.einsum("ih,jw,nhwc->nijc", rows, cols, x)


def add(x: Array) -> Array:
    """The residual sum: ``[K, N, ...]`` (the summands stacked on a leading axis) -> their sum."""
    return x.sum(axis=0)


def flatten(x: Array) -> Array:
    """``[N, H, W, C]`` -> ``[N, H*W*C]`` in NHWC order (torch flattens C, H, W; conversion permutes fc6)."""
    return x.reshape(x.shape[0], -1)
