"""The input pipeline: read, decode, resize, crop, augment, normalise, batch, prefetch to the device.

One straight chain per purpose:

- :func:`train_batches`: an endless stream of examples, epoch after epoch, each epoch a permutation of
  the split drawn from ``(seed, epoch)``; batches are consecutive slices of the stream (an epoch's last
  examples share a batch with the next epoch's first, so nothing is dropped and every batch has one
  shape). Example ``p`` of the stream is augmented (random crop, flip, optional colour jitter) from
  ``(seed, p)``, so the stream is a pure function of the seed: a run resumed at a batch's ``cursor``
  sees exactly the batches the uninterrupted run would have seen.
- :func:`eval_batches`: the split in order, the last batch padded and masked, so every image counts once.
- :func:`prefetch_to_device`: CPU work in a background thread, batches put on the device ahead of use.

Preprocessing follows a checkpoint's metadata (:mod:`lrpjax.io.preprocess`): shorter side resized to
``resize`` (PIL bilinear, as torchvision), a ``crop`` square (centred for evaluation, random for
training), pixels scaled to ``pixel_range`` and normalised by ``mean``/``std``; evaluation images equal
:func:`lrpjax.io.preprocess.preprocess`'s. Decoding runs in a thread pool (PIL releases the GIL). An image
that cannot be decoded is skipped with a warning and counted in the batches' ``skipped``; the run goes on.
"""

from __future__ import annotations

import collections
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import jax
import numpy as np

from lrpjax.data.sources import Split
from lrpjax.io.imagefiles import decode_image
from lrpjax.io.prefetch import prefetch
from lrpjax.io.preprocess import center_offsets, normalize, resize_shorter, validate_preprocessing


class Batch(NamedTuple):
    """A batch on the host: ``image`` float32 ``[B, crop, crop, 3]``, ``label`` int32 ``[B]``, ``mask`` bool
    ``[B]`` (False on evaluation padding), ``cursor`` (stream position after the batch: where a resumed
    run starts) and ``skipped`` (images skipped so far, this batch included)."""

    image: np.ndarray
    label: np.ndarray
    mask: np.ndarray
    cursor: int
    skipped: int


def hide_accelerators_from_tensorflow() -> None:
    """Keep TensorFlow, if another library imported it, off the GPUs and TPUs, so it cannot take their memory
    from JAX. lrpjax's data code never imports TensorFlow; this only guards against its neighbours."""
    tf = sys.modules.get("tensorflow")
    if tf is not None and hasattr(tf, "config"):
        for kind in ("GPU", "TPU"):
            try:
                tf.config.set_visible_devices([], kind)
            except (RuntimeError, ValueError):  # devices already initialised, or none of that kind
                pass


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def crop_image(data: Any, spec: Mapping[str, Any], rng: np.random.Generator | None = None) -> np.ndarray:
    """Decode, resize the shorter side to ``spec["resize"]`` and cut a ``spec["crop"]`` square: centred
    (``rng`` None, torchvision's ``CenterCrop`` offsets) or at a random place and flipped with probability 1/2
    (training); uint8 ``[crop, crop, 3]``. ``ValueError`` if unreadable or smaller than the crop."""
    image = resize_shorter(decode_image(data), spec["resize"])
    crop = spec["crop"]
    height, width = image.shape[:2]
    if height < crop or width < crop:
        raise ValueError(f"image is {height}x{width} after resizing, smaller than crop={crop}")
    if rng is None:
        top, left = center_offsets(height, width, crop)
    else:
        top, left = int(rng.integers(0, height - crop + 1)), int(rng.integers(0, width - crop + 1))
    image = image[top:top + crop, left:left + crop]
    return image[:, ::-1] if rng is not None and rng.random() < 0.5 else image


def prepare_example(data: Any, spec: Mapping[str, Any], rng: np.random.Generator | None = None,
                    colour: float = 0.0) -> np.ndarray:
    """One encoded image -> float32 ``[crop, crop, 3]`` (:func:`crop_image`, :func:`normalize`); for training
    (``rng`` given) also per-channel gains and offsets of up to ``colour`` in normalised units."""
    x = normalize(crop_image(data, spec, rng), spec)
    if rng is not None and colour > 0:
        gain = 1 + rng.uniform(-colour / 2, colour / 2, size=3).astype(np.float32)
        x = x * gain + rng.uniform(-colour, colour, size=3).astype(np.float32)
    return x


def pipeline_spec(preprocessing: Mapping[str, Any]) -> dict[str, Any]:
    """Checked preprocessing for the pipeline; ``ValueError`` unless it has a ``crop`` (batches need one shape)."""
    spec = validate_preprocessing(preprocessing)
    if spec["crop"] is None:
        raise ValueError("preprocessing['crop'] is None; the input pipeline needs a crop size")
    return spec


