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

The numerator, the *margin* :math:`m_{A\to B} = \mathrm{AUC}^\mathrm{rand}_B - \mathrm{AUC}_{A\to B}` (in the
metric's AUC units, probability by default), is kept beside every score: it is well defined for any target,
while the score is a meaningful ratio only for a *reliable* target, whose own margin :math:`m_{B\to B}` has an
interval above :data:`RELIABILITY_FLOOR` (:func:`reliable_targets`). Relations pool their pairs as a ratio of
means (:func:`group_scores`) and are compared with control maps scored on the same targets
(:func:`control_comparison`).

References: Efron & Tibshirani 1993, *An Introduction to the Bootstrap* (the bootstrap of a ratio, ch. 10);
Rong et al. 2022, *A Consistent and Efficient Evaluation Strategy for Attribution Methods* (ROAD).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from lrpjax.analysis import grouping, stats
from lrpjax.analysis.masking import METRICS, LogitsFn, masking_curves

RELIABILITY_FLOOR = 0.01  # own margin (AUC units) a target's interval must clear: see reliable_targets


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
    r"""Margins and normalised scores ``[S, T]`` with bootstrap intervals over images.

    Attributes:
      sources, targets: rows and columns (the targets are the first sources, their own maps).
      score, low, high: :math:`s_{A\to B}` (ratio of image means) and its interval (contains ``score``).
      margin, margin_low, margin_high: :math:`m_{A\to B}` in the metric's AUC units, and its interval.
      margin_replicates: ``[n_boot, S, T]`` the margins recomputed on each bootstrap resampling of the images.
    """

    sources: tuple[str, ...]
    targets: tuple[str, ...]
    score: np.ndarray
    low: np.ndarray
    high: np.ndarray
    margin: np.ndarray
    margin_low: np.ndarray
    margin_high: np.ndarray
    margin_replicates: np.ndarray

    @property
    def own_margin(self) -> np.ndarray:
        """``[T]`` each target's own margin :math:`m_{B\to B}`, the denominator of its scores."""
        return _diagonal(self.margin)

    @property
    def replicates(self) -> np.ndarray:
        """``[n_boot, S, T]`` the scores of each replicate (margins over the replicate's own margins)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.margin_replicates / _diagonal(self.margin_replicates)[:, None, :]


class Asymmetry(NamedTuple):
    r"""``index`` :math:`= s_{A\to B} - s_{B\to A}`, its bootstrap interval, and the sign-flip permutation test
    (``p_value``, the ``permutations`` used and ``resolution``, the smallest p they allow)."""

    index: float
    low: float
    high: float
    p_value: float
    permutations: int
    resolution: float


def _diagonal(matrix: np.ndarray) -> np.ndarray:
    """``matrix[..., t, t]`` for the targets, the first ``T`` rows of ``[..., S, T]``."""
    count = matrix.shape[-1]
    return matrix[..., np.arange(count), np.arange(count)]


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


def margins(aucs: CrossAUCs, *, weights: np.ndarray | None = None) -> np.ndarray:
    r"""The margins :math:`m_{A\to B} = \overline{\mathrm{AUC}}{}^\mathrm{rand}_B - \overline{\mathrm{AUC}}_{A\to B}`
    ``[S, T]`` in the metric's AUC units, from image means weighted by ``weights``.

    ``weights`` ``[N]`` (default uniform) or ``[K, N]`` (e.g. bootstrap weights: then ``[K, S, T]``), each row
    summing to 1.
    """
    n_images = aucs.random.shape[-1]
    w = np.full(n_images, 1.0 / n_images) if weights is None else np.asarray(weights, np.float64)
    cross = np.moveaxis(aucs.cross @ w.T, -1, 0) if w.ndim == 2 else aucs.cross @ w  # [(K,) S, T]
    random = np.moveaxis(aucs.random @ w.T, -1, 0) if w.ndim == 2 else aucs.random @ w  # [(K,) T]
    return random[..., None, :] - cross


def normalized_scores(aucs: CrossAUCs, *, weights: np.ndarray | None = None) -> np.ndarray:
    r"""The scores :math:`s_{A\to B} = m_{A\to B} / m_{B\to B}` ``[(K,) S, T]`` (see the module docstring and
    :func:`margins`). A target whose own margin is 0 scores NaN."""
    margin = margins(aucs, weights=weights)
    with np.errstate(invalid="ignore", divide="ignore"):
        return margin / _diagonal(margin)[..., None, :]


def generalization_scores(aucs: CrossAUCs, *, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0
                          ) -> GeneralizationScores:
    r"""Margins and scores with bootstrap intervals over images (one resampling shared by all pairs).

    Each replicate resamples the :math:`N` images with replacement and recomputes the ratio of the resampled
    means, :math:`s^*_{A\to B} = m^*_{A\to B} / m^*_{B\to B}` (the bootstrap of a ratio estimate, Efron &
    Tibshirani 1993, *An Introduction to the Bootstrap*, ch. 10 and 13); the interval is the percentile interval
    of the replicates, widened to the point estimate where needed (:func:`~lrpjax.analysis.stats.bootstrap_interval`).
    It is meaningful only where the denominator's interval stays clear of 0: see :func:`reliable_targets`.

    >>> cross = np.array([[[0.2, 0.4], [0.6, 0.7]], [[0.6, 0.8], [0.3, 0.5]]])  # [source, target, image]
    >>> aucs = CrossAUCs(("a", "b"), ("a", "b"), cross, np.array([[0.8, 0.8], [0.9, 0.9]]), "probability")
    >>> result = generalization_scores(aucs, n_boot=10)
    >>> result.score.round(3).tolist(), result.margin.round(3).tolist()
    ([[1.0, 0.5], [0.2, 1.0]], [[0.5, 0.25], [0.1, 0.5]])
    """
    stats.check_confidence(confidence)
    weights = stats.bootstrap_weights(aucs.random.shape[-1], n_boot=n_boot, seed=seed)
    margin_replicates = margins(aucs, weights=weights)
    margin = margins(aucs)
    with np.errstate(invalid="ignore", divide="ignore"):
        score = margin / _diagonal(margin)[None, :]
        score_replicates = margin_replicates / _diagonal(margin_replicates)[:, None, :]
    low, high = stats.bootstrap_interval(score, score_replicates, confidence=confidence)
    margin_low, margin_high = stats.bootstrap_interval(margin, margin_replicates, confidence=confidence)
    return GeneralizationScores(aucs.sources, aucs.targets, score, low, high, margin, margin_low, margin_high,
                                margin_replicates)


def reliable_targets(scores: GeneralizationScores, *, floor: float = RELIABILITY_FLOOR) -> np.ndarray:
    r"""``[T]`` booleans: targets whose own margin's interval lies above ``floor``,
    :math:`\mathrm{low}(m_{B\to B}) > \text{floor}`.

    Only there is :math:`s_{\cdot\to B}` a well-conditioned ratio. The default floor, 0.01 in AUC units of the
    metric (the probability AUC lies in [0, 1]: 1 % of its range), is far above what float32 rounding can
    produce (relative 6e-8 per probability, so margins of 1e-6 at most for a model whose maps do nothing) and
    refuses margins of untrained models such as 1.9e-8 whose bootstrap intervals are narrow but meaningless.

    >>> cross = np.array([[[0.2, 0.3]], [[0.6, 0.7]]])  # own maps: AUC 0.25 against random 0.8
    >>> aucs = CrossAUCs(("a", "x"), ("a",), cross, np.array([[0.8, 0.8]]), "probability")
    >>> reliable_targets(generalization_scores(aucs, n_boot=10)).tolist()
    [True]

    Raises:
      ValueError: a negative or non-finite ``floor``.
    """
    if not np.isfinite(floor) or floor < 0:
        raise ValueError(f"floor={floor!r} must be a finite non-negative margin (AUC units)")
    return _diagonal(scores.margin_low) > floor


def _pairs(scores: GeneralizationScores, metadata: Mapping[str, Mapping[str, Any]],
           targets: Sequence[str] | None) -> dict[str, list[tuple[int, int]]]:
    """Relation -> (source, target) pairs of models whose target is among ``targets`` (default: every target)."""
    models = scores.targets
    keep = set(models if targets is None else targets)
    unknown = sorted(keep - set(models))
    if unknown:
        raise ValueError(f"targets {unknown} are not target models; choose among {list(models)}")
    groups = grouping.relation_groups(models, metadata, include_self=False)
    return {key: [(i, j) for i, j in pairs if models[j] in keep] for key, pairs in groups.items()}


def _ratio_entry(numerator: np.ndarray, denominator: np.ndarray, replicates: tuple[np.ndarray, np.ndarray],
                 confidence: float) -> list[float]:
    """``[ratio, low, high]`` of ``mean(numerator) / mean(denominator)`` over the last axis (pairs)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = numerator.mean(axis=-1) / denominator.mean(axis=-1)
        boot = replicates[0].mean(axis=-1) / replicates[1].mean(axis=-1)
    low, high = stats.bootstrap_interval(ratio, boot, confidence=confidence)
    return [float(ratio), float(low), float(high)]


def group_scores(scores: GeneralizationScores, metadata: Mapping[str, Mapping[str, Any]], *,
                 targets: Sequence[str] | None = None, confidence: float = 0.95) -> dict[str, dict[str, Any]]:
    r"""Score and margin per relation (``other seed``, ``other task``, ...) over its pairs of models
    :math:`P_r = \{(A, B)\}`, as a ratio of means:

    .. math:: s_r = \frac{\sum_{(A,B)\in P_r} m_{A\to B}}{\sum_{(A,B)\in P_r} m_{B\to B}}

    not a mean of per-pair ratios (which one near-zero denominator can dominate). The interval recomputes
    :math:`s_r` on each image resampling of ``scores`` (Efron & Tibshirani 1993, ch. 10).

    Args:
      targets: the target models to count (default every one; the study passes :func:`reliable_targets`).

    Returns:
      relation -> ``{"mean", "low", "high"}`` (the score :math:`s_r`), ``"margin"`` (``[mean, low, high]`` of
      :math:`\overline{m_{A\to B}}`), ``"pairs"`` and ``"targets"`` (how many counted; 0: NaN values).
    """
    out = {}
    for key, pairs in _pairs(scores, metadata, targets).items():
        rows, cols = (np.asarray(pairs, int).reshape(-1, 2).T if pairs else (np.zeros(0, int),) * 2)
        own, own_boot = scores.own_margin[cols], _diagonal(scores.margin_replicates)[:, cols]
        numerator, boot = scores.margin[rows, cols], scores.margin_replicates[:, rows, cols]
        if pairs:
            ratio = _ratio_entry(numerator, own, (boot, own_boot), confidence)
            margin = [float(numerator.mean()), *(float(v) for v in stats.bootstrap_interval(
                numerator.mean(), boot.mean(axis=-1), confidence=confidence))]
        else:
            ratio = margin = [float("nan")] * 3
        out[key] = {"mean": ratio[0], "low": ratio[1], "high": ratio[2], "margin": margin, "pairs": len(pairs),
                    "targets": len(set(cols.tolist()))}
    return out


def control_comparison(scores: GeneralizationScores, metadata: Mapping[str, Mapping[str, Any]],
                       control: str, *, targets: Sequence[str] | None = None, confidence: float = 0.95
                       ) -> dict[str, dict[str, Any]]:
    r"""Per relation, the control source :math:`c` scored on the same targets, and whether other models' maps
    beat it: with the relation's pairs :math:`P_r`,

    .. math::
        s^c_r = \frac{\sum_{(A,B)\in P_r} m_{c\to B}}{\sum_{(A,B)\in P_r} m_{B\to B}}, \qquad
        \Delta_r = s_r - s^c_r = \frac{\sum_{(A,B)\in P_r} (m_{A\to B} - m_{c\to B})}
                                   {\sum_{(A,B)\in P_r} m_{B\to B}}

    (each target weighted as often as it appears in :math:`P_r`), with bootstrap intervals over images;
    ``beats`` when the interval of :math:`\Delta_r` lies above 0.

    Returns:
      relation -> ``{"control": [s, low, high], "difference": [Δ, low, high], "beats": bool, "pairs"}``.

    Raises:
      ValueError: ``control`` is not a source.
    """
    if control not in scores.sources:
        raise ValueError(f"control={control!r} is not a source; sources are {list(scores.sources)}")
    c = scores.sources.index(control)
    out = {}
    for key, pairs in _pairs(scores, metadata, targets).items():
        if not pairs:
            out[key] = {"control": [float("nan")] * 3, "difference": [float("nan")] * 3, "beats": False, "pairs": 0}
            continue
        rows, cols = np.asarray(pairs, int).T
        own, own_boot = scores.own_margin[cols], _diagonal(scores.margin_replicates)[:, cols]
        replicates = scores.margin_replicates
        control_entry = _ratio_entry(scores.margin[c, cols], own, (replicates[:, c, cols], own_boot), confidence)
        difference = _ratio_entry(scores.margin[rows, cols] - scores.margin[c, cols], own,
                                  (replicates[:, rows, cols] - replicates[:, c, cols], own_boot), confidence)
        out[key] = {"control": control_entry, "difference": difference, "beats": bool(difference[1] > 0),
                    "pairs": len(pairs)}
    return out


def source_score(scores: GeneralizationScores, source: str, *, targets: Sequence[str] | None = None,
                 confidence: float = 0.95) -> dict[str, Any]:
    r"""One source of maps pooled over ``targets`` (default every target) as a ratio of means,
    :math:`s_c = \sum_B m_{c\to B} / \sum_B m_{B\to B}`, and its mean margin, with bootstrap intervals.

    Returns:
      ``{"score": [s, low, high], "margin": [mean, low, high], "targets": count}`` (NaN without targets).

    Raises:
      ValueError: ``source`` is not a source, or a target that is not a target model.
    """
    if source not in scores.sources:
        raise ValueError(f"source={source!r} is not a source; sources are {list(scores.sources)}")
    chosen = list(scores.targets if targets is None else targets)
    unknown = sorted(set(chosen) - set(scores.targets))
    if unknown:
        raise ValueError(f"targets {unknown} are not target models; choose among {list(scores.targets)}")
    if not chosen:
        return {"score": [float("nan")] * 3, "margin": [float("nan")] * 3, "targets": 0}
    s, cols = scores.sources.index(source), np.array([scores.targets.index(t) for t in chosen])
    boot = scores.margin_replicates[:, s, cols]
    score = _ratio_entry(scores.margin[s, cols], scores.own_margin[cols],
                         (boot, _diagonal(scores.margin_replicates)[:, cols]), confidence)
    mean = scores.margin[s, cols].mean()
    low, high = stats.bootstrap_interval(mean, boot.mean(axis=-1), confidence=confidence)
    return {"score": score, "margin": [float(mean), float(low), float(high)], "targets": len(chosen)}


def asymmetry_differences(aucs: CrossAUCs, a: str, b: str) -> np.ndarray:
    r"""Per-image terms ``[N]`` whose mean is the asymmetry index of ``(a, b)``, the denominators held at their
    full-sample values: :math:`d_i = (r^b_i - c^{ab}_i)/m_{b\to b} - (r^a_i - c^{ba}_i)/m_{a\to a}`."""
    i, j = aucs.targets.index(a), aucs.targets.index(b)
    own = _diagonal(margins(aucs))
    return (aucs.random[j] - aucs.cross[i, j]) / own[j] - (aucs.random[i] - aucs.cross[j, i]) / own[i]


def asymmetry(aucs: CrossAUCs, a: str, b: str, *, n_boot: int = 1000, n_perm: int = 9999,
              confidence: float = 0.95, seed: int = 0) -> Asymmetry:
    r"""Asymmetry of generalization between models ``a`` and ``b``: :math:`s_{a\to b} - s_{b\to a}`.

    The interval is the bootstrap over images (the scores recomputed per replicate,
    :func:`generalization_scores`). The p-value is a paired sign-flip permutation test over images
    (:func:`~lrpjax.analysis.stats.sign_flip_test`) on :func:`asymmetry_differences`, whose mean is the index;
    it comes with its resolution :math:`1/(1 + n_\mathrm{perm})`, the smallest p the permutations allow.

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
    index = result.score[i, j] - result.score[j, i]
    replicates = result.replicates
    low, high = stats.bootstrap_interval(index, replicates[:, i, j] - replicates[:, j, i], confidence=confidence)
    test = stats.sign_flip_test(asymmetry_differences(aucs, a, b), n_perm=n_perm, seed=seed)
    return Asymmetry(float(index), float(low), float(high), test.p_value, test.permutations, test.resolution)


def asymmetry_matrix(scores: GeneralizationScores) -> np.ndarray:
    r""":math:`s_{A\to B} - s_{B\to A}` for every pair of target models, ``[T, T]`` (antisymmetric)."""
    square = scores.score[: len(scores.targets)]
    return square - square.T
