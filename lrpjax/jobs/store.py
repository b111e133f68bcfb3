"""The HDF5 relevance store of ``lrpjax explain``: create, check, write, resume, and merge process parts.

The layout is documented in :mod:`lrpjax.jobs.explain`. Every dataset's space is allocated when the store is created,
so later writes never change the file's metadata; a chunk's rows are written, flushed and fsynced, and only
then marked done.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import json
import os
import re
import time
from collections.abc import Sequence
from typing import Any

import h5py
import jax
import numpy as np

_RESUME_KEYS = ("format", "checkpoint_sha256", "composites", "dtype", "keep_channels", "target", "chunk_size",
                "num_images", "ids_sha256", "labels_sha256", "image_shape", "num_classes", "process_index",
                "process_count")


ERROR_BYTES = 240


FORMAT = "lrpjax-relevance-1"


STORE_FILE = "relevance.h5"


def chunk_rows(chunk: int, chunk_size: int, num_images: int) -> range:
    """Global rows of chunk ``chunk``."""
    return range(chunk * chunk_size, min((chunk + 1) * chunk_size, num_images))


def part_suffix(process_index: int, process_count: int) -> str:
    """``""`` for a single process, else ``".part<k>-of-<n>"`` (file names of a process's outputs)."""
    return "" if process_count == 1 else f".part{process_index}-of-{process_count}"


def fingerprint(variables: Any) -> str:
    """SHA-256 of a variables tree (paths, dtypes, shapes and bytes): identifies the weights explained."""
    digest = hashlib.sha256()
    for path, leaf in sorted(jax.tree_util.tree_flatten_with_path(variables)[0], key=lambda p: str(p[0])):
        array = np.ascontiguousarray(np.asarray(leaf))
        digest.update(f"{jax.tree_util.keystr(path)}:{array.dtype}:{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def digest(values: Sequence[Any]) -> str:
    return hashlib.sha256("\n".join(map(str, values)).encode()).hexdigest()


def _early(dtype_shape_chunks: dict[str, Any]) -> dict[str, Any]:
    """Dataset options that allocate every byte at creation: later writes touch raw data, never metadata."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
    return {**dtype_shape_chunks, "dcpl": dcpl}


def _create_store(path: str, spec: dict[str, Any], ids: Sequence[str], labels: np.ndarray,
                  chunk_ids: Sequence[int]) -> None:
    """Write an empty store (all space allocated) beside ``path`` and rename it into place."""
    n, (height, width, channels) = len(ids), spec["image_shape"]
    shape = (height, width, channels) if spec["keep_channels"] else (height, width)
    tmp = f"{path}.tmp"
    with h5py.File(tmp, "w") as store:
        store.attrs.update(spec)
        group = store.create_group("relevance")
        for name in spec["composites"]:
            group.create_dataset(name, **_early({"shape": (n, *shape), "dtype": spec["dtype"],
                                                 "chunks": (1, *shape)}))
        store.create_dataset("logits", **_early({"shape": (n, spec["num_classes"]), "dtype": np.float32}))
        for name, dtype in (("predictions", np.int64), ("targets", np.int64), ("valid", bool),
                            ("errors", h5py.string_dtype("utf-8", ERROR_BYTES))):
            store.create_dataset(name, **_early({"shape": (n,), "dtype": dtype}))
        store.create_dataset("ids", data=np.array(ids, dtype=object), dtype=h5py.string_dtype())
        store.create_dataset("labels", data=np.asarray(labels, np.int64))
        store.create_dataset("chunk_ids", data=np.asarray(chunk_ids, np.int64))
        store.create_dataset("done", data=np.zeros(len(chunk_ids), bool))
    os.replace(tmp, path)


def attribute(value: Any) -> Any:
    """An HDF5 attribute as plain Python (arrays -> lists, numpy scalars -> Python, bytes -> str)."""
    if isinstance(value, np.ndarray):
        return [attribute(v) for v in value.tolist()]
    if isinstance(value, bytes):
        return value.decode()
    return value.item() if isinstance(value, np.generic) else value


def open_store(path: str, spec: dict[str, Any], ids: Sequence[str], labels: np.ndarray,
               chunk_ids: Sequence[int]) -> h5py.File:
    """Open the store at ``path`` for writing: created when absent, else checked to belong to this run.

    Raises:
      ValueError: the file is not a readable store, or was written with other settings, ids or weights
        (the message names the file and every difference).
    """
    if not os.path.exists(path):
        _create_store(path, spec, ids, labels, chunk_ids)
    try:
        store = h5py.File(path, "r+")
    except OSError as error:
        raise ValueError(f"cannot open the store {path!r} to resume it: {error}") from error
    try:
        check_store(store, path, spec, ids)
    except BaseException:
        store.close()
        raise
    return store


def check_store(store: h5py.File, path: str, spec: dict[str, Any], ids: Sequence[str]) -> None:
    """Raise ``ValueError`` naming ``path`` and each difference unless ``store`` was made by this run."""
    digests = {"checkpoint_sha256": "the checkpoint's weights differ", "ids_sha256": "the image ids differ",
               "labels_sha256": "the labels differ"}
    differences = [digests.get(key) or f"{key} is {attribute(store.attrs.get(key))!r} there but {spec[key]!r} now"
                   for key in _RESUME_KEYS if attribute(store.attrs.get(key)) != spec[key]]
    if not differences and ("ids" not in store or list(store["ids"].asstr()[:]) != list(ids)):
        differences.append("the image ids in the file differ")
    if differences:
        raise ValueError(f"the store {path!r} belongs to another run and cannot be resumed: "
                         + "; ".join(differences) + ". Choose another --out or delete the file.")


def durable(store: h5py.File) -> None:
    """Flush HDF5's buffers to the file and the file to disk."""
    store.flush()
    os.fsync(store.id.get_vfd_handle())


def _truncate(text: str) -> bytes:
    return text.encode()[:ERROR_BYTES].decode("utf-8", "ignore").encode()


def write_rows(store: h5py.File, start: int, relevance: Sequence[np.ndarray], logits: np.ndarray,
               targets: np.ndarray, errors: Sequence[str]) -> None:
    """Write results for rows ``start ... start + len(errors)``; rows with an error get NaN and -1."""
    rows, ok = slice(start, start + len(errors)), np.array([not e for e in errors])
    for name, values in zip(attribute(store.attrs["composites"]), relevance):
        values = np.asarray(values).astype(store["relevance"][name].dtype)
        values[~ok] = np.nan
        store["relevance"][name][rows] = values
    logits = np.asarray(logits, np.float32).copy()
    predictions = np.where(ok, logits.argmax(-1), -1)
    logits[~ok] = np.nan
    store["logits"][rows] = logits
    store["predictions"][rows] = predictions
    store["targets"][rows] = np.where(ok, targets, -1)
    store["valid"][rows] = ok
    store["errors"][rows] = np.array([_truncate(e) for e in errors], dtype=store["errors"].dtype)


def write_skipped_csv(store: h5py.File, path: str, unlisted: Sequence[tuple[str, str]] = ()) -> list[dict[str, str]]:
    """``path,reason`` of every image the store marks unreadable, then of the files ``unlisted`` (left out of
    the store, e.g. a name that is not UTF-8); returns the rows."""
    invalid = np.flatnonzero(~store["valid"][:] & done_rows(store))
    root, ids, errors = attribute(store.attrs["images_dir"]), store["ids"].asstr(), store["errors"]
    rows = [{"path": os.path.join(root, *ids[i].split("/")), "reason": errors[i].decode()} for i in invalid]
    rows += [{"path": file, "reason": reason} for file, reason in unlisted]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "reason"])
        writer.writeheader()
        writer.writerows(rows)
    return rows


