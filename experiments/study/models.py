"""The models of a finished grid: found on disk, named ``BASE/TASK/sN``, loaded on demand.

A grid's work directory (see :mod:`experiments.grid`) holds ``runs/BASE/TASK/seedN/model/``, each an
:mod:`lrpjax.io.checkpoints` checkpoint whose metadata carries ``task``, ``seed``, ``class_names`` and
``preprocessing``; the base (the pretraining) is the metadata's ``base`` if present, else the folder name.
"""

from __future__ import annotations

import functools
import glob
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np

from lrpjax.data.pipeline import normalize
from lrpjax.io import checkpoints
from lrpjax.jobs.explain import build_composites


class GridModel(NamedTuple):
    """One trained model of the grid: its display ``name`` (``BASE/TASK/sN``), checkpoint ``path``, ``base``,
    ``task``, ``seed`` and checkpoint ``metadata``."""

    name: str
    path: str
    base: str
    task: str
    seed: int
    metadata: dict[str, Any]

    @property
    def key(self) -> str:
        """The name as a file name (``BASE_TASK_sN``)."""
        return self.name.replace("/", "_")


def discover(grid: str) -> list[GridModel]:
    """Every finished model under ``GRID/runs/*/*/seed*/model``, sorted by base, task and seed.

    Raises:
      ValueError: no finished model there, or a checkpoint whose metadata disagrees with its folder.
    """
    found = []
    for path in sorted(glob.glob(os.path.join(grid, "runs", "*", "*", "seed*", "model", "metadata.json"))):
        folder = os.path.dirname(path)
        base_dir, task_dir, seed_dir = folder.split(os.sep)[-4:-1]
        metadata = checkpoints.load_metadata(folder)
        task, seed = metadata.get("task", task_dir), int(metadata.get("seed", seed_dir.removeprefix("seed")))
        base = metadata.get("base") or base_dir
        if task != task_dir or f"seed{seed}" != seed_dir:
            raise ValueError(f"checkpoint {folder!r} has task={task!r}, seed={seed!r} in its metadata, which "
                             "disagrees with its folder")
        found.append(GridModel(f"{base}/{task}/s{seed}", folder, base, task, seed, metadata))
    if not found:
        raise ValueError(f"no finished models under {os.path.join(grid, 'runs')!r} (expected "
                         "runs/BASE/TASK/seedN/model/); train the grid first (experiments/run_grid.py)")
    return sorted(found, key=lambda m: (m.base, m.task, m.seed))


def relation_metadata(models: Sequence[GridModel]) -> dict[str, dict[str, Any]]:
    """name -> ``{"pretraining", "task", "seed"}``, as :mod:`lrpjax.analysis.grouping` reads it."""
    return {m.name: {"pretraining": m.base, "task": m.task, "seed": m.seed} for m in models}


def select(models: Sequence[GridModel], chosen: str | Sequence[str]) -> list[GridModel]:
    """The models of task ``chosen`` (or of the tasks in a list; all for ``"all"``); ``ValueError`` if none."""
    tasks = [chosen] if isinstance(chosen, str) else list(chosen)
    picked = [m for m in models if "all" in tasks or m.task in tasks]
    if not picked:
        raise ValueError(f"no model of task {chosen!r}; the grid has tasks {sorted({m.task for m in models})}")
    return picked


@functools.lru_cache(maxsize=4)
def load(path: str) -> tuple[Any, Any, dict[str, Any]]:
    """``(model, variables, metadata)`` of a checkpoint; the last four are kept in memory."""
    return checkpoints.load(path)


def preprocessed(model: GridModel, pixels: np.ndarray) -> np.ndarray:
    """uint8 crops ``[N, H, W, 3]`` scaled and normalised as ``model`` expects (float32)."""
    return normalize(np.asarray(pixels), model.metadata["preprocessing"])


@functools.lru_cache(maxsize=8)
def logits_fn(path: str) -> Callable[[jax.Array], jax.Array]:
    """``images -> logits`` of the checkpoint at ``path``: one object per model, so the masking code's compiled
    evaluation is reused across calls."""
    model, variables, _ = load(path)
    return lambda images: model.apply(variables, images)


def composites_for(model: GridModel, names: Sequence[str]) -> list[Any]:
    """The named composites, zB bounds from the model's preprocessing (:func:`lrpjax.io.preprocess.zbox_bounds`)."""
    return build_composites(list(names), model.metadata)


def common_geometry(models: Sequence[GridModel], geometry: Mapping[str, int] | None) -> dict[str, int]:
    """``{"resize", "crop"}`` shown to every model: ``geometry`` if given, else the models' own (all equal).

    Raises:
      ValueError: models that resize or crop differently while ``geometry`` is None.
    """
    if geometry is not None:
        return {"resize": geometry["resize"], "crop": geometry["crop"]}
    seen = {(m.metadata["preprocessing"]["resize"], m.metadata["preprocessing"]["crop"]) for m in models}
    if len(seen) != 1:
        raise ValueError(f"the models resize/crop differently {sorted(seen, key=str)}; set the config's geometry "
                         "(e.g. {'resize': 224, 'crop': 224}) so every model sees the same pixels")
    resize, crop = seen.pop()
    return {"resize": resize, "crop": crop}
