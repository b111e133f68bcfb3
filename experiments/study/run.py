"""The study after the model grid, stage by stage: images, relevance, masking, the analyses, figures, report.

:func:`run_study` runs every stage not finished in the work directory (see :mod:`experiments.study.cache`) and
writes ``WORKDIR/report.md`` with its figures. Stages, in order:

1. ``images_SET``: the pixels, labels, ids and face regions of each image set.
2. ``relevance_SET``: every model's maps of the set's images (per composite) and logits.
3. ``controls_SET`` (with a ``controls`` section, on generalization sets and the similarity set): control maps
   of the same images, model-free (centre prior, image gradient, mean map) and per model (LRP of a
   parameter-randomised copy, gradient x input, SmoothGrad, Integrated Gradients, occlusion); ``controls.methods``
   chooses among them.
4. ``masking_SET``: each model masked by its own maps (MoRF, LeRF, random) and, on generalization sets, by
   every other model's maps, the consensus maps and the controls (MoRF; a control in ``controls.cross``: each
   model's maps of that method mask every model, :func:`cross_sources`).
5. ``mprt`` (with an ``mprt`` section): each composite's maps after cascading layer randomisation.
6. ``masking_summary``, ``generalization_SET``, ``similarity``, ``regions``, ``human``: the statistics.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

import lrpjax
from experiments.preflight import preflight
from experiments.study import analyses, compute, report
from experiments.study import human as human_data
from experiments.study import images as images_module
from experiments.study import models as grid_models
from experiments.study.cache import StageResult, Stages, fingerprint, package_hash, source_hash
from experiments.study.config import check_config
from experiments.study.images import ImageSet, build_image_set
from lrpjax import analysis, data
from lrpjax.io import checkpoints
from lrpjax.jobs.progress import to_stderr, track

Log = Callable[[str], None]
LRPJAX_CODE = package_hash(lrpjax)  # rules, composites, engine, analyses: a change recomputes the stages
MODEL_CODE = source_hash(compute, images_module, grid_models) + LRPJAX_CODE  # the model-running stages' inputs
STATISTICS_CODE = source_hash(analyses, human_data) + LRPJAX_CODE  # the statistics stages' inputs


class Context:
    """What every stage reads: the config, the grid's models and their relation metadata, the stages."""

    def __init__(self, config: Mapping[str, Any], workdir: str, grid: str, log: Log):
        self.config, self.workdir, self.grid, self.log = config, workdir, grid, log
        self.stages = Stages(workdir, log)
        self.models = grid_models.discover(grid)
        self.metadata = grid_models.relation_metadata(self.models)
        self.geometry = grid_models.common_geometry(self.models, config["geometry"])
        self.statistics = dict(config["statistics"])

    def members(self, set_name: str) -> list[grid_models.GridModel]:
        """The models shown the image set ``set_name``."""
        return grid_models.select(self.models, self.config["image_sets"][set_name].get("models", "all"))

    def track(self, members: Sequence[grid_models.GridModel], label: str) -> Iterator[grid_models.GridModel]:
        """``members`` one by one, with the jobs' progress line (:func:`lrpjax.jobs.progress.track`)."""
        return track(members, len(members), log=self.log, label=f"  {label}", unit="models",
                     note=lambda m: m.name)

    def identity(self, members: Sequence[grid_models.GridModel]) -> list[Any]:
        """What identifies the models for fingerprints: name, path and the checkpoint's modification time."""
        return [(m.name, m.path, os.path.getmtime(os.path.join(m.path, "metadata.json"))) for m in members]


def images_stage(ctx: Context, name: str) -> tuple[ImageSet, StageResult]:
    """Stage 1 for one image set."""
    spec = ctx.config["image_sets"][name]
    regions_json = ctx.config["regions"].get("regions_json")
    data_dir = ctx.config["data"].get("data_dir") or os.path.join(ctx.grid, "tfds")
    paths = data.DataPaths(**{**ctx.config["data"], "data_dir": data_dir}).resolved()

    def run(_key: str):
        images = build_image_set(spec, geometry=ctx.geometry, paths=paths, regions_json=regions_json,
                                 seed=ctx.statistics["seed"])
        return {"images": len(images.ids), "regions": images.has_regions}, images.arrays()

    result = ctx.stages.run(f"images_{name}", [spec, ctx.geometry, regions_json if spec.get("landmarks") else None,
                                               MODEL_CODE], run)
    return ImageSet.from_arrays(result.arrays), result


