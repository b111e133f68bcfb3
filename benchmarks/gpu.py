"""Accelerator throughput of VGG-16 LRP at 224x224, fp32 / TF32 / bf16, with the parity each costs.

    python benchmarks/gpu.py                                  # batches 64, 128, 256; epsilon_gamma_box
    python benchmarks/gpu.py --batch 128 --composite epsilon epsilon_gamma_box --loader-images 2048
    python benchmarks/gpu.py --batch 256 --end-to-end 8192        # also lrpjax explain, decode to stored map
    python benchmarks/gpu.py --all                            # everything benchmarks/device_check.sh prints
    python benchmarks/gpu.py --all --tiny                     # the same code at CPU sizes, in seconds

For each precision the table gives heatmaps/s (device only, best of the repeats, compilation excluded) and
the error against full-precision fp32 on the same images (max|dR|/max|R| and the correlation of the maps).
``--gradient`` adds jax's gradient x input at the same batches and precisions. ``--loader-images N`` also
times the host input pipeline of ``lrpjax explain`` (JPEG decode, resize 256, crop 224, normalise, thread
pool) on N copies of the faces in ``--faces`` (default: the shared London faces; random JPEGs where that
folder is absent). ``--end-to-end N`` runs the whole ``lrpjax explain`` job (float32 at jax's default
precision, epsilon_gamma_box, predicted class, float16 store) over N links to those faces at the first
``--batch``, and reports its images/s after the first batch and its share of the bare heatmap rate at the
same batch and precision (how busy the job keeps the device). ``--train-step`` times one finetuning step
(SGD, batch norm off, dropout on) at the first batch; ``--masking`` the study's masking stage (8x8 patches,
14 fractions, batch 512) as masked forward passes/s. Every row carries the device's peak memory so far
(``peak_bytes_in_use``; the process's peak RSS where the device reports none, as on the CPU).
``--budget-s S`` skips what would start after S seconds, so the table always comes out.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

import lrpjax
from lrpjax.io.preprocess import TORCHVISION, zbox_bounds

PRECISIONS = {  # name -> (input dtype, jax matmul/conv precision)
    "fp32": (jnp.float32, "highest"),
    "tf32": (jnp.float32, "tensorfloat32"),
    "bf16": (jnp.bfloat16, "bfloat16"),
}
SIZES = {  # the model of each run: VGG-16 at 224x224 (torchvision's layout), or a 1/32-width one at 32x32
    "full": {"width": 1.0, "size": 224, "pool_to": 7, "classes": 1000, "resize": 256},
    "tiny": {"width": 1 / 32, "size": 32, "pool_to": None, "classes": 10, "resize": 36},
}
HEADER = ("| measure | batch | method | precision | rate | unit | max|dR|/max|R| vs fp32 | correlation | "
          "peak memory GiB |")


def timed(fn: Callable[[], object], repeats: int) -> float:
    """The best of ``repeats`` wall times of ``fn`` after one untimed call (compilation)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def peak_memory() -> str:
    """The first device's peak bytes in use so far, in GiB, or the process's peak RSS (``host``)."""
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        return f"{stats['peak_bytes_in_use'] / 2**30:.1f}"
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f} (host RSS)"


class Table:
    """Rows of the one table printed at the end (each also printed as it comes), and the time budget."""

    def __init__(self, budget_s: float):
        self.rows, self.deadline = [HEADER, "|" + "---|" * 9], time.perf_counter() + budget_s

    def open(self, what: str) -> bool:
        """Whether there is time left for ``what``; a row saying it was skipped otherwise."""
        if time.perf_counter() < self.deadline:
            return True
        self.add(what, "", "", "", "skipped (time budget)", "", "", "")
        return False

    def add(self, measure, batch, method, precision, rate, unit, error="", correlation="") -> None:
        rate = f"{rate:.0f}" if isinstance(rate, float) and rate >= 10 else (
            f"{rate:.2f}" if isinstance(rate, float) else rate)
        self.rows.append(f"| {measure} | {batch} | {method} | {precision} | {rate} | {unit} | {error} | "
                         f"{correlation} | {peak_memory()} |")
        print(self.rows[-1], file=sys.stderr, flush=True)


