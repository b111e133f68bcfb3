"""Stand-ins for the full profile's downloads, in their real formats and at the smallest sizes the code takes.

- ``vgg16-397923af.pth``: torchvision's VGG-16 state dict (``features.0.weight`` … ``classifier.6.bias``,
  1000 classes), random weights at a width multiplier (the converter reads the width off the shapes);
- ``vgg_face_dag.pth``: the VGG-Face port's state dict (``conv1_1.weight`` … ``fc8.bias``, 2622 classes);
- VGGFace2: ``vggface2/train/n000002/0001_01.jpg …`` and ``vggface2/identity_meta.csv`` as distributed
  (``Class_ID, Name, Sample_Num, Flag, Gender``, a space after each comma, quoted names, test-set people too);
- CelebA's five files (a zip of aligned JPEGs and the four text files in their layouts);
- the face set's layout: ``london/neutral/001.jpg``, ``london/info.csv``, ``london/landmarks.csv``,
  ``regions.json`` (a 22-point template instead of the 189-point one);
- human data: one dissimilarity CSV per rater (first row and column: face ids) and a triad CSV.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import pathlib
import zipfile

import numpy as np
from PIL import Image

TORCHVISION_CONVS = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)  # features.N of torchvision's vgg16
VGGFACE_CONVS = ("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3", "conv4_1", "conv4_2",
                 "conv4_3", "conv5_1", "conv5_2", "conv5_3")
CHANNELS = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)
# a 40x40 face template: a face square and six triangles (eyes, brows, nose, mouth)
POINTS = [(6, 4), (34, 4), (34, 38), (6, 38),
          (10, 14), (17, 14), (13, 18), (23, 14), (30, 14), (27, 18),
          (10, 10), (17, 10), (13, 8), (23, 10), (30, 10), (27, 8),
          (18, 18), (22, 18), (20, 26), (14, 30), (26, 30), (20, 34)]
REGIONS = {"face": [0, 1, 2, 3, 0], "left_eye": [4, 5, 6, 4], "right_eye": [7, 8, 9, 7], "left_brow": [10, 11, 12, 10],
           "right_brow": [13, 14, 15, 13], "nose": [16, 17, 18, 16], "mouth": [19, 20, 21, 19]}


def jpeg(seed: int, size: tuple[int, int]) -> bytes:
    """A random RGB JPEG of ``size`` (height, width)."""
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def _vgg16_tensors(conv_names, dense_names, width: float, classes: int, seed: int) -> dict:
    import torch  # the tests that write weights need torch, as the conversion does

    rng = np.random.default_rng(seed)
    tensors, channels = {}, 3
    for name, full in zip(conv_names, CHANNELS):
        out = max(1, round(full * width))
        tensors[f"{name}.weight"] = rng.normal(0, np.sqrt(2 / (9 * out)), (out, channels, 3, 3))
        tensors[f"{name}.bias"] = rng.normal(0, 0.05, out)
        channels = out
    hidden = max(1, round(4096 * width))
    for name, (rows, cols) in zip(dense_names, ((hidden, channels * 49), (hidden, hidden), (classes, hidden))):
        tensors[f"{name}.weight"] = rng.normal(0, np.sqrt(2 / cols), (rows, cols))
        tensors[f"{name}.bias"] = rng.normal(0, 0.05, rows)
    return {key: torch.tensor(value, dtype=torch.float32) for key, value in tensors.items()}


def write_torchvision_vgg16(path, *, width: float, seed: int = 0) -> None:
    """``torch.save`` of a torchvision-layout VGG-16 state dict (1000 classes) at ``width``."""
    import torch

    state = _vgg16_tensors([f"features.{i}" for i in TORCHVISION_CONVS], ["classifier.0", "classifier.3",
                                                                          "classifier.6"], width, 1000, seed)
    torch.save(state, path)


def write_vggface(path, *, width: float, seed: int = 1) -> None:
    """``torch.save`` of a VGG-Face (``vgg_face_dag``) state dict (2622 classes, 224x224) at ``width``."""
    import torch

    torch.save(_vgg16_tensors(VGGFACE_CONVS, ["fc6", "fc7", "fc8"], width, 2622, seed), path)


def write_vggface2(manual, *, people: int = 16, images: int = 8, seed: int = 0) -> list[str]:
    """``manual/vggface2/train/nXXXXXX/NNNN_01.jpg`` (``people`` people, half ``f``, ``images`` each, of varied
    sizes) and ``identity_meta.csv`` in its distributed format, listing test-set people as well; returns the
    train people's ids."""
    root = pathlib.Path(manual) / "vggface2"
    ids = [f"n{2 * k + 2:06d}" for k in range(people)]
    for k, person in enumerate(ids):
        (root / "train" / person).mkdir(parents=True)
        for i in range(images):
            size = (44 + (k + i) % 3 * 6, 40 + i % 2 * 8)
            (root / "train" / person / f"{i + 1:04d}_01.jpg").write_bytes(jpeg(seed + 100 * k + i, size))
    rows = ["Class_ID, Name, Sample_Num, Flag, Gender"]
    rows += [f'{person}, "Person_{k}{", Jr." if k == 3 else ""}", {images}, 1, {"fm"[k % 2]}'
             for k, person in enumerate(ids)]
    rows += [f'n{2 * k + 1:06d}, "Test_Person_{k}", 300, 0, {"mf"[k % 2]}' for k in range(3)]
    (root / "identity_meta.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return ids


def write_celeb_a(manual, *, count: int = 8) -> dict[str, str]:
    """CelebA's five files for ``count`` images (partition train/validation/test 5/1/2, alternating gender);
    returns their sha256 by file name (a stand-in cannot have the registered ones)."""
    from tensorflow_datasets.datasets.celeb_a.celeb_a_dataset_builder import ATTR_HEADINGS, LANDMARK_HEADINGS

    manual = pathlib.Path(manual)
    manual.mkdir(parents=True, exist_ok=True)
    names = [f"{i:06d}.jpg" for i in range(1, count + 1)]
    with zipfile.ZipFile(manual / "img_align_celeba.zip", "w") as archive:
        for i, name in enumerate(names):
            archive.writestr(f"img_align_celeba/{name}", jpeg(i, (218, 178)))
    partition = [0] * (count - 3) + [1, 2, 2]
    male = [1 - 2 * (i % 2) for i in range(count)]
    (manual / "list_eval_partition.txt").write_text("".join(f"{n} {p}\n" for n, p in zip(names, partition)))
    (manual / "identity_CelebA.txt").write_text("".join(f"{n} {7 + i % 2}\n" for i, n in enumerate(names)))
    attributes = [" ".join(str(m if h == "Male" else -1) for h in ATTR_HEADINGS) for m in male]
    (manual / "list_attr_celeba.txt").write_text(
        f"{count}\n{' '.join(ATTR_HEADINGS)}\n" + "".join(f"{n} {a}\n" for n, a in zip(names, attributes)))
    (manual / "list_landmarks_align_celeba.txt").write_text(
        f"{count}\n{' '.join(LANDMARK_HEADINGS)}\n" + "".join(f"{n} {' '.join(['1'] * 10)}\n" for n in names))
    files = ("img_align_celeba.zip", "list_eval_partition.txt", "list_attr_celeba.txt",
             "list_landmarks_align_celeba.txt", "identity_CelebA.txt")
    return {name: hashlib.sha256((manual / name).read_bytes()).hexdigest() for name in files}


def write_faces(faces, *, count: int = 8, side: int = 40, seed: int = 0) -> list[str]:
    """The face set's files for ``count`` London neutral faces (square JPEGs, ``info.csv``, landmarks) and a
    ``regions.json``; returns the face ids."""
    faces = pathlib.Path(faces)
    (faces / "london" / "neutral").mkdir(parents=True)
    rng = np.random.default_rng(seed)
    ids = [f"{i + 1:03d}" for i in range(count)]
    for i, face in enumerate(ids):
        (faces / "london" / "neutral" / f"{face}.jpg").write_bytes(jpeg(seed + i, (side, side)))
    with open(faces / "london" / "info.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["face_id", "face_age", "face_gender", "face_eth"])
        writer.writerows([face, 20 + i, ("female", "male")[i % 2], "white"] for i, face in enumerate(ids))
    scale = side / 40
    with open(faces / "london" / "landmarks.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["face_id", "point", "x", "y"])
        for face in ids:
            writer.writerows([face, p, round(scale * x + rng.uniform(-1, 1), 2), round(scale * y, 2)]
                             for p, (x, y) in enumerate(POINTS))
    (faces / "regions.json").write_text(json.dumps({"template": "stand-in", "points": len(POINTS),
                                                    "regions": REGIONS}))
    return ids


def write_human(folder, ids, *, raters: int = 3, seed: int = 0) -> None:
    """``rdm_1.csv`` … (one symmetric dissimilarity matrix per rater over ``ids``) and ``triads.csv``."""
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    base = rng.uniform(0, 1, (len(ids), len(ids)))
    for r in range(raters):
        rdm = base + 0.2 * rng.uniform(0, 1, base.shape)
        rdm = (rdm + rdm.T) / 2
        np.fill_diagonal(rdm, 0)
        with open(folder / f"rdm_{r + 1}.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["", *ids])
            writer.writerows([face, *(f"{v:.4f}" for v in row)] for face, row in zip(ids, rdm))
    with open(folder / "triads.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["target", "option1", "option2", "choice"])
        for _ in range(12):
            target, a, b = rng.choice(len(ids), 3, replace=False)
            writer.writerow([ids[target], ids[a], ids[b], ids[a if base[target, a] < base[target, b] else b]])
