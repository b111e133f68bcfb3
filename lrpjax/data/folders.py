"""Labelled face folders as a TFDS builder: identity from folder names, attributes from a CSV, fixed splits.

Two layouts cover the common face sets:

``person_folders``
    ``ROOT/<person>/<image>``: VGGFace2 (``n000001/0001_01.jpg``), ORL (``s1/1.png``), LFW
    (``Aaron_Eckhart/Aaron_Eckhart_0001.jpg``). The person is the folder name.
``flat``
    ``ROOT/[<condition>/]<image>``: one photo per person and condition, the person being the file stem
    (the London set: ``neutral/001.jpg`` and ``smiling/001.jpg``; the Canada set: ``003f.jpg``).

The label is the person (``label="identity"``) or a column of a CSV keyed by person (``label="face_gender"``
with ``london/info.csv``; ``label="Gender"`` with VGGFace2's ``identity_meta.csv``). Splits are decided once,
from the seed, when the data set is built:

``split_by="person"``
    people are divided between the splits (stratified by label), so nobody is in two splits (gender tasks);
``split_by="image"``
    each person's images are divided between the splits (identity tasks: 7/1/2 of ORL's 10 per person);
``split_by="condition"``
    a condition goes to one split (identity across expression: London neutral -> train, smiling -> test).

The builder needs no TensorFlow: it stores each file's bytes as they are (``tfds.features.Image`` from a
path), and :mod:`lrpjax.data.sources` reads the array_record files back with ``tfds.data_source``. A file
that is not an image (PIL cannot open or verify it) is skipped with a warning and counted in the data set's
metadata (``skipped``); a file that opens but fails to decode later (a truncated JPEG) is skipped and
counted by the input pipeline.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import hashlib
import json
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import tensorflow_datasets as tfds

from lrpjax.io.imagefiles import IMAGE_EXTENSIONS, verify_image_file

LAYOUTS = ("person_folders", "flat")
SPLIT_BY = ("person", "image", "condition")
MAX_SKIPPED_LISTED = 1000


class FaceImage(NamedTuple):
    """One image file: its path relative to the root, the person, the condition (``""`` if none), label."""

    file: str
    person: str
    condition: str
    label: str


@dataclasses.dataclass
class FaceFolderConfig(tfds.core.BuilderConfig):
    """Where the images are, how they are labelled and split (see the module docstring).

    ``fractions`` gives each split's share (of people for ``split_by="person"``, of each person's images for
    ``"image"``); ``condition_splits`` maps conditions to splits for ``"condition"``. ``labels_csv`` is
    relative to ``root`` unless absolute (VGGFace2: ``"../identity_meta.csv"``). ``people`` (all when empty),
    ``min_images_per_person`` and ``max_people`` (the people with the most images, ties by name) select people
    before splitting. ``root`` is not part of the data set's identity, and ``labels_csv`` enters it relative to
    ``root``: moving the folder (with its CSV) does not invalidate a built data set.
    """

    root: str = ""
    layout: str = "person_folders"
    conditions: tuple[str, ...] = ()
    label: str = "identity"
    labels_csv: str | None = None
    id_column: str = "face_id"
    split_by: str = "person"
    fractions: tuple[tuple[str, float], ...] = (("train", 0.8), ("test", 0.2))
    condition_splits: tuple[tuple[str, str], ...] = ()
    seed: int = 0
    people: tuple[str, ...] = ()
    min_images_per_person: int = 1
    max_people: int | None = None
    extensions: tuple[str, ...] = IMAGE_EXTENSIONS

    def settings(self) -> dict[str, Any]:
        """The fields that decide the data set's content (all but ``root``), JSON-ready."""
        keys = ("layout", "conditions", "label", "id_column", "split_by", "fractions",
                "condition_splits", "seed", "people", "min_images_per_person", "max_people", "extensions")
        settings = {key: getattr(self, key) for key in keys}
        labels = self.labels_path()
        settings["labels_csv"] = None if labels is None else os.path.relpath(labels, self.root).replace(os.sep, "/")
        return json.loads(json.dumps(settings))

    def labels_path(self) -> str | None:
        """The labels CSV: ``labels_csv`` as given if absolute, else joined with ``root`` (once)."""
        if self.labels_csv is None:
            return None
        return self.labels_csv if os.path.isabs(self.labels_csv) else os.path.join(self.root, self.labels_csv)

    def fingerprint(self) -> str:
        """A short hash of :meth:`settings`."""
        return hashlib.sha256(json.dumps(self.settings(), sort_keys=True).encode()).hexdigest()[:16]