def setup_model(size: str):
    """``(model, variables, preprocessing)`` with random weights and non-zero biases."""
    shape = SIZES[size]
    model = lrpjax.vgg16(num_classes=shape["classes"], width=shape["width"], pool_to=shape["pool_to"],
                         input_size=shape["size"])
    variables = model.init(jax.random.key(0), jnp.zeros((1, shape["size"], shape["size"], 3)))
    keys = iter(jax.random.split(jax.random.key(1), 64))
    variables = jax.tree_util.tree_map_with_path(
        lambda p, a: 0.05 * jax.random.normal(next(keys), a.shape) if "bias" in jax.tree_util.keystr(p) else a,
        variables)
    preprocessing = {**TORCHVISION, "name": f"bench{shape['size']}", "resize": shape["resize"], "crop": shape["size"]}
    return model, variables, preprocessing


def _compare(maps: np.ndarray, reference: np.ndarray) -> tuple[str, str]:
    error = np.abs(maps - reference).max() / max(np.abs(reference).max(), 1e-30)
    correlation = np.corrcoef(maps.ravel(), reference.ravel())[0, 1]
    return f"{error:.1e}", f"{correlation:.5f}"


def precision_rows(table: Table, setup, batches: list[int], names: list[str], repeats: int,
                   gradient: bool) -> dict[tuple[str, int], float]:
    """LRP heatmaps/s per (batch, composite, precision) and, with ``gradient``, jax's gradient x input; returns the
    fp32-default-precision rate per (composite, batch) for the explain job's comparison."""
    model, variables, preprocessing = setup
    low, high = zbox_bounds(preprocessing)
    side = model.input_size
    methods = [(name, lrpjax.core.composites.get(name, **({"low": low, "high": high} if name == "epsilon_gamma_box"
                                                      else {}))) for name in names]
    methods += [("gradient × input (jax)", None)] if gradient else []
    bare = {}
    for batch in batches:
        images = jax.random.normal(jax.random.key(1), (batch, side, side, 3), jnp.float32)
        for name, composite in methods:
            reference = None
            for label, (dtype, precision) in PRECISIONS.items():
                if not table.open(f"{name} batch {batch} {label}"):
                    continue
                x, v = images.astype(dtype), jax.tree.map(lambda a, d=dtype: a.astype(d), variables)
                run = _lrp_fn(model, v, x, composite) if composite is not None else _gradient_fn(model, v, x)
                with jax.default_matmul_precision(precision):
                    seconds = timed(run, repeats)
                    maps = np.asarray(run(), np.float32)
                reference = maps if reference is None else reference
                table.add("heatmaps" if composite is not None else "gradient", batch, name, label,
                          batch / seconds, "images/s", *_compare(maps, reference))
            if composite is not None and name == "epsilon_gamma_box" and table.open(f"{name} batch {batch} default"):
                run = _lrp_fn(model, variables, images, composite)
                bare[(name, batch)] = batch / timed(run, repeats)
    return bare


def _lrp_fn(model, variables, x, composite):
    return lambda: lrpjax.explain(model, variables, x, "predicted", composite).block_until_ready()


def _gradient_fn(model, variables, x):
    @jax.jit
    def gradient_times_input(v, images):
        def score(inputs):
            logits = model.apply(v, inputs)
            return jnp.take_along_axis(logits, logits.argmax(-1)[:, None], axis=1).sum()
        return (jax.grad(score)(images) * images).sum(-1)

    return lambda: gradient_times_input(variables, x).block_until_ready()


FACES = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "faces", "london", "neutral")