class _Permutations:
    """The permutation of each epoch, drawn from ``(seed, epoch)``; the last two are cached."""

    def __init__(self, size: int, seed: int):
        self.size, self.seed, self.cache = size, seed, collections.OrderedDict()

    def __call__(self, position: int) -> int:
        epoch, index = divmod(position, self.size)
        if epoch not in self.cache:
            self.cache[epoch] = np.random.default_rng([self.seed, epoch]).permutation(self.size)
            while len(self.cache) > 2:
                self.cache.popitem(last=False)
        return int(self.cache[epoch][index])


def _prepare_many(pool: ThreadPoolExecutor, examples: list[tuple[Any, int, str]], spec: Mapping[str, Any],
                  rngs: list[np.random.Generator | None], colour: float,
                  warn: Callable[[str], None]) -> list[np.ndarray | None]:
    def one(item):
        (data, _, name), rng = item
        try:
            return prepare_example(data, spec, rng, colour)
        except ValueError as error:
            warn(f"skipped {name}: {error}")
            return None

    return list(pool.map(one, zip(examples, rngs)))


def train_batches(split: Split, preprocessing: Mapping[str, Any], *, batch_size: int, seed: int, start: int = 0,
                  skipped: int = 0, augment: bool = True, colour: float = 0.0, workers: int = 4,
                  warn: Callable[[str], None] = _warn) -> Iterator[Batch]:
    """Endless training batches from stream position ``start`` (see the module docstring).

    Raises ``ValueError`` if ``split`` is empty or a whole epoch's worth of images in a row is unreadable.
    """
    spec = pipeline_spec(preprocessing)
    if len(split) == 0:
        raise ValueError(f"split {split.name!r} is empty")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} must be positive")
    record_at, position, failures = _Permutations(len(split), seed), int(start), 0
    with ThreadPoolExecutor(workers) as pool:
        while True:
            images, labels = [], []
            while len(images) < batch_size:
                positions = range(position, position + batch_size - len(images))
                examples = split.read([record_at(p) for p in positions])
                rngs = [np.random.default_rng([seed, p]) if augment else None for p in positions]
                for (_, label, _), x in zip(examples, _prepare_many(pool, examples, spec, rngs, colour, warn)):
                    failures = 0 if x is not None else failures + 1
                    if x is None:
                        skipped += 1
                        if failures >= len(split):
                            raise ValueError(f"split {split.name!r}: {failures} images in a row are unreadable")
                        continue
                    images.append(x)
                    labels.append(label)
                position += len(positions)
            yield Batch(np.stack(images), np.asarray(labels, np.int32), np.ones(batch_size, bool), position, skipped)


def eval_batches(split: Split, preprocessing: Mapping[str, Any], *, batch_size: int, workers: int = 4,
                 warn: Callable[[str], None] = _warn) -> Iterator[Batch]:
    """The split in order, centre-cropped, in batches of ``batch_size``; the last padded with zeros and masked."""
    spec = pipeline_spec(preprocessing)
    side, skipped = spec["crop"], 0
    pending_images, pending_labels = [], []
    with ThreadPoolExecutor(workers) as pool:
        for start in range(0, len(split), batch_size):
            positions = range(start, min(start + batch_size, len(split)))
            examples = split.read(list(positions))
            for (_, label, _), x in zip(examples, _prepare_many(pool, examples, spec, [None] * len(examples), 0.0,
                                                                warn)):
                if x is None:
                    skipped += 1
                else:
                    pending_images.append(x)
                    pending_labels.append(label)
            while len(pending_images) >= batch_size:
                yield Batch(np.stack(pending_images[:batch_size]), np.asarray(pending_labels[:batch_size], np.int32),
                            np.ones(batch_size, bool), positions.stop, skipped)
                pending_images, pending_labels = pending_images[batch_size:], pending_labels[batch_size:]
    if pending_images:
        count = len(pending_images)
        image = np.zeros((batch_size, side, side, 3), np.float32)
        label = np.zeros(batch_size, np.int32)
        if count:
            image[:count], label[:count] = np.stack(pending_images), pending_labels
        yield Batch(image, label, np.arange(batch_size) < count, len(split), skipped)


def prefetch_to_device(batches: Iterable[Batch], size: int = 2, sharding: Any = None) -> Iterator[Batch]:
    """Host batches prepared in a background thread; ``image``, ``label`` and ``mask`` put on the device
    (``sharding`` or the default device) ``size`` batches ahead."""
    ahead: collections.deque = collections.deque()
    for batch in prefetch(batches, size):
        arrays = jax.device_put((batch.image, batch.label, batch.mask), sharding)
        ahead.append(batch._replace(image=arrays[0], label=arrays[1], mask=arrays[2]))
        if len(ahead) > size:
            yield ahead.popleft()
    while ahead:
        yield ahead.popleft()
