r"""Relevance-based masking ("pixel flipping"): MoRF, LeRF and random orders, and the curves they give.

Pixels (or square patches) of each image are ranked by a relevance heatmap
:math:`h = \rho(\sum_c R_{\cdot\cdot c})` with :math:`\rho(t) = \max(t, 0)` (``positive``) or :math:`|t|`
(``absolute``); patches score the sum of their pixels. Units are masked most relevant first (MoRF), least
relevant first (LeRF) or in a seeded random order (the baseline); ties are broken by a seeded random order, so
MoRF and LeRF never favour a corner of the image. At fraction :math:`f` of :math:`U` units the first
:math:`\mathrm{round}(f U)` units of the order are replaced by the fill: ``zero`` (0 in input space), ``mean``
(a given per-channel data-set mean), ``blur`` (a Gaussian-blurred copy of the image) or ``noise``
(``mean + noise_std * N(0, 1)``, seeded) or ``road`` (ROAD's noisy linear imputation,
:mod:`~lrpjax.analysis.imputation`: each masked pixel the weighted mean of its neighbours, solved jointly for the
image's mask, plus ``noise_std * N(0, 1)``; it depends on the mask, so it is solved for every (fraction, image)
inside the compiled step). The target model, a function ``logits_fn(images) -> logits``, sees
every masked image; the curves hold, per fraction and image, the accuracy against the labels, the target
logit and the target's softmax probability. A curve's area (trapezoid over the fractions) summarises it:
MoRF falls fastest for a faithful map (low AUC), LeRF slowest (high AUC).

The (fraction, image) grid is evaluated in batches of ``batch_size`` masked images (fraction-major), so memory
stays bounded whatever the number of fractions and images; the masking and ``logits_fn`` are jit-compiled
together once per shape.

References: Samek et al. 2017, *Evaluating the visualization of what a deep neural network has learned*,
https://arxiv.org/abs/1509.06321; Crawford et al. 2020; Rong et al. 2022, *A Consistent and Efficient
Evaluation Strategy for Attribution Methods*, ICML, https://arxiv.org/abs/2202.00449 (``road``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lrpjax.analysis.imputation import noise_scale, road_imputation, road_noise, road_solve_items

Array = jax.Array
LogitsFn = Callable[[Array], Array]

FRACTIONS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
ORDERS = ("morf", "lerf", "random")
FILLS = ("zero", "mean", "blur", "noise", "road")
RELEVANCE_MODES = ("positive", "absolute")
METRICS = ("accuracy", "logit", "probability")


def auc(curve: np.ndarray, fractions: Sequence[float]) -> np.ndarray:
    r"""Area under ``curve`` ``[F, ...]`` over ``fractions`` ``[F]`` by the trapezoid rule.

    .. math:: \mathrm{AUC} = \sum_{i=1}^{F-1} (f_i - f_{i-1}) \, (c_i + c_{i-1}) / 2

    >>> float(auc(np.array([1.0, 0.5, 0.0]), [0.0, 0.5, 1.0]))
    0.5
    """
    curve = np.asarray(curve, np.float64)
    widths = np.diff(np.asarray(fractions, np.float64)).reshape((-1,) + (1,) * (curve.ndim - 1))
    return np.sum(widths * (curve[1:] + curve[:-1]) / 2, axis=0)


class MaskingCurves(NamedTuple):
    """Curves of one masking order: each metric ``[F, B]`` (fraction, image) beside the ``fractions`` ``[F]``."""

    fractions: np.ndarray
    accuracy: np.ndarray
    logit: np.ndarray
    probability: np.ndarray

    def auc(self, metric: str = "probability") -> np.ndarray:
        """Per-image area under the ``metric`` curve, ``[B]``."""
        return auc(getattr(self, _check_metric(metric)), self.fractions)

    def mean(self, metric: str = "probability") -> np.ndarray:
        """The ``metric`` curve averaged over images, ``[F]``."""
        return getattr(self, _check_metric(metric)).mean(axis=1)


class MaskingResult(NamedTuple):
    """MoRF, LeRF and random curves of one set of maps on one model."""

    morf: MaskingCurves
    lerf: MaskingCurves
    random: MaskingCurves

    def auc(self, metric: str = "probability") -> dict[str, float]:
        """Mean AUC (over images) per order."""
        return {order: float(getattr(self, order).auc(metric).mean()) for order in ORDERS}

    def morf_minus_lerf(self, metric: str = "probability") -> float:
        r""":math:`\overline{\mathrm{AUC}}_\mathrm{MoRF} - \overline{\mathrm{AUC}}_\mathrm{LeRF}`: the more negative,
        the better the map separates relevant from irrelevant pixels."""
        aucs = self.auc(metric)
        return aucs["morf"] - aucs["lerf"]


def heatmap(relevance: Array, *, relevance_mode: str = "positive") -> Array:
    r"""``[B, H, W(, C)]`` relevance -> ``[B, H, W]`` scores :math:`\rho(\sum_c R_c)`, :math:`\rho` = ``max(., 0)``
    (``positive``) or ``|.|`` (``absolute``)."""
    if relevance_mode not in RELEVANCE_MODES:
        raise ValueError(f"relevance_mode={relevance_mode!r} is unknown; choose one of {RELEVANCE_MODES}")
    relevance = jnp.asarray(relevance)
    heat = relevance.sum(axis=-1) if relevance.ndim == 4 else relevance
    return jnp.maximum(heat, 0) if relevance_mode == "positive" else jnp.abs(heat)


def patch_units(height: int, width: int, patch_size: int) -> tuple[np.ndarray, int]:
    """Unit index of every pixel (row-major ``[H * W]``) for square patches of ``patch_size``, and the number of
    units; edge patches are smaller when the side is not a multiple of ``patch_size``."""
    if not isinstance(patch_size, (int, np.integer)) or not 1 <= patch_size <= min(height, width):
        raise ValueError(f"patch_size={patch_size!r} must be an integer in [1, {min(height, width)}]")
    columns = -(-width // patch_size)
    rows, cols = np.divmod(np.arange(height * width), width)
    return (rows // patch_size) * columns + cols // patch_size, columns * -(-height // patch_size)


def masking_ranks(relevance: Array | None, *, shape: tuple[int, int, int], order: str, patch_size: int = 1,
                  relevance_mode: str = "positive", seed: int = 0) -> tuple[Array, np.ndarray]:
    """Position of every unit in the masking order, ``[B, U]`` (0 is masked first), and each pixel's unit.

    Args:
      relevance: ``[B, H, W(, C)]`` maps (ignored, and may be None, for ``order="random"``).
      shape: ``(B, H, W)`` of the images.
      order: ``morf`` (descending relevance), ``lerf`` (ascending) or ``random``.
      patch_size, relevance_mode: see :func:`patch_units` and :func:`heatmap`.
      seed: the random order, and the order among ties.
    """
    if order not in ORDERS:
        raise ValueError(f"order={order!r} is unknown; choose one of {ORDERS}")
    batch, height, width = shape
    unit_of_pixel, n_units = patch_units(height, width, patch_size)
    if order == "random":
        scores = jnp.zeros((batch, n_units))
    else:
        if relevance is None:
            raise ValueError(f"order={order!r} needs relevance maps; only order='random' takes relevance=None")
        heat = heatmap(relevance, relevance_mode=relevance_mode).reshape(batch, -1)
        scores = jax.vmap(lambda h: jax.ops.segment_sum(h, unit_of_pixel, n_units))(heat)
        scores = -scores if order == "morf" else scores
    return _ranks(scores, jax.random.fold_in(jax.random.key(seed), 0)), unit_of_pixel


@jax.jit
def _ranks(scores: Array, key: Array) -> Array:
    tie_break = jax.random.uniform(key, scores.shape)
    sequence = jnp.lexsort((tie_break, scores), axis=-1)  # ascending scores, ties in random order
    return jnp.argsort(sequence, axis=-1)


NoiseStd = float | Sequence[float] | None


def fill_values(images: Array, fill: str | Array, *, mean: Sequence[float] | None = None,
                blur_sigma: float | None = None, noise_std: NoiseStd = None, seed: int = 0) -> Array:
    r"""What masked pixels become, ``[B, H, W, C]``.

    ``zero``: 0. ``mean``: the per-channel ``mean`` (``[C]``, in input space). ``blur``: the image convolved with a
    Gaussian of ``blur_sigma`` pixels (default: the image side / 20), normalised at the borders,
    :math:`\tilde x = G_H\, x\, G_W^\top` with :math:`(G)_{ij} \propto \exp(-(i - j)^2 / 2\sigma^2)`, rows summing
    to 1. ``noise``: ``mean`` (0 if not given) plus ``noise_std`` (a float or ``[C]``, default 1) times standard
    normal noise from ``seed``. An array broadcastable to the images is used as given. ``road`` depends on the
    mask: see :func:`mask_pixels`, :func:`masking_curves` and :func:`~lrpjax.analysis.imputation.road_imputation`.
    """
    fills, road = _fills(images, fill, mean=mean, blur_sigma=blur_sigma, noise_std=noise_std, seed=seed)
    if road:
        raise ValueError("fill='road' depends on the mask: use mask_pixels, mask_images or masking_curves")
    return fills


def _fills(images, fill, *, mean, blur_sigma, noise_std, seed) -> tuple[Array, bool]:
    """The fill array and whether it is ROAD's (then the array is the noise added to the imputation)."""
    images = jnp.asarray(images)
    if not isinstance(fill, str):
        fill = jnp.asarray(fill, images.dtype)
        try:
            return jnp.broadcast_to(fill, images.shape), False
        except ValueError:
            raise ValueError(f"fill array of shape {fill.shape} does not broadcast to images {images.shape}") from None
    if fill not in FILLS:
        raise ValueError(f"fill={fill!r} is unknown; choose one of {FILLS} or give an array")
    channels = images.shape[-1]
    if mean is not None:
        mean = jnp.asarray(mean, images.dtype)
        if mean.shape != (channels,):
            raise ValueError(f"mean must hold one value per channel ({channels}), got shape {mean.shape}")
    if fill == "zero":
        return jnp.zeros_like(images), False
    if fill == "mean":
        if mean is None:
            raise ValueError("fill='mean' needs mean=[per-channel data-set mean] in input space")
        return jnp.broadcast_to(mean, images.shape), False
    if fill == "blur":
        sigma = images.shape[1] / 20 if blur_sigma is None else blur_sigma
        if not sigma > 0:
            raise ValueError(f"blur_sigma={blur_sigma!r} must be positive")
        rows, cols = (_gaussian_matrix(n, sigma, images.dtype) for n in images.shape[1:3])
        return jnp.einsum("hi,bijc,wj->bhwc", rows, images, cols), False
    if fill == "road":
        if noise_std is None:
            raise ValueError("fill='road' needs noise_std (input units; ROAD's 0.01 pixel std is "
                             "lrpjax.io.preprocess.pixel_std_to_input(0.01, metadata)); pass 0 for none")
        return road_noise(images, noise_std, seed), True
    std = noise_scale(1.0 if noise_std is None else noise_std, channels, images.dtype)
    noise = jax.random.normal(jax.random.fold_in(jax.random.key(seed), 1), images.shape, images.dtype)
    return (0 if mean is None else mean) + std * noise, False


