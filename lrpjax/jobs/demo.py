"""The demo job: train a small VGG-16 on real faces, explain it with LRP, write heatmaps and a report.

Two tasks, both real photographs:

- by default, face versus non-face on the 200 crops from Labeled Faces in the Wild that scikit-image
  ships (``skimage.data.lfw_subset()``, 25x25 grayscale; 160 train, 40 test): runs on a fresh machine with
  no download;
- with ``faces`` (``../shared/data/faces`` or any folder in that layout), gender on the London set (neutral
  and smiling photos of four fifths of its 102 people; tested on the other fifth and, separately, on the
  Canada set: 40 other people, another camera).

The model is a CPU-scale VGG-16 (1/8 width, batch norm), trained from scratch with :func:`lrpjax.jobs.train.fit`
(random crops, flips, colour jitter); the explanations use several composites, batch norm merged into the
convs, and explain the predicted class against the other.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
from PIL import Image

from lrpjax.core import composites, engine
from lrpjax.data.pipeline import crop_image, normalize
from lrpjax.data.shipped import lfw_subset_splits
from lrpjax.data.sources import Split, array_split
from lrpjax.io import viz
from lrpjax.io.preprocess import TORCHVISION, load_image
from lrpjax.jobs.train import TrainConfig, evaluate, fit

GENDERS = ("female", "male")
DEMO_COMPOSITES = ("epsilon_gamma_box", "epsilon_plus_flat", "epsilon_alpha2_beta1", "tutorial")


class DemoTask(NamedTuple):
    """A demo task: its splits (``extra`` tests named by summary key), preprocessing and report text."""

    title: str
    train: Split
    test: Split
    extra: dict[str, Split]
    preprocessing: dict[str, Any]
    description: str


def preprocessing_for(size: int) -> dict[str, Any]:
    """ImageNet normalisation, shorter side resized to ``size * 9 / 8``, a ``size`` crop (random in training)."""
    return {"name": f"demo{size}", "pixel_range": [0.0, 1.0], "mean": list(TORCHVISION["mean"]),
            "std": list(TORCHVISION["std"]), "resize": math.ceil(size * 9 / 8), "crop": size}


def lfw_subset_task(size: int = 32) -> DemoTask:
    """Face versus non-face on scikit-image's LFW crops."""
    splits = lfw_subset_splits()
    return DemoTask("face or not", splits["train"], splits["test"], {}, preprocessing_for(size),
                    f"{len(splits['train'])} of the 200 25x25 crops from Labeled Faces in the Wild that scikit-image "
                    f"ships (faces and non-face patches of the same photos), tested on the other "
                    f"{len(splits['test'])}")


