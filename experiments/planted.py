r"""The known-answer data: London faces with a planted class cue in a known landmark region.

Every image is a copy of a London neutral face (``faces/london/neutral``), resized to ``size`` and marked with
small saturated squares (side ``mark`` of the image) at the centroid of a landmark region's polygon
(``regions.json`` over ``london/landmarks.csv``): green (0, 255, 0) or magenta (255, 0, 255), the class. The
faces are divided once between train, validation and test (people 0.7/0.1/0.2, seeded), so no test face was seen
in training; each face gives ``copies[split]`` images whose marks are drawn independently (seeded). Three
designs, one folder each (``DIR/DESIGN/{train,validation,test}/FACE_COPY.png``, ``labels.csv``,
``landmarks.csv``):

``independent``
    a mark on the left eye (column ``eye``) and one on the mouth (``mouth``), their colours drawn
    independently: task ``eye`` (A) learns the eye's colour, task ``mouth`` (B) the mouth's; A's label is
    independent of B's cue, so neither can use the other's.
``either``
    one colour (``mark``) on the eye only, the mouth only or both (1/3 each, ``placement``): task ``either``
    (C) must read the colour wherever it is, so it learns both cues.
``agreeing``
    both marks, one colour (``mark``): test images that every task reads the same way (A from the eye, B from
    the mouth, C from either).

The landmark CSVs hold each image's landmarks (the face's, rescaled to ``size``), so face-region analyses see
the same crops as the models. ``cue_maps.npz`` holds, for the test images, maps that know where the cues are and
nothing else (:func:`cue_map`): ``eye cue``, ``mouth cue`` and ``both cues``, which the study reads as given
sources of maps (an image set's ``maps``): the measurement's own known answers, whatever an attribution method
does. Nothing random is left: the same arguments write the same files.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image

from lrpjax import analysis
from lrpjax.io import imagefiles

COLOURS = {"green": (0, 255, 0), "magenta": (255, 0, 255)}
DESIGNS = ("independent", "either", "agreeing")
CUES = {"eye": "left_eye", "mouth": "mouth"}
SPLITS = (("train", 0.7), ("validation", 0.1), ("test", 0.2))
PLACEMENTS = ("eye", "mouth", "both")


def split_faces(face_ids: Sequence[str], seed: int) -> dict[str, list[str]]:
    """The faces of each split (people 0.7/0.1/0.2 of ``face_ids``, shuffled from ``seed``), each sorted."""
    order = [sorted(face_ids)[i] for i in np.random.default_rng(seed).permutation(len(face_ids))]
    out, start = {}, 0
    for k, (split, share) in enumerate(SPLITS):
        stop = len(order) if k == len(SPLITS) - 1 else start + round(share * len(order))
        out[split], start = sorted(order[start:stop]), stop
    return out


def cue_centres(points: np.ndarray, regions: Mapping[str, Sequence[int]], scale: float) -> dict[str, np.ndarray]:
    r"""Cue name -> ``(x, y)`` centre of its region's polygon (the mean of its distinct points) at the written size,
    pixel centres aligned: :math:`x' = (x + \tfrac12)\,s - \tfrac12`."""
    out = {}
    for cue, region in CUES.items():
        polygon = list(dict.fromkeys(regions[region]))
        out[cue] = (np.asarray(points, np.float64)[polygon].mean(axis=0) + 0.5) * scale - 0.5
    return out


def _square(centre: np.ndarray, side: int) -> tuple[slice, slice]:
    """The rows and columns of the ``side``-pixel square centred at ``(x, y)``."""
    left, top = (int(round(c - (side - 1) / 2)) for c in centre)
    return slice(max(top, 0), top + side), slice(max(left, 0), left + side)


def draw_mark(pixels: np.ndarray, centre: np.ndarray, side: int, colour: str) -> np.ndarray:
    """A copy of uint8 ``pixels`` ``[H, W, 3]``, a ``side``-pixel square of ``colour`` centred at ``(x, y)``."""
    out = pixels.copy()
    out[_square(centre, side)] = COLOURS[colour]
    return out


def cue_map(shape: tuple[int, int], centres: Sequence[np.ndarray], side: int) -> np.ndarray:
    """``[H, W]`` float32: 1 on the ``side``-pixel squares at ``centres`` (as :func:`draw_mark` draws them), 0
    elsewhere. Masking breaks ties in the random order's own sequence (the same seeded draw,
    :func:`lrpjax.analysis.masking.masking_ranks`), so this map's order is the random baseline's with the cues'
    patches moved to the front: its margin over random order is what masking those patches first changes, image by
    image (a paired comparison, without the spread of a second random order)."""
    out = np.zeros(shape, np.float32)
    for centre in centres:
        out[_square(centre, side)] = 1
    return out


CUE_MAPS = {"eye cue": ("eye",), "mouth cue": ("mouth",), "both cues": ("eye", "mouth")}
"""The given maps of :func:`cue_map` in ``cue_maps.npz``: name -> the cues it marks."""


def _labels(design: str, rng: np.random.Generator) -> dict[str, str]:
    """One image's drawn colours (and placement) under ``design``."""
    names = sorted(COLOURS)
    if design == "independent":
        return {"eye": names[rng.integers(2)], "mouth": names[rng.integers(2)]}
    mark = names[rng.integers(2)]
    return {"mark": mark, "placement": PLACEMENTS[rng.integers(3)] if design == "either" else "both"}


