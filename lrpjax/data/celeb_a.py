"""CelebA (Liu et al., 2015) from a manual-download folder, as TFDS's ``celeb_a``, without TensorFlow.

TFDS's own ``celeb_a`` builder reads ``img_align_celeba.zip`` through ``tf.io.gfile``, so it needs
TensorFlow. :class:`CelebA` is that builder with Python's ``zipfile`` instead: the same name, version,
features and splits, written as array_record into ``DATA_DIR/celeb_a/2.1.0`` where ``tfds.data_source``
and ``tfds.builder_from_directory`` read it. The manual folder holds the five files of the CelebA site
(or of TFDS's download folder): ``img_align_celeba.zip``, ``list_eval_partition.txt``,
``list_attr_celeba.txt``, ``list_landmarks_align_celeba.txt``, ``identity_CelebA.txt``; their sha256 are
checked against TFDS's registry before anything is built.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.datasets.celeb_a import celeb_a_dataset_builder as tfds_celeb_a

from lrpjax.data.sources import Split, require_array_record
from lrpjax.io.checkpoints import sha256_file

CELEB_A_FILES = {"img_align_celeba": "img_align_celeba.zip", "list_eval_partition": "list_eval_partition.txt",
                 "list_attr_celeba": "list_attr_celeba.txt", "landmarks_celeba": "list_landmarks_align_celeba.txt",
                 "identity_celeba": "identity_CelebA.txt"}
GENDERS = ("female", "male")


class _ZipImages(Mapping):
    """``{"000001.jpg": bytes}`` read from the zip on access (not all 1.4 GB at once)."""

    def __init__(self, path: str):
        self.archive = zipfile.ZipFile(path)
        self.members = {os.path.basename(m.filename): m for m in self.archive.infolist() if not m.is_dir()}

    def __getitem__(self, name: str) -> bytes:
        return self.archive.read(self.members[name])

    def __iter__(self) -> Iterator[str]:
        return iter(self.members)

    def __len__(self) -> int:
        return len(self.members)


class CelebA(tfds_celeb_a.Builder, skip_registration=True):
    """TFDS's ``celeb_a`` built from ``manual_dir`` with ``zipfile`` (see the module docstring)."""

    name = "celeb_a"
    pkg_dir_path = tfds_celeb_a.Builder._get_pkg_dir_path()
    MANUAL_DOWNLOAD_INSTRUCTIONS = "Place CelebA's five files (see lrpjax.data.celeb_a) in manual_dir."

    def _split_generators(self, dl_manager: Any) -> list[Any]:
        files = {key: os.path.join(os.fspath(dl_manager.manual_dir), name) for key, name in CELEB_A_FILES.items()}
        images = _ZipImages(files["img_align_celeba"])
        return [tfds.core.SplitGenerator(name=split, gen_kwargs={"file_id": file_id, "downloaded_dirs": files,
                                                                 "downloaded_images": images})
                for file_id, split in enumerate((tfds.Split.TRAIN, tfds.Split.VALIDATION, tfds.Split.TEST))]


def registered_sha256() -> dict[str, str]:
    """The sha256 TFDS registers for each of the five files, by file name."""
    return {info.filename: info.checksum for info in tfds_celeb_a.Builder.url_infos.values()}


def check_celeb_a_files(manual_dir: str | os.PathLike[str], *, verify: bool = True) -> None:
    """``ValueError`` listing CelebA's files missing from ``manual_dir`` or (``verify``) whose sha256 differs from
    TFDS's registry, each with the sha256 it should have (the check reads the 1.4 GB zip: a few seconds)."""
    manual_dir = os.fspath(manual_dir)
    missing = [name for name in CELEB_A_FILES.values() if not os.path.isfile(os.path.join(manual_dir, name))]
    if missing:
        raise ValueError(f"manual_dir={manual_dir!r} lacks CelebA's {missing} (see lrpjax.data.celeb_a)")
    if verify:
        expected = registered_sha256()
        wrong = []
        for name in CELEB_A_FILES.values():
            if name in expected:
                found = sha256_file(os.path.join(manual_dir, name))
                if found != expected[name]:
                    wrong.append(f"{name} has sha256 {found}, expected {expected[name]}")
        if wrong:
            raise ValueError(f"manual_dir={manual_dir!r}: CelebA files differ from the registered sha256 "
                             f"(TFDS's celeb_a): {'; '.join(wrong)}")


