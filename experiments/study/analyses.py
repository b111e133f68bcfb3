"""The study's statistics from cached arrays (no model runs here): each function returns a JSON-ready summary.

Intervals are percentile bootstrap intervals over images (one resampling per analysis, shared by every model
and pair), written ``[mean, low, high]``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lrpjax import analysis
from lrpjax.analysis import grouping, stats


def mean_interval(values: np.ndarray, weights: np.ndarray, confidence: float) -> list[float]:
    """``[mean, low, high]`` of ``values`` ``[N]`` over images, the interval from bootstrap ``weights`` ``[K, N]``
    (NaN values, e.g. a map without relevance, are left out)."""
    values = np.asarray(values, np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        return [float("nan")] * 3
    w = weights[:, finite] / np.maximum(weights[:, finite].sum(axis=1, keepdims=True), 1e-12)
    low, high = stats.percentile_interval(w @ values[finite], confidence=confidence)
    return [float(values[finite].mean()), float(low), float(high)]


def masking_summary(curves: Mapping[str, np.ndarray], fractions: Sequence[float], *, metric: str,
                    statistics: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Per model: mean AUC per order and MoRF − LeRF with intervals; the mean curves with pointwise intervals.

    Args:
      curves: model -> ``[orders, metrics, F, N]`` (:func:`experiments.study.compute.mask_model`).

    Returns:
      ``(summary, arrays)``: summary model -> ``{"auc": {order: [m, lo, hi]}, "morf_minus_lerf": [m, lo, hi]}``;
      arrays ``"MODEL|ORDER"`` -> ``[3, F]`` (mean, low, high of the ``metric`` curve).
    """
    metric_index = ("accuracy", "logit", "probability").index(metric)
    summary, arrays = {}, {}
    for name, stacked in curves.items():
        n = stacked.shape[-1]
        weights = stats.bootstrap_weights(n, n_boot=statistics["n_boot"], seed=statistics["seed"])
        aucs = {o: analysis.auc(stacked[k, metric_index], fractions) for k, o in enumerate(analysis.ORDERS)}
        summary[name] = {
            "auc": {o: mean_interval(a, weights, statistics["confidence"]) for o, a in aucs.items()},
            "morf_minus_lerf": mean_interval(aucs["morf"] - aucs["lerf"], weights, statistics["confidence"]),
        }
        for k, order in enumerate(analysis.ORDERS):
            curve = np.asarray(stacked[k, metric_index], np.float64)  # [F, N]
            low, high = stats.percentile_interval(weights @ curve.T, confidence=statistics["confidence"])
            arrays[f"{name}|{order}"] = np.stack([curve.mean(axis=1), low, high])
    return summary, arrays


def family_pairs(names: Sequence[str], metadata: Mapping[str, Mapping[str, Any]], family: Mapping[str, Any]
                 ) -> list[tuple[str, str]]:
    """Ordered pairs ``(a, b)`` of the asymmetry family: ``a`` matches ``family["a"]``, ``b`` matches
    ``family["b"]`` and both agree on every key of ``family["same"]``."""
    def matches(name, wanted):
        return all(metadata[name][k] == v for k, v in wanted.items())

    return [(a, b) for a in names for b in names if a != b and matches(a, family["a"]) and matches(b, family["b"])
            and all(metadata[a][k] == metadata[b][k] for k in family.get("same", ()))]


def _pair_differences(aucs: analysis.CrossAUCs, a: str, b: str) -> np.ndarray:
    """Per-image terms whose mean is the asymmetry index of ``(a, b)`` (as :func:`lrpjax.analysis.asymmetry`)."""
    i, j = aucs.targets.index(a), aucs.targets.index(b)
    own = (aucs.random - aucs.cross[np.arange(len(aucs.targets)), np.arange(len(aucs.targets))]).mean(axis=1)
    return (aucs.random[j] - aucs.cross[i, j]) / own[j] - (aucs.random[i] - aucs.cross[j, i]) / own[i]


def family_asymmetry(aucs: analysis.CrossAUCs, scores: analysis.GeneralizationScores,
                     pairs: Sequence[tuple[str, str]], statistics: Mapping[str, Any]) -> dict[str, Any]:
    """Mean asymmetry index over a family's pairs, its bootstrap interval (the shared replicates) and a sign-flip
    p-value on the per-image index averaged over the pairs, plus each pair of equal seeds on its own."""
    index = [(aucs.targets.index(a), aucs.targets.index(b)) for a, b in pairs]
    values = np.array([scores.score[i, j] - scores.score[j, i] for i, j in index])
    replicates = np.nanmean([scores.replicates[:, i, j] - scores.replicates[:, j, i] for i, j in index], axis=0)
    low, high = stats.percentile_interval(replicates, confidence=statistics["confidence"])
    differences = np.mean([_pair_differences(aucs, a, b) for a, b in pairs], axis=0)
    p_value = stats.sign_flip_p_value(differences, n_perm=statistics["n_perm"], seed=statistics["seed"])
    return {"index": float(np.nanmean(values)), "low": float(low), "high": float(high), "p_value": p_value,
            "pairs": len(pairs)}


def own_margins(aucs: analysis.CrossAUCs, statistics: Mapping[str, Any]) -> dict[str, list[float]]:
    """Per target, ``AUC_random - AUC_MoRF(own maps)`` (the score's denominator) as ``[mean, low, high]``: where
    the interval reaches 0, the target's own maps do not beat random order and its scores are unstable ratios."""
    weights = stats.bootstrap_weights(aucs.random.shape[-1], n_boot=statistics["n_boot"], seed=statistics["seed"])
    own = aucs.cross[np.arange(len(aucs.targets)), np.arange(len(aucs.targets))]
    return {t: mean_interval(aucs.random[k] - own[k], weights, statistics["confidence"])
            for k, t in enumerate(aucs.targets)}


