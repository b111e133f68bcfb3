r"""How alike two models' relevance maps of the same images are: rank and linear correlation, top-k% overlap, SSIM.

Per image, the heatmaps :math:`h = \rho(\sum_c R_c)` (``signed``: :math:`\rho(t) = t`; ``positive``; ``absolute``)
of two models are compared over their pixels; the per-image values are then summarised over images (mean, or
the Fisher-z mean :math:`\tanh(\overline{\operatorname{artanh} r})` for correlations) and averaged per relation
of the two models (see :mod:`lrpjax.analysis.grouping`), with percentile bootstrap intervals over images.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

from lrpjax.analysis import grouping, stats
from lrpjax.analysis.masking import heatmap, masking_ranks

MEASURES = ("spearman", "pearson", "top_k_iou", "ssim")
SUMMARIES = ("mean", "fisher")


class Similarity(NamedTuple):
    """Similarity of every pair of models.

    Attributes:
      names: the models, rows and columns.
      per_image: ``[M, M, N]`` similarity of the two models' maps of each image (symmetric in the models).
      matrix: ``[M, M]`` summary over images.
      measure, summary: how it was computed.
    """

    names: tuple[str, ...]
    per_image: np.ndarray
    matrix: np.ndarray
    measure: str
    summary: str


def _flat_heatmaps(maps: Any, relevance_mode: str) -> np.ndarray:
    maps = jnp.asarray(maps)
    if maps.ndim not in (3, 4):
        raise ValueError(f"maps must be [N, H, W] or [N, H, W, C], got shape {maps.shape}")
    if relevance_mode == "signed":
        heat = maps.sum(axis=-1) if maps.ndim == 4 else maps
    else:
        heat = heatmap(maps, relevance_mode=relevance_mode)
    return np.asarray(heat, np.float64).reshape(heat.shape[0], -1)


def _check_pair(maps_a: Any, maps_b: Any) -> None:
    """Heatmaps ``[N, H, W]`` (channels are summed) must match."""
    if np.shape(maps_a)[:3] != np.shape(maps_b)[:3]:
        raise ValueError(f"maps of shapes {np.shape(maps_a)} and {np.shape(maps_b)} differ: compare maps of the "
                         "same images")


def map_correlation(maps_a: Any, maps_b: Any, *, method: str = "spearman", relevance_mode: str = "signed"
                    ) -> np.ndarray:
    r"""Per-image correlation ``[N]`` of two models' heatmaps over the pixels: Spearman's :math:`\rho` (Pearson's
    :math:`r` of the pixels' average-tie ranks) or Pearson's :math:`r`. NaN for a constant map.

    >>> a = np.arange(16.0).reshape(1, 4, 4)
    >>> map_correlation(a, a ** 3).tolist(), map_correlation(a, -a, method="pearson").tolist()
    ([1.0], [-1.0])
    """
    if method not in ("spearman", "pearson"):
        raise ValueError(f"method={method!r} is unknown; choose 'spearman' or 'pearson'")
    if relevance_mode not in ("signed", "positive", "absolute"):
        raise ValueError(f"relevance_mode={relevance_mode!r} is unknown; choose 'signed', 'positive' or 'absolute'")
    _check_pair(maps_a, maps_b)
    a, b = _flat_heatmaps(maps_a, relevance_mode), _flat_heatmaps(maps_b, relevance_mode)
    return stats.spearman(a, b) if method == "spearman" else stats.pearson(a, b)


def top_k_mask(maps: Any, *, k: float = 0.1, relevance_mode: str = "positive", seed: int = 0) -> np.ndarray:
    """``[N, H, W]`` boolean: the ``round(k * H * W)`` most relevant pixels of each map (ties in a seeded order)."""
    if not 0 < k <= 1:
        raise ValueError(f"k={k!r} must be a fraction of the pixels in (0, 1]")
    maps = jnp.asarray(maps)
    if maps.ndim not in (3, 4):
        raise ValueError(f"maps must be [N, H, W] or [N, H, W, C], got shape {maps.shape}")
    ranks, _ = masking_ranks(maps, shape=maps.shape[:3], order="morf", relevance_mode=relevance_mode, seed=seed)
    count = int(np.rint(k * ranks.shape[1]))
    return np.asarray(ranks < count).reshape(maps.shape[:3])


def top_k_iou(maps_a: Any, maps_b: Any, *, k: float = 0.1, relevance_mode: str = "positive", seed: int = 0
              ) -> np.ndarray:
    r"""Per-image overlap ``[N]`` of the two maps' top-:math:`k` pixel sets: :math:`|T_a \cap T_b| / |T_a \cup T_b|`.

    >>> a = np.arange(16.0).reshape(1, 4, 4)
    >>> top_k_iou(a, a, k=0.25).tolist(), top_k_iou(a, -a, k=0.25, relevance_mode="absolute").tolist()
    ([1.0], [1.0])
    """
    _check_pair(maps_a, maps_b)
    top_a = top_k_mask(maps_a, k=k, relevance_mode=relevance_mode, seed=seed).reshape(np.shape(maps_a)[0], -1)
    top_b = top_k_mask(maps_b, k=k, relevance_mode=relevance_mode, seed=seed).reshape(np.shape(maps_b)[0], -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (top_a & top_b).sum(axis=1) / (top_a | top_b).sum(axis=1)


def normalized_heatmaps(maps: Any, *, percentile: float = 99.0) -> np.ndarray:
    r"""Adebayo et al.'s normalisation of each map ``[N, H, W]``: the absolute heatmap :math:`h = |\sum_c R_c|`
    mapped by :math:`\mathrm{clip}((h - \min h) / (P_{99}(h) - \min h), 0, 1)` (the 99th percentile to 1; a
    constant map to 0).

    Reference: Adebayo et al. 2018, *Sanity Checks for Saliency Maps*, NeurIPS (their ``VisualizeImageGrayscale``,
    on lrpjax's channel-summed heatmap rather than the sum of absolute channels).
    """
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile={percentile!r} must lie in (0, 100]")
    heat = _flat_heatmaps(maps, "absolute")
    low = heat.min(axis=1, keepdims=True)
    span = np.percentile(heat, percentile, axis=1, keepdims=True) - low
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(span > 0, np.clip((heat - low) / span, 0, 1), 0.0)
    return out.reshape(np.shape(maps)[:3])


def _window_means(x: np.ndarray, size: int) -> np.ndarray:
    """Means over every ``size x size`` window lying inside ``[N, H, W]`` images: ``[N, H - size + 1, ...]``."""
    c = np.pad(np.cumsum(np.cumsum(x, axis=1), axis=2), ((0, 0), (1, 0), (1, 0)))
    sums = c[:, size:, size:] - c[:, :-size, size:] - c[:, size:, :-size] + c[:, :-size, :-size]
    return sums / size**2


def ssim(maps_a: Any, maps_b: Any, *, win_size: int = 7, normalize: bool = True, data_range: float = 1.0,
         k1: float = 0.01, k2: float = 0.03) -> np.ndarray:
    r"""Per-image structural similarity ``[N]`` (Wang et al. 2004), as ``skimage.metrics.structural_similarity``
    computes it with its defaults (uniform ``win_size`` window, sample covariances):

    .. math::
        \mathrm{SSIM} = \frac{1}{|P|} \sum_{p \in P}
        \frac{(2 \mu_a \mu_b + C_1)(2 \sigma_{ab} + C_2)}{(\mu_a^2 + \mu_b^2 + C_1)(\sigma_a^2 + \sigma_b^2 + C_2)},
        \quad C_1 = (k_1 L)^2,\ C_2 = (k_2 L)^2,

    with window means :math:`\mu`, (co)variances :math:`\sigma` scaled by :math:`n / (n - 1)`, :math:`n` =
    ``win_size``:sup:`2`, over the window positions :math:`P` lying inside the image, and ``data_range``
    :math:`L`. ``normalize``: compare :func:`normalized_heatmaps` (then :math:`L = 1`), as Adebayo et al. do;
    otherwise the channel-summed maps as given.

    Reference: Wang, Bovik, Sheikh, Simoncelli 2004, *Image quality assessment: from error visibility to structural
    similarity*, IEEE TIP 13(4).

    >>> a = np.random.default_rng(0).random((2, 16, 16))
    >>> ssim(a, a).round(6).tolist()
    [1.0, 1.0]
    """
    _check_pair(maps_a, maps_b)
    height, width = np.shape(maps_a)[1:3]
    if isinstance(win_size, bool) or not isinstance(win_size, (int, np.integer)) or win_size < 3 \
            or win_size % 2 == 0 or win_size > min(height, width):
        raise ValueError(f"win_size={win_size!r} must be an odd integer in [3, {min(height, width)}]")
    if normalize:
        a, b = normalized_heatmaps(maps_a), normalized_heatmaps(maps_b)
    else:
        shape = np.shape(maps_a)[:3]
        a, b = (_flat_heatmaps(m, "signed").reshape(shape) for m in (maps_a, maps_b))
    covariance = win_size**2 / (win_size**2 - 1)
    mu_a, mu_b = _window_means(a, win_size), _window_means(b, win_size)
    var_a = covariance * (_window_means(a * a, win_size) - mu_a**2)
    var_b = covariance * (_window_means(b * b, win_size) - mu_b**2)
    cov = covariance * (_window_means(a * b, win_size) - mu_a * mu_b)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    index = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return index.mean(axis=(1, 2))


def summarize(per_image: np.ndarray, *, summary: str = "mean", weights: np.ndarray | None = None) -> np.ndarray:
    r"""Summary over the last axis (images): the (weighted) mean, or the Fisher-z mean
    :math:`\tanh(\sum_i w_i \operatorname{artanh} r_i)` (correlations clipped to :math:`\pm(1 - 10^{-12})`).

    ``weights`` ``[K, N]`` (bootstrap) puts a replicate axis first.
    """
    if summary not in SUMMARIES:
        raise ValueError(f"summary={summary!r} is unknown; choose one of {SUMMARIES}")
    per_image = np.asarray(per_image, np.float64)
    n = per_image.shape[-1]
    w = np.full(n, 1.0 / n) if weights is None else np.asarray(weights, np.float64)
    values = np.arctanh(np.clip(per_image, -1 + 1e-12, 1 - 1e-12)) if summary == "fisher" else per_image
    mean = np.moveaxis(values @ w.T, -1, 0) if w.ndim == 2 else values @ w
    return np.tanh(mean) if summary == "fisher" else mean


def similarity_matrix(maps: Mapping[str, Any], *, measure: str = "spearman", summary: str = "mean",
                      **options: Any) -> Similarity:
    """Similarity of every pair of models' maps of the same images.

    Args:
      maps: model name -> maps ``[N, H, W(, C)]``, the same images in the same order for every model.
      measure: ``spearman``, ``pearson`` (:func:`map_correlation`), ``top_k_iou`` (:func:`top_k_iou`) or ``ssim``
        (:func:`ssim`).
      summary: over images, see :func:`summarize`.
      options: for the measure (``relevance_mode``; ``k`` and ``seed`` for ``top_k_iou``).
    """
    measures: dict[str, Callable[..., np.ndarray]] = {
        "spearman": lambda a, b: map_correlation(a, b, method="spearman", **options),
        "pearson": lambda a, b: map_correlation(a, b, method="pearson", **options),
        "top_k_iou": lambda a, b: top_k_iou(a, b, **options),
        "ssim": lambda a, b: ssim(a, b, **options),
    }
    if measure not in measures:
        raise ValueError(f"measure={measure!r} is unknown; choose one of {MEASURES}")
    names = tuple(maps)
    if len(names) < 2:
        raise ValueError(f"similarity needs at least two models, got {list(names)}")
    n_images = np.shape(maps[names[0]])[0]
    per_image = np.ones((len(names), len(names), n_images))
    for i, a in enumerate(names):
        for j in range(i + 1, len(names)):
            per_image[i, j] = per_image[j, i] = measures[measure](maps[a], maps[names[j]])
    return Similarity(names, per_image, summarize(per_image, summary=summary), measure, summary)


def group_similarity(similarity: Similarity, metadata: Mapping[str, Mapping[str, Any]], *, n_boot: int = 1000,
                     confidence: float = 0.95, seed: int = 0) -> dict[str, dict[str, float]]:
    """Mean similarity per relation over its pairs of different models, with a percentile bootstrap interval over
    images (one resampling shared by all pairs).

    Returns:
      relation -> ``{"mean", "low", "high", "pairs"}`` (ordered pairs: each unordered pair counts twice).
    """
    groups = grouping.relation_groups(similarity.names, metadata, include_self=False)
    weights = stats.bootstrap_weights(similarity.per_image.shape[-1], n_boot=n_boot, seed=seed)
    replicates = summarize(similarity.per_image, summary=similarity.summary, weights=weights)  # [K, M, M]
    means = grouping.group_means(similarity.matrix, groups)
    boot = grouping.group_means(replicates, groups)
    out = {}
    for key, pairs in groups.items():
        low, high = stats.percentile_interval(boot[key], confidence=confidence)
        out[key] = {"mean": float(means[key]), "low": float(low), "high": float(high), "pairs": len(pairs)}
    return out
