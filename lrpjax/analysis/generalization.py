r"""Cross-model generalization of relevance: do the pixels model A relies on drive model B?

For every source of maps :math:`A` and target model :math:`B`, the images are masked most relevant first
(MoRF) by :math:`A`'s maps and shown to :math:`B`; :math:`\mathrm{AUC}_{A\to B}` is the area under :math:`B`'s
target-probability curve (by default; any metric of :class:`~lrpjax.analysis.masking.MaskingCurves`), averaged
over images. The normalised score puts it between two references on the same target, random-order masking
(:math:`\mathrm{AUC}^\mathrm{rand}_B`) and :math:`B`'s own maps (:math:`\mathrm{AUC}_{B\to B}`):

.. math::
    s_{A\to B} = \frac{\mathrm{AUC}^\mathrm{rand}_B - \mathrm{AUC}_{A\to B}}
                      {\mathrm{AUC}^\mathrm{rand}_B - \mathrm{AUC}_{B\to B}}

Sign convention: masking relevant pixels first makes the probability fall faster, so a lower AUC is better;
:math:`s = 1` when :math:`A`'s maps hurt :math:`B` as much as its own (exactly 1 for :math:`A = B`, by
construction), :math:`s = 0` when they are no better than random, :math:`s < 0` when worse than random and
:math:`s > 1` when better than :math:`B`'s own maps. The averages over images are taken before the ratio (a ratio
of means, stable where one image's denominator is near 0); bootstrap intervals resample images and recompute
the ratio. The asymmetry index is :math:`s_{A\to B} - s_{B\to A}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from lrpjax.analysis import grouping, stats
from lrpjax.analysis.masking import METRICS, LogitsFn, masking_curves


class CrossAUCs(NamedTuple):
    """Per-image AUCs of every (source, target) pair and of the random baseline.

    Attributes:
      sources: names of the maps, rows of ``cross``.
      targets: names of the models, columns of ``cross``; every target is also a source (its own maps).
      cross: ``[S, T, N]`` MoRF AUC of target ``t`` masked with source ``s``'s maps, per image.
      random: ``[T, N]`` random-order AUC per target and image.
      metric: the curve integrated (``probability`` by default).
    """

    sources: tuple[str, ...]
    targets: tuple[str, ...]
    cross: np.ndarray
    random: np.ndarray
    metric: str


class GeneralizationScores(NamedTuple):
    """Normalised scores ``[S, T]`` with their percentile bootstrap interval and the replicates ``[n_boot, S, T]``."""

    sources: tuple[str, ...]
    targets: tuple[str, ...]
    score: np.ndarray
    low: np.ndarray
    high: np.ndarray
    replicates: np.ndarray


class Asymmetry(NamedTuple):
    r"""``index`` :math:`= s_{A\to B} - s_{B\to A}`, its bootstrap interval and the sign-flip permutation p-value."""

    index: float
    low: float
    high: float
    p_value: float


def cross_masking_aucs(logits_fns: Mapping[str, LogitsFn], relevance: Mapping[str, Any], images: Any, labels: Any,
                       *, metric: str = "probability", **masking: Any) -> CrossAUCs:
    """MoRF AUC of every target model under every source's maps, and under random masking.

    Args:
      logits_fns: target name -> ``logits_fn`` (see :func:`~lrpjax.analysis.masking.masking_curves`).
      relevance: source name -> maps ``[N, H, W(, C)]`` of ``images``; must include every target (its own maps)
        and may hold more sources (random maps, a consensus map, ...).
      images, labels: ``[N, H, W, C]`` and ``[N]``, the same for every model.
      metric: the curve to integrate, one of ``accuracy``, ``logit``, ``probability``.
      masking: options of :func:`~lrpjax.analysis.masking.masking_curves` (fill, fractions, seed, ...), the same
        for every pair, so the random order and the noise fill are shared.

    Raises:
      ValueError: a target without its own maps, an unknown metric, ``order`` among the options, or see
        :func:`~lrpjax.analysis.masking.masking_curves`.
    """
    if metric not in METRICS:
        raise ValueError(f"metric={metric!r} is unknown; choose one of {METRICS}")
    if "order" in masking:
        raise ValueError("cross-model generalization masks MoRF against random; do not pass order=")
    missing = [name for name in logits_fns if name not in relevance]
    if missing:
        raise ValueError(f"target model(s) {missing} have no maps of their own in relevance (sources: "
                         f"{sorted(relevance)}); the score needs them")
    if not logits_fns:
        raise ValueError("logits_fns is empty: give at least one target model")
    targets = tuple(logits_fns)
    sources = targets + tuple(name for name in relevance if name not in logits_fns)
    cross, random = [], []
    for t in targets:  # target-major: one compiled evaluation per target model
        random.append(masking_curves(logits_fns[t], images, None, labels, order="random", **masking).auc(metric))
        cross.append([masking_curves(logits_fns[t], images, relevance[s], labels, order="morf", **masking).auc(metric)
                      for s in sources])
    return CrossAUCs(sources, targets, np.stack(cross, axis=1), np.stack(random), metric)


def normalized_scores(aucs: CrossAUCs, *, weights: np.ndarray | None = None) -> np.ndarray:
    r"""The scores :math:`s_{A\to B}` ``[S, T]`` (see the module docstring), from image means weighted by ``weights``.

    ``weights`` ``[N]`` (default uniform) or ``[K, N]`` (e.g. bootstrap weights: then ``[K, S, T]``), each row
    summing to 1. A target whose own maps do no better than random (zero denominator) scores NaN.
    """
    n_images = aucs.random.shape[-1]
    w = np.full(n_images, 1.0 / n_images) if weights is None else np.asarray(weights, np.float64)
    cross = np.moveaxis(aucs.cross @ w.T, -1, 0) if w.ndim == 2 else aucs.cross @ w  # [(K,) S, T]
    random = np.moveaxis(aucs.random @ w.T, -1, 0) if w.ndim == 2 else aucs.random @ w  # [(K,) T]
    own = cross[..., np.arange(len(aucs.targets)), np.arange(len(aucs.targets))]  # targets are the first sources
    with np.errstate(invalid="ignore", divide="ignore"):
        return (random[..., None, :] - cross) / (random - own)[..., None, :]


def generalization_scores(aucs: CrossAUCs, *, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0
                          ) -> GeneralizationScores:
    """Normalised scores with percentile bootstrap intervals over images (one resampling shared by all pairs).

    >>> cross = np.array([[[0.2, 0.4], [0.6, 0.7]], [[0.6, 0.8], [0.3, 0.5]]])  # [source, target, image]
    >>> aucs = CrossAUCs(("a", "b"), ("a", "b"), cross, np.array([[0.8, 0.8], [0.9, 0.9]]), "probability")
    >>> generalization_scores(aucs, n_boot=10).score.round(3).tolist()
    [[1.0, 0.5], [0.2, 1.0]]
    """
    stats.check_confidence(confidence)
    weights = stats.bootstrap_weights(aucs.random.shape[-1], n_boot=n_boot, seed=seed)
    replicates = normalized_scores(aucs, weights=weights)
    low, high = stats.percentile_interval(replicates, confidence=confidence)
    return GeneralizationScores(aucs.sources, aucs.targets, normalized_scores(aucs), low, high, replicates)


def group_scores(scores: GeneralizationScores, metadata: Mapping[str, Mapping[str, Any]], *,
                 confidence: float = 0.95, include_self: bool = False) -> dict[str, dict[str, float]]:
    """Mean score per relation (``other seed``, ``other task``, ...) over its (source, target) pairs of models,
    with a percentile interval from the same bootstrap replicates (sources that are not targets are left out).

    Returns:
      relation -> ``{"mean", "low", "high", "pairs"}``.
    """
    models = scores.targets
    groups = grouping.relation_groups(models, metadata, include_self=include_self)
    square = scores.score[: len(models)]
    means = grouping.group_means(square, groups)
    replicates = grouping.group_means(scores.replicates[:, : len(models)], groups)
    out = {}
    for key, pairs in groups.items():
        low, high = stats.percentile_interval(replicates[key], confidence=confidence)
        out[key] = {"mean": float(means[key]), "low": float(low), "high": float(high), "pairs": len(pairs)}
    return out


def asymmetry(aucs: CrossAUCs, a: str, b: str, *, n_boot: int = 1000, n_perm: int = 1000,
              confidence: float = 0.95, seed: int = 0) -> Asymmetry:
    r"""Asymmetry of generalization between models ``a`` and ``b``: :math:`s_{a\to b} - s_{b\to a}`.

    The interval is the percentile bootstrap over images (the scores recomputed per replicate). The p-value is a
    paired sign-flip permutation test over images with the denominators held at their full-sample values: with
    :math:`d_i = (r^b_i - c^{ab}_i)/D_b - (r^a_i - c^{ba}_i)/D_a` (so that :math:`\bar d` is the index),
    each replicate flips the sign of each :math:`d_i` (two-sided).

    Raises:
      ValueError: ``a`` or ``b`` is not a target model, or ``a == b``.
    """
    for name in (a, b):
        if name not in aucs.targets:
            raise ValueError(f"model {name!r} is not a target model; choose among {list(aucs.targets)}")
    if a == b:
        raise ValueError(f"asymmetry needs two different models, got a=b={a!r}")
    i, j = aucs.targets.index(a), aucs.targets.index(b)
    result = generalization_scores(aucs, n_boot=n_boot, confidence=confidence, seed=seed)
    index = float(result.score[i, j] - result.score[j, i])
    low, high = stats.percentile_interval(result.replicates[:, i, j] - result.replicates[:, j, i],
                                          confidence=confidence)
    own = aucs.cross[[i, j], [i, j]]  # [2, N]: a->a, b->b
    denominators = (aucs.random[[i, j]] - own).mean(axis=1)
    d = (aucs.random[j] - aucs.cross[i, j]) / denominators[1] - (aucs.random[i] - aucs.cross[j, i]) / denominators[0]
    p_value = stats.sign_flip_p_value(d, n_perm=n_perm, seed=seed)
    return Asymmetry(index, float(low), float(high), p_value)


def asymmetry_matrix(scores: GeneralizationScores) -> np.ndarray:
    r""":math:`s_{A\to B} - s_{B\to A}` for every pair of target models, ``[T, T]`` (antisymmetric)."""
    square = scores.score[: len(scores.targets)]
    return square - square.T
