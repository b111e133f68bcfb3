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

import csv
import json
import os
import queue
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TextIO

import h5py
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

import lrpjax
from lrpjax import checkpoints, composites, engine, viz
from lrpjax.preprocess import load_image, preprocess, validate_preprocessing, zbox_bounds
from lrpjax.store import (
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

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
KILL_AFTER_ENV = "LRPJAX_EXPLAIN_KILL_AFTER_CHUNKS"
"""Test-only: after this many chunks are marked done, write the next batch and SIGKILL the own process."""
_NEEDS_BOUNDS = ("epsilon_gamma_box", "tutorial")


@dataclass(frozen=True)
class ImageList:
    """Images of a folder in a stable order: ids (relative paths), absolute paths, labels (-1 unknown)."""

    root: str
    ids: tuple[str, ...]
    paths: tuple[str, ...]
    labels: np.ndarray
    label_names: tuple[str, ...] | None = None


def list_images(images_dir: str | os.PathLike[str], *, labels_csv: str | os.PathLike[str] | None = None,
                labels_from_folders: bool = False, class_names: Sequence[str] | None = None,
                exclude: Sequence[str | os.PathLike[str]] = ()) -> ImageList:
    """Every image file under ``images_dir`` (recursively; hidden files and the folders ``exclude``, e.g. an
    output folder inside it, skipped), sorted by relative path.

    Labels come from ``labels_csv`` (columns ``id,label``; default ``images_dir/labels.csv`` when present)
    or, with ``labels_from_folders``, from each id's first folder. Labels are class indices, or names
    mapped through ``class_names`` (or, without them, numbered in sorted order, kept as ``label_names``).

    Raises:
      FileNotFoundError: ``images_dir`` or ``labels_csv`` does not exist.
      ValueError: no images; a labels file without ``id,label`` columns; a label name not in ``class_names``.
    """
    root = os.path.abspath(os.fspath(images_dir))
    if not os.path.isdir(root):
        raise FileNotFoundError(f"images folder {root!r} does not exist")
    ids, skip = [], {os.path.abspath(os.fspath(e)) for e in exclude}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".") and os.path.join(folder, d) not in skip]
        rel = os.path.relpath(folder, root)
        ids += [name if rel == "." else f"{rel}/{name}".replace(os.sep, "/") for name in files
                if not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES)]
    ids.sort()
    if not ids:
        raise ValueError(f"images folder {root!r} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    if labels_from_folders:
        names: list[str | None] = [i.split("/")[0] if "/" in i else None for i in ids]
        source = f"folder names in {root!r}"
    else:
        default = os.path.join(root, "labels.csv")
        labels_csv = labels_csv if labels_csv is not None else (default if os.path.isfile(default) else None)
        table = _read_labels_csv(labels_csv) if labels_csv is not None else {}
        names, source = [table.get(i) for i in ids], f"labels file {os.fspath(labels_csv or '')!r}"
    labels, label_names = _label_indices(names, class_names, source)
    paths = tuple(os.path.join(root, *i.split("/")) for i in ids)
    return ImageList(root, tuple(ids), paths, labels, label_names)


def _read_labels_csv(path: str | os.PathLike[str]) -> dict[str, str]:
    """``id -> label`` from a CSV file with a header holding ``id`` and ``label``."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"labels file {os.fspath(path)!r} does not exist")
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"id", "label"} <= set(reader.fieldnames):
            raise ValueError(f"labels file {os.fspath(path)!r} needs a header with 'id' and 'label', "
                             f"got {reader.fieldnames}")
        return {row["id"].strip().replace(os.sep, "/"): row["label"].strip() for row in reader}


def _label_indices(names: Sequence[str | None], class_names: Sequence[str] | None,
                   source: str) -> tuple[np.ndarray, tuple[str, ...] | None]:
    """Label strings -> int64 indices (-1 for None): integers as they are, names through a vocabulary."""
    known = [n for n in names if n not in (None, "")]
    if all(re.fullmatch(r"-?\d+", n) for n in known):
        return np.array([int(n) if n not in (None, "") else -1 for n in names], np.int64), None
    vocab = tuple(class_names) if class_names else tuple(sorted(set(known)))
    missing = sorted(set(known) - set(vocab))
    if missing:
        raise ValueError(f"{source}: label(s) {missing[:5]} are not among the checkpoint's class names "
                         f"{list(vocab)[:10]}")
    index = {name: i for i, name in enumerate(vocab)}
    return np.array([index[n] if n not in (None, "") else -1 for n in names], np.int64), vocab


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
    low, high = zbox_bounds(metadata)
    return [composites.get(n, **({"low": low, "high": high} if n in _NEEDS_BOUNDS else {})) for n in names]


# ---------------------------------------------------------------------------------------------- the store


# ---------------------------------------------------------------------------------------------- the pipeline

@dataclass(frozen=True)
class _Batch:
    chunk: int  # position of its chunk in the file
    start: int  # first row in the file
    paths: tuple[str, ...]
    last_of_chunk: bool


class Prefetcher:
    """Loads batches in a thread pool on a background thread, at most ``depth`` batches ahead of the consumer.

    Iterating yields ``(batch, [(image or None, error), ...])`` in order; an unexpected error in the loader
    is raised in the consumer. Memory stays flat: the queue is bounded whatever the number of batches.
    """

    def __init__(self, batches: Sequence[Any], load: Callable[[str], tuple[np.ndarray | None, str]], *,
                 workers: int | None = None, depth: int = 2):
        self._batches, self._load = batches, load
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        workers = workers if workers is not None else os.cpu_count() or 1  # decoding releases the GIL: scale to cores
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="lrpjax-load")
        self._thread = threading.Thread(target=self._produce, name="lrpjax-prefetch", daemon=True)

    def __enter__(self) -> Prefetcher:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._stop.set()
        self._thread.join()
        self._pool.shutdown(cancel_futures=True)

    def __iter__(self) -> Iterator[tuple[Any, list[tuple[np.ndarray | None, str]]]]:
        while (item := self._queue.get()) is not self._stop:
            if isinstance(item, BaseException):
                raise item
            yield item

    def _produce(self) -> None:
        try:
            for batch in self._batches:
                if not self._put((batch, list(self._pool.map(self._load, batch.paths)))):
                    return
        except BaseException as error:  # handed to the consumer, which raises it
            self._put(error)
            return
        self._put(self._stop)  # the end marker

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False


def image_loader(metadata: dict[str, Any], shape: tuple[int, ...]) -> Callable[[str], tuple[np.ndarray | None, str]]:
    """``path -> (preprocessed float32 image, "")`` or ``(None, reason)``; never raises for a bad image."""
    def load(path: str) -> tuple[np.ndarray | None, str]:
        try:
            image = np.asarray(preprocess(load_image(path), metadata)[0], np.float32)
        except Exception as error:  # any decoding or preprocessing failure skips this image, not the run
            return None, str(error) or type(error).__name__
        if image.shape != shape:
            return None, f"preprocessed to shape {image.shape}, expected {shape}"
        return image, ""
    return load


class Explainer:
    """Relevance for padded batches sharded over a 1-D mesh of the local devices (axis ``data``)."""

    def __init__(self, model: Any, variables: Any, chosen: Sequence[composites.Composite], *, batch_size: int,
                 keep_channels: bool = False):
        devices = jax.local_devices()
        mesh = Mesh(np.asarray(devices), ("data",))
        self.model, self.composites, self.keep_channels = model, tuple(chosen), keep_channels
        self.num_devices = len(devices)
        self.batch_size = -(-batch_size // self.num_devices) * self.num_devices
        self._data = NamedSharding(mesh, P("data"))
        as_float32 = jax.tree.map(lambda a: np.asarray(a, np.float32), variables)
        self._variables = jax.device_put(as_float32, NamedSharding(mesh, P()))

    def submit(self, images: np.ndarray, targets: np.ndarray | None) -> InFlight:
        """Start explaining ``images [b, H, W, C]`` (b <= batch_size) for ``targets [b]`` or None (the
        predicted class) and return at once: the devices work while the host loads and writes other batches."""
        count = len(images)
        padded = np.zeros((self.batch_size, *images.shape[1:]), np.float32)
        padded[:count] = images
        x = jax.device_put(padded, self._data)
        if targets is None:
            out = engine.explain_full(self.model, self._variables, x, "predicted", self.composites)
            chosen = jnp.argmax(out.logits, axis=-1)  # the class the compiled pass explained (first maximum)
        else:
            chosen = np.zeros(self.batch_size, np.int64)
            chosen[:count] = targets
            out = engine.explain_full(self.model, self._variables, x, chosen, self.composites)
        relevance = [r if self.keep_channels else jnp.sum(r, axis=-1) for r in out.relevance]
        return InFlight(count, relevance, out.logits, chosen)


@dataclass(frozen=True)
class InFlight:
    """A batch the devices are working on; :meth:`fetch` waits for it and copies the results to the host."""

    count: int
    relevance: list[jax.Array]
    logits: jax.Array
    targets: jax.Array | np.ndarray

    def fetch(self) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        """(relevance per composite [b, H, W] or [b, H, W, C], logits [b, K], targets [b]), padding dropped."""
        relevance = [np.asarray(r)[:self.count] for r in self.relevance]
        return relevance, np.asarray(self.logits)[:self.count], np.asarray(self.targets)[:self.count].astype(np.int64)


class Progress:
    """``done/total images, images/s, ETA`` on ``stream``: redrawn in place on a TTY, otherwise one line
    every ``every`` seconds (and at the end)."""

    def __init__(self, total: int, *, stream: TextIO, every: float = 30.0):
        self.total, self.count, self.stream = total, 0, stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.every = 0.2 if self.tty else every
        self.start = self._last = time.monotonic()

    def update(self, count: int) -> None:
        self.count += count
        now = time.monotonic()
        if now - self._last >= self.every or self.count >= self.total:
            self._last = now
            self.stream.write(("\r" if self.tty else "") + self.line(now) + ("" if self.tty else "\n"))
            self.stream.flush()

    def line(self, now: float | None = None) -> str:
        elapsed = max((now or time.monotonic()) - self.start, 1e-9)
        rate = self.count / elapsed
        eta = (self.total - self.count) / rate if rate > 0 else float("nan")
        eta_text = time.strftime("%H:%M:%S", time.gmtime(eta)) if np.isfinite(eta) else "--:--:--"
        return f"explain {self.count}/{self.total} images  {rate:.1f} images/s  ETA {eta_text}"

    def close(self) -> None:
        if self.tty and self.count:
            self.stream.write("\n")


# ---------------------------------------------------------------------------------------------- the run

def _parse_target(target: str | int, num_classes: int, images: ImageList) -> np.ndarray | None:
    """Per-image targets for ``label`` or a class index; None for ``predicted``."""
    if target == "predicted":
        return None
    if target == "label":
        unknown = [i for i, label in zip(images.ids, images.labels) if label < 0]
        if unknown:
            raise ValueError(f"target='label' but {len(unknown)} image(s) have no label (e.g. {unknown[0]!r}); "
                             "give labels.csv or --labels-from-folders")
        bad = sorted({int(v) for v in images.labels if v >= num_classes})
        if bad:
            raise ValueError(f"target='label': labels {bad[:5]} out of range for {num_classes} classes")
        return images.labels
    if not re.fullmatch(r"\d+", str(target)) or int(target) >= num_classes:
        raise ValueError(f"target={target!r}: choose 'label', 'predicted' or a class index in [0, {num_classes})")
    return np.full(len(images.ids), int(target), np.int64)


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
        process_index: int | None = None, process_count: int | None = None,
        stream: TextIO | None = None) -> dict[str, Any]:
    """Explain every image under ``images_dir`` into ``out_dir/relevance.h5`` (see the module docstring).

    Resumes an existing store of the same run; process ``process_index`` of ``process_count`` (default:
    ``jax.process_index()`` / ``jax.process_count()``) takes chunks ``i % process_count == process_index``
    into its own part file. Writes ``skipped.csv`` and ``summary.json`` (with the part suffix for parts).

    Returns:
      The summary: images, explained, skipped (with reasons), seconds, images per second, devices, ...

    Raises:
      FileNotFoundError: a missing checkpoint, images folder or labels file.
      ValueError: bad options, no images, labels unknown for ``target='label'``, or a store of another run.
    """
    stream = stream or sys.stderr
    _check_options(composite_names, dtype, batch_size, chunk_size)
    model, variables, metadata = checkpoints.load(checkpoint)
    chosen = build_composites(composite_names, metadata)
    images = list_images(images_dir, labels_csv=labels_csv, labels_from_folders=labels_from_folders,
                         class_names=metadata.get("class_names"), exclude=[out_dir])
    targets = _parse_target(target, model.num_classes, images)
    index = jax.process_index() if process_index is None else process_index
    count = jax.process_count() if process_count is None else process_count
    chunk_ids = own_chunks(-(-len(images.ids) // chunk_size), index, count)
    rows = np.array([r for c in chunk_ids for r in chunk_rows(c, chunk_size, len(images.ids))], np.int64)
    shape = _image_shape(metadata, checkpoint)
    spec = _run_spec(checkpoint, variables, metadata, images, names=composite_names, dtype=dtype,
                     keep_channels=keep_channels, target=target, chunk_size=chunk_size, image_shape=shape,
                     process_index=index, process_count=count)
    os.makedirs(out_dir, exist_ok=True)
    suffix = part_suffix(index, count)
    path = os.path.join(out_dir, STORE_FILE.replace(".h5", f"{suffix}.h5"))
    with open_store(path, spec, [images.ids[r] for r in rows], images.labels[rows], chunk_ids) as store:
        explainer = Explainer(model, variables, chosen, batch_size=batch_size, keep_channels=keep_channels)
        local = _LocalRows([images.paths[r] for r in rows], None if targets is None else targets[rows])
        stats = _run_chunks(store, explainer, local, image_loader(metadata, shape), workers=workers,
                            prefetch=prefetch, png=(out_dir, cmap, metadata) if png else None, stream=stream)
        skipped = write_skipped_csv(store, os.path.join(out_dir, f"skipped{suffix}.csv"))
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
                prefetch: int, png: tuple | None, stream: TextIO) -> dict[str, Any]:
    """Explain every chunk of ``store`` not yet done: write each batch, then flush, then mark the chunk done.

    One batch is always in flight: batch i + 1 is submitted to the devices before batch i's results are
    fetched and written, so the devices never wait for the host's writing.
    """
    done = store["done"][:]
    batches = _plan_batches(done, int(store.attrs["chunk_size"]), len(local.paths), explainer.batch_size,
                            local.paths)
    kill_after = os.environ.get(KILL_AFTER_ENV)
    progress = Progress(sum(len(b.paths) for b in batches), stream=stream)
    marked, first = 0, None

    def finish(batch: _Batch, loaded: list, pixels: np.ndarray, in_flight: InFlight) -> None:
        nonlocal marked, first
        _write_batch(store, batch, loaded, pixels, in_flight, png, stream)
        if kill_after is not None and marked >= int(kill_after):  # test-only: die with a chunk half written
            durable(store)
            os.kill(os.getpid(), signal.SIGKILL)
        if batch.last_of_chunk:
            durable(store)
            store["done"][batch.chunk] = True
            durable(store)
            marked += 1
        progress.update(len(loaded))
        first = first or (time.monotonic() - progress.start, len(loaded))

    image_shape, previous = tuple(attribute(store.attrs["image_shape"])), None
    with Prefetcher(batches, load, workers=workers, depth=prefetch) as loader:
        for batch, loaded in loader:
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


def _pixels(loaded: list[tuple[np.ndarray | None, str]], shape: tuple[int, ...]) -> np.ndarray:
    """The batch's images, zeros where one could not be read (its row is stored as NaN)."""
    blank = np.zeros(shape, np.float32)
    return np.stack([blank if image is None else image for image, _ in loaded])


def _write_batch(store: h5py.File, batch: _Batch, loaded: list, pixels: np.ndarray, in_flight: InFlight,
                 png: tuple | None, stream: TextIO) -> None:
    """Wait for one batch's results and write its rows (and PNGs); report its unreadable images."""
    errors = [error for _, error in loaded]
    for path, error in zip(batch.paths, errors):
        if error:
            print(f"lrpjax explain: skipped {path}: {error}", file=stream)
    relevance, logits, targets = in_flight.fetch()
    write_rows(store, batch.start, relevance, logits, targets, errors)
    if png is not None:
        _write_pngs(store, batch.start, pixels, relevance, errors, *png)


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


def _write_pngs(store: h5py.File, start: int, pixels: np.ndarray, relevance: Sequence[np.ndarray],
                errors: Sequence[str], out_dir: str, cmap: str, metadata: dict[str, Any]) -> None:
    """Heatmap and overlay PNGs: ``png/<composite>/<id>.heatmap.png`` and ``.overlay.png``."""
    spec = validate_preprocessing(metadata)
    ids = store["ids"].asstr()[start:start + len(errors)]
    for k, (image_id, error) in enumerate(zip(ids, errors)):
        if error:
            continue
        rgb = viz.denormalize(pixels[k], spec["mean"], spec["std"], spec["pixel_range"])
        for name, values in zip(attribute(store.attrs["composites"]), relevance):
            heat = viz.heatmap_image(values[k], cmap)
            stem = os.path.join(out_dir, "png", name, *image_id.split("/"))
            viz.save_png(heat, f"{stem}.heatmap.png")
            viz.save_png(viz.overlay(rgb, heat), f"{stem}.overlay.png")


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


