r"""ROAD's noisy linear imputation: masked pixels become the weighted mean of their neighbours, plus noise.

Every masked pixel :math:`i` of an image, channel by channel, takes the value that makes it the weighted mean
of its 8 neighbours :math:`N(i)` (weight :math:`w_{ij} = 1/6` for the 4 edge neighbours, :math:`1/12` for the
4 diagonal ones; neighbours outside the image are dropped, so :math:`S_i = \sum_{j \in N(i)} w_{ij} \le 1`),
solved jointly for all masked pixels :math:`M`:

.. math::
    S_i x_i - \sum_{j \in N(i) \cap M} w_{ij} x_j = \sum_{j \in N(i) \setminus M} w_{ij} x_j
    \qquad (i \in M),

then Gaussian noise of std :math:`\sigma_c` (per channel, in the model's input units) is added to the masked
pixels. The system is symmetric; on each connected masked region that touches a kept pixel it is positive
definite (a Dirichlet graph Laplacian), and it is solved by conjugate gradients on the 3x3 stencil (no matrix
is formed), started from 0, with a fixed iteration cap and a relative residual tolerance set by the dtype.

A masked region with no kept neighbour at all (e.g. the whole image masked) has a zero right-hand side and
a singular block (every constant solves it); conjugate gradients started from 0 never leave 0 there, so such
pixels become 0 in input space plus noise, as ``quantus.functions.perturb_func.noisy_linear_imputation``
(Quantus 0.6.0, whose sparse LU solve returns 0 for them) and the ROAD reference code give. For inputs
normalised by the data-set mean, 0 is the mean colour.

Reference: Rong, Leemann, Borisov, Kasneci, Kasneci 2022, *A Consistent and Efficient Evaluation Strategy for
Attribution Methods* (ROAD), ICML, https://arxiv.org/abs/2202.00449; the reference noise is 0.01 in [0, 1]
pixel units (:func:`lrpjax.io.preprocess.pixel_std_to_input` maps it to input units).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

CHUNK = 8  # items solved together by road_solve_items


def _neighbour_sum(x: Array) -> Array:
    r""":math:`\sum_{j \in N(i)} w_{ij} x_j` over the first two axes (``[H, W, ...]``), zeros outside the image.

    The weights are :math:`(t \otimes t - 4\delta) / 12` with :math:`t = (1, 2, 1)`: two 3-tap passes instead of
    eight shifted copies."""
    p = jnp.pad(x, [(1, 1), (1, 1)] + [(0, 0)] * (x.ndim - 2))
    rows = p[:-2] + 2 * p[1:-1] + p[2:]
    both = rows[:, :-2] + 2 * rows[:, 1:-1] + rows[:, 2:]
    return (both - 4 * x) / 12


def _tolerance(dtype: Any) -> float:
    """Relative residual at which the iteration stops. float32: 1e-4, which left errors of at most 2.8e-3 (in
    units of the images' std) against the float64 solution on 64x64 MoRF and random 4x4-patch masks of the smoke
    study's fractions (2-75 %; ``benchmarks/masking.py``'s masks), 1/16 of ROAD's noise (0.01 pixel std, 0.044 in
    ImageNet-normalised units); float64: 1e-12, far below the tests' 1e-5 parity."""
    dtype = jnp.dtype(dtype)
    if dtype == jnp.float64:
        return 1e-12
    return max(1e-4, 10 * float(jnp.finfo(dtype).eps))  # float16 and bfloat16 cannot reach 1e-4


def _solve_chunk(images: Array, masks: Array, max_iterations: int | None = None) -> Array:
    """The noise-free imputation of a few images at once (``[c, H, W, C]``, masks ``[c, H, W]``).

    One conjugate gradient per image and channel, all run in one loop on arrays ``[H, W, c * C]``: the pixels'
    axes first and the (image, channel) lanes last, so that every shift of the stencil moves whole vectors of
    lanes and every dot product is one contraction over the pixels (faster on the CPU than one loop per image
    with its channels first under XLA's default flags, about as fast with YNNPACK fusion off:
    ``benchmarks/README.md``, "ROAD imputation"). The operator is shared, the step sizes are per lane; a lane
    whose residual is below the tolerance stops moving (its step sizes are 0) while the others go on. At most
    ``max_iterations`` steps (default ``4 * (H + W)``, several times what a 64x64 image needs).
    """
    count, height, width, channels = images.shape
    to_lanes = lambda a: jnp.transpose(a, (1, 2, 0, 3)).reshape(height, width, count * channels)
    image = to_lanes(images)
    m = to_lanes(jnp.broadcast_to(masks[..., None], images.shape).astype(images.dtype))
    total = _neighbour_sum(jnp.ones((height, width, 1), images.dtype))  # S_i
    b = m * _neighbour_sum((1 - m) * image)
    operator = lambda x: m * (total * x - _neighbour_sum(x))  # x is 0 off the mask, and stays 0
    # per lane; full precision where a float32 contraction would otherwise run in bfloat16 (TPU) or TF32 (GPU)
    dot = lambda u, v: jnp.einsum("hwl,hwl->l", u, v, precision=jax.lax.Precision.HIGHEST)
    rs_start = dot(b, b)
    tolerance = (_tolerance(images.dtype) ** 2) * rs_start
    cap = 4 * (height + width) if max_iterations is None else max_iterations
    safe_divide = lambda n, d: jnp.where(d > 0, n / jnp.where(d > 0, d, 1), 0)

    def not_done(state):
        *_, rs, k = state
        return (k < cap) & jnp.any(rs > tolerance)

    def step(state):
        x, r, p, rs, k = state
        active = rs > tolerance
        ap = operator(p)
        alpha = jnp.where(active, safe_divide(rs, dot(p, ap)), 0)
        x, r = x + alpha * p, r - alpha * ap
        rs_new = dot(r, r)
        beta = jnp.where(active, safe_divide(rs_new, rs), 0)
        return x, r, r + beta * p, rs_new, k + 1

    x, *_ = jax.lax.while_loop(not_done, step, (jnp.zeros_like(b), b, b, rs_start, 0))
    solved = jnp.where(m > 0, x, image).reshape(height, width, count, channels)
    return jnp.transpose(solved, (2, 0, 1, 3))


