"""The ``lrpjax`` command: a thin layer over the library's functions.

    lrpjax demo [--faces DIR] [--out DIR]            train a small VGG-16 on faces, explain it, write heatmaps
    lrpjax train WORKDIR --train NAME:SPLIT ...       finetune a VGG or ResNet for a task (resumes in WORKDIR)
    lrpjax crosscheck WEIGHTS --images DIR            lrpjax against Zennit on your own weights and images
    lrpjax explain CHECKPOINT --images DIR --out DIR   relevance of a whole data set into a resumable HDF5 store
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from lrpjax.jobs import crosscheck, workdir

DEFAULT_FACES = os.path.join("..", "shared", "data", "faces")


def _demo(args: argparse.Namespace) -> int:
    from lrpjax.jobs.demo import run_demo

    summary = run_demo(args.out, faces=args.faces, epochs=args.epochs, seed=args.seed, size=args.size)
    print(f"test accuracy {summary['test_accuracy']:.3f}; heatmaps and report in {args.out}/")
    return 0


def _train(args: argparse.Namespace) -> int:
    with workdir.exclusive(workdir.check_writable(args.workdir, what="WORKDIR"), command="train"):
        return _train_locked(args)


def _train_locked(args: argparse.Namespace) -> int:
    import json

    from lrpjax import data
    from lrpjax.jobs import train

    paths = data.DataPaths(args.data_dir, faces=args.faces, manual_dir=args.manual_dir)
    preprocessing = None if args.preprocessing is None else json.loads(args.preprocessing)
    config = train.TrainConfig(
        base=args.base, model=_model_fields(args), preprocessing=preprocessing, task=args.task or args.train,
        trainable=args.trainable, optimizer=args.optimizer, learning_rate=args.learning_rate,
        weight_decay=args.weight_decay, warmup_steps=args.warmup_steps, schedule=args.schedule, steps=args.steps,
        batch_size=args.batch_size, seed=args.seed, eval_every=args.eval_every,
        checkpoint_every=args.checkpoint_every, workers=args.workers)
    splits = {"train": data.open_named_split(args.train, paths),
              "validation": args.validation and data.open_named_split(args.validation, paths),
              "tests": [data.open_named_split(spec, paths) for spec in args.test]}
    results = train.run(config, args.workdir, **splits)
    summary = ", ".join(f"{name} {r['accuracy']:.3f}" for name, r in results["test"].items())
    print(f"trained to step {results['step']}; test accuracy: {summary or 'no test split'}; "
          f"checkpoint in {os.path.join(args.workdir, 'model')}")
    return 0


def _model_fields(args: argparse.Namespace) -> dict:
    """``TrainConfig.model`` from the flags: a grid config's ``model`` field (``{}`` with ``--base``)."""
    given = [flag for flag, value in (("--family", args.family), ("--depth", args.depth), ("--layout", args.layout),
                                      ("--batch-norm", args.batch_norm)) if value is not None]
    if args.base:
        if given:
            raise ValueError(f"{'/'.join(given)} given with --base {args.base}: the base fixes the architecture")
        return {}
    family = args.family or "vgg"
    wrong = [flag for flag in given if flag == {"vgg": "--layout", "resnet": "--batch-norm"}[family]]
    if wrong:
        raise ValueError(f"{wrong[0]} is not a {family} option: --layout is a ResNet's (torchvision, vggface2), "
                         "--batch-norm a VGG's (a ResNet always has batch norm)")
    fields = {"family": "resnet", "layout": args.layout or "torchvision"} if family == "resnet" else {
        "batch_norm": True if args.batch_norm is None else args.batch_norm, "pool_to": None}
    depth = {} if args.depth is None else {"depth": args.depth}
    return {**fields, **depth, "width": args.width, "input_size": args.input_size}