def _gaussian_matrix(n: int, sigma: float, dtype: Any) -> Array:
    offsets = np.arange(n)[:, None] - np.arange(n)[None, :]
    weights = np.exp(-(offsets**2) / (2 * sigma**2))
    return jnp.asarray(weights / weights.sum(axis=1, keepdims=True), dtype)


@functools.partial(jax.jit, static_argnames="road")
def _masked_items(images: Array, fills: Array, ranks: Array, unit_of_pixel: Array, counts: Array,
                  image_index: Array, count_index: Array, road: bool = False) -> Array:
    """Masked image for every (image, fraction) item: pixels whose unit ranks below the count take the fill
    (``road``: the item's imputation plus ``fills``, the noise)."""
    height, width = images.shape[1:3]
    masked = jax.vmap(lambda i, c: (ranks[i][unit_of_pixel] < counts[c]).reshape(height, width))(image_index,
                                                                                                 count_index)
    items = images[image_index]
    fills = fills[image_index]
    if road:  # solved in chunks of items with masks of similar size: see road_solve_items
        fills = road_solve_items(items, masked) + fills
    return jnp.where(masked[..., None], fills, items)


def mask_images(images: Array, relevance: Array | None, *, fraction: float, order: str = "morf",
                fill: str | Array = "zero", patch_size: int = 1, relevance_mode: str = "positive",
                mean: Sequence[float] | None = None, blur_sigma: float | None = None, noise_std: NoiseStd = None,
                seed: int = 0) -> Array:
    """``images`` with the first ``round(fraction * U)`` units of the ``order`` replaced by the fill.

    >>> images = jnp.ones((1, 4, 4, 1))
    >>> relevance = jnp.arange(16.0).reshape(1, 4, 4)
    >>> mask_images(images, relevance, fraction=0.25)[0, :, :, 0].tolist()[-1]
    [0.0, 0.0, 0.0, 0.0]
    """
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction={fraction!r} must lie in [0, 1]")
    images, relevance, _, _ = _check_inputs(images, relevance, None, None, [fraction], order)
    ranks, unit_of_pixel = masking_ranks(relevance, shape=images.shape[:3], order=order, patch_size=patch_size,
                                         relevance_mode=relevance_mode, seed=seed)
    fills, road = _fills(images, fill, mean=mean, blur_sigma=blur_sigma, noise_std=noise_std, seed=seed)
    count = jnp.asarray([int(np.rint(fraction * ranks.shape[1]))])
    index = jnp.arange(images.shape[0])
    return _masked_items(images, fills, ranks, jnp.asarray(unit_of_pixel), count, index, jnp.zeros_like(index),
                         road=road)


