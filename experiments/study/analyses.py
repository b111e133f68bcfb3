"""The study's statistics from cached arrays (no model runs here): each function returns a JSON-ready summary.

Intervals are percentile bootstrap intervals over images (one resampling per analysis, shared by every model
and pair), written ``[mean, low, high]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lrpjax import analysis
from lrpjax.analysis import grouping, stats


def mean_interval(values: np.ndarray, weights: np.ndarray, confidence: float) -> list[float]:
    """``[mean, low, high]`` of ``values`` ``[N]`` over images, the interval from bootstrap ``weights`` ``[K, N]``
    (NaN values, e.g. a map without relevance, are left out; the interval contains the mean,
    :func:`lrpjax.analysis.stats.bootstrap_interval`)."""
    values = np.asarray(values, np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        return [float("nan")] * 3
    w = weights[:, finite] / np.maximum(weights[:, finite].sum(axis=1, keepdims=True), 1e-12)
    mean = values[finite].mean()
    low, high = stats.bootstrap_interval(mean, w @ values[finite], confidence=confidence)
    return [float(mean), float(low), float(high)]


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


def family_asymmetry(aucs: analysis.CrossAUCs, scores: analysis.GeneralizationScores,
                     pairs: Sequence[tuple[str, str]], statistics: Mapping[str, Any]) -> dict[str, Any]:
    """Mean asymmetry index over a family's pairs, its bootstrap interval (the shared replicates) and a sign-flip
    test on the per-image index averaged over the pairs (:func:`lrpjax.analysis.stats.sign_flip_test`: p with
    the number of permutations and its resolution)."""
    index = [(aucs.targets.index(a), aucs.targets.index(b)) for a, b in pairs]
    value = np.mean([scores.score[i, j] - scores.score[j, i] for i, j in index])
    replicates = scores.replicates
    boot = np.mean([replicates[:, i, j] - replicates[:, j, i] for i, j in index], axis=0)
    low, high = stats.bootstrap_interval(value, boot, confidence=statistics["confidence"])
    differences = np.mean([analysis.asymmetry_differences(aucs, a, b) for a, b in pairs], axis=0)
    test = stats.sign_flip_test(differences, n_perm=statistics["n_perm"], seed=statistics["seed"])
    return {"index": float(value), "low": float(low), "high": float(high), **_test_entry(test), "pairs": len(pairs)}


def _test_entry(test: stats.PermutationTest) -> dict[str, Any]:
    return {"p_value": test.p_value, "permutations": test.permutations, "resolution": test.resolution,
            "exact": test.exact, "significant": test.significant(0.05)}


def reliability_floor(statistics: Mapping[str, Any]) -> float:
    """The own-margin floor a reliable target's interval must clear (``statistics.reliability_floor``, default
    :data:`lrpjax.analysis.RELIABILITY_FLOOR`)."""
    return float(statistics.get("reliability_floor", analysis.RELIABILITY_FLOOR))


def _triple(estimate: np.ndarray, low: np.ndarray, high: np.ndarray, s: int, t: int) -> list[float]:
    return [float(estimate[s, t]), float(low[s, t]), float(high[s, t])]


def generalization_summary(aucs: analysis.CrossAUCs, metadata: Mapping[str, Mapping[str, Any]], *,
                           families: Sequence[Mapping[str, Any]], statistics: Mapping[str, Any],
                           controls: Sequence[str] = ()) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Margins and normalised scores of every (source, target); per relation, the score (a ratio of means over
    the *reliable* targets, :func:`lrpjax.analysis.reliable_targets`) and the margin (every target); each
    control's score on the same targets and whether other models' maps beat it; the asymmetry families (pairs of
    reliable models); and the transfer of every extra source (consensus maps, controls) to each target.

    Returns:
      ``(summary, arrays)``; arrays ``score``, ``low``, ``high``, ``margin``, ``margin_low``, ``margin_high``
      ``[S, T]``.
    """
    confidence = statistics["confidence"]
    scores = analysis.generalization_scores(aucs, **{k: statistics[k] for k in ("n_boot", "confidence", "seed")})
    models = list(aucs.targets)
    floor = reliability_floor(statistics)
    reliable = [t for t, ok in zip(models, analysis.reliable_targets(scores, floor=floor)) if ok]
    groups = {"reliable": analysis.group_scores(scores, metadata, targets=reliable, confidence=confidence),
              "all": analysis.group_scores(scores, metadata, confidence=confidence)}
    versus = {c: analysis.control_comparison(scores, metadata, c, targets=reliable, confidence=confidence)
              for c in controls if c in aucs.sources}
    asymmetries = []
    for family in families:
        pairs = [(a, b) for a, b in family_pairs(models, metadata, family) if a in reliable and b in reliable]
        entry = {"name": family["name"], "pairs": len(pairs), "by_pair": []}
        if pairs:
            entry.update(family_asymmetry(aucs, scores, pairs, statistics))
        for a, b in pairs:
            if metadata[a]["seed"] == metadata[b]["seed"]:
                result = analysis.asymmetry(aucs, a, b, n_boot=statistics["n_boot"], n_perm=statistics["n_perm"],
                                            confidence=confidence, seed=statistics["seed"])
                test = stats.PermutationTest(result.p_value, result.permutations, result.resolution, False)
                entry["by_pair"].append({"a": a, "b": b, **result._asdict(), "significant": test.significant(0.05)})
        if family_pairs(models, metadata, family):
            asymmetries.append(entry)
    extra = {}
    for s, source in enumerate(aucs.sources[len(models):], start=len(models)):
        extra[source] = {"pooled": analysis.source_score(scores, source, targets=reliable, confidence=confidence),
                         "margin_all": analysis.source_score(scores, source, confidence=confidence)["margin"],
                         "by_target": {t: {"score": _triple(scores.score, scores.low, scores.high, s, k),
                                           "margin": _triple(scores.margin, scores.margin_low, scores.margin_high,
                                                             s, k)} for k, t in enumerate(models)}}
    own = {t: _triple(scores.margin, scores.margin_low, scores.margin_high, k, k) for k, t in enumerate(models)}
    summary = {"sources": list(aucs.sources), "targets": models, "relations": groups, "controls": versus,
               "asymmetry": asymmetries, "own_margin": own, "reliable": reliable, "reliability_floor": floor,
               "extra_sources": extra, "images": int(aucs.random.shape[-1])}
    arrays = {k: getattr(scores, k) for k in ("score", "low", "high", "margin", "margin_low", "margin_high")}
    return summary, arrays


