"""The study's report: heatmap grids, figures (:mod:`lrpjax.analysis.figures`) and ``report.md`` with the key
numbers as tables. Everything here reads cached results; it is rewritten on every run (seconds)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image

from lrpjax import analysis
from lrpjax.analysis import figures
from lrpjax.io import viz

ORDERS = ("morf", "lerf", "random")


def number(value: Any, digits: int = 3) -> str:
    """A float with ``digits`` decimals, ``—`` for None or NaN.

    >>> number(0.12345), number(float("nan"))
    ('0.123', '—')
    """
    if value is None or not np.isfinite(value):
        return "—"
    return f"{value:.{digits}f}"


def interval(values: Sequence[float], digits: int = 3) -> str:
    """``mean [low, high]``."""
    mean, low, high = values
    return f"{number(mean, digits)} [{number(low, digits)}, {number(high, digits)}]"


def p_value(value: float, permutations: int | None = None, resolution: float | None = None,
            significant: bool | None = None) -> str:
    """A permutation p-value with its resolution: ``0.012 (999 perm.)``, ``≤ 0.001 (the smallest of 999 perm.)``,
    ``0.25 (exact, 8 sign vectors)``; stars only where the test could be ``significant`` (fine enough)."""
    if value is None or not np.isfinite(value):
        return "—"
    if resolution is not None and value <= resolution * (1 + 1e-9):
        text = f"≤ {resolution:.2g} (the smallest {permutations} permutations allow)"
    else:
        text = f"{value:.3f}" + (f" ({permutations} perm.)" if permutations else "")
    stars = figures.p_stars(value) if significant is None or significant else ""
    return f"{text} {stars}".strip()


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *["| " + " | ".join(str(c) for c in row) + " |" for row in rows], ""]


def _enlarge(image: np.ndarray, side: int) -> np.ndarray:
    return np.asarray(Image.fromarray(np.asarray(image, np.uint8)).resize((side, side), Image.NEAREST))


def heatmap_grid(path: str, images: Any, maps: Mapping[str, Mapping[str, np.ndarray]], *, composite: int,
                 count: int, tile: int, extra: Mapping[str, np.ndarray] | None = None) -> str:
    """Rows: the input images, then each model's (and each ``extra``) map of them (coldnhot, symmetric scale per
    map); columns: the first ``count`` images."""
    chosen = range(min(count, len(images.ids)))
    rows = [[_enlarge(images.pixels[i], tile) for i in chosen]]
    labels = ["input"]
    sources = {name: value["heat"][composite] for name, value in maps.items()}
    sources.update(extra or {})
    for name, heat in sources.items():
        rows.append([_enlarge(viz.heatmap_image(heat[i], "coldnhot"), tile) for i in chosen])
        labels.append(name)
    picture = viz.grid(rows, row_labels=labels, column_labels=[str(images.ids[i]) for i in chosen], label_width=140)
    return viz.save_png(picture, path)


def _figure(path: str) -> str:
    return f"![{os.path.splitext(os.path.basename(path))[0]}]({os.path.basename(path)})"


def overview(ctx: Any, sets: Mapping[str, Any], maps: Mapping[str, Any], results: Mapping[str, Any],
             seconds: float) -> list[str]:
    """The header: profile, grid, composites, image sets, settings, wall time and the models."""
    config = ctx.config
    composites = config["relevance"]["composites"]
    stage_seconds = ctx.stages.seconds()
    lines = [f"# Relevance study ({config['profile']} profile)", "", config.get("description", ""), "",
             f"- grid: `{ctx.grid}` ({len(ctx.models)} models); work directory `{ctx.workdir}`",
             f"- composites: {', '.join(composites)} (analyses use **{composites[0]}**; relevance of each model's "
             "predicted class, zB bounds from its preprocessing)",
             f"- every model sees the same {ctx.geometry['crop']}x{ctx.geometry['crop']} crops (shorter side "
             f"resized to {ctx.geometry['resize']}), normalised its own way",
             f"- masking: {_masking_text(config['masking'])}",
             f"- statistics: {ctx.statistics['n_boot']} bootstrap replicates over images, "
             f"{ctx.statistics['n_perm']} permutations, {ctx.statistics['confidence']:.0%} intervals",
             f"- wall time: **{seconds:.0f} s** this run up to the report (stages computed: "
             f"{len(ctx.stages.computed)}, loaded: {len(ctx.stages.loaded)}); the stages took "
             f"{sum(stage_seconds.values()):.0f} s when computed", ""]
    lines += ["Image sets:", ""]
    rows = [[name, len(images.ids), spec.get("models", "all"), spec.get("labels", "predicted"),
             "yes" if images.has_regions else "no", _source_text(spec)]
            for (name, images), spec in ((item, config["image_sets"][item[0]]) for item in sets.items())]
    lines += table(["set", "images", "models", "labels", "face regions", "source"], rows)
    lines += ["Models (test accuracy from the grid; accuracy on the study's labelled sets):", ""]
    rows = []
    for model in ctx.models:
        tests = ", ".join(f"{k} {number(v.get('accuracy'))}" for k, v in (model.metadata.get("test") or {}).items())
        here = ", ".join(f"{s} {number(np.mean(maps[s][model.name]['logits'].argmax(-1) == sets[s].labels))}"
                         for s in sets if config["image_sets"][s].get("labels") == "true" and model.name in maps[s])
        rows.append([model.name, model.base, model.task, model.seed, tests or "—", here or "—"])
    return lines + table(["model", "pretraining", "task", "seed", "grid test accuracy", "study sets"], rows)


def _masking_text(options: Mapping[str, Any]) -> str:
    fractions = ", ".join(f"{f:g}" for f in options["fractions"])
    return (f"{options.get('patch_size', 1)}x{options.get('patch_size', 1)} patches filled with "
            f"{options.get('fill', 'zero')}, fractions {fractions}; curves of the predicted class's "
            f"{options.get('metric', 'probability')}")


def _source_text(spec: Mapping[str, Any]) -> str:
    where = ", ".join(spec["splits"]) if "splits" in spec else f"folder {spec['folder']}"
    condition = f" ({spec['condition']} only)" if spec.get("condition") else ""
    limit = f", at most {spec['limit']}" if spec.get("limit") else ""
    return f"{where}{condition}{limit}"


def masking_section(ctx: Any, results: Mapping[str, Any], out: str) -> list[str]:
    """Masking AUCs per model with intervals, and the curves figure per set."""
    lines = ["## Masking curves (MoRF, LeRF, random)", "",
             "Area under the curve of the predicted class's probability as patches are masked in order of the "
             "model's own relevance (MoRF: most relevant first, low is faithful), least relevant first (LeRF: high "
             "is faithful) and at random; MoRF − LeRF < 0 means the maps separate relevant from irrelevant "
             "pixels.", ""]
    stage = results["masking_summary"]
    fractions = ctx.config["masking"]["fractions"]
    for set_name, per_model in stage.summary.items():
        rows = [[name, *(interval(entry["auc"][o]) for o in ORDERS), interval(entry["morf_minus_lerf"])]
                for name, entry in per_model.items()]
        lines += [f"### {set_name}", ""]
        lines += table(["model", "AUC MoRF", "AUC LeRF", "AUC random", "MoRF − LeRF"], rows)
        curves = {name: {o: tuple(stage.arrays[f"{set_name}|{name}|{o}"]) for o in ORDERS} for name in per_model}
        path = figures.masking_curves_figure(os.path.join(out, f"masking_{set_name}.png"), fractions, curves,
                                             title=f"Masking curves on {set_name} (mean, 95% CI over images)")
        lines += [_figure(path), ""]
    return lines


def generalization_section(ctx: Any, results: Mapping[str, Any], out: str) -> list[str]:
    """The generalization matrix, relation groups with their controls, asymmetries and the extra sources."""
    floor = None
    for key, stage in results.items():
        if key.startswith("generalization_"):
            floor = stage.summary.get("reliability_floor")
    lines = ["## Cross-model generalization", "",
             "Margin m(A→B) = AUC_random(B) − AUC_MoRF(B masked by A's maps), in AUC units of the predicted "
             "class's probability: > 0 when A's maps find pixels B relies on better than random order. Normalised "
             "score s(A→B) = m(A→B) / m(B→B): 1 when A's maps hurt B as much as B's own (the diagonal), 0 when no "
             "better than random. The score is a ratio, meaningful only where its denominator is clear of 0: a "
             f"target is **reliable** when the lower end of its own margin's interval exceeds {number(floor)} "
             "(far above float32 noise; untrained models give own margins of 1e-8 to 1e-6). Scores of other "
             "targets are not printed (†), relations and asymmetries count reliable targets only, and each "
             "relation pools its pairs as a ratio of means, Σ m(A→B) / Σ m(B→B), with bootstrap intervals over "
             "images (Efron & Tibshirani 1993) that contain their estimates.", ""]
    for key, stage in results.items():
        if key.startswith("generalization_"):
            lines += _generalization_set(key.removeprefix("generalization_"), stage, out)
    return lines


def _generalization_set(set_name: str, stage: Any, out: str) -> list[str]:
    summary = stage.summary
    models, reliable = summary["targets"], set(summary["reliable"])
    marked = [m if m in reliable else f"{m} †" for m in models]
    score = np.where(np.isin(models, list(reliable))[None, :], stage.arrays["score"], np.nan)
    diagonal = np.diag(stage.arrays["score"][: len(models)])
    lines = [f"### {set_name} ({summary['images']} images)", "",
             f"Diagonal: {number(np.nanmin(diagonal))}–{number(np.nanmax(diagonal))} (must be 1). **Own maps beat "
             f"random order (reliable targets): {len(reliable)} of {len(models)}.**", ""]
    lines += table(["target", "own margin m(B→B) [95% CI]", "reliable"],
                   [[m, interval(summary["own_margin"][m]), "yes" if m in reliable else "no †"] for m in models])
    path = figures.matrix_figure(os.path.join(out, f"generalization_{set_name}.png"), score,
                                 rows=summary["sources"], columns=marked, vmin=-0.5, vmax=1.5, cmap="RdYlBu_r",
                                 title=f"s(source → target) on {set_name}", colorbar_label="normalised score",
                                 xlabel="target model († not reliable: not scored)", ylabel="source of maps")
    lines += [_figure(path), ""]
    relations = summary["relations"]
    keys = list(relations["reliable"])
    lines += table(["relation", "s(A→B), reliable targets [95% CI]", "pairs (targets)",
                    "margin m(A→B), all targets [95% CI]", "pairs"],
                   [[r, _triple(relations["reliable"][r]), f"{relations['reliable'][r]['pairs']} "
                     f"({relations['reliable'][r]['targets']})", interval(relations["all"][r]["margin"]),
                     relations["all"][r]["pairs"]] for r in keys])
    lines += _controls_lines(summary)
    series = {"reliable targets": {r: tuple(relations["reliable"][r][v] for v in ("mean", "low", "high"))
                                   for r in keys}}
    for control, per_relation in summary.get("controls", {}).items():
        series[control] = {r: tuple(per_relation[r]["control"]) for r in keys if r in per_relation}
    path = figures.interval_bars_figure(os.path.join(out, f"generalization_relations_{set_name}.png"), series,
                                        title=f"Generalization by relation, with controls ({set_name})",
                                        ylabel="normalised score (reliable targets)")
    lines += [_figure(path), ""]
    lines += _asymmetry_lines(summary["asymmetry"], set_name, out)
    rows = [[source, interval(entry["pooled"]["score"]), entry["pooled"]["targets"], interval(entry["margin_all"])]
            for source, entry in summary["extra_sources"].items()]
    if rows:
        lines += ["Other sources of maps on every target (consensus maps, controls and maps given with the images; "
                  "score pooled over reliable "
                  "targets as Σ m(source→B) / Σ m(B→B), margin averaged over all targets):", ""]
        lines += table(["source", "s(source → B) [95% CI]", "reliable targets", "margin, all targets [95% CI]"],
                       rows)
    return lines


def _controls_lines(summary: Mapping[str, Any]) -> list[str]:
    controls = summary.get("controls", {})
    if not controls:
        return []
    lines = ["Controls on the same images and targets (reliable targets): s(control→B) pooled over each "
             "relation's pairs, and Δ = s(A→B) − s(control→B); other models' LRP maps **beat** a control when Δ's "
             "interval lies above 0.", ""]
    rows = []
    for control, per_relation in controls.items():
        for relation, entry in per_relation.items():
            if entry["pairs"]:
                rows.append([relation, control, interval(entry["control"]), interval(entry["difference"]),
                             "**yes**" if entry["beats"] else "no"])
    rows.sort(key=lambda row: row[0])
    return lines + table(["relation", "control", "s(control → B) [95% CI]", "Δ [95% CI]", "beaten"], rows)


def _triple(entry: Mapping[str, float] | None) -> str:
    return "—" if entry is None else interval([entry["mean"], entry["low"], entry["high"]])


def _asymmetry_lines(families: Sequence[Mapping[str, Any]], set_name: str, out: str) -> list[str]:
    if not families:
        return []
    lines = ["Asymmetry index s(A→B) − s(B→A) over pairs of reliable models (family: mean over its ordered pairs, "
             "sign-flip test over images on the mean with the denominators held fixed; then each pair of equal "
             "seeds). p comes with its permutations; stars only where the permutations allow p ten times below "
             "0.05:", ""]
    rows, points = [], []
    for family in families:
        if not family["pairs"]:
            rows.append([f"**{family['name']}**", "no pair of reliable models", "—"])
            continue
        triple = [family["index"], family["low"], family["high"]]
        rows.append([f"**{family['name']}** ({family['pairs']} pairs)", interval(triple), _p_of(family)])
        points.append((family["name"], *triple, family["p_value"] if family["significant"] else 1.0))
        for pair in family["by_pair"]:
            triple = [pair["index"], pair["low"], pair["high"]]
            rows.append([f"{pair['a']} vs {pair['b']}", interval(triple), _p_of(pair)])
            points.append((f"  {pair['a']} vs {pair['b']}", *triple, pair["p_value"] if pair["significant"] else 1.0))
    lines += table(["A vs B", "index [95% CI]", "p"], rows)
    if points:
        path = figures.asymmetry_figure(os.path.join(out, f"asymmetry_{set_name}.png"), points,
                                        title=f"Asymmetry of generalization ({set_name})")
        lines += [_figure(path), ""]
    return lines


def _p_of(entry: Mapping[str, Any]) -> str:
    return p_value(entry["p_value"], entry.get("permutations"), entry.get("resolution"), entry.get("significant"))


def similarity_section(results: Mapping[str, Any], out: str) -> list[str]:
    """Map similarity by relation, and the Spearman matrix."""
    stage = results["similarity"]
    summary = stage.summary
    relations = summary["relations"]
    keys = list(relations["spearman"])
    lines = ["## Map similarity", "",
             f"Per image, Spearman's ρ of two models' signed maps over the pixels (Fisher-z mean over images) and "
             f"the overlap (IoU) of their top {summary['top_k']:.0%} pixels by positive relevance.", ""]
    lines += table(["relation", "Spearman ρ [95% CI]", f"top-{summary['top_k']:.0%} IoU [95% CI]", "ordered pairs"],
                   [[r, interval([relations["spearman"][r][k] for k in ("mean", "low", "high")]),
                     interval([relations["top_k_iou"][r][k] for k in ("mean", "low", "high")]),
                     relations["spearman"][r]["pairs"]] for r in keys])
    series = {label: {r: tuple(relations[key][r][k] for k in ("mean", "low", "high")) for r in keys}
              for label, key in (("Spearman ρ", "spearman"), (f"top-{summary['top_k']:.0%} IoU", "top_k_iou"))}
    path = figures.interval_bars_figure(os.path.join(out, "similarity_relations.png"), series,
                                        title="Map similarity by relation", ylabel="similarity")
    matrix = figures.matrix_figure(os.path.join(out, "similarity_spearman.png"), stage.arrays["spearman"],
                                   rows=summary["names"], title="Spearman ρ of the maps", vmin=-1, vmax=1,
                                   cmap="RdYlBu_r", colorbar_label="ρ")
    return lines + [_figure(path), "", _figure(matrix), ""] + _similarity_controls_lines(summary)


def _similarity_controls_lines(summary: Mapping[str, Any]) -> list[str]:
    controls = summary.get("controls")
    if not controls:
        return []
    lines = ["Controls: Spearman ρ of each control map with model B's map, against ρ of another model A's map "
             "with B's (plain means over images and pairs); Δ = ρ(A, B) − ρ(control, B). Other models' maps are "
             "**more alike than the control** when Δ's interval lies above 0.", ""]
    rows = []
    for relation in summary["relations"]["spearman"]:
        for control, entry in controls.items():
            item = entry["relations"].get(relation)
            if item:
                rows.append([relation, control, interval(item["models"]), interval(item["control"]),
                             interval(item["difference"]), "**yes**" if item["beats"] else "no"])
    return lines + table(["relation", "control", "ρ(A, B) [95% CI]", "ρ(control, B) [95% CI]", "Δ [95% CI]",
                          "beaten"], rows)


def mprt_section(results: Mapping[str, Any], out: str) -> list[str]:
    """The model parameter randomisation test: per composite, similarity to the trained maps per step, the flag."""
    if "mprt" not in results:
        return []
    stage = results["mprt"]
    summary = stage.summary
    layers, threshold = summary["layers"], summary["threshold"]
    lines = ["## Model parameter randomisation test", "",
             f"Each model's maps ({len(summary['models'])} models, first {summary['images']} images) after "
             "re-initialising its layers cumulatively from the top (fc8, then fc7, ... down to conv1_1; Adebayo et "
             "al. 2018), compared with the trained model's maps of the same images and classes: Spearman ρ of |maps| "
             "and SSIM of the maps scaled to their maximum |h|. Maps that stay similar once every conv block is "
             f"randomised (Spearman > {threshold}) do not depend on what the model learned (flagged).", ""]
    rows, curves = [], {}
    for composite, entry in summary["composites"].items():
        after_fc = layers.index("fc6") if "fc6" in layers else 0
        rows.append([composite, interval(entry["spearman"][after_fc]), interval(entry["spearman"][-1]),
                     interval(entry["ssim"][-1]), entry.get("similar_until") or "—",
                     "**flagged**" if entry["flagged"] else "no"])
        curves[composite] = {m: tuple(stage.arrays[f"{composite}|{m}"]) for m in ("spearman", "ssim")}
    lines += table(["composite", "Spearman, fc layers randomised [95% CI]", "Spearman, all layers [95% CI]",
                    "SSIM, all layers [95% CI]", f"ρ > {threshold} down to", f"ρ > {threshold} after the conv blocks"],
                   rows)
    path = figures.mprt_figure(os.path.join(out, "mprt.png"), layers, curves, threshold=threshold,
                               title="Cascading parameter randomisation")
    return lines + [_figure(path), ""]


def regions_section(results: Mapping[str, Any], out: str) -> list[str]:
    """Relevance shares of the face regions per group and model, the consensus map's, and the areas."""
    if "regions" not in results:
        return ["## Face regions", "", "Not computed: the regions' image set has no landmarks.", ""]
    summary = results["regions"].summary
    regions = summary["regions"]
    lines = ["## Face regions", "",
             f"Share of each image's positive relevance on each region ({summary['images']} faces with landmarks; "
             "exclusive regions, rows sum to 1); the area row is the share an evenly spread map would give.", ""]
    rows = [["area (even spread)", *(number(a) for a in summary["areas"])]]
    for grouping_name, groups in summary["groups"].items():
        rows += [[f"{group} (by {grouping_name})", *(interval(v, 2) for v in values)]
                 for group, values in groups.items()]
    if "consensus" in summary:
        rows.append(["consensus map", *(interval(v, 2) for v in summary["consensus"])])
    lines += table(["group", *regions], rows)
    lines += ["Per model:", ""]
    lines += table(["model", *regions], [[name, *(number(v[0]) for v in values)]
                                         for name, values in summary["models"].items()])
    shares = {group: tuple(np.array(values).T) for group, values in summary["groups"]["pretraining x task"].items()}
    path = figures.region_shares_figure(os.path.join(out, "region_shares.png"), regions, shares,
                                        areas=np.array(summary["areas"]), title="Relevance share per face region")
    return lines + [_figure(path), ""]


