"""Command line: ``python -m weights_conversion FORMAT SRC.pth DEST_DIR [--arch A] [--class-names F]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from weights_conversion.convert import ARCHITECTURES, FORMATS, RESNET_ARCHITECTURES, convert_file


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m weights_conversion``."""
    parser = argparse.ArgumentParser(
        prog="python -m weights_conversion",
        description="Convert a PyTorch VGG or ResNet state dict (.pth) to an lrpjax checkpoint directory.",
    )
    parser.add_argument("format", choices=FORMATS,
                        help="torchvision: torchvision.models.vgg* or resnet*; "
                             "vggface: the VGG-Face port (vgg_face_dag); "
                             "finetuned: a torchvision-layout VGG-16 with a new head; "
                             "vggface2: the VGGFace2 ResNet-50 port (its .pkl of numpy arrays or a .pth)")
    parser.add_argument("source", help="the .pth file (read with torch.load(weights_only=True)); for vggface2 "
                                       "also a .pkl of numpy arrays (read with a numpy-only unpickler)")
    parser.add_argument("dest", help="the checkpoint directory to create")
    parser.add_argument("--arch", choices=sorted(ARCHITECTURES) + sorted(RESNET_ARCHITECTURES),
                        help="architecture (default: inferred for torchvision, vgg16 otherwise)")
    parser.add_argument("--class-names", metavar="FILE", help="a text file with one class name per line")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint at DEST")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the converter; returns the exit status (0 on success, 1 on a conversion error)."""
    args = build_parser().parse_args(argv)
    try:
        model, metadata = convert_file(
            args.format, args.source, args.dest,
            arch=args.arch, class_names_file=args.class_names, overwrite=args.overwrite,
        )
    except (OSError, ValueError) as error:
        print(f"weights_conversion: error: {error}", file=sys.stderr)
        return 1
    shape = f"layout {model.layout}" if hasattr(model, "layout") else f"pool_to {model.pool_to}"
    print(f"wrote {metadata['architecture']} ({model.num_classes} classes, width {model.width}, {shape}) "
          f"from {metadata['source']} to {args.dest}")
    return 0