def road_solve(image: Array, masked: Array, *, max_iterations: int | None = None) -> Array:
    """The noise-free imputation of one image: ``image`` ``[H, W, C]`` with the pixels where ``masked``
    (``[H, W]``, boolean) is true replaced by the solution of the system above (unmasked pixels unchanged), by
    conjugate gradients, one per channel, at most ``max_iterations`` steps (default ``4 * (H + W)``)."""
    return _solve_chunk(image[None], masked[None], max_iterations)[0]


def road_solve_items(images: Array, masks: Array, *, chunk: int = CHUNK) -> Array:
    """:func:`road_solve` of every item (``[N, H, W, C]`` images, ``[N, H, W]`` masks), ``chunk`` items at a time,
    one chunk after the other, the items sorted by their number of masked pixels.

    A chunk's loop runs as long as its slowest item, and larger masks need more steps; sorted, a chunk holds masks
    of similar size that converge alike, and a chunk of small masks stops early instead of waiting for the largest
    masks of the batch (for the smoke study's 9 fractions, 2.5x fewer item-steps than one loop over the whole
    batch). The item count is padded to a multiple of ``chunk`` with empty masks, which never move (a chunk of
    fewer items would cost less work but more time: 4 items' 12 lanes ran each step 2-3x slower than 8 items' 24).
    """
    n = len(images)
    chunk = max(1, min(chunk, n))
    pad = (-n) % chunk
    images = jnp.concatenate([jnp.zeros((pad, *images.shape[1:]), images.dtype), images])
    masks = jnp.concatenate([jnp.zeros((pad, *masks.shape[1:]), bool), masks])
    order = jnp.argsort(jnp.sum(masks, axis=(1, 2)))  # the empty pads come first
    in_chunks = lambda a: a[order].reshape(-1, chunk, *a.shape[1:])
    solved = jax.lax.map(lambda item: _solve_chunk(*item), (in_chunks(images), in_chunks(masks)))
    return solved.reshape(images.shape)[jnp.argsort(order)][pad:]


def noise_scale(noise_std: float | Sequence[float] | Array, channels: int, dtype) -> Array:
    """``noise_std`` as a ``[C]`` array (a float is used for every channel); checked non-negative."""
    std = np.asarray(noise_std, np.float64)
    if std.ndim == 0:
        std = np.full(channels, float(std))
    if std.shape != (channels,) or not np.all(np.isfinite(std)) or np.any(std < 0):
        raise ValueError(f"noise_std={np.asarray(noise_std).tolist()!r} must be a non-negative number or one per "
                         f"channel ({channels})")
    return jnp.asarray(std, dtype)


def road_noise(images: Array, noise_std: float | Sequence[float] | Array, seed: int = 0) -> Array:
    """The imputation noise of every image, ``noise_std * N(0, 1)`` ``[B, H, W, C]`` from ``seed``."""
    images = jnp.asarray(images)
    std = noise_scale(noise_std, images.shape[-1], images.dtype)
    return std * jax.random.normal(jax.random.fold_in(jax.random.key(seed), 2), images.shape, images.dtype)


@jax.jit
def _impute(images: Array, masks: Array, noise: Array) -> Array:
    imputed = road_solve_items(images, masks)
    return jnp.where(masks[..., None], imputed + noise, images)


def road_imputation(images: Array, masks: Array, *, noise_std: float | Sequence[float] = 0.0,
                    seed: int = 0) -> Array:
    r"""ROAD's noisy linear imputation of the ``masks`` (``[B, H, W]`` or ``[H, W]``, boolean) of ``images``
    ``[B, H, W, C]``: masked pixels solve the neighbour system of this module, plus ``noise_std`` (a float or
    ``[C]``, input units) times seeded standard normal noise; kept pixels are unchanged.

    >>> images = jnp.zeros((1, 3, 3, 1)).at[0, :, 0].set(1.0)
    >>> masks = jnp.zeros((1, 3, 3), bool).at[0, :, 1].set(True)
    >>> [round(v, 3) for v in road_imputation(images, masks)[0, :, 1, 0].tolist()]
    [0.5, 0.5, 0.5]

    Raises:
      ValueError: images not floating point ``[B, H, W, C]``, masks not boolean of the images' shape, or a
        negative or mis-shaped ``noise_std``.
    """
    images = jnp.asarray(images)
    masks = jnp.asarray(masks)
    if images.ndim != 4 or not jnp.issubdtype(images.dtype, jnp.floating):
        raise ValueError(f"images must be floating point [batch, height, width, channels], got {images.dtype} "
                         f"of shape {images.shape}")
    if masks.dtype != jnp.bool_ or masks.shape not in (images.shape[:3], images.shape[1:3]):
        raise ValueError(f"masks must be boolean of shape {images.shape[:3]} or {images.shape[1:3]}, "
                         f"got {masks.dtype} {masks.shape}")
    masks = jnp.broadcast_to(masks, images.shape[:3])
    return _impute(images, masks, road_noise(images, noise_std, seed))