def relevance_stage(ctx: Context, name: str, images: ImageSet, upstream: str
                    ) -> tuple[dict[str, dict[str, np.ndarray]], StageResult]:
    """Stage 2 for one image set: model -> ``{"heat": [C, N, H, W], "logits": [N, K]}``."""
    members, options = ctx.members(name), ctx.config["relevance"]
    stage = f"relevance_{name}"
    out: dict[str, dict[str, np.ndarray]] = {}

    def run(key: str):
        summary = {}
        for model in ctx.track(members, f"relevance on {name} ({len(images.ids)} images)"):
            out[model.name] = ctx.stages.part(stage, model.key, key, lambda m=model: compute.explain_model(
                m, images, options["composites"], batch_size=options["batch_size"],
                target=options.get("target", "predicted")))
            predictions = out[model.name]["logits"].argmax(-1)
            summary[model.name] = {"predicted_classes": int(len(np.unique(predictions)))}
            if ctx.config["image_sets"][name].get("labels") == "true":
                summary[model.name]["accuracy"] = float(np.mean(predictions == images.labels))
        return summary, {}

    result = ctx.stages.run(stage, [upstream, options, ctx.identity(members), MODEL_CODE], run)
    if not out:
        out = {m.name: ctx.stages.part(stage, m.key, result.fingerprint, _missing(stage, m.key)) for m in members}
    return out, result


def _missing(stage: str, part: str) -> Callable[[], dict[str, np.ndarray]]:
    def fail() -> dict[str, np.ndarray]:
        raise ValueError(f"stage {stage} is marked finished but its part {part} is missing; delete "
                         f"stages/{stage}.json to recompute it")
    return fail


def controls_stage(ctx: Context, name: str, images: ImageSet, maps: Mapping[str, dict[str, np.ndarray]],
                   upstream: str) -> tuple[dict[str, Any], StageResult]:
    """Stage 3 for one image set: control name -> ``[N, H, W]`` (model-free) or model -> ``[N, H, W]``."""
    options, members = dict(ctx.config["controls"]), ctx.members(name)
    composite = ctx.config["relevance"]["composites"][0]
    stage = f"controls_{name}"
    methods = compute.control_methods(options)
    per_model: dict[str, dict[str, np.ndarray]] = {}

    def one(model: grid_models.GridModel) -> dict[str, np.ndarray]:
        return compute.control_maps(model, images, composite, predictions=maps[model.name]["logits"].argmax(-1),
                                    batch_size=ctx.config["relevance"]["batch_size"], options=options)

    def run(key: str):
        for model in ctx.track(members, f"control maps on {name}"):
            per_model[model.name] = ctx.stages.part(stage, model.key, key, lambda m=model: one(m))
        free = analysis.model_free_maps(images.pixels.astype(np.float64) / 255.0,
                                        {m: v["heat"][0] for m, v in maps.items()},
                                        sigma=float(options.get("centre_sigma", 0.25)))
        return {"controls": methods}, {c: free[c] for c in methods if c in free}

    result = ctx.stages.run(stage, [upstream, options, composite, ctx.identity(members), MODEL_CODE], run)
    if not per_model:
        per_model = {m.name: ctx.stages.part(stage, m.key, result.fingerprint, _missing(stage, m.key))
                     for m in members}
    out: dict[str, Any] = {c: result.arrays[c] for c in analysis.MODEL_FREE if c in methods}
    out.update({c: {m: per_model[m][c] for m in per_model} for c in compute.MODEL_CONTROLS if c in methods})
    return out, result


def cross_sources(controls: Mapping[str, Any], cross: Sequence[str]) -> dict[str, Any]:
    """The controls as sources of maps for masking: each control as it is (a model control masks each target by
    the target's own map), except those in ``cross`` (``controls.cross``), whose maps of each model ``A`` become
    a source ``"CONTROL of A"`` that masks every target, as the models' LRP maps do (s(A → B) of that method; its
    diagonal replaces the plain control).

    Raises:
      ValueError: a name in ``cross`` that is not a model control computed here.
    """
    unknown = [c for c in cross if not isinstance(controls.get(c), Mapping)]
    if unknown:
        raise ValueError(f"controls.cross names {unknown}; give model controls among controls.methods "
                         f"({[c for c, v in controls.items() if isinstance(v, Mapping)]})")
    out = {c: v for c, v in controls.items() if c not in cross}
    for control in cross:
        out.update({f"{control} of {model}": heat for model, heat in controls[control].items()})
    return out


