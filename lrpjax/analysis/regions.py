r"""Face regions from landmarks, the share of relevance each region holds, and consensus maps across models.

Landmarks (``face_id, point, x, y`` in the 256x256 crop, 189 points per face) and named polygons over point
indices (``regions.json``: face, eyes, brows, nose, mouth, ears, head oval) give boolean region masks at any image
size: coordinates are rescaled with pixel centres aligned, :math:`x' = (x + \tfrac12)\,s/s_0 - \tfrac12`, and the
polygons rasterised with PIL. For the share analysis they are made exclusive and exhaustive, in the order of
:data:`SHARE_REGIONS` (a pixel belongs to the first that claims it): eyes (both), brows (both), nose, mouth, the
rest of the face polygon, and everything outside the face. The share of region :math:`r` in image :math:`n` is

.. math:: s_{nr} = \sum_{p \in r} \rho(h_{np}) \Big/ \sum_p \rho(h_{np}), \qquad \sum_r s_{nr} = 1,

with :math:`h` the channel-summed map and :math:`\rho` its positive part or absolute value.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np
from PIL import Image, ImageDraw

from lrpjax.analysis import masking
from lrpjax.analysis.similarity import top_k_mask

SHARE_REGIONS = ("eyes", "brows", "nose", "mouth", "rest_of_face", "outside_face")
_FEATURES = {"eyes": ("left_eye", "right_eye"), "brows": ("left_brow", "right_brow"), "nose": ("nose",),
             "mouth": ("mouth",)}
CONSENSUS_METHODS = ("mean", "vote")


def load_landmarks(path: str | os.PathLike[str], *, points: int = 189) -> dict[str, np.ndarray]:
    """face_id -> ``[points, 2]`` (x, y) from a CSV with columns ``face_id, point, x, y``.

    Raises:
      ValueError: missing columns, a point index outside ``[0, points)``, or a face without every point.
    """
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"face_id", "point", "x", "y"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: landmark CSV lacks column(s) {sorted(missing)}; has {reader.fieldnames}")
        coordinates: dict[str, np.ndarray] = {}
        seen: dict[str, set[int]] = {}
        for row in reader:
            face, point = row["face_id"], int(row["point"])
            if not 0 <= point < points:
                raise ValueError(f"{path}: face {face!r} has point {point}, outside [0, {points})")
            coordinates.setdefault(face, np.full((points, 2), np.nan))[point] = (float(row["x"]), float(row["y"]))
            seen.setdefault(face, set()).add(point)
    incomplete = [face for face, got in seen.items() if len(got) != points]
    if incomplete:
        raise ValueError(f"{path}: face(s) {incomplete[:5]} lack some of the {points} points")
    return coordinates


def load_regions(path: str | os.PathLike[str]) -> dict[str, tuple[int, ...]]:
    """Region name -> closed polygon of point indices, from ``regions.json`` (``{"points": P, "regions": {...}}``).

    Raises:
      ValueError: no ``regions`` key, or an index outside ``[0, points)``.
    """
    with open(path) as handle:
        spec = json.load(handle)
    if "regions" not in spec:
        raise ValueError(f"{path}: no 'regions' key; it has {sorted(spec)}")
    points = spec.get("points", 189)
    regions = {name: tuple(int(i) for i in indices) for name, indices in spec["regions"].items()}
    for name, indices in regions.items():
        bad = [i for i in indices if not 0 <= i < points]
        if bad or len(indices) < 3:
            raise ValueError(f"{path}: region {name!r} must be >= 3 point indices in [0, {points}), got {indices}")
    return regions


def region_masks(points: np.ndarray, regions: Mapping[str, Sequence[int]], *, size: int,
                 source_size: int = 256) -> dict[str, np.ndarray]:
    """Region name -> boolean ``[size, size]`` mask: each polygon's points rescaled from ``source_size`` and filled."""
    points = np.asarray(points, np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must be [P, 2] (x, y), got shape {points.shape}")
    if not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size={size!r} must be a positive integer")
    scaled = (points + 0.5) * size / source_size - 0.5
    masks = {}
    for name, polygon in regions.items():
        canvas = Image.new("L", (size, size), 0)
        ImageDraw.Draw(canvas).polygon([tuple(p) for p in scaled[list(polygon)]], fill=1, outline=1)
        masks[name] = np.asarray(canvas, bool)
    return masks


def share_partition(masks: Mapping[str, np.ndarray]) -> np.ndarray:
    """``[len(SHARE_REGIONS), H, W]`` boolean one-hot partition from :func:`region_masks` (see the module docstring).

    Raises:
      ValueError: a region the partition needs (face, eyes, brows, nose, mouth) is missing.
    """
    needed = ["face", *(name for names in _FEATURES.values() for name in names)]
    missing = [name for name in needed if name not in masks]
    if missing:
        raise ValueError(f"region masks lack {missing}; the share partition needs {needed}")
    claimed = np.zeros_like(masks["face"])
    parts = []
    for names in _FEATURES.values():
        region = np.logical_or.reduce([masks[n] for n in names]) & ~claimed
        parts.append(region)
        claimed |= region
    parts.append(masks["face"] & ~claimed)
    parts.append(~(masks["face"] | claimed))
    return np.stack(parts)


def face_partitions(landmarks: Mapping[str, np.ndarray], face_ids: Sequence[str],
                    regions: Mapping[str, Sequence[int]], *, size: int, source_size: int = 256) -> np.ndarray:
    """``[N, len(SHARE_REGIONS), size, size]`` partitions of the faces ``face_ids`` (in that order).

    Raises:
      ValueError: a face id without landmarks.
    """
    missing = [face for face in face_ids if face not in landmarks]
    if missing:
        raise ValueError(f"no landmarks for face id(s) {missing[:5]}; e.g. {sorted(landmarks)[:3]} are known")
    return np.stack([share_partition(region_masks(landmarks[face], regions, size=size, source_size=source_size))
                     for face in face_ids])


def region_shares(relevance: Any, partitions: np.ndarray, *, relevance_mode: str = "positive") -> np.ndarray:
    """``[N, R]`` share of each image's (positive or absolute) relevance on each region; rows sum to 1
    (NaN for a map without any).

    >>> relevance = np.zeros((1, 4, 4)); relevance[0, 0, 0] = 2.0
    >>> partitions = np.stack([np.eye(4, dtype=bool), ~np.eye(4, dtype=bool)])[None]
    >>> region_shares(relevance, partitions).tolist()
    [[1.0, 0.0]]
    """
    partitions = np.asarray(partitions, bool)
    heat = np.asarray(masking.heatmap(relevance, relevance_mode=relevance_mode), np.float64)
    if partitions.ndim != 4 or partitions.shape[:1] + partitions.shape[2:] != heat.shape:
        raise ValueError(f"partitions of shape {partitions.shape} do not fit relevance maps {heat.shape}: give "
                         f"[{heat.shape[0]}, regions, {heat.shape[1]}, {heat.shape[2]}]")
    per_region = np.einsum("nrhw,nhw->nr", partitions.astype(np.float64), heat)
    with np.errstate(invalid="ignore", divide="ignore"):
        return per_region / heat.sum(axis=(1, 2))[:, None]


def region_areas(partitions: np.ndarray) -> np.ndarray:
    """``[N, R]`` share of the pixels in each region: the share a map spread evenly would give (the baseline)."""
    partitions = np.asarray(partitions, bool)
    return partitions.sum(axis=(2, 3)) / np.prod(partitions.shape[2:])


def shares_by_model(maps: Mapping[str, Any], partitions: np.ndarray, *, relevance_mode: str = "positive"
                    ) -> dict[str, np.ndarray]:
    """Model name -> ``[N, R]`` region shares of its maps."""
    return {name: region_shares(m, partitions, relevance_mode=relevance_mode) for name, m in maps.items()}


def shares_by_group(shares: Mapping[str, np.ndarray], metadata: Mapping[str, Mapping[str, Any]], *, by: str = "task"
                    ) -> dict[Any, np.ndarray]:
    """Metadata value of ``by`` (e.g. each task) -> ``[N, R]`` shares averaged over that group's models, per image.

    Raises:
      ValueError: a model without metadata, or metadata without the key ``by``.
    """
    groups: dict[Any, list[np.ndarray]] = {}
    for name, value in shares.items():
        if name not in metadata or by not in metadata[name]:
            raise ValueError(f"model {name!r} has no metadata key by={by!r} (metadata: {metadata.get(name)!r})")
        groups.setdefault(metadata[name][by], []).append(np.asarray(value))
    return {key: np.mean(values, axis=0) for key, values in groups.items()}


def consensus_map(maps: Mapping[str, Any] | Sequence[Any], *, method: str = "mean", relevance_mode: str = "positive",
                  k: float = 0.1, min_models: int | None = None, seed: int = 0) -> np.ndarray:
    r"""``[N, H, W]`` map of where the models agree.

    ``mean``: :math:`\frac1M \sum_m \rho(h^m_n) / \sum_p \rho(h^m_{np})` (each model's map normalised to sum 1;
    a map without relevance counts as zeros). ``vote``: the number of models whose top ``k`` pixels
    (:func:`~lrpjax.analysis.similarity.top_k_mask`) include the pixel, where at least ``min_models`` (default: a
    majority) do, else 0.
    """
    maps = list(maps.values()) if isinstance(maps, Mapping) else list(maps)
    if not maps:
        raise ValueError("consensus_map needs the maps of at least one model")
    if len({np.shape(m) for m in maps}) != 1:
        raise ValueError(f"the models' maps must share one shape, got {sorted({np.shape(m) for m in maps})}")
    if method == "mean":
        heats = [np.asarray(masking.heatmap(m, relevance_mode=relevance_mode), np.float64) for m in maps]
        totals = [h.sum(axis=(1, 2), keepdims=True) for h in heats]
        return np.mean([np.divide(h, t, out=np.zeros_like(h), where=t > 0) for h, t in zip(heats, totals)], axis=0)
    if method == "vote":
        needed = -(-len(maps) // 2) if min_models is None else min_models
        if not 1 <= needed <= len(maps):
            raise ValueError(f"min_models={min_models!r} must lie in [1, {len(maps)}] (the number of models)")
        votes = np.sum([top_k_mask(m, k=k, relevance_mode=relevance_mode, seed=seed) for m in maps], axis=0)
        return np.where(votes >= needed, votes, 0).astype(np.float64)
    raise ValueError(f"method={method!r} is unknown; choose one of {CONSENSUS_METHODS}")


def consensus_masking(logits_fn: masking.LogitsFn, images: Any, labels: Any, maps: Mapping[str, Any] | Sequence[Any],
                      *, consensus: Mapping[str, Any] | None = None, **options: Any) -> masking.MaskingResult:
    """MoRF, LeRF and random curves of ``logits_fn`` with the images masked by the models' consensus map.

    ``consensus`` holds the options of :func:`consensus_map`; ``options`` those of
    :func:`~lrpjax.analysis.masking.masking_curves`.
    """
    agreed = consensus_map(maps, **dict(consensus or {}))
    return masking.masking_analysis(logits_fn, images, jnp.asarray(agreed), labels, **options)
