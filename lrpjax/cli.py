"""The ``lrpjax`` command: a thin layer over the library's functions.

    lrpjax demo [--faces DIR] [--out DIR]            train a small VGG-16 on faces, explain it, write heatmaps
    lrpjax heatmaps CHECKPOINT --images DIR --out DIR  explain a folder of images with a converted checkpoint
    lrpjax crosscheck WEIGHTS --images DIR            lrpjax against Zennit on your own weights and images
    lrpjax explain CHECKPOINT --images DIR --out DIR   relevance of a whole data set into a resumable HDF5 store
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from lrpjax import crosscheck

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


def _explain(args: argparse.Namespace) -> int:
    import jax

    from lrpjax import batch, gallery

    if args.coordinator or args.distributed:
        jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id,
                                   shutdown_timeout_seconds=max(300, int(args.merge_wait)))
        index, count = jax.process_index(), jax.process_count()
    else:
        index, count = args.process_id or 0, args.num_processes or 1
    batch.explain_dataset(
        args.checkpoint, args.images, args.out, composite_names=args.composite, target=args.target,
        batch_size=args.batch_size, dtype=args.dtype, keep_channels=args.keep_channels, png=args.png,
        cmap=args.cmap, labels_csv=args.labels, labels_from_folders=args.labels_from_folders,
        chunk_size=args.chunk_size, workers=args.workers, process_index=index, process_count=count)
    if count > 1:
        if index != 0:
            return 0
        if not batch.wait_for_parts(args.out, count, timeout=args.merge_wait):
            print(f"lrpjax explain: parts still running after {args.merge_wait} s; merge later with "
                  f"python -c \"import lrpjax.batch as b; b.merge_parts({args.out!r})\"", file=sys.stderr)
            return 1
        print(f"merged the parts into {batch.merge_parts(args.out)}")
    if args.gallery:
        print(f"gallery: {gallery.write_gallery(args.out, cmap=args.cmap)}")
    return 0


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

    explain = commands.add_parser("explain", help="relevance of a whole folder into a resumable HDF5 store")
    explain.add_argument("checkpoint")
    explain.add_argument("--images", required=True, help="folder of images (recursive; ids are relative paths)")
    explain.add_argument("--out", required=True, help="folder for relevance.h5, summary.json, skipped.csv")
    explain.add_argument("--composite", nargs="+", default=["epsilon_gamma_box"])
    explain.add_argument("--target", default="predicted", help="label, predicted or a class index")
    explain.add_argument("--batch-size", type=int, default=32)
    explain.add_argument("--chunk-size", type=int, default=256, help="images per resumable chunk")
    explain.add_argument("--dtype", choices=["float16", "float32"], default="float32",
                         help="stored relevance (float16 halves the file; values below ~6e-8 flush to 0)")
    explain.add_argument("--keep-channels", action="store_true", help="store [N,H,W,C] instead of channel sums")
    explain.add_argument("--labels", default=None, help="CSV with id,label (default: IMAGES/labels.csv)")
    explain.add_argument("--labels-from-folders", action="store_true", help="label = first-level folder name")
    explain.add_argument("--png", action="store_true", help="heatmap and overlay PNGs per image and composite")
    explain.add_argument("--gallery", action="store_true", help="write index.html with a comparison grid")
    explain.add_argument("--cmap", default="coldnhot")
    explain.add_argument("--workers", type=int, default=4, help="image loading threads")
    explain.add_argument("--coordinator", default=None, help="jax.distributed coordinator HOST:PORT")
    explain.add_argument("--num-processes", type=int, default=None)
    explain.add_argument("--process-id", type=int, default=None)
    explain.add_argument("--distributed", action="store_true", help="jax.distributed from the environment")
    explain.add_argument("--merge-wait", type=float, default=3600.0,
                         help="seconds process 0 waits for the other parts (they wait as long at exit)")
    explain.set_defaults(run=_explain)

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