def masking_stage(ctx: Context, name: str, images: ImageSet, maps: Mapping[str, dict[str, np.ndarray]],
                  upstream: str, controls: Mapping[str, Any] | None = None
                  ) -> tuple[dict[str, dict[str, np.ndarray]], list[str], StageResult]:
    """Stage 4 for one image set: target model -> ``{"curves", "cross", "random"}``, and the sources."""
    spec, options = ctx.config["image_sets"][name], dict(ctx.config["masking"])
    metric = options.pop("metric", "probability")
    members = ctx.members(name)
    heats = {m: value["heat"][0] for m, value in maps.items()}
    extras = compute.consensus_sources(heats, [m.name for m in members]) if spec.get("generalization") else {}
    if spec.get("generalization") and controls:
        extras.update(cross_sources(controls, ctx.config.get("controls", {}).get("cross", ())))
    given = {}
    if spec.get("generalization") and spec.get("maps"):
        given = images_module.given_maps(spec["maps"], images, ctx.geometry)
    extras.update(given)
    sources = [m.name for m in members] + list(extras) if spec.get("generalization") else []
    stage = f"masking_{name}"
    out: dict[str, dict[str, np.ndarray]] = {}

    def one(model: grid_models.GridModel) -> dict[str, np.ndarray]:
        predictions = maps[model.name]["logits"].argmax(-1)
        labels = compute.masking_labels(model, images, predictions, spec.get("labels", "predicted"))
        own = {**heats, **{s: (v[model.name] if isinstance(v, dict) else v) for s, v in extras.items()}}
        return compute.mask_model(model, images, own, sources, labels=labels, targets=predictions,
                                  masking=options, metric=metric)

    def run(key: str):
        for model in ctx.track(members, f"masking on {name} ({len(sources)} sources of maps)"):
            out[model.name] = ctx.stages.part(stage, model.key, key, lambda m=model: one(m))
        return {"sources": sources, "metric": metric}, {}

    given_digest = {name: hashlib.sha256(np.ascontiguousarray(m)).hexdigest()[:16] for name, m in given.items()}
    result = ctx.stages.run(stage, [upstream, ctx.config["masking"], sources, given_digest, MODEL_CODE], run)
    if not out:
        out = {m.name: ctx.stages.part(stage, m.key, result.fingerprint, _missing(stage, m.key)) for m in members}
    return out, sources, result


def mprt_stage(ctx: Context, name: str, images: ImageSet, maps: Mapping[str, dict[str, np.ndarray]],
               upstream: str) -> StageResult:
    """The ``mprt`` stage: per model and composite, Spearman and SSIM of the maps after randomising the top
    1..L layers against the trained model's (the first ``mprt.images`` images of the set)."""
    options, members = dict(ctx.config["mprt"]), ctx.members(name)
    composites = ctx.config["relevance"]["composites"]
    count = min(int(options.get("images", len(images.ids))), len(images.ids))
    subset = images._replace(**{f: getattr(images, f)[:count] for f in ("ids", "face_ids", "pixels", "labels")},
                             partitions=images.partitions[:count] if images.has_regions else images.partitions)

    def run(key: str):
        per_model = {}
        for model in ctx.track(members, f"MPRT on {name} ({count} images)"):
            per_model[model.name] = ctx.stages.part("mprt", model.key, key, lambda m=model: compute.mprt_model(
                m, subset, composites, predictions=maps[m.name]["logits"].argmax(-1)[:count],
                seed=int(options.get("seed", 0))))
        return analyses.mprt_summary(per_model, composites, statistics=ctx.statistics,
                                     threshold=float(options.get("threshold", 0.5)))

    return ctx.stages.run("mprt", [upstream, options, composites, ctx.identity(members), MODEL_CODE,
                                   STATISTICS_CODE], run)


def cross_aucs(masked: Mapping[str, Mapping[str, np.ndarray]], sources: Sequence[str], metric: str
               ) -> analysis.CrossAUCs:
    """The targets' cross-masking AUCs as :class:`lrpjax.analysis.CrossAUCs` (targets first among sources)."""
    targets = tuple(masked)
    cross = np.stack([masked[t]["cross"] for t in targets], axis=1)  # [S, T, N]
    random = np.stack([masked[t]["random"] for t in targets])
    return analysis.CrossAUCs(tuple(sources), targets, cross, random, metric)