def check_config(config: FaceFolderConfig) -> None:
    """Raise ``ValueError`` naming the first bad field of ``config``."""
    if not config.root or not os.path.isdir(config.root):
        raise ValueError(f"FaceFolderConfig {config.name!r}: root={config.root!r} is not a folder")
    if config.layout not in LAYOUTS:
        raise ValueError(f"FaceFolderConfig {config.name!r}: layout={config.layout!r}; choose one of {LAYOUTS}")
    if config.split_by not in SPLIT_BY:
        raise ValueError(f"FaceFolderConfig {config.name!r}: split_by={config.split_by!r}; choose one of {SPLIT_BY}")
    if config.split_by == "condition":
        if not config.condition_splits:
            raise ValueError(f"FaceFolderConfig {config.name!r}: split_by='condition' needs condition_splits")
    else:
        shares = [share for _, share in config.fractions]
        if not shares or any(s < 0 for s in shares) or abs(sum(shares) - 1) > 1e-6:
            raise ValueError(f"FaceFolderConfig {config.name!r}: fractions={config.fractions!r} must be "
                             "non-negative and sum to 1")
    if config.label != "identity" and config.labels_csv is None:
        raise ValueError(f"FaceFolderConfig {config.name!r}: label={config.label!r} needs labels_csv")


def list_images(config: FaceFolderConfig) -> list[tuple[str, str, str]]:
    """``(file, person, condition)`` of every image under ``config.root``, sorted."""
    found = []
    extensions = tuple(e.lower() for e in config.extensions)
    if config.layout == "person_folders":
        for person in sorted(os.listdir(config.root)):
            folder = os.path.join(config.root, person)
            if os.path.isdir(folder) and not person.startswith("."):
                found += [(f"{person}/{name}", person, "") for name in sorted(os.listdir(folder))
                          if name.lower().endswith(extensions)]
        return found
    for condition in config.conditions or ("",):
        folder = os.path.join(config.root, condition)
        if not os.path.isdir(folder):
            raise ValueError(f"FaceFolderConfig {config.name!r}: condition folder {folder!r} does not exist")
        found += [(os.path.join(condition, name) if condition else name, os.path.splitext(name)[0], condition)
                  for name in sorted(os.listdir(folder)) if name.lower().endswith(extensions)]
    return found


def source_listing(config: FaceFolderConfig) -> dict[str, Any]:
    """What a built data set remembers of its folder, to notice a changed one: the number of image files, their
    total size, a sha256 of their sorted names and sizes, and the labels CSV's sha256 (a listing, no image read).
    """
    digest, total = hashlib.sha256(), 0
    files = list_images(config)
    for file, _, _ in files:
        size = os.path.getsize(os.path.join(config.root, file))
        total += size
        digest.update(f"{file}\t{size}\n".encode())
    labels = config.labels_path()
    labels_sha = None
    if labels is not None and os.path.isfile(labels):
        with open(labels, "rb") as handle:
            labels_sha = hashlib.file_digest(handle, "sha256").hexdigest()
    return {"files": len(files), "bytes": total, "listing_sha256": digest.hexdigest(), "labels_sha256": labels_sha}


def read_labels(config: FaceFolderConfig) -> dict[str, str] | None:
    """``{person: label}`` from the CSV, or ``None`` for identity labels."""
    if config.label == "identity":
        return None
    path = config.labels_path()
    if not os.path.isfile(path):
        raise ValueError(f"FaceFolderConfig {config.name!r}: labels_csv {path!r} does not exist")
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle, skipinitialspace=True)
        columns = [c.strip() for c in reader.fieldnames or []]
        for column in (config.id_column, config.label):
            if column not in columns:
                raise ValueError(f"labels_csv {path!r} has no column {column!r}; it has {columns}")
        rows = [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]
    return {row[config.id_column]: row[config.label] for row in rows if row[config.label]}


