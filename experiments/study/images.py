"""The study's image sets: the same pixels for every model, with labels, ids and (optionally) face regions.

A set comes from named splits (``"splits": ["london_gender:test"]``, see :mod:`lrpjax.data.tasks`) or from a
folder of image files (``"folder": DIR``, ids = file stems; labels from ``labels_csv``'s column ``label`` keyed
by ``id_column``, as the human data's stimuli usually come). Options:

``condition``
    keep only files in that sub-folder (``"neutral"``: London's ``neutral/001.jpg``).
``limit``
    at most this many images, a random subset drawn from ``seed`` (kept in file order).
``landmarks``
    a landmark CSV (``face_id, point, x, y`` in the original image's pixels, see
    :func:`lrpjax.analysis.load_landmarks`): every image's face-region partition is computed with the same
    resize and crop as its pixels.
``maps``
    an ``.npz`` of maps given with the images (:func:`given_maps`): each becomes a source of maps that masks every
    model (the planted cues' maps, or maps computed elsewhere).

Each image is decoded, its shorter side resized to ``geometry["resize"]`` and a centred ``geometry["crop"]``
square cut (:func:`lrpjax.data.pipeline.crop_image`), kept as uint8; each model normalises it its own way.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from PIL import Image

from experiments.study.cache import load_arrays
from lrpjax import analysis, data
from lrpjax.data.pipeline import crop_image
from lrpjax.io import preprocess
from lrpjax.io.imagefiles import IMAGE_EXTENSIONS, decode_image, list_image_files


class ImageSet(NamedTuple):
    """Images shown to the models.

    Attributes:
      ids: ``[N]`` file names without extension (``neutral/001``).
      face_ids: ``[N]`` file stems (``001``): the keys of landmarks and human data.
      pixels: uint8 ``[N, crop, crop, 3]``.
      labels: ``[N]`` class indices into ``class_names`` (-1 where unknown).
      class_names: the labels' names.
      partitions: bool ``[N, regions, crop, crop]`` (:data:`lrpjax.analysis.SHARE_REGIONS`) or an empty array.
    """

    ids: np.ndarray
    face_ids: np.ndarray
    pixels: np.ndarray
    labels: np.ndarray
    class_names: np.ndarray
    partitions: np.ndarray

    def arrays(self) -> dict[str, np.ndarray]:
        """The fields as a dict of arrays (for :func:`experiments.study.cache.save_arrays`)."""
        return dict(self._asdict())

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> ImageSet:
        """The inverse of :meth:`arrays`."""
        return cls(**{field: arrays[field] for field in cls._fields})

    @property
    def has_regions(self) -> bool:
        """Whether face-region partitions were computed."""
        return self.partitions.size > 0


def read_split_examples(spec: Mapping[str, Any], paths: data.DataPaths) -> tuple[list[tuple[Any, int, str]], list]:
    """``(encoded image, label, file)`` of every example of the named splits, and their class names.

    Raises:
      ValueError: splits whose class names differ.
    """
    examples, class_names = [], None
    for name in spec["splits"]:
        split = data.open_named_split(name, paths)
        if class_names is not None and list(split.class_names) != class_names:
            raise ValueError(f"split {name!r} has classes {list(split.class_names)}, the others {class_names}")
        class_names = list(split.class_names)
        examples += split.read(range(len(split)))
    return examples, class_names or []


def read_folder_examples(spec: Mapping[str, Any]) -> tuple[list[tuple[Any, int, str]], list]:
    """``(file bytes, label, file)`` of every image under ``spec["folder"]``, labels from ``labels_csv`` (-1
    without one), and the class names (sorted label values).

    Raises:
      ValueError: no folder, no images, or an image without a row in the labels CSV.
    """
    folder = spec["folder"]
    if not os.path.isdir(folder):
        raise ValueError(f"image folder {folder!r} does not exist")
    files = list_image_files(folder).ids
    if not files:
        raise ValueError(f"image folder {folder!r} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    values: dict[str, str] = {}
    if spec.get("labels_csv"):
        with open(spec["labels_csv"], newline="") as handle:
            values = {row[spec.get("id_column", "face_id")]: row[spec["label"]] for row in csv.DictReader(handle)}
        missing = [f for f in files if _stem(f) not in values]
        if missing:
            raise ValueError(f"{spec['labels_csv']}: no label for image(s) {missing[:5]}")
    class_names = sorted(set(values.values()))
    examples = []
    for file in files:
        with open(os.path.join(folder, file), "rb") as handle:
            label = class_names.index(values[_stem(file)]) if values else -1
            examples.append((handle.read(), label, file))
    return examples, class_names


def _stem(file: str) -> str:
    return os.path.splitext(os.path.basename(file))[0]


def choose(examples: Sequence[tuple[Any, int, str]], *, condition: str | None, limit: int | None, seed: int
           ) -> list[tuple[Any, int, str]]:
    """The examples in sub-folder ``condition`` (all if None), at most ``limit`` of them drawn from ``seed``."""
    kept = [e for e in examples if condition is None or e[2].replace("\\", "/").split("/")[0] == condition]
    if not kept:
        raise ValueError(f"no image in condition {condition!r} (files look like {examples[0][2]!r})")
    if limit is not None and len(kept) > limit:
        chosen = np.sort(np.random.default_rng(seed).choice(len(kept), size=limit, replace=False))
        kept = [kept[i] for i in chosen]
    return kept


def region_partition(points: np.ndarray, regions: Mapping[str, Sequence[int]], *, source_shape: tuple[int, int],
                     geometry: Mapping[str, int]) -> np.ndarray:
    """``[R, crop, crop]`` share partition of one face whose landmarks are in the original image's pixels: the
    polygons are drawn at the resized size and cut like the pixels (centred crop).

    Raises:
      ValueError: a non-square original image (the region code rescales both axes alike).
    """
    height, width = source_shape
    if height != width:
        raise ValueError(f"landmarks need square images (the face sets' 256x256 crops), got {height}x{width}")
    side, crop = geometry["resize"] or height, geometry["crop"] or geometry["resize"] or height
    masks = analysis.region_masks(points, regions, size=side, source_size=height)
    top = round((side - crop) / 2.0)
    return analysis.share_partition({name: m[top:top + crop, top:top + crop] for name, m in masks.items()})


def build_image_set(spec: Mapping[str, Any], *, geometry: Mapping[str, int], paths: data.DataPaths,
                    regions_json: str | None, seed: int) -> ImageSet:
    """Read, choose, decode, resize and crop the images of one set (see the module docstring)."""
    examples, class_names = read_split_examples(spec, paths) if "splits" in spec else read_folder_examples(spec)
    examples = choose(examples, condition=spec.get("condition"), limit=spec.get("limit"), seed=seed)
    crop_spec = {"resize": geometry["resize"], "crop": geometry["crop"]}
    pixels = np.stack([crop_image(encoded, crop_spec) for encoded, _, _ in examples])
    ids = np.array([os.path.splitext(f.replace("\\", "/"))[0] for _, _, f in examples])
    face_ids = np.array([_stem(f) for _, _, f in examples])
    partitions = np.zeros((0,), bool)
    if spec.get("landmarks"):
        if regions_json is None:
            raise ValueError("an image set with landmarks needs regions.regions_json in the config")
        regions = analysis.load_regions(regions_json)
        points = _points_of(regions_json)
        landmarks = analysis.load_landmarks(spec["landmarks"], points=points)
        missing = [f for f in face_ids if f not in landmarks]
        if missing:
            raise ValueError(f"{spec['landmarks']}: no landmarks for face(s) {missing[:5]}")
        partitions = np.stack([region_partition(landmarks[face], regions, geometry=geometry,
                                                source_shape=decode_image(encoded).shape[:2])
                               for face, (encoded, _, _) in zip(face_ids, examples)])
    return ImageSet(ids, face_ids, pixels, np.array([label for _, label, _ in examples], np.int64),
                    np.array(class_names, dtype=str), partitions)


def _points_of(regions_json: str) -> int:
    with open(regions_json) as handle:
        return int(json.load(handle).get("points", 189))


def _resample_map(heat: np.ndarray, geometry: Mapping[str, int]) -> np.ndarray:
    """A map in an original image's pixels, resized and cropped as :func:`build_image_set` does the pixels (the
    area average, so that a map's ranking of regions survives)."""
    size = heat.shape if geometry["resize"] is None else preprocess.resized_size(*heat.shape, geometry["resize"])
    if size != heat.shape:
        pil = Image.fromarray(np.asarray(heat, np.float32), mode="F")
        heat = np.asarray(pil.resize(size[::-1], Image.Resampling.BOX), np.float64)
    top, left = preprocess.center_offsets(*heat.shape, geometry["crop"])
    return heat[top:top + geometry["crop"], left:left + geometry["crop"]]