def generalization_summary(aucs: analysis.CrossAUCs, metadata: Mapping[str, Mapping[str, Any]], *,
                           families: Sequence[Mapping[str, Any]], statistics: Mapping[str, Any]
                           ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Normalised scores of every (source, target), their means per relation (over every target, and over the
    *reliable* targets, whose own maps beat random order: :func:`own_margins` above 0), the asymmetry families
    (pairs of reliable models) and the consensus maps' transfer to each model.

    Returns:
      ``(summary, arrays)``; arrays ``score``, ``low``, ``high`` ``[S, T]``.
    """
    boot = {k: statistics[k] for k in ("n_boot", "confidence", "seed")}
    scores = analysis.generalization_scores(aucs, **boot)
    models = list(aucs.targets)
    margins = own_margins(aucs, statistics)
    reliable = [t for t in models if margins[t][1] > 0]
    unreliable = np.array([t not in reliable for t in models])
    masked = scores._replace(score=np.where(unreliable, np.nan, scores.score),
                             replicates=np.where(unreliable, np.nan, scores.replicates))
    with np.errstate(all="ignore"), warnings.catch_warnings():  # a relation without a reliable target: NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        groups = {"all": analysis.group_scores(scores, metadata, confidence=statistics["confidence"]),
                  "reliable": analysis.group_scores(masked, metadata, confidence=statistics["confidence"])}
    for relation, pairs in grouping.relation_groups(models, metadata, include_self=False).items():
        groups["reliable"][relation]["pairs"] = sum(models[j] in reliable for _, j in pairs)
    asymmetries = []
    for family in families:
        pairs = [(a, b) for a, b in family_pairs(models, metadata, family) if a in reliable and b in reliable]
        entry = {"name": family["name"], "pairs": len(pairs), "by_pair": []}
        if pairs:
            entry.update(family_asymmetry(aucs, scores, pairs, statistics))
        for a, b in pairs:
            if metadata[a]["seed"] == metadata[b]["seed"]:
                result = analysis.asymmetry(aucs, a, b, n_boot=statistics["n_boot"], n_perm=statistics["n_perm"],
                                            confidence=statistics["confidence"], seed=statistics["seed"])
                entry["by_pair"].append({"a": a, "b": b, **result._asdict()})
        if family_pairs(models, metadata, family):
            asymmetries.append(entry)
    extra = {}
    for s, source in enumerate(aucs.sources[len(models):], start=len(models)):
        extra[source] = {t: [float(scores.score[s, k]), float(scores.low[s, k]), float(scores.high[s, k])]
                         for k, t in enumerate(models)}
    summary = {"sources": list(aucs.sources), "targets": models, "relations": groups, "asymmetry": asymmetries,
               "own_margin": margins, "reliable": reliable, "extra_sources": extra,
               "images": int(aucs.random.shape[-1])}
    return summary, {"score": scores.score, "low": scores.low, "high": scores.high}


def similarity_summary(heats: Mapping[str, np.ndarray], metadata: Mapping[str, Mapping[str, Any]], *, top_k: float,
                       statistics: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Spearman (signed maps, Fisher-z mean over images) and top-k IoU (positive relevance) of every pair of
    models' maps, averaged per relation with bootstrap intervals."""
    boot = {k: statistics[k] for k in ("n_boot", "confidence", "seed")}
    spearman = analysis.similarity_matrix(heats, measure="spearman", summary="fisher")
    iou = analysis.similarity_matrix(heats, measure="top_k_iou", k=top_k, seed=statistics["seed"])
    summary = {"names": list(spearman.names), "top_k": top_k,
               "relations": {"spearman": analysis.group_similarity(spearman, metadata, **boot),
                             "top_k_iou": analysis.group_similarity(iou, metadata, **boot)}}
    return summary, {"spearman": spearman.matrix, "top_k_iou": iou.matrix}


def _group_of(metadata: Mapping[str, Any], by: Sequence[str]) -> str:
    return " ".join(str(metadata[k]) for k in by)


def regions_summary(heats: Mapping[str, np.ndarray], partitions: np.ndarray,
                    metadata: Mapping[str, Mapping[str, Any]], *, relevance_mode: str, consensus: np.ndarray | None,
                    statistics: Mapping[str, Any]) -> dict[str, Any]:
    """Share of relevance per face region: per model, per group of models (pretraining x task, task,
    pretraining) and for the consensus map, each ``[R]`` means with intervals; and the regions' areas."""
    n = partitions.shape[0]
    weights = stats.bootstrap_weights(n, n_boot=statistics["n_boot"], seed=statistics["seed"])
    shares = analysis.shares_by_model(heats, partitions, relevance_mode=relevance_mode)

    def summarise(per_image: np.ndarray) -> list[list[float]]:  # [N, R] -> R x [mean, low, high]
        return [mean_interval(per_image[:, r], weights, statistics["confidence"]) for r in range(per_image.shape[1])]

    groups: dict[str, dict[str, Any]] = {}
    for by in (("pretraining", "task"), ("task",), ("pretraining",)):
        members: dict[str, list[np.ndarray]] = {}
        for name, value in shares.items():
            members.setdefault(_group_of(metadata[name], by), []).append(value)
        groups[" x ".join(by)] = {group: summarise(np.nanmean(values, axis=0)) for group, values in members.items()}
    out = {"regions": list(analysis.SHARE_REGIONS), "images": n,
           "areas": analysis.region_areas(partitions).mean(axis=0).tolist(),
           "models": {name: summarise(value) for name, value in shares.items()}, "groups": groups}
    if consensus is not None:
        out["consensus"] = summarise(analysis.region_shares(consensus, partitions, relevance_mode=relevance_mode))
    return out