def face_files(faces: str, work: str, count: int = 64) -> list[str]:
    """The JPEG/PNG faces in ``faces``, or ``count`` random 256x256 JPEGs written into ``work`` if it is absent."""
    if not os.path.isdir(faces):
        from PIL import Image

        rng = np.random.default_rng(0)
        os.makedirs(work, exist_ok=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(
                os.path.join(work, f"{i:04d}.jpg"), quality=90)
        faces = work
    files = sorted(os.path.abspath(os.path.join(faces, f)) for f in os.listdir(faces)
                   if f.lower().endswith((".jpg", ".jpeg", ".png")))
    if not files:
        raise SystemExit(f"no JPEG or PNG faces in {faces!r}; give a folder of them with --faces")
    return files


def loader_rate(files: list[str], count: int, workers: int, preprocessing: dict, side: int) -> float:
    """Images/s of ``lrpjax explain``'s host pipeline (decode, resize, crop, normalise) with ``workers`` threads."""
    from concurrent.futures import ThreadPoolExecutor

    from lrpjax.jobs.explain import image_loader

    paths = [files[i % len(files)] for i in range(count)]
    load = image_loader(dict(preprocessing=dict(preprocessing)), (side, side, 3))
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(load, paths):
            pass
    return count / (time.perf_counter() - start)


def end_to_end(setup, files: list[str], count: int, batch: int, workers: int, work: str) -> dict:
    """The ``lrpjax explain`` job over ``count`` links to ``files``: its summary."""
    from lrpjax.io import checkpoints
    from lrpjax.jobs.explain import explain_dataset

    model, variables, preprocessing = setup
    images = os.path.join(work, "images")
    os.makedirs(images)
    for i in range(count):
        os.symlink(files[i % len(files)], os.path.join(images, f"{i:07d}{os.path.splitext(files[i % len(files)])[1]}"))
    checkpoints.save(os.path.join(work, "checkpoint"), model, variables, {"preprocessing": preprocessing})
    return explain_dataset(os.path.join(work, "checkpoint"), images, os.path.join(work, "out"), batch_size=batch,
                           chunk_size=max(4 * batch, 256), dtype="float16", workers=workers,
                           stream=open(os.devnull, "w"))


def train_step_rate(setup, batch: int, repeats: int) -> float:
    """Images/s of one jit-compiled finetuning step (:func:`lrpjax.jobs.train.make_train_step`, SGD, everything)."""
    from lrpjax.io import checkpoints
    from lrpjax.jobs import train

    model, variables, preprocessing = setup
    fields = {k: v for k, v in checkpoints.model_config(model).items() if k != "num_classes"}
    config = train.TrainConfig(model=fields, preprocessing=preprocessing, optimizer="sgd", learning_rate=1e-3,
                               steps=10, batch_size=batch)
    optimizer, step = train.compiled_step(model, config, variables["params"])
    state = train.TrainState(variables["params"], variables.get("batch_stats", {}),
                             optimizer.init(variables["params"]), jnp.zeros((), jnp.int32))
    images = jax.random.normal(jax.random.key(2), (batch, model.input_size, model.input_size, 3))
    labels = jnp.arange(batch) % model.num_classes

    def run():
        jax.block_until_ready(step(state, images, labels, jax.random.key(3)))

    return batch / timed(run, repeats)


def masking_rate(setup, images_count: int) -> float:
    """Masked forward passes/s of :func:`lrpjax.analysis.masking.masking_curves` as the study runs it."""
    from lrpjax.analysis.masking import masking_curves

    model, variables, _ = setup
    side = model.input_size
    fractions = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    images = jax.random.normal(jax.random.key(4), (images_count, side, side, 3))
    relevance = jax.random.normal(jax.random.key(5), (images_count, side, side))
    labels = jnp.arange(images_count) % model.num_classes
    logits = lambda x: model.apply(variables, x)  # noqa: E731  one object: compiled once

    def run():
        curves = masking_curves(logits, images, relevance, labels, fractions=fractions, patch_size=8 if side >= 64
                                else 4, batch_size=min(512, len(fractions) * images_count))
        jax.block_until_ready(curves.probability)

    return len(fractions) * images_count / timed(run, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, nargs="+", default=None, help="default 64 128 256 (tiny: 2 4)")
    parser.add_argument("--composite", nargs="+", default=None, help="default epsilon_gamma_box (--all: three)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--gradient", action="store_true", help="also jax gradient x input")
    parser.add_argument("--loader-images", type=int, default=0)
    parser.add_argument("--end-to-end", type=int, default=0, metavar="N")
    parser.add_argument("--train-step", action="store_true")
    parser.add_argument("--masking", type=int, default=0, metavar="N", help="masking curves of N images")
    parser.add_argument("--all", action="store_true", help="everything, at device_check.sh's sizes")
    parser.add_argument("--tiny", action="store_true", help="a 1/32-width VGG-16 at 32x32: the CPU check")
    parser.add_argument("--budget-s", type=float, default=float("inf"))
    parser.add_argument("--faces", default=FACES, help="folder of face images for the pipeline and end-to-end runs")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    if args.all:  # tiny: each code path once (one composite, one batch), for the CI test
        args.composite = args.composite or (["epsilon_gamma_box"] if args.tiny else
                                            ["epsilon", "epsilon_gamma_box", "epsilon_plus"])
        args.gradient, args.train_step = True, True
        args.end_to_end = args.end_to_end or (8 if args.tiny else 4096)
        args.masking = args.masking or (2 if args.tiny else 64)
        args.loader_images = args.loader_images or (8 if args.tiny else 2048)
        args.repeats = min(args.repeats, 1 if args.tiny else 3)
    args.batch = args.batch or ([2] if args.tiny else [64, 128, 256])
    args.composite = args.composite or ["epsilon_gamma_box"]
    print(f"devices: {jax.devices()}; jax {jax.__version__}", file=sys.stderr)
    setup = setup_model("tiny" if args.tiny else "full")
    table = Table(args.budget_s)
    bare = precision_rows(table, setup, args.batch, args.composite, args.repeats, args.gradient)
    extra_rows(table, setup, args, bare)
    print("\n".join(table.rows))
    return 0


def extra_rows(table: Table, setup, args, bare: dict[tuple[str, int], float]) -> None:
    """The host pipeline, explain job, training step and masking rows."""
    import shutil
    import tempfile

    work = tempfile.mkdtemp(prefix="lrpjax-gpu-")
    try:
        files = face_files(args.faces, os.path.join(work, "faces"))
        side = setup[0].input_size
        if args.loader_images and table.open("input pipeline"):
            rate = loader_rate(files, args.loader_images, args.workers, setup[2], side)
            table.add("input pipeline", "", f"decode+resize+crop, {args.workers} threads", "", rate, "images/s")
        batch = args.batch[0]
        if args.end_to_end and table.open("lrpjax explain"):
            summary = end_to_end(setup, files, args.end_to_end, batch, args.workers, os.path.join(work, "e2e"))
            rate = summary["images_per_second_after_first_batch"] or summary["images_per_second"]
            share = f"{rate / bare[('epsilon_gamma_box', batch)]:.0%} of bare" if (
                "epsilon_gamma_box", batch) in bare else ""
            table.add("lrpjax explain (JPEGs → h5)", batch, f"epsilon_gamma_box, {args.end_to_end} images, {share}",
                      "default", float(rate), "images/s")
        if args.train_step and table.open("training step"):
            table.add("training step", batch, "SGD, all layers", "default",
                      train_step_rate(setup, batch, args.repeats), "images/s")
        if args.masking and table.open("masking"):
            table.add("masking stage", args.masking, "14 fractions, patches", "default",
                      masking_rate(setup, args.masking), "masked forward passes/s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