def _explain(args: argparse.Namespace) -> int:
    import jax

    from lrpjax.jobs import explain as batch
    from lrpjax.jobs import gallery, store

    workdir.check_writable(args.out, what="--out", subfolders=("png",) if args.png else ())
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
        if not store.wait_for_parts(args.out, count, timeout=args.merge_wait):
            print(f"lrpjax explain: parts still running after {args.merge_wait} s; merge later with "
                  f"python -c \"import lrpjax.jobs.explain as b; b.merge_parts({args.out!r})\"", file=sys.stderr)
            return 1
        print(f"merged the parts into {store.merge_parts(args.out)}")
    if args.gallery:
        print(f"gallery: {gallery.write_gallery(args.out, cmap=args.cmap)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lrpjax", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="train a small VGG-16 on faces, explain it, write heatmaps")
    demo.add_argument("--faces", default=None,
                      help=f"faces folder (london/, canada/ with info.csv; e.g. {DEFAULT_FACES}): gender on London "
                           "instead of the default face/non-face task on scikit-image's LFW crops")
    demo.add_argument("--out", default=os.path.join("out", "demo"))
    demo.add_argument("--epochs", type=int, default=30)
    demo.add_argument("--size", type=int, default=None, help="input side (default 32, or 64 with --faces)")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=_demo)

    fit = commands.add_parser("train", help="finetune a VGG or ResNet for a task; run again to resume")
    fit.add_argument("workdir", help="checkpoints, metrics.jsonl, results.json and the final model/ go here")
    fit.add_argument("--train", required=True, help="data split NAME:SPLIT, e.g. london_gender:train")
    fit.add_argument("--validation", default=None, help="split for keep-best, e.g. london_gender:validation")
    fit.add_argument("--test", nargs="*", default=[], help="splits to test the final model on")
    fit.add_argument("--data-dir", default=os.path.join("out", "tfds"), help="where data sets are built")
    fit.add_argument("--faces", default=DEFAULT_FACES, help="the small face sets (london/, canada/, orl/)")
    fit.add_argument("--manual-dir", default=None, help="large sets: lfw/ or lfw.tgz, vggface2/, CelebA's files")
    fit.add_argument("--base", default=None, help="checkpoint to finetune (default: random initialisation)")
    fit.add_argument("--family", default=None, choices=["vgg", "resnet"], help="without --base: the network (vgg)")
    fit.add_argument("--depth", type=int, default=None,
                     help="without --base: VGG 11, 13, 16 (default), 19; ResNet 18, 34, 50 (default), 101, 152")
    fit.add_argument("--layout", default=None, choices=["torchvision", "vggface2"],
                     help="without --base, ResNet only: torchvision's (default) or the VGGFace2 port's")
    fit.add_argument("--width", type=float, default=0.125, help="without --base: channel multiplier")
    fit.add_argument("--input-size", type=int, default=64, help="without --base: input side")
    fit.add_argument("--batch-norm", action=argparse.BooleanOptionalAction, default=None,
                     help="without --base, VGG only: a batch norm after every conv (default: yes)")
    fit.add_argument("--preprocessing", default=None, help="JSON preprocessing dict (default: the base's)")
    fit.add_argument("--task", default=None, help="task label stored in the checkpoint (default: --train)")
    fit.add_argument("--trainable", default="all", choices=["head", "fc", "conv5", "layer4", "all"],
                     help="what trains: VGG head (fc8), fc (fc6-fc8), conv5 (block 5 and up); ResNet head or fc (fc), "
                          "layer4 or conv5 (layer4 and fc); all")
    fit.add_argument("--optimizer", default="sgd", choices=["sgd", "adamw"])
    fit.add_argument("--schedule", default="cosine", choices=["cosine", "constant"])
    fit.add_argument("--learning-rate", type=float, default=0.01)
    fit.add_argument("--weight-decay", type=float, default=5e-4)
    fit.add_argument("--warmup-steps", type=int, default=0)
    fit.add_argument("--steps", type=int, default=1000)
    fit.add_argument("--batch-size", type=int, default=32)
    fit.add_argument("--eval-every", type=int, default=100)
    fit.add_argument("--checkpoint-every", type=int, default=100)
    fit.add_argument("--workers", type=int, default=4, help="image decoding threads")
    fit.add_argument("--seed", type=int, default=0, help="fixes the new head, data order, augmentation, dropout")
    fit.set_defaults(run=_train)


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
    explain.add_argument("--workers", type=int, default=None, help="image loading threads (default: one per core)")
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
    except (ValueError, OSError, workdir.WorkdirBusy) as error:  # one line naming the path, never a traceback
        print(f"lrpjax {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