def similarity_summary(heats: Mapping[str, np.ndarray], metadata: Mapping[str, Mapping[str, Any]], *, top_k: float,
                       statistics: Mapping[str, Any], controls: Mapping[str, Any] | None = None
                       ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Spearman (signed maps, Fisher-z mean over images) and top-k IoU (positive relevance) of every pair of
    models' maps, averaged per relation with bootstrap intervals; with ``controls`` (name -> ``[N, H, W]``, or
    name -> model -> ``[N, H, W]``), each control's Spearman with the models' maps and, per relation, whether
    other models' maps are more alike than the control (:func:`similarity_controls`)."""
    boot = {k: statistics[k] for k in ("n_boot", "confidence", "seed")}
    spearman = analysis.similarity_matrix(heats, measure="spearman", summary="fisher")
    iou = analysis.similarity_matrix(heats, measure="top_k_iou", k=top_k, seed=statistics["seed"])
    summary = {"names": list(spearman.names), "top_k": top_k,
               "relations": {"spearman": analysis.group_similarity(spearman, metadata, **boot),
                             "top_k_iou": analysis.group_similarity(iou, metadata, **boot)}}
    if controls:
        summary["controls"] = similarity_controls(spearman, heats, controls, metadata, statistics)
    return summary, {"spearman": spearman.matrix, "top_k_iou": iou.matrix}


