"""Relevance for a whole folder of images into one resumable HDF5 store, on every local device.

    lrpjax explain CHECKPOINT --images DIR --out OUT --composite epsilon epsilon_gamma_box --png --gallery

Images (found recursively, ids are their relative paths, sorted) are read and preprocessed in a thread pool
(one thread per core by default) that keeps a bounded number of batches ready while the devices compute; each
batch is sharded over a 1-D mesh of ``jax.local_devices()`` along its batch axis (padded to a multiple of the
device count; the padding is dropped). One batch stays in flight: the next is on the devices while the host
writes the last. Several composites share one forward pass. Work is done in fixed chunks of ids: a chunk's
rows are written and flushed, and only then marked done, so a run killed at any moment continues where it
stopped and ends with the same store as an uninterrupted run. Unreadable images are reported and kept as rows
with ``valid = False`` (NaN relevance), so the row layout never depends on what could be read.

Store ``OUT/relevance.h5`` (N images, K classes, H x W x C input; open it with h5py)::

    relevance/<composite>  [N, H, W] (channel sum) or [N, H, W, C] (keep_channels); float16 or float32;
                           chunked one image per chunk; NaN for skipped images
    logits        [N, K] float32   (NaN for skipped images)
    predictions   [N] int64        argmax of the logits (-1 for skipped images)
    targets       [N] int64        the class explained (-1 for skipped images)
    labels        [N] int64        from labels.csv or folder names (-1 when unknown)
    ids           [N] utf-8        image paths relative to the images folder
    valid         [N] bool         False where the image could not be read; ``errors`` says why
    errors        [N] utf-8 (fixed length, truncated)
    chunk_ids     [M] int64        the chunks of ids this file holds (all of them but in a part file)
    done          [M] bool         chunk written and flushed
    attrs: format, lrpjax_version, checkpoint, checkpoint_sha256, composites, dtype, keep_channels, target,
           chunk_size, num_images, ids_sha256, labels_sha256, image_shape, num_classes, class_names,
           label_names, preprocessing (JSON), images_dir, process_index, process_count

With several processes (``jax.distributed``) process ``k`` of ``n`` takes chunks ``i % n == k`` into
``relevance.part<k>-of-<n>.h5`` (its rows only); :func:`merge_parts` joins complete parts into a
``relevance.h5`` equal to a single-process run's.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TextIO

import h5py
import jax
import numpy as np

import lrpjax
from lrpjax.core import composites
from lrpjax.core.finite import nonfinite_rows
from lrpjax.io import checkpoints
from lrpjax.io.prefetch import prefetch as background
from lrpjax.io.preprocess import load_image, preprocess, validate_preprocessing
from lrpjax.jobs.imagelist import ImageList, list_images, parse_target
from lrpjax.jobs.pngs import write_missing_pngs, write_pngs
from lrpjax.jobs.progress import Progress
from lrpjax.jobs.sharded import Explainer, InFlight
from lrpjax.jobs.store import (
    FORMAT,
    STORE_FILE,
    attribute,
    chunk_rows,
    digest,
    done_rows,
    durable,
    fingerprint,
    open_store,
    part_suffix,
    write_rows,
    write_skipped_csv,
)
from lrpjax.jobs.workdir import check_writable, exclusive

__all__ = ["ImageList", "build_composites", "explain_dataset", "image_loader", "list_images", "own_chunks"]

OnBatchWritten = Callable[[int], None]
"""Called after each batch's rows are written and flushed, before its chunk is marked done, with the number of
chunks this run has marked done so far (tests use it to kill the process at an exact point)."""


def own_chunks(num_chunks: int, process_index: int, process_count: int) -> list[int]:
    """The chunks process ``process_index`` of ``process_count`` explains: ``i % process_count == process_index``.

    >>> own_chunks(5, 1, 2), part_suffix(1, 2), list(chunk_rows(2, 4, 11))
    ([1, 3], '.part1-of-2', [8, 9, 10])
    """
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index={process_index} must be in [0, process_count={process_count})")
    return list(range(process_index, num_chunks, process_count))


def build_composites(names: Sequence[str], metadata: dict[str, Any]) -> list[composites.Composite]:
    """Preset composites by name; zB composites get the bounds implied by the checkpoint's preprocessing."""
    return [composites.get(n, preprocessing=metadata) for n in names]


