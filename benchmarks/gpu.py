"""Accelerator throughput of VGG-16 LRP at 224x224, fp32 / TF32 / bf16, with the parity each costs.

    python benchmarks/gpu.py                                  # batches 64, 128, 256; epsilon_gamma_box
    python benchmarks/gpu.py --batch 128 --composite epsilon epsilon_gamma_box --loader-images 2048
    python benchmarks/gpu.py --batch 256 --end-to-end 8192        # also lrpjax explain, decode to stored map

For each precision the table gives heatmaps/s (device only, best of the repeats, compilation excluded) and
the error against full-precision fp32 on the same images (max|dR|/max|R| and the correlation of the maps).
``--loader-images N`` also times the host input pipeline of ``lrpjax explain`` (JPEG decode, resize 256,
crop 224, normalise, thread pool) on N copies of the faces in ``--faces`` (default: the shared London
faces), to show whether it keeps up with the device. ``--end-to-end N`` runs the whole ``lrpjax explain``
job (float32 at jax's default precision, epsilon_gamma_box, predicted class, float16 store) over N links
to those faces at the first ``--batch`` and reports its images/s overall and after the first batch.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import lrpjax
from lrpjax.preprocess import TORCHVISION, zbox_bounds

PRECISIONS = {  # name -> (input dtype, jax matmul/conv precision)
    "fp32": (jnp.float32, "highest"),
    "tf32": (jnp.float32, "tensorfloat32"),
    "bf16": (jnp.bfloat16, "bfloat16"),
}


def timed(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def device_table(batches: list[int], names: list[str], repeats: int) -> list[str]:
    model = lrpjax.vgg16(num_classes=1000)
    variables = model.init(jax.random.key(0), jnp.zeros((1, 224, 224, 3)))
    low, high = zbox_bounds(TORCHVISION)
    rows = ["| batch | composite | precision | heatmaps/s | max|dR|/max|R| vs fp32 | correlation |",
            "|---|---|---|---|---|---|"]
    for batch in batches:
        images = jax.random.normal(jax.random.key(1), (batch, 224, 224, 3), jnp.float32)
        for name in names:
            composite = lrpjax.composites.get(name, **({"low": low, "high": high} if name == "epsilon_gamma_box"
                                                        else {}))
            reference = None
            for label, (dtype, precision) in PRECISIONS.items():
                x = images.astype(dtype)
                with jax.default_matmul_precision(precision):
                    def run(x=x, composite=composite):
                        return lrpjax.explain(model, variables, x, "predicted", composite).block_until_ready()

                    seconds = timed(run, repeats)
                    maps = np.asarray(run(), np.float32)
                reference = maps if reference is None else reference
                error = np.abs(maps - reference).max() / np.abs(reference).max()
                correlation = np.corrcoef(maps.ravel(), reference.ravel())[0, 1]
                rows.append(f"| {batch} | {name} | {label} | {batch / seconds:.0f} | {error:.1e} | {correlation:.5f} |")
                print(rows[-1], flush=True)
    return rows


FACES = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "faces", "london", "neutral")


def face_files(faces: str) -> list[str]:
    if not os.path.isdir(faces):
        raise SystemExit(f"faces folder {faces!r} does not exist; give a folder of face images with --faces")
    files = sorted(os.path.abspath(os.path.join(faces, f)) for f in os.listdir(faces)
                   if f.lower().endswith((".jpg", ".jpeg", ".png")))
    if not files:
        raise SystemExit(f"no JPEG or PNG faces in {faces!r}; give a folder of them with --faces")
    return files


def loader_rate(files: list[str], count: int, workers: int) -> float:
    from concurrent.futures import ThreadPoolExecutor

    from lrpjax.batch import image_loader

    paths = [files[i % len(files)] for i in range(count)]
    load = image_loader(dict(preprocessing=dict(TORCHVISION)), (224, 224, 3))
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(load, paths):
            pass
    return count / (time.perf_counter() - start)


def end_to_end(files: list[str], count: int, batch: int, workers: int) -> dict:
    import shutil
    import tempfile

    from end_to_end import make_checkpoint  # benchmarks/, beside this script

    from lrpjax.batch import explain_dataset

    work = tempfile.mkdtemp(prefix="lrpjax-gpu-e2e-")
    try:
        images = os.path.join(work, "images")
        os.makedirs(images)
        for i in range(count):
            name = f"{i:07d}{os.path.splitext(files[i % len(files)])[1]}"
            os.symlink(files[i % len(files)], os.path.join(images, name))
        make_checkpoint(os.path.join(work, "checkpoint"))
        return explain_dataset(os.path.join(work, "checkpoint"), images, os.path.join(work, "out"),
                               batch_size=batch, chunk_size=max(4 * batch, 256), dtype="float16", workers=workers)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--composite", nargs="+", default=["epsilon_gamma_box"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--loader-images", type=int, default=0)
    parser.add_argument("--end-to-end", type=int, default=0, metavar="N")
    parser.add_argument("--faces", default=FACES, help="folder of face images for the pipeline and end-to-end runs")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    print(f"devices: {jax.devices()}", file=sys.stderr)
    print("\n".join(device_table(args.batch, args.composite, args.repeats)))
    if args.loader_images:
        rate = loader_rate(face_files(args.faces), args.loader_images, args.workers)
        print(f"\ninput pipeline: {rate:.0f} images/s decoded and preprocessed with {args.workers} threads")
    if args.end_to_end:
        summary = end_to_end(face_files(args.faces), args.end_to_end, args.batch[0], args.workers)
        print(f"\nlrpjax explain, {args.end_to_end} images, batch {args.batch[0]}, {summary['devices']} device(s): "
              f"{summary['images_per_second']:.0f} images/s overall, "
              f"{summary['images_per_second_after_first_batch']:.0f} after the first batch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
