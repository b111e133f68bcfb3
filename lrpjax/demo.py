"""The demo job: train a small VGG-16 for gender on real faces, explain it, write heatmaps and a report.

It trains on the London set (neutral and smiling photos of four fifths of its 102 people),
tests on the photos of the other fifth and, separately, on the Canada set (40 other people,
another camera), all from ``../shared/data/faces``. The
model is a CPU-scale VGG-16 (1/8 width, batch norm, 64x64 input); the explanations use
several composites, batch norm merged into the convs.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from collections.abc import Sequence

import numpy as np
from PIL import Image

from lrpjax import composites, engine, viz
from lrpjax.models.vgg import vgg16
from lrpjax.preprocess import TORCHVISION, load_image, zbox_bounds
from lrpjax.train import evaluate, fit

GENDERS = ("female", "male")
MEAN = np.asarray(TORCHVISION["mean"], np.float32)
STD = np.asarray(TORCHVISION["std"], np.float32)
DEMO_COMPOSITES = ("epsilon_gamma_box", "epsilon_plus_flat", "epsilon_alpha2_beta1", "tutorial")


def read_gender_set(folder: str, info_csv: str, size: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """uint8 images ``[N, size, size, 3]``, labels (0 female, 1 male) and file names of one folder.

    Unreadable images are skipped with a warning on stderr.
    """
    with open(info_csv, newline="") as handle:
        gender = {row["face_id"]: row["face_gender"] for row in csv.DictReader(handle)}
    images, labels, names = [], [], []
    for name in sorted(os.listdir(folder)):
        face_id = os.path.splitext(name)[0]
        if face_id not in gender:
            continue
        try:
            image = load_image(os.path.join(folder, name))
        except ValueError as error:
            print(f"warning: skipped {error}", file=sys.stderr)
            continue
        images.append(np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR)))
        labels.append(GENDERS.index(gender[face_id]))
        names.append(name)
    if not images:
        raise ValueError(f"no labelled images found in {folder!r} (labels from {info_csv!r})")
    return np.stack(images), np.asarray(labels), names


def normalize_pixels(images: np.ndarray) -> np.ndarray:
    """uint8 RGB -> float32 normalised with ImageNet's mean and std (torchvision preprocessing)."""
    return ((images.astype(np.float32) / 255.0 - MEAN) / STD).astype(np.float32)


def flip_and_shift(rng: np.random.Generator, batch: np.ndarray, shift: int = 4, colour: float = 0.6) -> np.ndarray:
    """Random horizontal flips, shifts of up to ``shift`` pixels (edges repeated) and per-channel gains and
    offsets of up to ``colour`` (in normalised units), so cameras' colour casts do not decide gender."""
    out = np.empty_like(batch)
    gains = 1 + rng.uniform(-colour / 2, colour / 2, size=(len(batch), 1, 1, 3)).astype(batch.dtype)
    offsets = rng.uniform(-colour, colour, size=(len(batch), 1, 1, 3)).astype(batch.dtype)
    batch = batch * gains + offsets
    for i, image in enumerate(batch):
        if rng.random() < 0.5:
            image = image[:, ::-1]
        dy, dx = rng.integers(-shift, shift + 1, size=2)
        padded = np.pad(image, ((shift, shift), (shift, shift), (0, 0)), mode="edge")
        out[i] = padded[shift + dy:shift + dy + image.shape[0], shift + dx:shift + dx + image.shape[1]]
    return out