@dataclass(frozen=True)
class _Batch:
    chunk: int  # position of its chunk in the file
    start: int  # first row in the file
    paths: tuple[str, ...]
    last_of_chunk: bool


def image_loader(metadata: dict[str, Any], shape: tuple[int, ...]) -> Callable[[str], tuple[np.ndarray | None, str]]:
    """``path -> (preprocessed float32 image, "")`` or ``(None, reason)``; never raises for a bad image."""
    def load(path: str) -> tuple[np.ndarray | None, str]:
        try:
            image = np.asarray(preprocess(load_image(path), metadata)[0], np.float32)
        except Exception as error:  # any decoding or preprocessing failure skips this image, not the run
            return None, str(error) or type(error).__name__
        if image.shape != shape:
            return None, f"preprocessed to shape {image.shape}, expected {shape}"
        if nonfinite_rows(image[None]):
            return None, "NaN or infinite values after preprocessing"
        return image, ""
    return load


def _run_spec(checkpoint: str, variables: Any, metadata: dict[str, Any], images: ImageList, *,
              names: Sequence[str], dtype: str, keep_channels: bool, target: str, chunk_size: int,
              image_shape: tuple[int, int, int], process_index: int, process_count: int) -> dict[str, Any]:
    """The store's attributes; those in ``_RESUME_KEYS`` must match for a run to resume a store."""
    return {
        "format": FORMAT, "lrpjax_version": lrpjax.__version__, "checkpoint": os.path.abspath(checkpoint),
        "checkpoint_sha256": fingerprint(variables), "composites": list(names), "dtype": dtype,
        "keep_channels": bool(keep_channels), "target": str(target), "chunk_size": int(chunk_size),
        "num_images": len(images.ids), "ids_sha256": digest(images.ids), "labels_sha256": digest(images.labels),
        "image_shape": list(image_shape), "num_classes": int(metadata["num_classes"]),
        "class_names": list(metadata.get("class_names") or []), "label_names": list(images.label_names or []),
        "preprocessing": json.dumps(validate_preprocessing(metadata)), "images_dir": images.root,
        "process_index": int(process_index), "process_count": int(process_count),
    }


def _check_options(names: Sequence[str], dtype: str, batch_size: int, chunk_size: int) -> None:
    if not names or len(set(names)) != len(names):
        raise ValueError(f"composites={list(names)!r}: give one or more distinct composite names")
    if dtype not in ("float16", "float32"):
        raise ValueError(f"dtype={dtype!r}: choose 'float16' or 'float32'")
    if batch_size < 1 or chunk_size < 1:
        raise ValueError(f"batch_size={batch_size} and chunk_size={chunk_size} must be positive")


def _image_shape(metadata: dict[str, Any], checkpoint: str) -> tuple[int, int, int]:
    spec = metadata.get("preprocessing")
    if not spec or not spec.get("crop"):
        raise ValueError(f"checkpoint {checkpoint!r} has no preprocessing with a 'crop' size; "
                         "images of one size are needed to share a store")
    return spec["crop"], spec["crop"], 3


