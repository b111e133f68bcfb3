"""Splits ready for the input pipeline: built face folders (and any array_record TFDS data set), in-memory arrays.

A :class:`Split` is random access to records (``len`` and ``__getitems__``, as ``tfds.data_source`` gives),
which of them to use, how to label a record and the class names. Images stay encoded on disk until the
pipeline reads a batch, so a split of VGGFace2's 3.3 million images costs a few MB of memory.

Everything here runs without TensorFlow: data sets are written and read as array_record
(``tfds.data_source``); TFDS decodes nothing (``SkipDecoding``), the pipeline decodes with PIL.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import tarfile
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from lrpjax.data.folders import FaceFolder, FaceFolderConfig, source_listing


def _label_field(record: Mapping[str, Any]) -> int:
    return int(record["label"])


@dataclasses.dataclass(frozen=True)
class Split:
    """Records of one split, the subset used (``indices``, all when ``None``), a labelling and class names."""

    name: str
    records: Any
    class_names: tuple[str, ...]
    indices: np.ndarray | None = None
    label_of: Callable[[Mapping[str, Any]], int] = _label_field
    image_key: str = "image"

    def __len__(self) -> int:
        return len(self.records) if self.indices is None else len(self.indices)

    def read(self, positions: Sequence[int]) -> list[tuple[Any, int, str]]:
        """``(encoded image or array, label, file name)`` of the examples at ``positions`` (0..len-1)."""
        keys = [int(p) for p in positions] if self.indices is None else [int(self.indices[p]) for p in positions]
        records = self.records.__getitems__(keys) if keys else []
        return [(record[self.image_key], self.label_of(record), _file_name(record, self.name, key))
                for record, key in zip(records, keys)]

    def labels(self) -> np.ndarray:
        """Every label of the split, read record by record (for small splits and tests)."""
        return np.asarray([label for _, label, _ in self.read(range(len(self)))], np.int64)


def _file_name(record: Mapping[str, Any], split_name: str, key: int) -> str:
    name = record.get("file")
    if name is None:
        return f"{split_name}[{key}]"
    return name.decode() if isinstance(name, bytes) else str(name)


class ArrayRecords:
    """In-memory records ``{"image": uint8 [H, W, 3] or [H, W], "label": int, "file": str}`` with random access."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, files: Sequence[str] | None = None):
        if len(images) != len(labels):
            raise ValueError(f"images ({len(images)}) and labels ({len(labels)}) differ in length")
        self.images, self.labels = images, np.asarray(labels)
        self.files = list(files) if files is not None else [f"#{i}" for i in range(len(images))]

    def __len__(self) -> int:
        return len(self.images)

    def __getitems__(self, keys: Sequence[int]) -> list[dict[str, Any]]:
        return [{"image": self.images[k], "label": self.labels[k], "file": self.files[k]} for k in keys]


def array_split(name: str, images: np.ndarray, labels: np.ndarray, class_names: Sequence[str],
                files: Sequence[str] | None = None) -> Split:
    """A :class:`Split` over in-memory uint8 images (``[N, H, W, 3]`` or grayscale ``[N, H, W]``)."""
    return Split(name, ArrayRecords(images, labels, files), tuple(class_names))


def folder_directory(data_dir: str | os.PathLike[str], name: str) -> str:
    """Where :func:`prepare_folder` writes the data set ``name``."""
    return os.path.join(os.fspath(data_dir), FaceFolder.name, name, str(FaceFolder.VERSION))


def prepare_folder(config: FaceFolderConfig, data_dir: str | os.PathLike[str]) -> str:
    """Build the face folder data set ``config`` under ``data_dir`` unless built already; return its directory.

    Raises ``ValueError`` if a data set of that name was built with other settings (see
    :meth:`FaceFolderConfig.settings`) or from a folder whose listing has changed since (files added, removed or
    resized, another labels CSV: :func:`lrpjax.data.folders.source_listing`), or naming a bad field of ``config``.
    """
    directory = folder_directory(data_dir, config.name)
    if os.path.isfile(os.path.join(directory, "dataset_info.json")):
        metadata = read_metadata(directory)
        built = metadata.get("settings")
        if built != config.settings():
            raise ValueError(f"data set {directory!r} was built with other settings "
                             f"({settings_difference(built, config.settings())}); "
                             "give the config another name or delete the folder")
        check_listing(config, directory, metadata.get("source"))
        return directory
    builder = FaceFolder(data_dir=os.fspath(data_dir), config=config, file_format="array_record")
    builder.download_and_prepare()
    return directory


def settings_difference(built: Mapping[str, Any] | None, wanted: Mapping[str, Any]) -> str:
    """The keys on which two settings differ, as ``key: built -> wanted`` (``missing`` for an absent key)."""
    built = built or {}
    keys = [key for key in {**built, **wanted} if built.get(key, KeyError) != wanted.get(key, KeyError)]
    return "; ".join(f"{key}: {built.get(key, 'missing')!r} -> {wanted.get(key, 'missing')!r}" for key in keys)


