"""Everything a grid or study config refers to, checked before the first stage: one error listing every problem.

A full-scale grid trains for hours and the study's masking runs for hours more, so a missing file found at the
last stage costs all of that. :func:`preflight` runs at the start of :func:`experiments.grid.run_grid` and of
:func:`experiments.study.run_study` and checks, without building or loading anything large:

- every named split (``NAME:SPLIT``): the name, the split, and the folders and files it reads
  (:func:`lrpjax.tasks.check_named_split`; CelebA's five files and their sha256 unless already built);
- grid: every base checkpoint (``metadata.json``) and every model's :class:`lrpjax.jobs.train.TrainConfig`;
- study: the grid's models (and the tasks the image sets select), the composites, every image folder, labels
  CSV, landmark CSV and ``regions.json``, the human data (the rater CSVs match, they share at least 3 face ids
  with their image set, the triad CSV reads) or the synthetic raters' source model.

Relative paths are relative to the working directory (the repository root in the configs' docs), as
everywhere else; the messages give them as the config wrote them.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Mapping
from typing import Any

from lrpjax import analysis
from lrpjax.core import composites
from lrpjax.data import DataPaths, folders, tasks
from lrpjax.jobs import train

KINDS = ("grid", "study")


def preflight(config: Mapping[str, Any], kind: str, *, grid: str | None = None) -> None:
    """Check every path, model name and file of a ``kind`` (``"grid"`` or ``"study"``) config up front.

    Args:
      config: a loaded grid or study config.
      kind: which of the two it is.
      grid: the study's grid work directory (default: ``config["grid"]``).

    Raises:
      ValueError: one line per problem found, all of them at once.
    """
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}; choose one of {KINDS}")
    problems = _grid_problems(config) if kind == "grid" else _study_problems(config, grid or config["grid"])
    if problems:
        listed = "\n".join(f"  - {line}" for line in dict.fromkeys(problems))
        raise ValueError(f"the {kind} config refers to things that are missing or wrong "
                         f"({len(problems)} problem(s)); nothing was run:\n{listed}")


def _paths(section: Mapping[str, Any], default_data_dir: str) -> DataPaths:
    return DataPaths(**{**section, "data_dir": section.get("data_dir") or default_data_dir})


def _split_problems(specs: list[str], paths: DataPaths) -> list[str]:
    return [line for spec in dict.fromkeys(specs) for line in tasks.check_named_split(spec, paths)]


def _grid_problems(config: Mapping[str, Any]) -> list[str]:
    try:
        paths = _paths(config["data"], os.path.join(config["workdir"], "tfds"))
    except (TypeError, ValueError) as error:
        return [f"data: {error}"]
    specs, problems = [], []
    for name, base in config["bases"].items():
        if "checkpoint" in base:
            if base["checkpoint"] is None:  # a random initialisation: nothing to read
                continue
            if not os.path.isfile(os.path.join(base["checkpoint"], "metadata.json")):
                problems.append(f"base {name!r}: no checkpoint at {base['checkpoint']!r} (no metadata.json; convert "
                                "the weights with python -m weights_conversion, see the config's docstring)")
        else:
            specs += [base["train"], *([base["validation"]] if base.get("validation") else []),
                      *base.get("tests", ())]
            problems += _train_config_problems(f"base {name!r}", {"task": f"base:{name}", **base["config"]})
    for task_name, task in config["tasks"].items():
        specs += [task["train"], *([task["validation"]] if task.get("validation") else []), *task["tests"].values()]
        fields = {**config["finetune"], **task.get("finetune", {}), "base": "checkpoint", "task": task_name}
        problems += [line for seed in task.get("seeds", config["seeds"])[:1]
                     for line in _train_config_problems(f"task {task_name!r}", {**fields, "seed": seed})]
    folder_sets = config.get("folders") or {}
    problems += _folder_set_problems(folder_sets, config.get("planted"))
    named = [spec for spec in specs if spec.split(":")[0] not in folder_sets]
    return problems + _split_problems(named, paths)


def _folder_set_problems(folder_sets: Mapping[str, Mapping[str, Any]], planted: Mapping[str, Any] | None
                         ) -> list[str]:
    """Folder data sets must exist, unless the config's ``planted`` step writes them before training."""
    problems = []
    if planted and not os.path.isdir(planted["faces"]):
        problems.append(f"planted: faces folder {planted['faces']!r} does not exist")
    written = os.path.abspath(planted["out_dir"]) if planted else None
    for name, folder in folder_sets.items():
        root = os.path.abspath(folder.get("root", ""))
        if written and os.path.commonpath([root, written]) == written:
            continue
        if not os.path.isdir(root):
            problems.append(f"folder data set {name!r}: root {folder.get('root')!r} does not exist")
    return problems


def _train_config_problems(where: str, fields: Mapping[str, Any]) -> list[str]:
    try:
        train.TrainConfig(**fields)
    except (TypeError, ValueError) as error:
        return [f"{where}: {error}"]
    return []


