"""The layer functions of a VGG, shared by the Flax module and the LRP engine.

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


def conv2d(x: Array, kernel: Array, bias: Array | None = None) -> Array:
    """3x3 (or any odd-sized) convolution, stride 1, zero 'same' padding, as in VGG."""
    kh, kw = kernel.shape[:2]
    padding = ((kh // 2, kh // 2), (kw // 2, kw // 2))
    z = jax.lax.conv_general_dilated(x, kernel, (1, 1), padding, dimension_numbers=CONV_DIMENSIONS)
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


def max_pool(x: Array) -> Array:
    """2x2 max pooling with stride 2."""
    return _pool_windows(x).max(axis=-1)


def max_pool_winner_mask(x: Array) -> Array:
    """One-hot mask of each 2x2 window's first maximum (row-major), as torch's max-pool backward routes it."""
    windows = _pool_windows(x)
    is_max = windows == windows.max(axis=-1, keepdims=True)
    first = jnp.cumsum(is_max, axis=-1) == 1
    return _unpool_windows((is_max & first).astype(x.dtype), x.shape)


def max_pool_backward_winner(x: Array, relevance: Array) -> Array:
    """Send each window's relevance to its first maximum (winner-take-all)."""
    spread = jnp.repeat(jnp.repeat(relevance, 2, axis=1), 2, axis=2)
    n, h, w, c = x.shape
    spread = jnp.pad(spread, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)))
    return spread * max_pool_winner_mask(x)


def avg_pool(x: Array) -> Array:
    """2x2 average pooling with stride 2 (the proportional view of a max-pool layer)."""
    return _pool_windows(x).mean(axis=-1)


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


def flatten(x: Array) -> Array:
    """``[N, H, W, C]`` -> ``[N, H*W*C]`` in NHWC order (torch flattens C, H, W; conversion permutes fc6)."""
    return x.reshape(x.shape[0], -1)