def prepare_celeb_a(data_dir: str | os.PathLike[str], manual_dir: str | os.PathLike[str], *,
                    verify: bool = True) -> str:
    """Build ``celeb_a`` (array_record) under ``data_dir`` from ``manual_dir``; returns its directory.

    Raises ``ValueError`` from :func:`check_celeb_a_files` (missing files, or a sha256 that differs from
    TFDS's registry, naming the expected one).
    """
    manual_dir = os.fspath(manual_dir)
    check_celeb_a_files(manual_dir, verify=verify)
    builder = CelebA(data_dir=os.fspath(data_dir), file_format="array_record")
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    return os.fspath(builder.data_dir)


def celeb_a_directory(data_dir: str | os.PathLike[str]) -> str:
    """The built ``celeb_a`` under ``data_dir`` (its newest version); ``ValueError`` if there is none."""
    root = os.path.join(os.fspath(data_dir), "celeb_a")
    versions = sorted(v for v in os.listdir(root) if v[:1].isdigit()) if os.path.isdir(root) else []
    if not versions:
        raise ValueError(f"no celeb_a under data_dir={os.fspath(data_dir)!r}; build it with prepare_celeb_a")
    return os.path.join(root, versions[-1])


def celeb_a_split(data_dir: str | os.PathLike[str], split: str, task: str, *, min_images: int = 20,
                  max_people: int | None = 1000, fractions: Mapping[str, float] | None = None,
                  seed: int = 0) -> Split:
    """CelebA for ``task`` ``"gender"`` (attribute ``Male``; the official, identity-disjoint splits) or
    ``"identity"`` (people of the official train split with at least ``min_images`` images, at most
    ``max_people``, each person's images divided by ``fractions``, default train 0.8 / validation 0.1 /
    test 0.1, from ``seed``; the identity of every train record is read once and cached beside the data)."""
    directory = celeb_a_directory(data_dir)
    builder = tfds.builder_from_directory(directory)
    require_array_record(builder, directory)
    if task == "gender":
        source = builder.as_data_source(split=split, decoders={"image": tfds.decode.SkipDecoding()})
        return Split(f"celeb_a_gender:{split}", source, GENDERS, label_of=_celeb_a_male)
    if task != "identity":
        raise ValueError(f"task={task!r}; choose 'gender' or 'identity'")
    source = builder.as_data_source(split="train", decoders={"image": tfds.decode.SkipDecoding()})
    identities = _celeb_a_identities(source, os.path.join(directory, "lrpjax_identity_train.npy"))
    indices, names = identity_subset(identities, split, min_images=min_images, max_people=max_people,
                                     fractions=fractions or {"train": 0.8, "validation": 0.1, "test": 0.1}, seed=seed)
    number = {int(n): i for i, n in enumerate(names)}
    return Split(f"celeb_a_identity:{split}", source, tuple(str(n) for n in names), indices=indices,
                 label_of=lambda record: number[int(record["identity"]["Identity_No"])])


def _celeb_a_male(record: Mapping[str, Any]) -> int:
    return int(bool(record["attributes"]["Male"]))


def _celeb_a_identities(source: Any, cache: str, chunk: int = 4096) -> np.ndarray:
    if os.path.isfile(cache):
        return np.load(cache)
    found = []
    for start in range(0, len(source), chunk):
        records = source.__getitems__(list(range(start, min(start + chunk, len(source)))))
        found += [int(r["identity"]["Identity_No"]) for r in records]
    identities = np.asarray(found, np.int64)
    np.save(cache, identities)
    return identities


def identity_subset(identities: np.ndarray, split: str, *, min_images: int, max_people: int | None,
                    fractions: Mapping[str, float], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Record indices of ``split`` and the chosen identities (sorted): the people with at least ``min_images``
    records (at most ``max_people``, most records first), each person's records divided by ``fractions``."""
    if split not in fractions:
        raise ValueError(f"split={split!r}; choose one of {list(fractions)}")
    people, counts = np.unique(identities, return_counts=True)
    order = np.lexsort((people, -counts))
    chosen = people[order][counts[order] >= min_images][:max_people]
    rng = np.random.default_rng(seed)
    picked = []
    for person in np.sort(chosen):
        own = np.flatnonzero(identities == person)[rng.permutation(int(np.sum(identities == person)))]
        total, start = 0.0, 0
        for name, share in fractions.items():
            total += share
            stop = len(own) if name == list(fractions)[-1] else round(len(own) * total)
            if name == split:
                picked.append(own[start:stop])
            start = stop
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, np.int64), np.sort(chosen)