def catalogue(config: FaceFolderConfig) -> tuple[dict[str, list[FaceImage]], list[str]]:
    """The images of each split and the sorted class names, decided by ``config`` (deterministic)."""
    check_config(config)
    labels = read_labels(config)
    images = [FaceImage(file, person, condition, person if labels is None else labels.get(person, ""))
              for file, person, condition in list_images(config)]
    unlabelled = sorted({image.person for image in images if not image.label})
    if unlabelled:
        warnings.warn(f"{config.name}: {len(unlabelled)} people have no {config.label!r} label and are left out "
                      f"(first: {unlabelled[:5]})", stacklevel=2)
    images = [image for image in images if image.label and (not config.people or image.person in config.people)]
    images = select_people(images, config.min_images_per_person, config.max_people)
    if not images:
        raise ValueError(f"FaceFolderConfig {config.name!r}: no labelled images under {config.root!r}")
    if config.split_by == "person":
        splits = split_by_person(images, dict(config.fractions), config.seed)
    elif config.split_by == "image":
        splits = split_by_image(images, dict(config.fractions), config.seed)
    else:
        splits = split_by_condition(images, dict(config.condition_splits))
    check_no_empty_split(config, images, splits)
    return splits, sorted({image.label for image in images}, key=natural_key)


def smallest_count(fractions: Mapping[str, float], limit: int = 10_000) -> int | None:
    """The smallest count from which on (checked 100 further) dividing by ``fractions`` (:func:`_boundaries`)
    leaves no split empty; ``None`` if a share is 0."""
    if any(share <= 0 for share in fractions.values()):
        return None
    ok = [all(stop > start for _, start, stop in _boundaries(n, fractions)) for n in range(limit + 100)]
    return next((n for n in range(limit) if all(ok[n:n + 100])), None)


def check_no_empty_split(config: FaceFolderConfig, images: Sequence[FaceImage],
                         splits: Mapping[str, Sequence[FaceImage]]) -> None:
    """``ValueError`` naming the first empty split, what it holds of, and how many people or images it needs."""
    empty = [split for split, chosen in splits.items() if not chosen]
    if not empty:
        return
    fractions = dict(config.fractions)
    need = smallest_count(fractions) if config.split_by != "condition" else None
    if config.split_by == "person":
        counts = collections.Counter(label for _, label in {(i.person, i.label) for i in images})
        have = ", ".join(f"{n} {label!r}" for label, n in sorted(counts.items()))
        detail = (f"split_by='person' divides each label's people by fractions {config.fractions}, so each label "
                  f"needs at least {need} people; it has {have}")
    elif config.split_by == "image":
        per_person = collections.Counter(image.person for image in images)
        detail = (f"split_by='image' divides each person's images by fractions {config.fractions}, so a person "
                  f"needs at least {need} images; the {len(per_person)} people have at most "
                  f"{max(per_person.values())}")
    else:
        detail = f"no image is in a condition mapped to it by condition_splits {config.condition_splits}"
    raise ValueError(f"FaceFolderConfig {config.name!r}: split {empty[0]!r} would be empty: {detail}")