def explain_dataset(checkpoint: str, images_dir: str, out_dir: str, *, composite_names: Sequence[str] = (
        "epsilon_gamma_box",), target: str = "predicted", batch_size: int = 32, dtype: str = "float32",
        keep_channels: bool = False, png: bool = False, cmap: str = "coldnhot", labels_csv: str | None = None,
        labels_from_folders: bool = False, chunk_size: int = 256, workers: int | None = None, prefetch: int = 2,
        process_index: int | None = None, process_count: int | None = None, stream: TextIO | None = None,
        on_batch_written: OnBatchWritten | None = None) -> dict[str, Any]:
    """Explain every image under ``images_dir`` into ``out_dir/relevance.h5`` (see the module docstring).

    Resumes an existing store of the same run; process ``process_index`` of ``process_count`` (default:
    ``jax.process_index()`` / ``jax.process_count()``) takes chunks ``i % process_count == process_index``
    into its own part file. Writes ``skipped.csv`` and ``summary.json`` (with the part suffix for parts). With
    ``png``, heatmaps missing from an earlier run of the same store are written too. ``out_dir`` (and
    ``out_dir/png``) are checked writable before any work, and held with an exclusive lock for the run.

    Returns:
      The summary: images, explained, skipped (with reasons), seconds, images per second, devices, ...

    Raises:
      FileNotFoundError: a missing checkpoint, images folder or labels file.
      ValueError: bad options, no images, labels unknown for ``target='label'``, a store of another run, or an
        ``out_dir`` that cannot be written.
      lrpjax.jobs.workdir.WorkdirBusy: another run holds ``out_dir``.
    """
    stream = stream or sys.stderr
    _check_options(composite_names, dtype, batch_size, chunk_size)
    index = jax.process_index() if process_index is None else process_index
    count = jax.process_count() if process_count is None else process_count
    own_chunks(1, index, count)  # checks the pair before anything is written
    out_dir = check_writable(out_dir, what="--out", subfolders=("png",) if png else ())
    suffix = part_suffix(index, count)
    with exclusive(out_dir, command="explain", suffix=suffix):
        model, variables, metadata = checkpoints.load(checkpoint)
        chosen = build_composites(composite_names, metadata)
        images = list_images(images_dir, labels_csv=labels_csv, labels_from_folders=labels_from_folders,
                             class_names=metadata.get("class_names"), exclude=[out_dir])
        targets = parse_target(target, model.num_classes, images)
        chunk_ids = own_chunks(-(-len(images.ids) // chunk_size), index, count)
        rows = np.array([r for c in chunk_ids for r in chunk_rows(c, chunk_size, len(images.ids))], np.int64)
        shape = _image_shape(metadata, checkpoint)
        spec = _run_spec(checkpoint, variables, metadata, images, names=composite_names, dtype=dtype,
                         keep_channels=keep_channels, target=target, chunk_size=chunk_size, image_shape=shape,
                         process_index=index, process_count=count)
        path = os.path.join(out_dir, STORE_FILE.replace(".h5", f"{suffix}.h5"))
        load = image_loader(metadata, shape)
        with open_store(path, spec, [images.ids[r] for r in rows], images.labels[rows], chunk_ids) as store:
            explainer = Explainer(model, variables, chosen, batch_size=batch_size, keep_channels=keep_channels)
            local = _LocalRows([images.paths[r] for r in rows], None if targets is None else targets[rows])
            stats = _run_chunks(store, explainer, local, load, workers=workers, prefetch=prefetch,
                                png=(out_dir, cmap, metadata) if png else None, stream=stream,
                                on_batch_written=on_batch_written)
            if png:
                stats["pngs_completed"] = write_missing_pngs(store, local.paths, load, out_dir, cmap, metadata)
            skipped = write_skipped_csv(store, os.path.join(out_dir, f"skipped{suffix}.csv"), images.skipped)
            explained = int(np.sum(store["valid"][:] & done_rows(store)))
        summary = {"store": path, "images": len(rows), "explained": explained, "skipped": len(skipped),
                   "skipped_files": skipped, **stats, "devices": explainer.num_devices, "process_index": index,
                   "process_count": count, "composites": list(composite_names), "dtype": dtype, "target": target}
        _write_summary(summary, os.path.join(out_dir, f"summary{suffix}.json"), stream)
    return summary


@dataclass(frozen=True)
class _LocalRows:
    paths: list[str]
    targets: np.ndarray | None


def _plan_batches(done: np.ndarray, chunk_size: int, num_rows: int, batch_size: int,
                  paths: Sequence[str]) -> list[_Batch]:
    """Batches of at most ``batch_size`` rows inside each chunk not yet done (every run cuts chunks alike)."""
    batches = []
    for j in np.flatnonzero(~done):
        end = min((int(j) + 1) * chunk_size, num_rows)
        for s in range(int(j) * chunk_size, end, batch_size):
            stop = min(s + batch_size, end)
            batches.append(_Batch(int(j), s, tuple(paths[s:stop]), stop == end))
    return batches


def _run_chunks(store: h5py.File, explainer: Explainer, local: _LocalRows, load: Callable, *, workers: int | None,
                prefetch: int, png: tuple | None, stream: TextIO,
                on_batch_written: OnBatchWritten | None = None) -> dict[str, Any]:
    """Explain every chunk of ``store`` not yet done: write each batch, then flush, then mark the chunk done.

    One batch is always in flight: batch i + 1 is submitted to the devices before batch i's results are
    fetched and written, so the devices never wait for the host's writing.
    """
    done = store["done"][:]
    batches = _plan_batches(done, int(store.attrs["chunk_size"]), len(local.paths), explainer.batch_size,
                            local.paths)
    progress = Progress(sum(len(b.paths) for b in batches), stream=stream)
    marked, first = 0, None

    def finish(batch: _Batch, loaded: list, pixels: np.ndarray, in_flight: InFlight) -> None:
        nonlocal marked, first
        _write_batch(store, batch, loaded, pixels, in_flight, png, stream)
        if on_batch_written is not None:
            durable(store)
            on_batch_written(marked)
        if batch.last_of_chunk:
            durable(store)
            store["done"][batch.chunk] = True
            durable(store)
            marked += 1
        progress.update(len(loaded))
        first = first or (time.monotonic() - progress.start, len(loaded))

    image_shape, previous = tuple(attribute(store.attrs["image_shape"])), None
    workers = workers if workers is not None else os.cpu_count() or 1  # decoding releases the GIL: scale to cores
    with (ThreadPoolExecutor(max(1, workers), thread_name_prefix="lrpjax-load") as pool,
          contextlib.closing(background(_loaded(batches, pool, load), prefetch)) as loaded_batches):
        for batch, loaded in loaded_batches:  # closing: the loader thread ends before its pool shuts down
            pixels = _pixels(loaded, image_shape)
            targets = None if local.targets is None else local.targets[batch.start:batch.start + len(loaded)]
            current = (batch, loaded, pixels, explainer.submit(pixels, targets))
            if previous is not None:
                finish(*previous)
            previous = current
        if previous is not None:
            finish(*previous)
    progress.close()
    return _throughput(progress, marked, int(done.sum()), first)


def _loaded(batches: Sequence[_Batch], pool: ThreadPoolExecutor, load: Callable) -> Iterator[tuple[_Batch, list]]:
    """Each batch with its images loaded in ``pool``: ``(batch, [(image or None, error), ...])``."""
    for batch in batches:
        yield batch, list(pool.map(load, batch.paths))


def _pixels(loaded: list[tuple[np.ndarray | None, str]], shape: tuple[int, ...]) -> np.ndarray:
    """The batch's images, zeros where one could not be read (its row is stored as NaN)."""
    blank = np.zeros(shape, np.float32)
    return np.stack([blank if image is None else image for image, _ in loaded])


def _write_batch(store: h5py.File, batch: _Batch, loaded: list, pixels: np.ndarray, in_flight: InFlight,
                 png: tuple | None, stream: TextIO) -> None:
    """Wait for one batch's results and write its rows (and PNGs); report its unreadable images and those whose
    results are not finite (stored as skipped, with the reason)."""
    errors = [error for _, error in loaded]
    relevance, logits, targets = in_flight.fetch()
    for k in set(nonfinite_rows(logits)).union(*(nonfinite_rows(r) for r in relevance)):
        errors[k] = errors[k] or "NaN or infinite relevance or logits (check the weights for overflow)"
    for path, error in zip(batch.paths, errors):
        if error:
            print(f"lrpjax explain: skipped {path}: {error}", file=stream)
    write_rows(store, batch.start, relevance, logits, targets, errors)
    if png is not None:
        write_pngs(store, batch.start, pixels, relevance, errors, *png)


def _throughput(progress: Progress, marked: int, resumed: int, first: tuple[float, int] | None) -> dict[str, Any]:
    """Timing of this run; the steady rate leaves out the first batch (compilation)."""
    seconds = time.monotonic() - progress.start
    first_seconds, first_count = first or (0.0, 0)
    rest = seconds - first_seconds
    return {"computed_this_run": progress.count, "chunks_this_run": marked, "chunks_resumed": resumed,
            "seconds": round(seconds, 3), "images_per_second": round(progress.count / max(seconds, 1e-9), 2),
            "first_batch_seconds": round(first_seconds, 3),
            "images_per_second_after_first_batch": round((progress.count - first_count) / rest, 2)
            if rest > 1e-6 and progress.count > first_count else None}


def _write_summary(summary: dict[str, Any], path: str, stream: TextIO) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=2)
        handle.write("\n")
    print(f"lrpjax explain: {summary['explained']} of {summary['images']} images explained "
          f"({summary['computed_this_run']} this run in {summary['seconds']:.1f} s, "
          f"{summary['images_per_second']:.1f} images/s on {summary['devices']} device(s)); "
          f"{summary['skipped']} skipped", file=stream)
    for row in summary["skipped_files"][:20]:
        print(f"  skipped {row['path']}: {row['reason']}", file=stream)


# ---------------------------------------------------------------------------------------------- parts