def similarity_controls(spearman: analysis.Similarity, heats: Mapping[str, np.ndarray], controls: Mapping[str, Any],
                        metadata: Mapping[str, Mapping[str, Any]], statistics: Mapping[str, Any]
                        ) -> dict[str, dict[str, Any]]:
    r"""Per control :math:`c`: :math:`\rho(c_B, h_B)`, the Spearman correlation of the control with each model
    :math:`B`'s map (mean over images and models), and per relation with pairs :math:`P_r`,
    :math:`\Delta_r = \overline{\rho(h_A, h_B) - \rho(c_B, h_B)}` (mean over pairs and images; plain means, not
    Fisher-z, so the difference is linear in the images and bootstraps with them); other models' maps are more
    alike than the control (``beats``) when :math:`\Delta_r`'s interval lies above 0."""
    names = list(spearman.names)
    weights = stats.bootstrap_weights(spearman.per_image.shape[-1], n_boot=statistics["n_boot"],
                                      seed=statistics["seed"])
    groups = grouping.relation_groups(names, metadata, include_self=False)
    out = {}
    for control, value in controls.items():
        per_model = np.stack([analysis.map_correlation(value[m] if isinstance(value, Mapping) else value, heats[m])
                              for m in names])  # [M, N]
        entry = {"overall": mean_interval(np.nanmean(per_model, axis=0), weights, statistics["confidence"]),
                 "relations": {}}
        for relation, pairs in groups.items():
            rows, cols = np.asarray(pairs).T
            control_rho = per_model[cols].mean(axis=0)
            difference = (spearman.per_image[rows, cols] - per_model[cols]).mean(axis=0)
            delta = mean_interval(difference, weights, statistics["confidence"])
            entry["relations"][relation] = {
                "models": mean_interval(spearman.per_image[rows, cols].mean(axis=0), weights,
                                        statistics["confidence"]),
                "control": mean_interval(control_rho, weights, statistics["confidence"]),
                "difference": delta, "beats": bool(delta[1] > 0), "pairs": len(pairs)}
        out[control] = entry
    return out


def mprt_summary(per_model: Mapping[str, Mapping[str, np.ndarray]], composites: Sequence[str], *,
                 statistics: Mapping[str, Any], threshold: float = 0.5) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Per composite and randomisation step, the mean Spearman and SSIM over models and images with bootstrap
    intervals over images; ``flagged`` when the mean Spearman after every layer is randomised (the conv blocks
    included) exceeds ``threshold``: the maps then do not depend on the learned parameters.

    Args:
      per_model: model -> :func:`experiments.study.compute.mprt_model` arrays.

    Returns:
      ``(summary, arrays)``; arrays ``COMPOSITE|MEASURE`` ``[3, L]`` (mean, low, high).
    """
    names = list(per_model)
    layers = [str(v) for v in per_model[names[0]]["layers"]]
    n = per_model[names[0]]["spearman"].shape[-1]
    weights = stats.bootstrap_weights(n, n_boot=statistics["n_boot"], seed=statistics["seed"])
    summary: dict[str, Any] = {"layers": layers, "models": names, "images": n, "threshold": threshold,
                               "composites": {}}
    arrays = {}
    for c, composite in enumerate(composites):
        entry = {}
        for measure in ("spearman", "ssim"):
            values = np.mean([per_model[m][measure][c] for m in names], axis=0)  # [L, N]
            steps = [mean_interval(values[k], weights, statistics["confidence"]) for k in range(len(layers))]
            arrays[f"{composite}|{measure}"] = np.array(steps).T
            entry[measure] = steps
            entry[f"{measure}_by_model"] = {m: float(np.nanmean(per_model[m][measure][c, -1])) for m in names}
        entry["flagged"] = bool(entry["spearman"][-1][0] > threshold)
        summary["composites"][composite] = entry
    return summary, arrays


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