def read_gender_set(folder: str, info_csv: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """uint8 images ``[N, H, W, 3]``, labels (0 female, 1 male) and file names of one folder.

    Unreadable images are skipped with a warning on stderr. ``ValueError`` if none is labelled.
    """
    if not os.path.isfile(info_csv):
        raise FileNotFoundError(f"faces labels {info_csv!r} do not exist")
    with open(info_csv, newline="") as handle:
        gender = {row["face_id"]: row["face_gender"] for row in csv.DictReader(handle)}
    images, labels, names = [], [], []
    for name in sorted(os.listdir(folder)):
        face_id = os.path.splitext(name)[0]
        if face_id not in gender:
            continue
        try:
            images.append(load_image(os.path.join(folder, name)))
        except ValueError as error:
            print(f"warning: skipped {error}", file=sys.stderr)
            continue
        labels.append(GENDERS.index(gender[face_id]))
        names.append(name)
    if not images:
        raise ValueError(f"no labelled images found in {folder!r} (labels from {info_csv!r})")
    return np.stack(images), np.asarray(labels), names


def london_gender_task(faces: str, size: int = 64) -> DemoTask:
    """Gender on London (a fifth of the people held out, both expressions) and on Canada."""
    info = os.path.join(faces, "london", "info.csv")
    neutral, smiling = (read_gender_set(os.path.join(faces, "london", part), info) for part in ("neutral", "smiling"))
    if neutral[2] != smiling[2]:
        raise ValueError(f"{faces}/london: neutral and smiling photos are not of the same people")
    held_out = np.arange(len(neutral[2])) % 5 == 0  # a fifth of the people, both expressions
    parts = {}
    for name, chosen in (("train", ~held_out), ("test", held_out)):
        files = [f"{c}/{n}" for c, s in (("neutral", neutral), ("smiling", smiling)) for n in np.array(s[2])[chosen]]
        parts[name] = array_split(f"london_gender:{name}", np.concatenate([neutral[0][chosen], smiling[0][chosen]]),
                                  np.concatenate([neutral[1][chosen], smiling[1][chosen]]), GENDERS, files)
    canada = read_gender_set(os.path.join(faces, "canada"), os.path.join(faces, "canada", "info.csv"))
    extra = {"canada": array_split("canada_gender:test", *canada[:2], GENDERS, canada[2])}
    return DemoTask("gender from faces", parts["train"], parts["test"], extra, preprocessing_for(size),
                    f"{len(parts['train'])} London photos (neutral and smiling) of four fifths of the people, tested "
                    f"on {len(parts['test'])} photos of the other fifth, and on the Canada set (another camera and "
                    "population)")


def run_demo(out: str, *, faces: str | None = None, size: int | None = None, width: float = 0.125, epochs: int = 30,
             seed: int = 0, composite_names: Sequence[str] = DEMO_COMPOSITES, explain_count: int = 8) -> dict:
    """Train, evaluate, explain; writes ``heatmaps.png``, one overlay PNG per explained image, ``summary.json``
    and ``report.md`` into ``out``. ``faces=None`` runs the shipped face/non-face task."""
    started = time.time()
    task = lfw_subset_task(size or 32) if faces is None else london_gender_task(faces, size or 64)
    os.makedirs(out, exist_ok=True)
    side = task.preprocessing["crop"]
    steps = epochs * math.ceil(len(task.train) / 32)
    config = TrainConfig(model={"width": width, "batch_norm": True, "pool_to": None, "input_size": side},
                         preprocessing=task.preprocessing, task=task.title, optimizer="adamw", learning_rate=1e-3,
                         weight_decay=1e-4, warmup_steps=min(steps // 10, 20), steps=steps, batch_size=32,
                         colour_jitter=0.6, seed=seed, log_every=max(steps // 10, 1), checkpoint_every=steps,
                         eval_every=steps, workers=2)
    print(f"training a VGG-16 (width {width}, {side}x{side}) for {task.title} on {len(task.train)} images",
          file=sys.stderr)
    with tempfile.TemporaryDirectory() as workdir:
        result = fit(config, task.train, workdir=workdir)
    model, variables = result.model, result.variables
    tested = {"test": evaluate(model, variables, task.test, task.preprocessing, workers=2)}
    tested.update({key: evaluate(model, variables, split, task.preprocessing, workers=2)
                   for key, split in task.extra.items()})
    print(", ".join(f"{key} accuracy {r['accuracy']:.3f}" for key, r in tested.items()), file=sys.stderr)
    figure = _explain(task, model, variables, composite_names, explain_count, seed, out)
    summary = {
        "task": task.title, "train_images": len(task.train), "test_images": len(task.test),
        "test_accuracy": tested["test"]["accuracy"], "test_loss": tested["test"]["loss"],
        **{f"{key}_accuracy": tested[key]["accuracy"] for key in task.extra},
        "per_class_accuracy": tested["test"]["per_class_accuracy"],
        "composites": list(composite_names), "seconds": round(time.time() - started, 1),
    }
    with open(os.path.join(out, "summary.json"), "w") as handle:
        json.dump(summary, handle, indent=2)
    _write_report(out, task, summary, figure)
    return summary


def _explain(task: DemoTask, model: Any, variables: Any, composite_names: Sequence[str], count: int, seed: int,
             out: str) -> str:
    """Explain ``count`` test images (evidence for the predicted class against the other); write the figure
    and overlays; return the figure's path."""
    chosen = [composites.get(n, preprocessing=task.preprocessing) for n in composite_names]
    pick = np.sort(np.random.default_rng(seed).choice(len(task.test), size=min(count, len(task.test)), replace=False))
    examples = task.test.read(pick)
    pixels = np.stack([crop_image(data, task.preprocessing) for data, _, _ in examples])
    x = np.stack([normalize(p, task.preprocessing) for p in pixels])
    # two classes: (z_pred, -z_other), summing to the log-odds
    explained = engine.explain_full(model, variables, x, "contrast", chosen)
    predicted = np.asarray(explained.targets)
    rows, row_labels = [], []
    names = task.test.class_names
    for i, (_, label, name) in enumerate(examples):
        tiles = [_enlarge(pixels[i])]
        for composite_name, relevance in zip(composite_names, explained.relevance):
            heat = viz.heatmap_image(np.asarray(relevance[i]), "coldnhot")
            tiles.append(_enlarge(heat))
            if composite_name == composite_names[0]:
                viz.save_png(viz.overlay(pixels[i], heat), os.path.join(out, f"overlay_{name.replace('/', '_')}.png"))
        rows.append(tiles)
        row_labels.append(f"{name}\n{names[label]}->{names[predicted[i]]}")
    return viz.save_png(viz.grid(rows, row_labels=row_labels, column_labels=["input", *composite_names]),
                        os.path.join(out, "heatmaps.png"))


def _enlarge(image: np.ndarray, side: int = 128) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((side, side), Image.NEAREST))


def _write_report(out: str, task: DemoTask, summary: dict, figure: str) -> None:
    lines = [
        f"# lrpjax demo: {task.title}, explained",
        "",
        f"VGG-16 (1/8 width, batch norm) trained from scratch on {task.description}.",
        "",
        f"- test accuracy: **{summary['test_accuracy']:.3f}** (loss {summary['test_loss']:.3f}, "
        f"{summary['test_images']} images)",
        *[f"- {key} accuracy: **{summary[f'{key}_accuracy']:.3f}** (trained on a few hundred photos from scratch, "
          "a model rarely carries over to another camera and population: the question the study asks of "
          "pretrained models)" for key in task.extra],
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