def run_demo(faces: str, out: str, *, size: int = 64, width: float = 0.125, epochs: int = 30, seed: int = 0,
             composite_names: Sequence[str] = DEMO_COMPOSITES, explain_count: int = 8) -> dict:
    """Train, evaluate, explain; writes ``heatmaps.png``, one overlay PNG per image and ``report.md``."""
    started = time.time()
    os.makedirs(out, exist_ok=True)
    info = os.path.join(faces, "london", "info.csv")
    neutral, smiling = (read_gender_set(os.path.join(faces, "london", part), info, size)
                        for part in ("neutral", "smiling"))
    if neutral[2] != smiling[2]:
        raise ValueError(f"{faces}/london: neutral and smiling photos are not of the same people")
    held_out = np.arange(len(neutral[2])) % 5 == 0  # a fifth of the people, both expressions
    train_images = np.concatenate([neutral[0][~held_out], smiling[0][~held_out]])
    train_labels = np.concatenate([neutral[1][~held_out], smiling[1][~held_out]])
    test_images = np.concatenate([neutral[0][held_out], smiling[0][held_out]])
    test_labels = np.concatenate([neutral[1][held_out], smiling[1][held_out]])
    test_names = [f"neutral/{n}" for n in np.array(neutral[2])[held_out]] + \
                 [f"smiling/{n}" for n in np.array(smiling[2])[held_out]]
    canada_images, canada_labels, _ = read_gender_set(os.path.join(faces, "canada"),
                                                      os.path.join(faces, "canada", "info.csv"), size)
    print(f"training a VGG-16 (width {width}, {size}x{size}) on {len(train_images)} London photos",
          file=sys.stderr)
    model = vgg16(num_classes=2, width=width, batch_norm=True, pool_to=None, input_size=size)
    state = fit(model, normalize_pixels(train_images), train_labels, epochs=epochs, batch_size=32, seed=seed,
                augment=flip_and_shift)
    variables = state.variables
    result = evaluate(model, variables, normalize_pixels(test_images), test_labels)
    canada = evaluate(model, variables, normalize_pixels(canada_images), canada_labels)
    print(f"held-out London accuracy {result['accuracy']:.3f}, Canada {canada['accuracy']:.3f}", file=sys.stderr)

    low, high = zbox_bounds(TORCHVISION)
    chosen = [composites.get(n, **({"low": low, "high": high} if n in ("epsilon_gamma_box", "tutorial") else {}))
              for n in composite_names]
    pick = np.random.default_rng(seed).choice(len(test_images), size=min(explain_count, len(test_images)),
                                              replace=False)
    pick.sort()
    # evidence for the predicted class against the other: R = (z_pred, -z_other), summing to z_pred - z_other
    logits = np.asarray(model.apply(variables, normalize_pixels(test_images[pick])))
    contrast = np.where(np.eye(2)[result["predictions"][pick]] > 0, 1.0, -1.0) * logits
    explained = engine.explain_full(model, variables, normalize_pixels(test_images[pick]), None, chosen,
                                    output_relevance=contrast.astype(np.float32))
    rows, row_labels = [], []
    for i, index in enumerate(pick):
        tiles = [_enlarge(test_images[index])]
        for name, relevance in zip(composite_names, explained.relevance):
            heat = viz.heatmap_image(np.asarray(relevance[i]), "coldnhot")
            tiles.append(_enlarge(heat))
            if name == composite_names[0]:
                overlay_name = f"overlay_{test_names[index].replace('/', '_')}.png"
                viz.save_png(viz.overlay(test_images[index], heat), os.path.join(out, overlay_name))
        rows.append(tiles)
        predicted = GENDERS[result["predictions"][index]]
        row_labels.append(f"{test_names[index]}\n{GENDERS[test_labels[index]]}->{predicted}")
    figure = viz.save_png(viz.grid(rows, row_labels=row_labels, column_labels=["input", *composite_names]),
                          os.path.join(out, "heatmaps.png"))
    summary = {
        "train_images": int(len(train_images)), "test_images": int(len(test_images)),
        "test_accuracy": result["accuracy"], "test_loss": result["loss"], "canada_accuracy": canada["accuracy"],
        "per_class_accuracy": {GENDERS[c]: a for c, a in result["per_class_accuracy"].items()},
        "composites": list(composite_names), "seconds": round(time.time() - started, 1),
    }
    with open(os.path.join(out, "summary.json"), "w") as handle:
        json.dump(summary, handle, indent=2)
    _write_report(out, summary, figure)
    return summary


def _enlarge(image: np.ndarray, side: int = 128) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((side, side), Image.NEAREST))


def _write_report(out: str, summary: dict, figure: str) -> None:
    lines = [
        "# lrpjax demo: gender from faces, explained",
        "",
        f"VGG-16 (1/8 width, batch norm) trained from scratch on {summary['train_images']} London photos "
        f"(neutral and smiling) of four fifths of the people, tested on {summary['test_images']} photos of "
        "the other fifth, and on the Canada set (another camera and population).",
        "",
        f"- held-out London accuracy: **{summary['test_accuracy']:.3f}** (loss {summary['test_loss']:.3f})",
        f"- Canada accuracy: **{summary['canada_accuracy']:.3f}** (trained on 160 photos from scratch, the "
        "model does not carry over to another camera and population: the question the study asks of "
        "pretrained models)",
        f"- per class: {', '.join(f'{k} {v:.3f}' for k, v in summary['per_class_accuracy'].items())}",
        f"- run time: {summary['seconds']} s",
        "",
        "Relevance of the predicted class against the other (output relevance z_pred for the predicted class, "
        "-z_other for the other; red: for, blue: against; coldnhot, symmetric scale):",
        "",
        f"![heatmaps]({os.path.basename(figure)})",
        "",
        "The biases (batch-norm shifts merged into the convs) absorb part of the relevance, so a map can sum to "
        "less than the output's relevance, or even change sign: a blue map says the pixels' evidence alone argues "
        "against the class and the biases carry the decision.",
        "",
    ]
    with open(os.path.join(out, "report.md"), "w") as handle:
        handle.write("\n".join(lines))