def check_listing(config: FaceFolderConfig, directory: str, built: Mapping[str, Any] | None) -> None:
    """``ValueError`` if ``config.root`` no longer lists as it did when ``directory`` was built (data sets built
    before listings were recorded are not checked)."""
    if built is None:
        return
    labels = config.labels_path()
    now = _listing_once(os.path.abspath(config.root), config.layout, tuple(config.conditions),
                        tuple(config.extensions), labels and os.path.abspath(labels), _folder_stamp(config))
    if now != built:
        changed = [f"{key} {built.get(key)} then, {now[key]} now" for key in now if built.get(key) != now[key]]
        raise ValueError(f"the folder {config.root!r} changed since {directory!r} was built from it ("
                         f"{'; '.join(changed)}); delete {directory!r} to rebuild it, or restore the folder")


def _folder_stamp(config: FaceFolderConfig) -> tuple[tuple[str, int], ...]:
    """The modification times of the root, its sub-folders and the labels CSV: a file added or removed changes
    one (a stat per folder, not per file)."""
    entries = [(entry.name, entry.stat().st_mtime_ns) for entry in os.scandir(config.root) if entry.is_dir()]
    labels = config.labels_path()
    stamp = [("", os.stat(config.root).st_mtime_ns), *sorted(entries)]
    return tuple(stamp + ([("labels", os.stat(labels).st_mtime_ns)] if labels and os.path.isfile(labels) else []))


@functools.lru_cache(maxsize=64)
def _listing_once(root: str, layout: str, conditions: tuple[str, ...], extensions: tuple[str, ...],
                  labels_csv: str | None, stamp: tuple) -> dict[str, Any]:
    """:func:`source_listing` once per process, folder and ``stamp`` (:func:`_folder_stamp`): a grid opens
    VGGFace2's splits (3.3 million files) dozens of times."""
    del stamp  # part of the cache key only
    config = FaceFolderConfig(name="listing", root=root, layout=layout, conditions=conditions,
                              extensions=extensions, labels_csv=labels_csv, label="identity" if labels_csv is None
                              else "listing")
    return source_listing(config)


def read_metadata(directory: str) -> dict[str, Any]:
    """A built data set's ``metadata.json`` (``{}`` if it has none)."""
    path = os.path.join(directory, "metadata.json")
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def open_split(directory: str, split: str) -> Split:
    """The split ``split`` of the array_record data set in ``directory`` (built by TFDS), images undecoded."""
    if not os.path.isfile(os.path.join(directory, "dataset_info.json")):
        raise ValueError(f"{directory!r} is not a built TFDS data set (no dataset_info.json)")
    builder = tfds.builder_from_directory(directory)
    available = sorted(builder.info.splits)
    if split not in available:
        raise ValueError(f"split={split!r} is not in {directory!r}; it has {available}")
    require_array_record(builder, directory)
    source = builder.as_data_source(split=split, decoders={"image": tfds.decode.SkipDecoding()})
    name = builder.builder_config.name if builder.builder_config else builder.name
    return Split(f"{name}:{split}", source, tuple(builder.info.features["label"].names))


def require_array_record(builder: Any, directory: str) -> None:
    file_format = str(getattr(builder.info.file_format, "value", builder.info.file_format))
    if "array_record" not in file_format:
        raise ValueError(
            f"{directory!r} is stored as {file_format}, which only TensorFlow reads; convert it once with "
            f"`CUDA_VISIBLE_DEVICES= tfds convert_format --dataset_version_dir {directory} "
            "--out_file_format array_record` (needs `pip install tensorflow-cpu`)")


def extract_lfw(manual_dir: str | os.PathLike[str], data_dir: str | os.PathLike[str]) -> str:
    """The folder of LFW's people: ``manual_dir/lfw`` if extracted there, else ``lfw.tgz`` (TFDS's and
    scikit-learn's download) extracted once into ``data_dir/lfw_extracted``. ``ValueError`` if neither."""
    extracted = os.path.join(os.fspath(manual_dir), "lfw")
    if os.path.isdir(extracted):
        return extracted
    archive = os.path.join(os.fspath(manual_dir), "lfw.tgz")
    target = os.path.join(os.fspath(data_dir), "lfw_extracted")
    if not os.path.isdir(os.path.join(target, "lfw")):
        if not os.path.isfile(archive):
            raise ValueError(f"manual_dir={os.fspath(manual_dir)!r} holds neither lfw/ nor lfw.tgz")
        with tarfile.open(archive) as handle:
            handle.extractall(target, filter="data")
    return os.path.join(target, "lfw")
