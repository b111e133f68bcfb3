"""float32 accuracy of lrpjax and Zennit, each against its own float64 result, per image, and where lrpjax's
float32 error arises layer by layer.

    python benchmarks/float32_accuracy.py                        # 24 London faces, VGG-16 224x224, epsilon_gamma_box
    python benchmarks/float32_accuracy.py --random                # 24 uniform random images instead
    python benchmarks/float32_accuracy.py --images DIR --count 48 --out out/float32_accuracy.json

The network is a VGG-16 with random He-normal weights and N(0, 0.05) biases (no pretrained weights ship);
images are the first ``--count`` files of ``--images`` (sorted), with torchvision's preprocessing (resize 256,
crop 224). The explained class is float64 Zennit's prediction, the same on every side. For each image and
side the error is :math:`\\max|R_{32} - R_{64}| / \\max|R_{64}|` (the side's float32 against its own float64).
The layer profile is lrpjax's relevance at the input of every layer (``explain_full(return_layers=True)``),
float32 against float64, as the median over images of that same error. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _relative_errors(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    axes = tuple(range(1, want.ndim))
    return np.abs(got - want).max(axis=axes) / np.abs(want).max(axis=axes)


def _quantiles(values: np.ndarray) -> dict[str, float]:
    return {name: float(np.quantile(values, q)) for name, q in
            (("min", 0), ("p25", 0.25), ("median", 0.5), ("p75", 0.75), ("p90", 0.9), ("max", 1))}


def _summary(rows: list[dict], layer_errors: dict[str, list], composite: str, seconds: float) -> dict:
    lrp, zen = np.array([r["lrpjax"] for r in rows]), np.array([r["zennit"] for r in rows])
    return {"images": len(rows), "composite": composite, "lrpjax": _quantiles(lrp), "zennit": _quantiles(zen),
            "ratio_lrpjax_over_zennit": _quantiles(lrp / zen),
            "float64_parity_max": float(max(r["float64_parity"] for r in rows)),
            "layers_median": {name: float(np.median(e)) for name, e in layer_errors.items()},
            "per_image": rows, "seconds": round(seconds, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", default=os.path.join("..", "shared", "data", "faces", "london", "neutral"))
    parser.add_argument("--count", type=int, default=24)
    parser.add_argument("--random", action="store_true",
                        help="uniform random pixels (ImageNet-normalised) instead of --images: no flat regions, so "
                             "no near-tied max pools")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--composite", default="epsilon_gamma_box")
    parser.add_argument("--out", default=os.path.join("out", "float32_accuracy.json"))
    args = parser.parse_args(argv)

    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    import lrpjax
    from lrpjax.io.imagefiles import list_image_files
    from lrpjax.io.preprocess import TORCHVISION, load_image, preprocess, zbox_bounds
    from lrpjax.jobs import crosscheck
    from weights_conversion.torch_model import torch_model_for
    from weights_conversion.zennit_modules import import_zennit

    zennit = import_zennit()
    if args.random:
        files = [f"random{k}" for k in range(args.count)]
        pixels = np.random.default_rng(0).uniform(size=(args.count, 224, 224, 3)).astype(np.float32)
        images = np.asarray(preprocess(pixels, {**TORCHVISION, "resize": None}), np.float32)
    else:
        files = list_image_files(args.images).ids[:args.count]
        images = np.concatenate([np.asarray(preprocess(load_image(os.path.join(args.images, f)), TORCHVISION))
                                 for f in files]).astype(np.float32)
    model = lrpjax.vgg16(num_classes=1000)
    variables = model.init(jax.random.key(0), jnp.zeros((1, 224, 224, 3)))
    keys = iter(jax.random.split(jax.random.key(1), 64))
    variables = jax.tree_util.tree_map_with_path(
        lambda path, a: 0.05 * jax.random.normal(next(keys), a.shape) if "bias" in jax.tree_util.keystr(path)
        else a, variables)
    v32 = jax.tree.map(lambda a: np.asarray(a, np.float32), variables)
    v64 = jax.tree.map(lambda a: np.asarray(a, np.float64), v32)
    net32 = torch_model_for(model, v32, None)
    net64 = torch_model_for(model, v64, None).double()
    bounds = zbox_bounds(TORCHVISION)
    composite = lrpjax.core.composites.get(args.composite, preprocessing=TORCHVISION)

    rows, layer_errors, started = [], {}, time.time()
    for start in range(0, len(files), args.batch):
        x = images[start:start + args.batch]
        logits = crosscheck.torch_logits(net64, x.astype(np.float64), args.batch)
        onehot = np.eye(1000)[logits.argmax(1)]
        z64 = crosscheck.zennit_relevance(zennit, net64, x.astype(np.float64), onehot, args.composite, bounds,
                                          "float64", args.batch)
        z32 = crosscheck.zennit_relevance(zennit, net32, x, onehot, args.composite, bounds, "float32", args.batch)
        full = {}
        for dtype, v in (("float64", v64), ("float32", v32)):
            full[dtype] = lrpjax.explain_full(model, v, jnp.asarray(x, dtype), None, composite,
                                              output_relevance=jnp.asarray(onehot, dtype), return_layers=True)
        ours = _relative_errors(np.asarray(full["float32"].relevance, np.float64),
                                np.asarray(full["float64"].relevance))
        theirs = _relative_errors(z32.astype(np.float64), z64)
        parity = _relative_errors(np.asarray(full["float64"].relevance), z64)
        for name, relevance64 in full["float64"].layers.items():
            layer_errors.setdefault(name, []).extend(
                _relative_errors(np.asarray(full["float32"].layers[name], np.float64), np.asarray(relevance64)))
        for k, f in enumerate(files[start:start + args.batch]):
            rows.append({"image": f, "lrpjax": float(ours[k]), "zennit": float(theirs[k]),
                         "float64_parity": float(parity[k])})
        print(f"{len(rows)}/{len(files)} images, {time.time() - started:.0f} s", file=sys.stderr, flush=True)
        summary = _summary(rows, layer_errors, args.composite, time.time() - started)
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as handle:  # after every batch: a long run leaves its results so far
            json.dump(summary, handle, indent=1)
    print(f"{args.composite}, VGG-16 224x224, {len(rows)} images: max|R32 - R64| / max|R64| per image")
    print(f"{'':8s} " + " ".join(f"{q:>9s}" for q in summary["lrpjax"]))
    for side in ("lrpjax", "zennit", "ratio_lrpjax_over_zennit"):
        print(f"{side[:8]:8s} " + " ".join(f"{v:9.2e}" for v in summary[side].values()))
    print("lrpjax float32 error at each layer's input (median over images):")
    for name, value in summary["layers_median"].items():
        print(f"  {name:8s} {value:.2e}")
    print(f"float64 parity lrpjax vs Zennit (max over images): {summary['float64_parity_max']:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