def human_stage(ctx: Context, name: str, images: ImageSet, maps: Mapping[str, dict[str, np.ndarray]],
                upstream: str) -> StageResult:
    """The ``human`` stage: every model's RDMs (fc7, and fc7 of the relevance-masked images), the human data and
    the statistics comparing them."""
    options = ctx.config["human"]
    masking = {k: v for k, v in ctx.config["masking"].items() if k not in ("metric", "fractions", "batch_size")}
    members = ctx.members(name)
    ids = list(images.face_ids) if len(set(images.face_ids)) == len(images.face_ids) else list(images.ids)

    def rdms_of(model: grid_models.GridModel, heat: np.ndarray | None) -> dict[str, np.ndarray]:
        features = compute.embed_model(model, images, heat, layer=options.get("layer", "fc7"),
                                       keep=options.get("keep", 0.25), masking=masking)
        return {kind: analysis.embedding_rdm(f) for kind, f in features.items()}

    def run(key: str):
        model_rdms = {}
        for model in ctx.track(members, f"embeddings on {name}"):
            model_rdms[model.name] = ctx.stages.part("human", model.key, key,
                                                     lambda m=model: rdms_of(m, maps[m.name]["heat"][0]))
        if options["mode"] == "synthetic":
            source = _synthetic_source(ctx, options["source"])
            source_rdm = (model_rdms[source.name] if source.name in model_rdms else rdms_of(source, None))["plain"]
            human = human_data.make_synthetic(options, ids, source_rdm)
        else:
            human = human_data.read_human_csvs(options, ids)
        index = np.array([ids.index(i) for i in human.ids])
        chosen = {m: {k: r[np.ix_(index, index)] for k, r in rdms.items()} for m, rdms in model_rdms.items()}
        summary = human_data.human_summary(chosen, human, statistics=ctx.statistics)
        summary["source"] = options.get("source")
        return summary, {"human_rdms": human.rdms}

    return ctx.stages.run("human", [upstream, options, masking, ctx.statistics, ctx.identity(members), MODEL_CODE,
                                    STATISTICS_CODE], run)


def _synthetic_source(ctx: Context, source: str) -> grid_models.GridModel:
    """The model whose RDM the synthetic raters copy: a grid model by name, or ``base:NAME``."""
    by_name = {m.name: m for m in ctx.models}
    if source in by_name:
        return by_name[source]
    if source.startswith("base:"):
        path = os.path.join(ctx.grid, "bases", source.removeprefix("base:"), "model")
        metadata = checkpoints.load_metadata(path)
        return grid_models.GridModel(source, path, source.removeprefix("base:"), "base", -1, metadata)
    raise ValueError(f"human.source={source!r} is neither a model ({sorted(by_name)}) nor 'base:NAME'")


def analysis_stages(ctx: Context, sets: Mapping[str, ImageSet], maps: Mapping[str, Any], masked: Mapping[str, Any],
                    fingerprints: Mapping[str, str], controls: Mapping[str, Any]) -> dict[str, Any]:
    """Stage 6: the statistics, each cached; returns name -> :class:`StageResult`."""
    config, out = ctx.config, {}
    fractions = config["masking"]["fractions"]
    metric = config["masking"].get("metric", "probability")
    curves = {s: {m: v["curves"] for m, v in masked[s][0].items()} for s in masked
              if config["image_sets"][s].get("masking")}
    out["masking_summary"] = ctx.stages.run(
        "masking_summary", [[fingerprints[f"masking_{s}"] for s in curves], ctx.statistics, STATISTICS_CODE],
        lambda _: _masking_summaries(curves, fractions, metric, ctx.statistics))
    for s, (targets, sources) in masked.items():
        if config["image_sets"][s].get("generalization"):
            aucs = cross_aucs(targets, sources, metric)
            out[f"generalization_{s}"] = ctx.stages.run(
                f"generalization_{s}", [fingerprints[f"masking_{s}"], ctx.statistics, config["asymmetry"],
                                        STATISTICS_CODE],
                lambda _, a=aucs: analyses.generalization_summary(a, ctx.metadata, families=config["asymmetry"],
                                                                  statistics=ctx.statistics,
                                                                  controls=compute.CONTROLS))
    chosen = config["similarity"]["image_set"]
    heats = {m: v["heat"][0] for m, v in maps[chosen].items()}
    out["similarity"] = ctx.stages.run(
        "similarity", [fingerprints[f"relevance_{chosen}"], fingerprints.get(f"controls_{chosen}"),
                       config["similarity"], ctx.statistics, STATISTICS_CODE],
        lambda _: analyses.similarity_summary(heats, ctx.metadata, top_k=config["similarity"]["top_k"],
                                              statistics=ctx.statistics, controls=controls.get(chosen)))
    chosen = config["regions"]["image_set"]
    if sets[chosen].has_regions:
        heats = {m: v["heat"][0] for m, v in maps[chosen].items()}
        out["regions"] = ctx.stages.run(
            "regions", [fingerprints[f"relevance_{chosen}"], fingerprints[f"images_{chosen}"], config["regions"],
                        ctx.statistics, STATISTICS_CODE],
            lambda _: (analyses.regions_summary(heats, sets[chosen].partitions, ctx.metadata,
                                                relevance_mode=config["regions"].get("relevance_mode", "positive"),
                                                consensus=analysis.consensus_map(heats), statistics=ctx.statistics),
                       {}))
    chosen = config["human"].get("image_set")
    if chosen is not None:
        out["human"] = human_stage(ctx, chosen, sets[chosen], maps[chosen], fingerprints[f"relevance_{chosen}"])
    return out


