"""The ``lrpjax`` command: a thin layer over the library's functions.

    lrpjax demo [--faces DIR] [--out DIR]            train a small VGG-16 on faces, explain it, write heatmaps
    lrpjax heatmaps CHECKPOINT --images DIR --out DIR  explain a folder of images with a converted checkpoint
    lrpjax crosscheck WEIGHTS --images DIR            lrpjax against Zennit on your own weights and images
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

DEFAULT_FACES = os.path.join("..", "shared", "data", "faces")


def _demo(args: argparse.Namespace) -> int:
    from lrpjax.demo import run_demo

    summary = run_demo(args.faces, args.out, epochs=args.epochs, seed=args.seed, size=args.size)
    print(f"test accuracy {summary['test_accuracy']:.3f}; heatmaps and report in {args.out}/")
    return 0


def _heatmaps(args: argparse.Namespace) -> int:
    import numpy as np

    from lrpjax import checkpoints, composites, engine, viz
    from lrpjax.preprocess import load_image, preprocess, zbox_bounds

    model, variables, metadata = checkpoints.load(args.checkpoint)
    low, high = zbox_bounds(metadata)
    needs_bounds = {"epsilon_gamma_box", "tutorial"}
    chosen = [composites.get(n, **({"low": low, "high": high} if n in needs_bounds else {})) for n in args.composite]
    files = sorted(f for f in os.listdir(args.images) if not f.startswith("."))
    written = 0
    for name in files:
        try:
            image = load_image(os.path.join(args.images, name))
        except ValueError as error:
            print(f"skipped: {error}", file=sys.stderr)
            continue
        x = preprocess(image, metadata)
        logits = model.apply(variables, x)
        target = int(np.argmax(logits[0])) if args.target is None else args.target
        result = engine.explain_full(model, variables, x, [target], chosen)
        for composite_name, relevance in zip(args.composite, result.relevance):
            heat = viz.heatmap_image(np.asarray(relevance[0]), args.cmap)
            stem = os.path.splitext(name)[0]
            viz.save_png(heat, os.path.join(args.out, f"{stem}_{composite_name}.png"))
        written += 1
    print(f"explained {written} of {len(files)} files into {args.out}/")
    return 0 if written else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lrpjax", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="train a small VGG-16 on faces, explain it, write heatmaps")
    demo.add_argument("--faces", default=DEFAULT_FACES, help="faces folder (london/, canada/ with info.csv)")
    demo.add_argument("--out", default=os.path.join("out", "demo"))
    demo.add_argument("--epochs", type=int, default=30)
    demo.add_argument("--size", type=int, default=64)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=_demo)

    heatmaps = commands.add_parser("heatmaps", help="explain a folder of images with a converted checkpoint")
    heatmaps.add_argument("checkpoint")
    heatmaps.add_argument("--images", required=True)
    heatmaps.add_argument("--out", required=True)
    heatmaps.add_argument("--composite", nargs="+", default=["epsilon_gamma_box"])
    heatmaps.add_argument("--target", type=int, default=None, help="class to explain (default: predicted)")
    heatmaps.add_argument("--cmap", default="coldnhot")
    heatmaps.set_defaults(run=_heatmaps)

    try:
        from lrpjax import crosscheck
    except ImportError:  # pragma: no cover - only while crosscheck is absent
        crosscheck = None
    if crosscheck is not None:
        check = commands.add_parser("crosscheck", help="compare lrpjax with Zennit on your weights and images")
        crosscheck.add_arguments(check)
        check.set_defaults(run=crosscheck.main)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError, FileExistsError) as error:
        print(f"lrpjax {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