def human_section(results: Mapping[str, Any], out: str) -> list[str]:
    """RSA with the human RDM, the noise ceiling and the triad agreement per model."""
    if "human" not in results:
        return []
    summary = results["human"].summary
    lines = ["## Human similarity", ""]
    if summary["synthetic"]:
        lines += ["> **Synthetic data.** No human judgements ship with the project: the \"human\" RDM and triads "
                  "below are simulated from a model plus noise, only to show the statistics. They say nothing "
                  "about people.", ""]
    lines += [f"{summary['description']}; {summary['images']} images.", ""]
    ceiling = summary.get("noise_ceiling")
    if ceiling:
        lines += [f"Noise ceiling ({summary['raters']} raters): split-half ρ {number(ceiling['split_half'])}, "
                  f"Spearman-Brown corrected {number(ceiling['corrected'])}.", ""]
    rows = []
    for name, entry in summary["rsa"].items():
        triad = summary["triads"].get(name)
        rows.append([name + (" (source of the synthetic data)" if name == summary.get("source") else ""),
                     number(entry["plain"]["r"]), p_value(entry["plain"]["p_value"]),
                     number(entry.get("masked", {}).get("r")), p_value(entry.get("masked", {}).get("p_value")),
                     interval([triad["agreement"], triad["low"], triad["high"]]) if triad else "—"])
    lines += table(["model", "RSA fc7 ρ", "p", "RSA fc7 (relevance-masked) ρ", "p", "triad agreement [95% CI]"], rows)
    values = {"fc7": {n: (e["plain"]["r"], e["plain"]["p_value"]) for n, e in summary["rsa"].items()},
              "fc7, relevance-masked": {n: (e["masked"]["r"], e["masked"]["p_value"]) for n, e in summary["rsa"].items()
                                        if "masked" in e}}
    band = (ceiling["split_half"], ceiling["corrected"]) if ceiling else None
    title = "Model-human RSA" + (" (SYNTHETIC human data)" if summary["synthetic"] else "")
    path = figures.rsa_figure(os.path.join(out, "rsa.png"), values, ceiling=band, title=title)
    return lines + [_figure(path), ""]