def mask_pixels(images: Array, mask: Array, *, fill: str | Array = "zero", mean: Sequence[float] | None = None,
                blur_sigma: float | None = None, noise_std: NoiseStd = None, seed: int = 0) -> Array:
    """``images`` with the pixels where ``mask`` (``[B, H, W]`` or ``[H, W]``, boolean) is true replaced by the fill."""
    images = jnp.asarray(images)
    mask = jnp.asarray(mask)
    if mask.dtype != jnp.bool_ or mask.shape not in (images.shape[:3], images.shape[1:3]):
        raise ValueError(f"mask must be boolean of shape {images.shape[:3]} or {images.shape[1:3]}, "
                         f"got {mask.dtype} {mask.shape}")
    if isinstance(fill, str) and fill == "road":
        _fills(images, fill, mean=mean, blur_sigma=blur_sigma, noise_std=noise_std, seed=seed)  # checks noise_std
        return road_imputation(images, mask, noise_std=noise_std, seed=seed)
    fills = fill_values(images, fill, mean=mean, blur_sigma=blur_sigma, noise_std=noise_std, seed=seed)
    return jnp.where(mask[..., None], fills, images)


def masking_curves(logits_fn: LogitsFn, images: Array, relevance: Array | None, labels: Array, *,
                   targets: Array | None = None, order: str = "morf", fractions: Sequence[float] = FRACTIONS,
                   fill: str | Array = "zero", patch_size: int = 1, relevance_mode: str = "positive",
                   mean: Sequence[float] | None = None, blur_sigma: float | None = None, noise_std: NoiseStd = None,
                   seed: int = 0, batch_size: int = 64, jit: bool = True) -> MaskingCurves:
    """Evaluate ``logits_fn`` on ``images`` masked in one ``order`` at every fraction.

    Args:
      logits_fn: ``images [n, H, W, C] -> logits [n, K]``, e.g. ``lambda x: model.apply(variables, x)``.
      images: ``[B, H, W, C]`` floating point, in the model's input space.
      relevance: ``[B, H, W, C]`` or ``[B, H, W]`` maps ranking the pixels (None for ``order="random"``).
      labels: ``[B]`` integer classes (accuracy); ``targets`` (default: the labels) pick the logit and
        probability that are tracked.
      order: ``morf``, ``lerf`` or ``random``; ``fractions``: increasing, in [0, 1].
      fill, mean, blur_sigma, noise_std: see :func:`fill_values`; ``patch_size``: side of the masked squares.
      seed: the random order, ties, and noise fill. ``batch_size``: masked images per ``logits_fn`` call.
      jit: compile masking and ``logits_fn`` together (``False`` for a ``logits_fn`` that jax cannot trace); the
        compiled step is reused while the same ``logits_fn`` object is passed again.

    Returns:
      :class:`MaskingCurves`: accuracy, target logit and target probability, each ``[F, B]``.

    Raises:
      ValueError: mismatched shapes, an unknown order, fill or relevance mode, fractions outside [0, 1] or not
        increasing, labels or targets out of range, a ``logits_fn`` that does not return ``[n, K]``.
    """
    images, relevance, labels, fractions = _check_inputs(images, relevance, labels, targets, fractions, order)
    targets = labels if targets is None else jnp.asarray(targets)
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} must be a positive integer")
    ranks, unit_of_pixel = masking_ranks(relevance, shape=images.shape[:3], order=order, patch_size=patch_size,
                                         relevance_mode=relevance_mode, seed=seed)
    fills, road = _fills(images, fill, mean=mean, blur_sigma=blur_sigma, noise_std=noise_std, seed=seed)
    counts = jnp.asarray(np.rint(fractions * ranks.shape[1]).astype(np.int32))
    batch = images.shape[0]
    items = len(fractions) * batch
    size = min(batch_size, items)
    _check_logits_fn(logits_fn, images, size, labels, targets, jit)
    padded = -(-items // size) * size  # every call the same shape: one compilation
    image_index = np.resize(np.arange(batch), padded)
    count_index = np.repeat(np.arange(len(fractions)), batch)
    count_index = np.concatenate([count_index, np.zeros(padded - items, int)])
    step = _evaluator(logits_fn, road) if jit else functools.partial(_evaluate_items, logits_fn, road=road)
    outputs = [step(images, fills, ranks, jnp.asarray(unit_of_pixel), counts, labels, targets,
                    jnp.asarray(image_index[s:s + size]), jnp.asarray(count_index[s:s + size]))
               for s in range(0, padded, size)]
    per_metric = [np.concatenate([np.asarray(o[m]) for o in outputs])[:items].reshape(len(fractions), batch)
                  for m in range(3)]
    return MaskingCurves(fractions, *per_metric)


def _evaluate_items(logits_fn, images, fills, ranks, unit_of_pixel, counts, labels, targets, image_index,
                    count_index, road=False):
    logits = logits_fn(_masked_items(images, fills, ranks, unit_of_pixel, counts, image_index, count_index,
                                     road=road))
    target = targets[image_index]
    accuracy = (jnp.argmax(logits, axis=-1) == labels[image_index]).astype(logits.dtype)
    logit = jnp.take_along_axis(logits, target[:, None], axis=-1)[:, 0]
    probability = jnp.take_along_axis(jax.nn.softmax(logits, axis=-1), target[:, None], axis=-1)[:, 0]
    return accuracy, logit, probability


@functools.lru_cache(maxsize=4)
def _evaluator(logits_fn: LogitsFn, road: bool = False):
    """One jitted masking + evaluation step per ``logits_fn``; the last four are kept (repeated calls with the same
    function reuse the compilation, and at most four closures over model variables stay alive)."""
    return jax.jit(functools.partial(_evaluate_items, logits_fn, road=road))


def masking_analysis(logits_fn: LogitsFn, images: Array, relevance: Array, labels: Array, **options: Any
                     ) -> MaskingResult:
    """MoRF, LeRF and random curves of ``relevance`` on ``logits_fn``; ``options`` as :func:`masking_curves`."""
    if "order" in options:
        raise ValueError("masking_analysis runs every order; do not pass order= (use masking_curves for one)")
    return MaskingResult(*(masking_curves(logits_fn, images, relevance, labels, order=o, **options) for o in ORDERS))


def _check_inputs(images, relevance, labels, targets, fractions, order):
    images = jnp.asarray(images)
    if images.ndim != 4 or not jnp.issubdtype(images.dtype, jnp.floating):
        raise ValueError(f"images must be floating point [batch, height, width, channels], got {images.dtype} "
                         f"of shape {images.shape}")
    if relevance is not None:
        relevance = jnp.asarray(relevance)
        if relevance.shape not in (images.shape, images.shape[:3]):
            raise ValueError(f"relevance of shape {relevance.shape} does not match images {images.shape}: give "
                             f"{images.shape} or {images.shape[:3]}")
    elif order != "random":
        raise ValueError(f"order={order!r} needs relevance maps; only order='random' takes relevance=None")
    for name, value in (("labels", labels), ("targets", targets)):
        if value is not None:
            value = np.asarray(value)
            if value.shape != images.shape[:1] or not np.issubdtype(value.dtype, np.integer):
                raise ValueError(f"{name} must be {images.shape[0]} integer classes (one per image), got "
                                 f"{value.dtype} of shape {value.shape}")
    fractions = np.asarray(fractions, np.float64)
    if fractions.ndim != 1 or fractions.size == 0 or not np.all(np.isfinite(fractions)):
        raise ValueError(f"fractions must be a non-empty 1-d sequence of numbers, got {fractions.tolist()}")
    if fractions.min() < 0 or fractions.max() > 1 or np.any(np.diff(fractions) <= 0):
        raise ValueError(f"fractions must be increasing and lie in [0, 1], got {fractions.tolist()}")
    return images, relevance, None if labels is None else jnp.asarray(labels), fractions


def _check_logits_fn(logits_fn, images, size, labels, targets, jit):
    """The logits' shape for a batch of ``size`` masked images, from a trace (no computation)."""
    try:
        out = jax.eval_shape(logits_fn, jax.ShapeDtypeStruct((size,) + images.shape[1:], images.dtype))
    except Exception:
        if jit:
            raise
        return  # a logits_fn that jax cannot trace (jit=False): trusted
    if len(out.shape) != 2 or out.shape[0] != size:
        raise ValueError(f"logits_fn must map [n, H, W, C] images to [n, classes] logits; for n={size} it gave "
                         f"{tuple(out.shape)}")
    for name, value in (("labels", labels), ("targets", targets)):
        value = np.asarray(value)
        bad = value[(value < 0) | (value >= out.shape[1])]
        if bad.size:
            raise ValueError(f"{name} {bad.tolist()} out of range for logits of {out.shape[1]} classes")


def _check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise ValueError(f"metric={metric!r} is unknown; choose one of {METRICS}")
    return metric