def _marks(design: str, labels: Mapping[str, str]) -> dict[str, str]:
    """Cue -> colour drawn there."""
    if design == "independent":
        return {cue: labels[cue] for cue in CUES}
    return {cue: labels["mark"] for cue in CUES if labels["placement"] in (cue, "both")}


def build_design(design: str, out_dir: str, faces: Mapping[str, np.ndarray], landmarks: Mapping[str, np.ndarray],
                 regions: Mapping[str, Sequence[int]], splits: Mapping[str, Sequence[str]], *,
                 copies: Mapping[str, int], size: int, mark: float, seed: int) -> None:
    """Write one design's folder (see the module docstring); ``faces``: face id -> uint8 ``[256, 256, 3]``."""
    if design not in DESIGNS:
        raise ValueError(f"design={design!r} is unknown; choose one of {DESIGNS}")
    rng = np.random.default_rng([seed, DESIGNS.index(design)])
    side = max(1, int(round(mark * size)))
    label_rows, landmark_rows, cue_ids, cue_maps = [], [], [], {name: [] for name in CUE_MAPS}
    for split, chosen in splits.items():
        if not copies.get(split):
            continue
        os.makedirs(os.path.join(out_dir, split), exist_ok=True)
        for face in chosen:
            source = faces[face]
            scale = size / source.shape[0]
            small = np.asarray(Image.fromarray(source).resize((size, size), Image.Resampling.BILINEAR))
            centres = cue_centres(landmarks[face], regions, scale)
            scaled = (landmarks[face] + 0.5) * scale - 0.5
            for copy in range(copies[split]):
                stem = f"{face}_{copy}"
                labels = _labels(design, rng)
                pixels = small
                for cue, colour in _marks(design, labels).items():
                    pixels = draw_mark(pixels, centres[cue], side, colour)
                Image.fromarray(pixels).save(os.path.join(out_dir, split, f"{stem}.png"))
                label_rows.append({"face_id": stem, "source_face": face, "split": split, **labels})
                if split == "test":
                    cue_ids.append(stem)
                    for name, cues in CUE_MAPS.items():
                        cue_maps[name].append(cue_map((size, size), [centres[c] for c in cues], side))
                landmark_rows += [(stem, p, f"{x:.3f}", f"{y:.3f}") for p, (x, y) in enumerate(scaled)]
    with open(os.path.join(out_dir, "labels.csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, list(label_rows[0]))
        writer.writeheader()
        writer.writerows(label_rows)
    with open(os.path.join(out_dir, "landmarks.csv"), "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["face_id", "point", "x", "y"])
        writer.writerows(landmark_rows)
    if cue_ids:
        np.savez(os.path.join(out_dir, "cue_maps.npz"), ids=np.array(cue_ids),
                 **{name: np.stack(maps) for name, maps in cue_maps.items()})


def build_planted(faces: str, out_dir: str, *, copies: Mapping[str, Mapping[str, int]], size: int = 128,
                  mark: float = 0.07, seed: int = 0, limit: int | None = None) -> dict[str, str]:
    """Write the planted data sets under ``out_dir`` unless written already with the same settings.

    Args:
      faces: the face sets' folder (``../shared/data/faces``): ``london/neutral``, ``london/landmarks.csv`` and
        ``regions.json`` are read.
      copies: design -> split -> images per face (a design or split left out is not written).
      size: side of the written images; mark: side of a mark as a fraction of ``size``.
      limit: use only the first ``limit`` faces (sorted ids; for tests).

    Returns:
      design -> its folder.
    """
    settings = {"copies": {d: dict(c) for d, c in copies.items()}, "size": size, "mark": mark, "seed": seed,
                "limit": limit, "code": hashlib.sha256(open(__file__, "rb").read()).hexdigest()[:16]}
    stamp = os.path.join(out_dir, "settings.json")
    folders = {design: os.path.join(out_dir, design) for design in copies}
    if os.path.isfile(stamp):
        with open(stamp) as handle:
            if json.load(handle) == settings:
                return folders
    london = os.path.join(faces, "london")
    landmarks = analysis.load_landmarks(os.path.join(london, "landmarks.csv"))
    regions = analysis.load_regions(os.path.join(faces, "regions.json"))
    ids = sorted(landmarks)[:limit]
    pixels = {}
    for face in ids:
        pixels[face] = imagefiles.load_image(os.path.join(london, "neutral", f"{face}.jpg"))
    splits = split_faces(ids, seed)
    for design, per_split in copies.items():
        build_design(design, folders[design], pixels, landmarks, regions, splits, copies=per_split, size=size,
                     mark=mark, seed=seed)
    with open(stamp, "w") as handle:
        json.dump(settings, handle, indent=1)
    return folders


def folder_configs(out_dir: str) -> dict[str, dict[str, Any]]:
    """The grid's data sets over the planted folders: name -> :class:`lrpjax.data.FaceFolderConfig` fields
    (``planted_eye`` and ``planted_mouth`` label the ``independent`` images by one cue each, ``planted_either``
    the ``either`` images); every split is its folder (``split_by="condition"``)."""
    splits = tuple((s, s) for s, _ in SPLITS)
    common = {"layout": "flat", "conditions": tuple(s for s, _ in SPLITS), "labels_csv": "labels.csv",
              "split_by": "condition", "condition_splits": splits}
    return {"planted_eye": {**common, "root": os.path.join(out_dir, "independent"), "label": "eye"},
            "planted_mouth": {**common, "root": os.path.join(out_dir, "independent"), "label": "mouth"},
            "planted_either": {**common, "root": os.path.join(out_dir, "either"), "label": "mark"}}