def done_rows(store: h5py.File) -> np.ndarray:
    """Per row of the file, whether its chunk is done."""
    chunk_size, done = int(store.attrs["chunk_size"]), store["done"][:]
    return np.repeat(done, chunk_size)[: len(store["ids"])]


def part_paths(out_dir: str) -> list[str]:
    """The part files of a multi-process run in ``out_dir``, by process index."""
    found = glob.glob(os.path.join(glob.escape(out_dir), "relevance.part*-of-*.h5"))
    return sorted(found, key=lambda p: int(re.search(r"part(\d+)-of", p).group(1)))


def wait_for_parts(out_dir: str, process_count: int, *, timeout: float = 600.0, poll: float = 1.0) -> bool:
    """Wait until every process's part summary (written once its part is complete) exists; False on timeout."""
    deadline = time.monotonic() + timeout
    wanted = [os.path.join(out_dir, f"summary{part_suffix(k, process_count)}.json") for k in range(process_count)]
    while not all(os.path.exists(p) for p in wanted):
        if time.monotonic() > deadline:
            return False
        time.sleep(poll)
    return True


def merge_parts(out_dir: str) -> str:
    """Join the complete part files in ``out_dir`` into ``relevance.h5`` (equal to a single-process run's).

    Also writes ``skipped.csv`` and ``summary.json`` (with the parts' summaries). Returns the store's path.

    Raises:
      ValueError: no parts, a missing or incomplete part, parts of different runs, or a ``relevance.h5`` of
        another run in ``out_dir`` (named in the message).
    """
    paths = part_paths(out_dir)
    if not paths:
        raise ValueError(f"no relevance.part<k>-of-<n>.h5 files in {out_dir!r}")
    count = int(re.search(r"-of-(\d+)\.h5$", paths[0]).group(1))
    expected = [os.path.join(out_dir, f"relevance{part_suffix(k, count)}.h5") for k in range(count)]
    if paths != expected:
        raise ValueError(f"{out_dir!r} must hold exactly the parts {[os.path.basename(p) for p in expected]}, "
                         f"found {[os.path.basename(p) for p in paths]}")
    target, parts = os.path.join(out_dir, STORE_FILE), [h5py.File(p, "r") for p in paths]
    try:
        spec = _merged_spec(parts, paths)
        ids, labels = _gather_rows(parts, spec)
        if os.path.exists(target):  # replace only an earlier merge of the same run
            with h5py.File(target, "r") as old:
                check_store(old, target, spec, ids)
        tmp = f"{target}.merging"
        _create_store(tmp, spec, ids, labels, range(-(-spec["num_images"] // spec["chunk_size"])))
        with h5py.File(tmp, "r+") as merged:
            _copy_parts(parts, merged, spec)
            merged["done"][:] = True
            skipped = write_skipped_csv(merged, os.path.join(out_dir, "skipped.csv"))
            explained = int(merged["valid"][:].sum())
            durable(merged)
        os.replace(tmp, target)
    finally:
        for part in parts:
            part.close()
    summaries = [os.path.join(out_dir, f"summary{part_suffix(k, count)}.json") for k in range(count)]
    summary = {"store": target, "images": spec["num_images"], "explained": explained, "skipped": len(skipped),
               "skipped_files": skipped, "parts": [json.load(open(p)) for p in summaries if os.path.exists(p)]}
    with open(os.path.join(out_dir, "summary.json"), "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=2)
    return target


def _merged_spec(parts: Sequence[h5py.File], paths: Sequence[str]) -> dict[str, Any]:
    """The single-process spec of complete, matching parts."""
    specs = [{key: attribute(value) for key, value in part.attrs.items()} for part in parts]
    for path, part, spec in zip(paths, parts, specs):
        if not part["done"][:].all():
            raise ValueError(f"part {path!r} is incomplete ({int((~part['done'][:]).sum())} chunks to do)")
        mismatch = [k for k in _RESUME_KEYS if k != "process_index" and spec.get(k) != specs[0].get(k)]
        if mismatch:
            raise ValueError(f"part {path!r} differs from {paths[0]!r} in {mismatch}")
    return {**specs[0], "process_index": 0, "process_count": 1}


def _gather_rows(parts: Sequence[h5py.File], spec: dict[str, Any]) -> tuple[list[str], np.ndarray]:
    n, size = spec["num_images"], spec["chunk_size"]
    ids, labels = [""] * n, np.full(n, -1, np.int64)
    for part in parts:
        part_ids, part_labels = part["ids"].asstr()[:], part["labels"][:]
        for j, chunk in enumerate(part["chunk_ids"][:]):
            rows = chunk_rows(int(chunk), size, n)
            ids[rows.start:rows.stop] = part_ids[j * size:j * size + len(rows)]
            labels[rows.start:rows.stop] = part_labels[j * size:j * size + len(rows)]
    if digest(ids) != spec["ids_sha256"]:
        raise ValueError("the parts do not cover every image id exactly once")
    return ids, labels


def _copy_parts(parts: Sequence[h5py.File], merged: h5py.File, spec: dict[str, Any]) -> None:
    n, size = spec["num_images"], spec["chunk_size"]
    names = [f"relevance/{c}" for c in spec["composites"]] + ["logits", "predictions", "targets", "valid", "errors"]
    for part in parts:
        for j, chunk in enumerate(part["chunk_ids"][:]):
            rows = chunk_rows(int(chunk), size, n)
            for name in names:
                merged[name][rows.start:rows.stop] = part[name][j * size:j * size + len(rows)]