def natural_key(text: str) -> list[Any]:
    """Sort key that orders embedded numbers by value: ``s2`` before ``s10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def select_people(images: Sequence[FaceImage], min_images: int, max_people: int | None) -> list[FaceImage]:
    """The images of people with at least ``min_images`` images, at most ``max_people`` (most images first)."""
    counts = collections.Counter(image.person for image in images)
    people = sorted((p for p, n in counts.items() if n >= min_images), key=lambda p: (-counts[p], p))
    kept = set(people if max_people is None else people[:max_people])
    return [image for image in images if image.person in kept]


def _boundaries(count: int, fractions: Mapping[str, float]) -> list[tuple[str, int, int]]:
    """``(split, start, stop)`` dividing ``count`` items by cumulative rounded fractions."""
    out, start, total = [], 0, 0.0
    for split, share in fractions.items():
        total += share
        stop = count if split == list(fractions)[-1] else round(count * total)
        out.append((split, start, stop))
        start = stop
    return out


def split_by_person(images: Sequence[FaceImage], fractions: Mapping[str, float],
                    seed: int) -> dict[str, list[FaceImage]]:
    """People of each label shuffled from ``seed`` and divided by ``fractions``: nobody in two splits."""
    rng = np.random.default_rng(seed)
    label_of = {image.person: image.label for image in images}
    assignment = {}
    for label in sorted(set(label_of.values())):
        people = sorted(p for p, lab in label_of.items() if lab == label)
        people = [people[i] for i in rng.permutation(len(people))]
        for split, start, stop in _boundaries(len(people), fractions):
            assignment.update({person: split for person in people[start:stop]})
    return {split: [image for image in images if assignment[image.person] == split] for split in fractions}


def split_by_image(images: Sequence[FaceImage], fractions: Mapping[str, float],
                   seed: int) -> dict[str, list[FaceImage]]:
    """Each person's images shuffled from ``seed`` and divided by ``fractions``."""
    rng = np.random.default_rng(seed)
    by_person: dict[str, list[FaceImage]] = collections.defaultdict(list)
    for image in images:
        by_person[image.person].append(image)
    splits: dict[str, list[FaceImage]] = {split: [] for split in fractions}
    for person in sorted(by_person):
        own = by_person[person]
        own = [own[i] for i in rng.permutation(len(own))]
        for split, start, stop in _boundaries(len(own), fractions):
            splits[split] += own[start:stop]
    return {split: sorted(chosen) for split, chosen in splits.items()}


def split_by_condition(images: Sequence[FaceImage], condition_splits: Mapping[str, str]) -> dict[str, list[FaceImage]]:
    """Each condition's images to its split (conditions not named are left out)."""
    splits: dict[str, list[FaceImage]] = {split: [] for split in dict.fromkeys(condition_splits.values())}
    for image in images:
        if image.condition in condition_splits:
            splits[condition_splits[image.condition]].append(image)
    return splits


class FaceFolder(tfds.core.GeneratorBasedBuilder):
    """TFDS builder for a labelled face folder; pass a :class:`FaceFolderConfig` as ``config``.

    Features: ``image`` (the file's bytes), ``label`` (class index; names in the features), ``person``,
    ``condition`` and ``file`` (path relative to the root). Metadata: ``settings``, ``root``,
    ``class_counts`` and ``people`` per split, ``skipped`` (count) and ``skipped_files`` (file, reason).
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First version."}

    def _catalogue(self) -> tuple[dict[str, list[FaceImage]], list[str]]:
        if not hasattr(self, "_cached_catalogue"):
            self._cached_catalogue = catalogue(self.builder_config)
        return self._cached_catalogue

    def _info(self) -> tfds.core.DatasetInfo:
        _, class_names = self._catalogue()
        return tfds.core.DatasetInfo(
            builder=self,
            description=f"Labelled face folder {self.builder_config.name!r} (label {self.builder_config.label!r}).",
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3)),
                "label": tfds.features.ClassLabel(names=class_names),
                "person": tfds.features.Text(),
                "condition": tfds.features.Text(),
                "file": tfds.features.Text(),
            }),
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager: Any) -> dict[str, Any]:
        splits, class_names = self._catalogue()
        config = self.builder_config
        kept, skipped = {}, []
        for split, images in splits.items():
            kept[split] = []
            for image in images:
                reason = verify_image_file(os.path.join(config.root, image.file))
                if reason is None:
                    kept[split].append(image)
                else:
                    skipped.append((image.file, reason))
                    warnings.warn(f"skipped unreadable image {os.path.join(config.root, image.file)!r}: {reason}",
                                  stacklevel=2)
        self.info.metadata.update({
            "settings": config.settings(), "root": os.path.abspath(config.root), "source": source_listing(config),
            "class_counts": {s: {name: sum(i.label == name for i in images) for name in class_names}
                             for s, images in kept.items()},
            "people": {s: len({i.person for i in images}) for s, images in kept.items()},
            "skipped": len(skipped), "skipped_files": skipped[:MAX_SKIPPED_LISTED],
        })
        return {split: self._generate_examples(images) for split, images in kept.items() if images}

    def _generate_examples(self, images: Sequence[FaceImage]):
        root = self.builder_config.root
        for image in images:
            yield image.file, {"image": os.path.join(root, image.file), "label": image.label,
                               "person": image.person, "condition": image.condition, "file": image.file}
