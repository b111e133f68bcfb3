"""The model grid: bases x tasks x seeds, each model trained once, and the table of test accuracies.

A grid config (a Python file with ``get_config(arg)``, see ``configs/grid_cpu.py``) returns a dict:

``workdir``
    where everything goes (``--workdir`` overrides it).
``data``
    :class:`lrpjax.data.DataPaths` fields: ``data_dir`` (``None``: ``WORKDIR/tfds``), ``faces``, ``manual_dir``,
    ``identity_people`` (how many people ``vggface2_identity`` keeps; 500).
``bases``
    name -> ``{"checkpoint": DIR}`` (a converted checkpoint) or a stand-in trained here first:
    ``{"train": "NAME:SPLIT", "validation": ..., "tests": [...], "config": {TrainConfig fields}}``, whose
    ``model`` field selects the network (VGG fields, or ``{"family": "resnet", "depth": 18, "width": ...,
    "input_size": ...}``); ``description`` says what the base is.
``tasks``
    name -> ``{"train": "NAME:SPLIT", "validation": "NAME:SPLIT" or None, "tests": {column: "NAME:SPLIT"},
    "finetune": {TrainConfig fields overriding the grid's}}``.
``seeds``
    the seeds; each fixes a model's new head, data order, augmentation and dropout.
``finetune``
    :class:`lrpjax.jobs.train.TrainConfig` fields shared by every finetuning run.
``folders`` (optional)
    name -> :class:`lrpjax.data.FaceFolderConfig` fields: folder data sets that splits may name
    (``"NAME:SPLIT"``) beside the named ones of :mod:`lrpjax.data.tasks`; built into ``data_dir`` once.
``planted`` (optional)
    :func:`experiments.planted.build_planted` arguments: the known-answer images, written before training.

A task may set its own ``seeds``.

Relative paths (``workdir``, ``data``, base checkpoints) are relative to the working directory, the repository
root in every command documented here; they are made absolute once, at the start. Before anything is trained,
:func:`experiments.preflight.preflight` checks every checkpoint, data set, folder and file the config names and
reports all problems at once.

Layout: ``WORKDIR/bases/NAME/`` (stand-ins), ``WORKDIR/runs/BASE/TASK/seedN/`` (each a :func:`lrpjax.jobs.train.run`
work directory: a finished one holds ``model/`` and ``results.json`` (its training checkpoints deleted) and is
skipped; an interrupted one resumes from its checkpoints), and
``WORKDIR/results.md`` and ``results.csv``.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from experiments.configfile import call_get_config
from experiments.planted import build_planted
from experiments.preflight import preflight
from lrpjax import data
from lrpjax.jobs import train
from lrpjax.jobs.progress import to_stderr, track

KEYS = ("workdir", "data", "bases", "tasks", "seeds", "finetune")
OPTIONAL = ("description", "folders", "planted")


def load_config(spec: str) -> dict[str, Any]:
    """``get_config(arg)`` of the Python file in ``spec`` (``PATH`` or ``PATH:ARG``); ``ValueError`` naming
    the file if it is missing, has no ``get_config``, or returns a dict with missing or unknown keys."""
    config = call_get_config(spec)
    missing, unknown = [k for k in KEYS if k not in config], sorted(set(config) - set(KEYS) - set(OPTIONAL))
    if missing or unknown:
        raise ValueError(f"config {spec!r}: missing keys {missing}, unknown keys {unknown}")
    return config


def _finished(workdir: str) -> dict[str, Any] | None:
    path = os.path.join(workdir, "results.json")
    if os.path.isfile(os.path.join(workdir, "model", "metadata.json")) and os.path.isfile(path):
        with open(path) as handle:
            return json.load(handle)
    return None


def open_split(spec: str, paths: data.DataPaths, folders: Mapping[str, Mapping[str, Any]] | None = None
               ) -> data.Split:
    """The split ``"NAME:SPLIT"``: of the folder data set ``NAME`` in ``folders`` (built first if needed), else
    the named split (:func:`lrpjax.data.open_named_split`)."""
    name, _, split = spec.partition(":")
    if folders and name in folders:
        directory = data.prepare_folder(data.FaceFolderConfig(name=name, **folders[name]), paths.data_dir)
        return data.open_split(directory, split)
    return data.open_named_split(spec, paths)


def train_once(workdir: str, config: train.TrainConfig, paths: data.DataPaths, train_split: str,
               validation: str | None, tests: Sequence[str], log: Callable[[str], None],
               folders: Mapping[str, Mapping[str, Any]] | None = None) -> tuple[dict, bool]:
    """``(results, trained)``: train in ``workdir`` unless a finished model is there (then ``trained`` False)."""
    done = _finished(workdir)
    if done is not None:
        log(f"skipping {workdir}: finished")
        return done, False
    log(f"training {workdir}")
    results = train.run(config, workdir, train=open_split(train_split, paths, folders),
                        validation=validation and open_split(validation, paths, folders),
                        tests=[open_split(spec, paths, folders) for spec in tests], keep_checkpoints=False, log=log)
    return results, True


def prepare_bases(config: Mapping[str, Any], workdir: str, paths: data.DataPaths,
                  log: Callable[[str], None]) -> dict[str, str]:
    """Checkpoint directory of every base; stand-ins are trained in ``workdir/bases/NAME`` first."""
    checkpoints = {}
    for name, base in config["bases"].items():
        if "checkpoint" in base:
            checkpoints[name] = base["checkpoint"]
            continue
        base_dir = os.path.join(workdir, "bases", name)
        settings = train.TrainConfig(**{"task": f"base:{name}", **base["config"]})
        train_once(base_dir, settings, paths, base["train"], base.get("validation"), base.get("tests", ()), log)
        checkpoints[name] = os.path.join(base_dir, "model")
    return checkpoints


def run_grid(config: Mapping[str, Any], workdir: str | None = None,
             log: Callable[[str], None] = to_stderr) -> dict[str, Any]:
    """Train every base x task x seed model not yet finished and write the tables; returns
    ``{"rows", "trained", "skipped", "table"}`` (``table``: the Markdown)."""
    workdir = workdir or config["workdir"]
    preflight({**config, "workdir": workdir}, "grid")
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "config.json"), "w") as handle:
        json.dump(config, handle, indent=2, default=str)
    paths = data.DataPaths(**{**config["data"], "data_dir": config["data"].get("data_dir")
                              or os.path.join(workdir, "tfds")}).resolved()
    if config.get("planted"):
        build_planted(**config["planted"])
    folders = config.get("folders")
    bases = prepare_bases(config, workdir, paths, log)
    rows, trained, skipped = [], [], []
    runs = [(base_name, checkpoint, task_name, task, seed) for base_name, checkpoint in bases.items()
            for task_name, task in config["tasks"].items() for seed in task.get("seeds", config["seeds"])]

    def run_dir_of(run: tuple) -> str:
        return os.path.join(workdir, "runs", run[0], run[2], f"seed{run[4]}")

    for base_name, checkpoint, task_name, task, seed in track(
            runs, len(runs), log=log, label="grid", unit="models", note=lambda r: f"{r[0]}/{r[2]}/seed{r[4]}",
            every=0, finished=lambda run: _finished(run_dir_of(run)) is not None):
        run_dir = run_dir_of((base_name, checkpoint, task_name, task, seed))
        fields = {**config["finetune"], **task.get("finetune", {}), "base": checkpoint, "seed": seed,
                  "task": task_name}
        results, fresh = train_once(run_dir, train.TrainConfig(**fields), paths, task["train"],
                                    task.get("validation"), list(task["tests"].values()), log, folders)
        (trained if fresh else skipped).append(run_dir)
        accuracies = {column: results["test"][spec_name(spec, results)]["accuracy"]
                      for column, spec in task["tests"].items()}
        rows.append({"base": base_name, "task": task_name, "seed": seed, **accuracies})
    columns = [c for task in config["tasks"].values() for c in task["tests"]]
    table = write_tables(rows, list(dict.fromkeys(columns)), workdir, config)
    return {"rows": rows, "trained": trained, "skipped": skipped, "table": table}


def spec_name(spec: str, results: Mapping[str, Any]) -> str:
    """The key under which ``results["test"]`` holds the split ``spec`` (the split's name)."""
    if spec in results["test"]:
        return spec
    name, _, split = spec.partition(":")
    matches = [key for key in results["test"] if key.endswith(f":{split}") and key.startswith(name)]
    if len(matches) != 1:
        raise ValueError(f"no test result for {spec!r} among {sorted(results['test'])}")
    return matches[0]


def write_tables(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], workdir: str,
                 config: Mapping[str, Any]) -> str:
    """``results.csv`` (one row per model) and ``results.md`` (per seed, then mean ± sd per base and task)."""
    header = ["base", "task", "seed", *columns]
    with open(os.path.join(workdir, "results.csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, header, restval="")
        writer.writeheader()
        writer.writerows(rows)

    def cell(value: Any) -> str:
        return "—" if value is None or value == "" else f"{value:.3f}"

    lines = [f"# {config.get('description', 'Model grid')}: test accuracy", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join([str(r["base"]), str(r["task"]), str(r["seed"]),
                                 *[cell(r.get(c)) for c in columns]]) + " |" for r in rows]
    lines += ["", f"Mean ± sd over seeds {list(config['seeds'])}:", "",
              "| base | task | " + " | ".join(columns) + " |", "|" + "---|" * (len(columns) + 2)]
    for base in dict.fromkeys(r["base"] for r in rows):
        for task in dict.fromkeys(r["task"] for r in rows):
            chosen = [r for r in rows if r["base"] == base and r["task"] == task]
            summary = []
            for column in columns:
                values = [r[column] for r in chosen if r.get(column) is not None]
                summary.append(f"{np.mean(values):.3f} ± {np.std(values):.3f}" if values else "—")
            lines.append(f"| {base} | {task} | " + " | ".join(summary) + " |")
    descriptions = [f"- **{name}**: {base.get('description', '')}" for name, base in config["bases"].items()]
    table = "\n".join([*lines, "", "Bases:", "", *descriptions, ""])
    with open(os.path.join(workdir, "results.md"), "w") as handle:
        handle.write(table)
    return table