def _study_problems(config: Mapping[str, Any], grid: str) -> list[str]:
    from experiments.study import models as grid_models  # the study's own module, not needed by the grid

    problems: list[str] = []
    try:
        models = grid_models.discover(grid)
    except ValueError as error:
        problems.append(str(error))
        models = []
    tasks = {m.task for m in models}
    known = composites.names()
    problems += [f"relevance.composites: {name!r} is not one of {known}"
                 for name in config["relevance"]["composites"] if name not in known]
    try:
        paths = _paths(config["data"], os.path.join(grid, "tfds"))
    except (TypeError, ValueError) as error:
        return [*problems, f"data: {error}"]
    specs: list[str] = []
    for name, spec in config["image_sets"].items():
        chosen = spec.get("models", "all")
        wanted = {chosen} if isinstance(chosen, str) else set(chosen)  # a task or a list of tasks
        if models and "all" not in wanted and not wanted <= tasks:
            problems.append(f"image set {name!r}: models={chosen!r}, but the grid {grid!r} has tasks {sorted(tasks)}")
        specs += list(spec.get("splits", ()))
        problems += _folder_problems(name, spec) + _maps_problems(name, spec)
        if spec.get("landmarks"):
            problems += _landmark_problems(name, spec, config["regions"].get("regions_json"))
    problems += _split_problems(specs, paths)
    return problems + _human_problems(config, grid, models)


def _face_ids(spec: Mapping[str, Any]) -> list[str] | None:
    """The face ids (file stems) of a folder image set, or None for a set of named splits."""
    folder = spec.get("folder")
    if folder is None or not os.path.isdir(folder):
        return None
    return sorted(os.path.splitext(f)[0] for _, _, names in os.walk(folder) for f in names
                  if f.lower().endswith(folders.IMAGE_EXTENSIONS))


def _folder_problems(name: str, spec: Mapping[str, Any]) -> list[str]:
    if "folder" not in spec:
        return []
    if not os.path.isdir(spec["folder"]):
        return [f"image set {name!r}: folder {spec['folder']!r} does not exist"]
    problems = [] if _face_ids(spec) else [f"image set {name!r}: folder {spec['folder']!r} holds no images"]
    if spec.get("labels_csv") and not os.path.isfile(spec["labels_csv"]):
        problems.append(f"image set {name!r}: labels_csv {spec['labels_csv']!r} does not exist")
    return problems


def _maps_problems(name: str, spec: Mapping[str, Any]) -> list[str]:
    if not spec.get("maps") or os.path.isfile(spec["maps"]):
        return []
    return [f"image set {name!r}: maps {spec['maps']!r} does not exist"]


def _landmark_problems(name: str, spec: Mapping[str, Any], regions_json: str | None) -> list[str]:
    if not regions_json or not os.path.isfile(regions_json):
        return [f"image set {name!r} has landmarks, but regions.regions_json={regions_json!r} does not exist"]
    if not os.path.isfile(spec["landmarks"]):
        return [f"image set {name!r}: landmarks {spec['landmarks']!r} does not exist"]
    try:
        points = len(analysis.load_landmarks(spec["landmarks"], points=_points(regions_json)))
        analysis.load_regions(regions_json)
    except (ValueError, KeyError) as error:
        return [f"image set {name!r}: {error}"]
    return [] if points else [f"image set {name!r}: {spec['landmarks']!r} holds no landmarks"]


def _points(regions_json: str) -> int:
    with open(regions_json) as handle:
        return int(json.load(handle).get("points", 189))


def _human_problems(config: Mapping[str, Any], grid: str, models: list[Any]) -> list[str]:
    options = config["human"]
    if options.get("image_set") is None:
        return []
    if options["mode"] == "synthetic":
        source = options.get("source", "")
        names = sorted(m.name for m in models)
        if source.startswith("base:"):
            path = os.path.join(grid, "bases", source.removeprefix("base:"), "model", "metadata.json")
            return [] if os.path.isfile(path) else [f"human.source={source!r}: no base checkpoint at {path!r}"]
        return [] if not models or source in names else [
            f"human.source={source!r} is not a model of the grid {grid!r}; it has {names} (or use 'base:NAME')"]
    problems = []
    files = sorted({f for pattern in options["rdm_csvs"] for f in glob.glob(pattern)})
    if not files:
        problems.append(f"human.rdm_csvs: no file matches {options['rdm_csvs']} (one dissimilarity CSV per rater; "
                        "or set human.mode='synthetic' to check the pipeline)")
    ids = _face_ids(config["image_sets"].get(options["image_set"], {}))
    for path in files:
        try:
            rater_ids, _ = analysis.read_dissimilarity_csv(path)
        except ValueError as error:
            problems.append(f"human.rdm_csvs: {error}")
            continue
        if ids is not None and len(set(rater_ids) & set(ids)) < 3:
            problems.append(f"human.rdm_csvs: {path!r} shares {len(set(rater_ids) & set(ids))} face ids with image "
                            f"set {options['image_set']!r} (e.g. {rater_ids[:3]} vs {ids[:3]}); it needs >= 3")
    if options.get("triads_csv"):
        if not os.path.isfile(options["triads_csv"]):
            problems.append(f"human.triads_csv {options['triads_csv']!r} does not exist")
        else:
            try:
                analysis.read_triads_csv(options["triads_csv"])
            except ValueError as error:
                problems.append(f"human.triads_csv: {error}")
    return problems