def _masking_summaries(curves, fractions, metric, statistics):
    summary, arrays = {}, {}
    for s, per_model in curves.items():
        summary[s], set_arrays = analyses.masking_summary(per_model, fractions, metric=metric, statistics=statistics)
        arrays.update({f"{s}|{k}": v for k, v in set_arrays.items()})
    return summary, arrays


def run_study(config: Mapping[str, Any], *, workdir: str | None = None, grid: str | None = None,
              log: Log = to_stderr) -> dict[str, Any]:
    """Run (or resume) the study of ``config`` on the models of ``grid`` (default: the config's) in ``workdir``.

    Returns:
      ``{"report": path, "computed": [stages], "loaded": [stages], "seconds": this run's wall time}``.

    Raises:
      ValueError: a bad config, no models in the grid, models that cannot be compared pixel by pixel, missing
        data (see the stages).
    """
    started = time.time()
    config = check_config(config)
    workdir, grid = workdir or config["workdir"], grid or config["grid"]
    preflight(config, "study", grid=grid)
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "config.json"), "w") as handle:
        json.dump({**config, "workdir": workdir, "grid": grid}, handle, indent=1, default=str)
    ctx = Context(config, workdir, grid, log)
    log(f"study ({config['profile']}): {len(ctx.models)} models from {grid}: {', '.join(m.name for m in ctx.models)}")
    sets, maps, masked, fingerprints, controls = {}, {}, {}, {}, {}
    for name in config["image_sets"]:
        sets[name], result = images_stage(ctx, name)
        fingerprints[f"images_{name}"] = result.fingerprint
        maps[name], result = relevance_stage(ctx, name, sets[name], fingerprints[f"images_{name}"])
        fingerprints[f"relevance_{name}"] = result.fingerprint
        spec, upstream = config["image_sets"][name], result.fingerprint
        if config.get("controls") is not None and (spec.get("generalization")
                                                   or name == config["similarity"]["image_set"]):
            controls[name], result = controls_stage(ctx, name, sets[name], maps[name], upstream)
            fingerprints[f"controls_{name}"] = result.fingerprint
            upstream = fingerprint(upstream, result.fingerprint)
        if spec.get("masking") or spec.get("generalization"):
            targets, sources, result = masking_stage(ctx, name, sets[name], maps[name], upstream,
                                                     controls.get(name))
            masked[name] = (targets, sources)
            fingerprints[f"masking_{name}"] = result.fingerprint
    mprt = None
    if config.get("mprt") is not None:
        chosen = config["mprt"]["image_set"]
        mprt = mprt_stage(ctx, chosen, sets[chosen], maps[chosen], fingerprints[f"relevance_{chosen}"])
    results = analysis_stages(ctx, sets, maps, masked, fingerprints, controls)
    if mprt is not None:
        results["mprt"] = mprt
    log("writing figures and the report")
    path = report.write_report(ctx, sets, maps, results, seconds=time.time() - started)
    seconds = time.time() - started
    log(f"study done in {seconds:.1f} s: {path}")
    return {"report": path, "computed": ctx.stages.computed, "loaded": ctx.stages.loaded, "seconds": seconds}
