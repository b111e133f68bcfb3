"""lrpjax's input pipeline against grain's (PyPI ``grain``, the JAX ecosystem's loader) on the same images.

    pip install grain                                   # not a dependency of lrpjax; only this benchmark needs it
    python benchmarks/input_pipeline.py                 # the 102 London neutral faces, 6 passes, 2 threads
    python benchmarks/input_pipeline.py --images DIR --workers 4 --passes 10 --batch 32

Both sides do the same work per image with the same functions: read the file, decode it
(:func:`lrpjax.io.imagefiles.decode_image`), resize the shorter side to 256 and cut the centred 224 square, scale
and normalise (ImageNet preprocessing, :func:`lrpjax.data.pipeline.prepare_example`), and stack batches of
``--batch``; both decode on ``--workers`` threads (PIL releases the GIL) and prefetch ahead of the consumer.

- ``lrpjax``: a thread pool maps each batch's files, :func:`lrpjax.io.prefetch.prefetch` runs that one batch ahead
  (the explain job's and :func:`lrpjax.data.pipeline.eval_batches`' structure);
- ``grain``: ``MapDataset.source(paths).map(prepare).batch(B).to_iter_dataset(ReadOptions(num_threads=W))``.

The passes alternate (lrpjax, grain, lrpjax, ...), so a drift of the machine's speed hits both; the table gives
images per second as min / median / max over passes and the ratio of medians. Resume: grain's iterator state is
taken after ``k`` batches, a new iterator restored from it, and its remaining batches compared with an
uninterrupted pass (lrpjax's streams resume from a position, ``eval_batches``/``train_batches(start=...)``, which
``tests/test_train.py`` checks bit for bit).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lrpjax.data.pipeline import prepare_example  # noqa: E402
from lrpjax.io.prefetch import prefetch  # noqa: E402
from lrpjax.io.preprocess import TORCHVISION, validate_preprocessing  # noqa: E402

SPEC = validate_preprocessing(TORCHVISION)
FACES = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data",
                                      "faces", "london", "neutral"))


def _prepare(path: str) -> np.ndarray:
    with open(path, "rb") as handle:
        return prepare_example(handle.read(), SPEC)


def lrpjax_batches(paths: Sequence[str], batch: int, workers: int) -> Iterator[np.ndarray]:
    """Batches from a thread pool, one batch prepared ahead by :func:`lrpjax.io.prefetch.prefetch`."""
    with ThreadPoolExecutor(workers) as pool:
        chunks = (paths[i:i + batch] for i in range(0, len(paths), batch))
        yield from prefetch((np.stack(list(pool.map(_prepare, chunk))) for chunk in chunks), 2)


def grain_dataset(paths: Sequence[str], batch: int):
    import grain

    return grain.MapDataset.source(list(paths)).map(_prepare).batch(batch)


def grain_batches(paths: Sequence[str], batch: int, workers: int) -> Iterator[np.ndarray]:
    import grain

    options = grain.ReadOptions(num_threads=workers, prefetch_buffer_size=2 * batch)
    return iter(grain_dataset(paths, batch).to_iter_dataset(options))


def timed_pass(make: Callable[[], Iterator[np.ndarray]]) -> tuple[float, int, float]:
    """(seconds, images, checksum) of one full pass."""
    start, count, total = time.perf_counter(), 0, 0.0
    for x in make():
        count += len(x)
        total += float(np.float64(x.sum()))
    return time.perf_counter() - start, count, total


def grain_resume_is_exact(paths: Sequence[str], batch: int, workers: int, after: int) -> bool:
    """Whether a grain iterator restored from its state after ``after`` batches yields the uninterrupted rest."""
    import grain

    options = grain.ReadOptions(num_threads=workers, prefetch_buffer_size=2 * batch)
    dataset = grain_dataset(paths, batch).to_iter_dataset(options)
    whole = [np.asarray(x) for x in dataset]
    first = iter(dataset)
    for _ in range(after):
        next(first)
    state = first.get_state()
    second = iter(dataset)
    second.set_state(state)
    rest = [np.asarray(x) for x in second]
    return len(rest) == len(whole) - after and all(np.array_equal(a, b) for a, b in zip(rest, whole[after:]))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default=FACES, help="a folder of images (default: London neutral faces)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--passes", type=int, default=6, help="timed passes of each side (after one warm-up each)")
    args = parser.parse_args(argv)
    try:
        import grain
    except ImportError:
        print("grain is not installed: pip install grain", file=sys.stderr)
        return 2
    paths = sorted(os.path.join(args.images, f) for f in os.listdir(args.images)
                   if f.lower().endswith((".jpg", ".jpeg", ".png")))
    if not paths:
        print(f"no images in {args.images!r}", file=sys.stderr)
        return 2
    sides = {"lrpjax": lambda: lrpjax_batches(paths, args.batch, args.workers),
             "grain": lambda: grain_batches(paths, args.batch, args.workers)}
    rates: dict[str, list[float]] = {name: [] for name in sides}
    sums = {}
    for name, make in sides.items():  # warm-up: file cache, imports, thread start
        sums[name] = timed_pass(make)[2]
    for _ in range(args.passes):
        for name, make in sides.items():
            seconds, count, _ = timed_pass(make)
            rates[name].append(count / seconds)
    print(f"{len(paths)} images from {args.images}, batch {args.batch}, {args.workers} threads, "
          f"grain {grain.__version__}, load average {os.getloadavg()[0]:.1f}")
    print(f"same pixels on both sides: {np.isclose(sums['lrpjax'], sums['grain'], rtol=1e-6)}")
    for name, values in rates.items():
        values = np.array(values)
        print(f"{name:7s} images/s  min {values.min():7.1f}  median {np.median(values):7.1f}  max {values.max():7.1f}")
    ratio = np.median(rates["grain"]) / np.median(rates["lrpjax"])
    print(f"grain / lrpjax (medians): {ratio:.2f}")
    after = max(1, len(paths) // args.batch // 2)
    print(f"grain resumed after {after} batches equals the uninterrupted pass: "
          f"{grain_resume_is_exact(paths, args.batch, args.workers, after)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