def given_maps(path: str, images: ImageSet, geometry: Mapping[str, int]) -> dict[str, np.ndarray]:
    """The maps of an image set's ``maps`` file: an ``.npz`` with ``ids`` (file stems, as ``images.face_ids``) and
    named ``[M, H, W]`` arrays in the original images' pixels, one row per id; name -> ``[N, crop, crop]`` float64
    in the image set's order, resized and cropped as its pixels (``geometry``).

    Raises:
      ValueError: an unreadable file, no ``ids`` or no map, an image without a row, or a map that is not
        ``[M, H, W]`` with at least the crop's side after resizing.
    """
    try:
        arrays = load_arrays(path)
    except (OSError, ValueError) as error:
        raise ValueError(f"maps file {path!r} cannot be read: {error}") from None
    ids = arrays.pop("ids", None)
    if ids is None or not arrays:
        raise ValueError(f"maps file {path!r} needs 'ids' and at least one map; it has {sorted(arrays)}")
    row = {str(i): k for k, i in enumerate(ids)}
    missing = [str(f) for f in images.face_ids if str(f) not in row]
    if missing:
        raise ValueError(f"maps file {path!r} has no row for {len(missing)} of the {len(images.face_ids)} images, "
                         f"e.g. {missing[:3]}")
    order = np.array([row[str(f)] for f in images.face_ids], dtype=int)
    out = {}
    for name, maps in arrays.items():
        if maps.ndim != 3 or maps.shape[0] != len(ids):
            raise ValueError(f"maps file {path!r}: map {name!r} has shape {maps.shape}; want [{len(ids)}, H, W] "
                             "(one row per id)")
        resized = [_resample_map(m, geometry) for m in maps[order]]
        if resized and resized[0].shape != images.pixels.shape[1:3]:
            raise ValueError(f"maps file {path!r}: map {name!r} is {maps.shape[1]}x{maps.shape[2]}, smaller than "
                             f"the crop {geometry['crop']} after resizing")
        out[name] = np.stack(resized) if resized else np.zeros((0, *images.pixels.shape[1:3]))
    return out