def write_report(ctx: Any, sets: Mapping[str, Any], maps: Mapping[str, Any], results: Mapping[str, Any], *,
                 seconds: float) -> str:
    """Write the heatmap grids, figures and ``report.md`` into the work directory; returns the report's path."""
    out = ctx.workdir
    lines = overview(ctx, sets, maps, results, seconds)
    lines += ["## Relevance maps", "", "Each model's map of the first images of each set (red: for the predicted "
              "class, blue: against; each map scaled to its own maximum).", ""]
    options = ctx.config["heatmaps"]
    for set_name, images in sets.items():
        for c, composite in enumerate(ctx.config["relevance"]["composites"]):
            extra = None
            if c == 0 and len(maps[set_name]) > 1:
                extra = {"consensus": analysis.consensus_map({m: v["heat"][0] for m, v in maps[set_name].items()})}
            path = heatmap_grid(os.path.join(out, f"heatmaps_{set_name}_{composite}.png"), images, maps[set_name],
                                composite=c, count=options.get("images", 6), tile=options.get("tile", 96),
                                extra=extra)
            lines += [f"{set_name}, {composite}:", "", _figure(path), ""]
    lines += masking_section(ctx, results, out)
    lines += generalization_section(ctx, results, out)
    lines += similarity_section(results, out)
    lines += mprt_section(results, out)
    lines += regions_section(results, out)
    lines += human_section(results, out)
    path = os.path.join(out, "report.md")
    with open(path, "w") as handle:
        handle.write("\n".join(lines))
    return path
