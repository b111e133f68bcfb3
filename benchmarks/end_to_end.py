"""End to end, decode to stored map: ``lrpjax explain`` against the same job written with Zennit.

    python benchmarks/end_to_end.py --images ../shared/data/faces/london/neutral --batch 16    # all 102 faces

Both sides read the same JPEGs, preprocess them identically (torchvision's resize 256 / crop 224 /
ImageNet normalisation, via ``lrpjax.io.preprocess``), explain them with epsilon_gamma_box on the same random
VGG-16 weights (1000 classes, predicted class) and write channel-summed float32 maps to an HDF5 file.
Each side runs in its own subprocess, so the peak resident memory reported is that side's alone.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time


def make_checkpoint(path: str) -> None:
    import jax
    import jax.numpy as jnp

    import lrpjax
    from lrpjax.io import checkpoints
    from lrpjax.io.preprocess import TORCHVISION

    model = lrpjax.vgg16(num_classes=1000)
    variables = model.init(jax.random.key(0), jnp.zeros((1, 224, 224, 3)))
    keys = iter(jax.random.split(jax.random.key(1), 64))
    variables = jax.tree_util.tree_map_with_path(
        lambda p, a: 0.05 * jax.random.normal(next(keys), a.shape) if "bias" in jax.tree_util.keystr(p) else a,
        variables)
    checkpoints.save(path, model, variables, {"preprocessing": dict(TORCHVISION)})


def run_lrpjax(checkpoint: str, images: str, out: str, batch: int) -> dict:
    from lrpjax.jobs.explain import explain_dataset

    start = time.perf_counter()
    summary = explain_dataset(checkpoint, images, out, composite_names=("epsilon_gamma_box",), batch_size=batch,
                              chunk_size=max(batch, 64), dtype="float32", stream=open(os.devnull, "w"))
    return {"seconds": time.perf_counter() - start,
            "steady_images_per_s": summary["images_per_second_after_first_batch"]}


def run_zennit(checkpoint: str, images: str, out: str, batch: int) -> dict:
    import h5py
    import numpy as np
    import torch

    from lrpjax.io import checkpoints
    from lrpjax.io.preprocess import load_image, preprocess, zbox_bounds
    from weights_conversion.torch_model import torch_model_for
    from weights_conversion.zennit_modules import import_zennit

    zennit = import_zennit()
    torch.set_num_threads(os.cpu_count() or 1)
    model, variables, metadata = checkpoints.load(checkpoint)
    net = torch_model_for(model, variables, None).eval()
    low, high = (torch.tensor(b, dtype=torch.float32)[None, :, None, None] for b in zbox_bounds(metadata))
    files = sorted(f for f in os.listdir(images) if f.lower().endswith((".jpg", ".jpeg", ".png")))
    start = time.perf_counter()
    first_batch = None
    os.makedirs(out, exist_ok=True)
    with h5py.File(os.path.join(out, "zennit.h5"), "w") as store:
        maps = store.create_dataset("relevance", (len(files), 224, 224), "float32", chunks=(1, 224, 224))
        for first in range(0, len(files), batch):
            names = files[first:first + batch]
            x = np.concatenate([np.asarray(preprocess(load_image(os.path.join(images, n)), metadata)) for n in names])
            x = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
            with torch.no_grad():
                target = net(x).argmax(1)
            composite = zennit.composites.EpsilonGammaBox(low=low.expand_as(x), high=high.expand_as(x))
            with zennit.attribution.Gradient(net, composite) as attributor:
                _, relevance = attributor(x.requires_grad_(), torch.eye(1000)[target])
            maps[first:first + len(names)] = relevance.sum(1).numpy()
            first_batch = first_batch or (time.perf_counter() - start, len(names))
    seconds = time.perf_counter() - start
    steady = (len(files) - first_batch[1]) / (seconds - first_batch[0]) if len(files) > first_batch[1] else None
    return {"seconds": seconds, "steady_images_per_s": steady}


def child(side: str, checkpoint: str, images: str, out: str, batch: int) -> None:
    result = (run_lrpjax if side == "lrpjax" else run_zennit)(checkpoint, images, out, batch)
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", default=os.path.join("..", "shared", "data", "faces", "london", "neutral"))
    parser.add_argument("--count", type=int, default=None, help="the first COUNT images (default: all)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--child", nargs=4, metavar=("SIDE", "CHECKPOINT", "IMAGES", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child, args.batch)
        return 0
    work = tempfile.mkdtemp(prefix="lrpjax-e2e-")
    try:
        images = os.path.join(work, "images")
        os.makedirs(images)
        for name in sorted(os.listdir(args.images))[:args.count]:
            shutil.copy(os.path.join(args.images, name), images)
        checkpoint = os.path.join(work, "checkpoint")
        make_checkpoint(checkpoint)
        results = {}
        for side in ("lrpjax", "zennit"):
            out = subprocess.run([sys.executable, __file__, "--batch", str(args.batch), "--child", side, checkpoint,
                                  images, os.path.join(work, side)], capture_output=True, text=True, check=True)
            results[side] = json.loads(out.stdout.strip().splitlines()[-1])
            count = len(os.listdir(images))
            results[side]["images_per_s"] = count / results[side]["seconds"]
            steady = results[side]["steady_images_per_s"]
            print(f"{side:7s} {results[side]['images_per_s']:7.2f} images/s overall, "
                  f"{steady or float('nan'):7.2f} after the first batch (compilation, warm-up), "
                  f"peak RSS {results[side]['peak_rss_mib']:.0f} MiB", flush=True)
        overall = results["lrpjax"]["images_per_s"] / results["zennit"]["images_per_s"]
        print(f"lrpjax / Zennit, epsilon_gamma_box, batch {args.batch}, decode to stored map: {overall:.1f}x overall",
              end="")
        if results["lrpjax"]["steady_images_per_s"] and results["zennit"]["steady_images_per_s"]:
            steady = results["lrpjax"]["steady_images_per_s"] / results["zennit"]["steady_images_per_s"]
            print(f", {steady:.1f}x after the first batch")
        print()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
