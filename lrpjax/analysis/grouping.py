"""How two models relate (same model, other seed, other task, other pretraining), and averages per relation.

Each model carries metadata ``dict(pretraining=..., task=..., seed=...)``. A pair's relation ignores the seed
once task or pretraining differ, so the groups answer "what changes the maps most: the seed, the task or the
pretraining?".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

RELATIONS = ("self", "other seed", "other task", "other pretraining", "other task and pretraining")
METADATA_KEYS = ("pretraining", "task", "seed")


def relation(a: Mapping[str, Any], b: Mapping[str, Any], *, same_model: bool = False) -> str:
    """The relation of models with metadata ``a`` and ``b``: one of :data:`RELATIONS`.

    ``self`` for the same model; ``other seed`` when only the seed differs; otherwise ``other task``,
    ``other pretraining`` or ``other task and pretraining`` (whatever the seeds).

    >>> relation(dict(pretraining="imagenet", task="gender", seed=0), dict(pretraining="imagenet", task="id", seed=1))
    'other task'

    Raises:
      ValueError: metadata without the keys pretraining, task and seed; two different models with identical
        metadata (their relation is undefined).
    """
    for name, meta in (("a", a), ("b", b)):
        missing = [key for key in METADATA_KEYS if key not in meta]
        if missing:
            raise ValueError(f"metadata {name}={dict(meta)!r} lacks {missing}; each model needs {METADATA_KEYS}")
    if same_model:
        return "self"
    other_task = a["task"] != b["task"]
    other_pretraining = a["pretraining"] != b["pretraining"]
    if other_task and other_pretraining:
        return "other task and pretraining"
    if other_task:
        return "other task"
    if other_pretraining:
        return "other pretraining"
    if a["seed"] != b["seed"]:
        return "other seed"
    raise ValueError(f"two different models share the metadata {dict(a)!r}: give each model its own seed")


def relation_groups(names: Sequence[str], metadata: Mapping[str, Mapping[str, Any]], *,
                    columns: Sequence[str] | None = None, include_self: bool = True
                    ) -> dict[str, list[tuple[int, int]]]:
    """Pairs ``(i, j)`` of indices per relation: ``i`` into ``names`` (rows, e.g. sources of maps), ``j`` into
    ``columns`` (default: ``names``; e.g. target models). The same name in a row and a column is ``self``.

    Relations without pairs are left out; the dict follows the order of :data:`RELATIONS`.

    >>> meta = {"a": dict(pretraining="none", task="gender", seed=0), "b": dict(pretraining="none", task="gender",
    ...         seed=1)}
    >>> relation_groups(["a", "b"], meta)
    {'self': [(0, 0), (1, 1)], 'other seed': [(0, 1), (1, 0)]}

    Raises:
      ValueError: a name without metadata, duplicate names, or see :func:`relation`.
    """
    columns = names if columns is None else columns
    for label, listed in (("names", names), ("columns", columns)):
        if len(set(listed)) != len(listed):
            raise ValueError(f"{label} must be unique, got {list(listed)}")
        missing = [name for name in listed if name not in metadata]
        if missing:
            raise ValueError(f"no metadata for model(s) {missing} in {label}; metadata has {sorted(metadata)}")
    groups: dict[str, list[tuple[int, int]]] = {key: [] for key in RELATIONS}
    for i, a in enumerate(names):
        for j, b in enumerate(columns):
            if a != b or include_self:
                groups[relation(metadata[a], metadata[b], same_model=a == b)].append((i, j))
    return {key: pairs for key, pairs in groups.items() if pairs}


def group_means(matrix: np.ndarray, groups: Mapping[str, Sequence[tuple[int, int]]]) -> dict[str, np.ndarray]:
    """Mean of ``matrix[..., i, j]`` over each group's pairs (NaN entries ignored).

    ``matrix`` is ``[M, M]`` (one value per group) or ``[..., M, M]`` (e.g. bootstrap replicates first: one value
    per replicate and group, ready for :func:`~lrpjax.analysis.stats.percentile_interval`).
    """
    matrix = np.asarray(matrix, np.float64)
    out = {}
    for key, pairs in groups.items():
        rows, cols = np.asarray(pairs).T
        out[key] = np.nanmean(matrix[..., rows, cols], axis=-1)
    return out


def group_values(matrix: np.ndarray, groups: Mapping[str, Sequence[tuple[int, int]]]) -> dict[str, np.ndarray]:
    """The values ``matrix[i, j]`` of each group's pairs, for plotting or testing their spread."""
    matrix = np.asarray(matrix, np.float64)
    return {key: matrix[tuple(np.asarray(pairs).T)] for key, pairs in groups.items()}
