"""Named data sets, so a config or the command line can say ``"london_gender:test"``.

========================  ===================================================================================
name                      images, labels and splits
========================  ===================================================================================
``london_gender``         London neutral + smiling, gender from ``info.csv``; people 0.7/0.1/0.2 (train,
                          validation, test), stratified by gender, nobody in two splits
``canada_gender``         Canada, gender; every image in ``test``
``orl_identity``          ORL, 40 people; each person's 10 images 7/1/2
``orl_identity_a``/``_b`` ORL people ``s1``–``s20`` / ``s21``–``s40`` (two disjoint identity tasks)
``london_identity``       London, 102 people: neutral -> ``train``, smiling -> ``test`` (across expression)
``lfw_identity``          LFW (``manual_dir/lfw`` or ``lfw.tgz``), people with >= 20 images, 0.7/0.1/0.2 each
``vggface2_gender``       VGGFace2 (``manual_dir/train/n000001/…``, ``identity_meta.csv``), people 0.8/0.1/0.1
``vggface2_identity``     VGGFace2, the ``identity_people`` (500) people with most images, each person's images
                          0.8/0.1/0.1; built as ``vggface2_identity_N``, N the people it holds
``celeb_a_gender``        TFDS ``celeb_a`` attribute ``Male``, official splits (built from ``manual_dir``)
``celeb_a_identity``      CelebA train people with >= 20 images (at most 1000), each person's images 0.8/0.1/0.1
``lfw_subset``            scikit-image's 200 LFW crops: face vs non-face (train 160, test 40)
``natural_patches``       patches of 10 non-face photos from scikit-image, labelled by photo (70/10/20 %)
========================  ===================================================================================

Folder sets are built once into ``data_dir`` (TFDS array_record) and read from there; the face sets
need ``faces`` (e.g. ``../shared/data/faces``), the large ones ``manual_dir``.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import warnings
from collections.abc import Callable

from lrpjax.data.celeb_a import celeb_a_split, check_celeb_a_files, prepare_celeb_a
from lrpjax.data.folders import FaceFolderConfig
from lrpjax.data.shipped import lfw_subset_splits, natural_patch_splits
from lrpjax.data.sources import Split, extract_lfw, open_split, prepare_folder

THREE_WAY = (("train", 0.7), ("validation", 0.1), ("test", 0.2))
LARGE_THREE_WAY = (("train", 0.8), ("validation", 0.1), ("test", 0.1))


@dataclasses.dataclass(frozen=True)
class DataPaths:
    """Where data sets are built (``data_dir``) and read from (``faces``: the small face sets' folder;
    ``manual_dir``: a folder holding the large sets: ``lfw/`` or ``lfw.tgz``, ``vggface2/``, CelebA's files), and
    ``identity_people``: how many people (most images first) ``vggface2_identity`` keeps. Relative paths are
    relative to the working directory; :meth:`resolved` makes them absolute once."""

    data_dir: str
    faces: str | None = None
    manual_dir: str | None = None
    identity_people: int = 500

    def __post_init__(self):
        if not isinstance(self.identity_people, int) or self.identity_people < 1:
            raise ValueError(f"identity_people={self.identity_people!r} must be a positive integer")

    def resolved(self, base: str | None = None) -> DataPaths:
        """A copy whose paths are absolute: relative ones joined with ``base`` (default: the working directory)."""
        base = os.path.abspath(base or os.getcwd())
        return dataclasses.replace(self, **{field: os.path.normpath(os.path.join(base, getattr(self, field)))
                                            for field in ("data_dir", "faces", "manual_dir")
                                            if getattr(self, field) is not None})

    def need(self, field: str, name: str) -> str:
        """The path ``field``; ``ValueError`` naming the option when the data set ``name`` needs it unset."""
        value = getattr(self, field)
        if value is None:
            raise ValueError(f"data set {name!r} needs {field} (--{field.replace('_', '-')})")
        return value


def london_gender(faces: str) -> FaceFolderConfig:
    """London neutral + smiling, gender; people 0.7/0.1/0.2, stratified by gender."""
    return FaceFolderConfig(name="london_gender", root=os.path.join(faces, "london"), layout="flat",
                            conditions=("neutral", "smiling"), label="face_gender", labels_csv="info.csv",
                            split_by="person", fractions=THREE_WAY)


def canada_gender(faces: str) -> FaceFolderConfig:
    """Canada, gender; every image a test image."""
    return FaceFolderConfig(name="canada_gender", root=os.path.join(faces, "canada"), layout="flat",
                            label="face_gender", labels_csv="info.csv", split_by="person", fractions=(("test", 1.0),))


def orl_identity(faces: str, people: range | None = None, suffix: str = "") -> FaceFolderConfig:
    """ORL identity (people ``s<i>`` for ``i`` in ``people``, all by default); each person's images 7/1/2."""
    return FaceFolderConfig(name=f"orl_identity{suffix}", root=os.path.join(faces, "orl"), layout="person_folders",
                            split_by="image", fractions=THREE_WAY,
                            people=tuple(f"s{i}" for i in people) if people else ())


def london_identity(faces: str) -> FaceFolderConfig:
    """London identity across expression: neutral photos train, smiling photos test."""
    return FaceFolderConfig(name="london_identity", root=os.path.join(faces, "london"), layout="flat",
                            conditions=("neutral", "smiling"), split_by="condition",
                            condition_splits=(("neutral", "train"), ("smiling", "test")))


def lfw_identity(root: str, min_images: int = 20) -> FaceFolderConfig:
    """LFW identity of the people with at least ``min_images`` photos; each person's photos 0.7/0.1/0.2."""
    return FaceFolderConfig(name=f"lfw_identity_min{min_images}", root=root, layout="person_folders",
                            split_by="image", fractions=THREE_WAY, min_images_per_person=min_images)


def vggface2(root: str, task: str, meta_csv: str = "../identity_meta.csv", max_people: int = 500
             ) -> FaceFolderConfig:
    """VGGFace2's ``train/`` folder; gender from ``identity_meta.csv`` (column ``Gender``, ``m``/``f``; relative
    to ``root``). Identity: the ``max_people`` people with most images; with fewer people in the folder the set
    holds them all (with a warning), and the set is named by the number it holds (``vggface2_identity_16``)."""
    if task == "gender":
        return FaceFolderConfig(name="vggface2_gender", root=root, label="Gender", labels_csv=meta_csv,
                                id_column="Class_ID", split_by="person", fractions=LARGE_THREE_WAY)
    people = sum(1 for entry in os.scandir(root) if entry.is_dir() and not entry.name.startswith("."))
    if people < max_people:
        warnings.warn(f"vggface2_identity: {root!r} has {people} people, fewer than identity_people={max_people}; "
                      f"the set holds all {people} (vggface2_identity_{people})", stacklevel=2)
    kept = min(people, max_people)
    return FaceFolderConfig(name=f"vggface2_identity_{kept}", root=root, split_by="image",
                            fractions=LARGE_THREE_WAY, max_people=kept)


FACE_SETS: dict[str, Callable[[str], FaceFolderConfig]] = {
    "london_gender": london_gender,
    "canada_gender": canada_gender,
    "orl_identity": orl_identity,
    "orl_identity_a": functools.partial(orl_identity, people=range(1, 21), suffix="_a"),
    "orl_identity_b": functools.partial(orl_identity, people=range(21, 41), suffix="_b"),
    "london_identity": london_identity,
}
"""The small face sets in ``faces`` (``../shared/data/faces``)."""

IN_MEMORY: dict[str, Callable[[], dict[str, Split]]] = {
    "lfw_subset": functools.cache(lfw_subset_splits),
    "natural_patches": functools.cache(natural_patch_splits),
}


def _large_set(name: str, paths: DataPaths) -> FaceFolderConfig:
    manual = paths.need("manual_dir", name)
    if name == "lfw_identity":
        return lfw_identity(extract_lfw(manual, paths.data_dir))
    root = os.path.join(manual, "vggface2", "train")
    if not os.path.isdir(root):
        raise ValueError(f"data set {name!r} needs the folder {root!r} (VGGFace2's train/ under manual_dir)")
    return vggface2(root, name.removeprefix("vggface2_"), max_people=paths.identity_people)


NAMES = (*FACE_SETS, "lfw_identity", "vggface2_gender", "vggface2_identity", "celeb_a_gender", "celeb_a_identity",
         *IN_MEMORY)


SPLITS = {"lfw_identity": THREE_WAY, "vggface2_gender": LARGE_THREE_WAY, "vggface2_identity": LARGE_THREE_WAY,
          "celeb_a_gender": LARGE_THREE_WAY, "celeb_a_identity": LARGE_THREE_WAY,
          "lfw_subset": (("train", 0.8), ("test", 0.2)), "natural_patches": THREE_WAY}


def split_names(name: str) -> list[str]:
    """The splits the named data set has (``ValueError`` for an unknown name)."""
    if name in FACE_SETS:
        config = FACE_SETS[name]("")
        return list(dict.fromkeys(split for _, split in config.condition_splits) if config.split_by == "condition"
                    else dict(config.fractions))
    if name not in SPLITS:
        raise ValueError(f"data set {name!r} is unknown; choose one of {list(NAMES)}")
    return [split for split, _ in SPLITS[name]]


def check_named_split(spec: str, paths: DataPaths) -> list[str]:
    """What opening ``spec`` with :func:`open_named_split` would fail on, found without building anything: the
    form, the name, the split, and the folders and files it reads (CelebA's five files and, unless built already,
    their sha256). Returns the problems, one line each."""
    name, _, split = spec.partition(":")
    if not split:
        return [f"data split {spec!r} must be NAME:SPLIT, e.g. 'london_gender:train'"]
    try:
        known = split_names(name)
    except ValueError as error:
        return [str(error)]
    if split not in known:
        return [f"data split {spec!r}: {name!r} has splits {known}, not {split!r}"]
    try:
        if name in FACE_SETS:
            config = FACE_SETS[name](paths.need("faces", name))
            found = os.path.isdir(config.root)
            return [] if found else [f"data set {name!r}: faces folder {config.root!r} does not exist"]
        if name == "lfw_identity":
            manual = paths.need("manual_dir", name)
            found = os.path.isdir(os.path.join(manual, "lfw")) or os.path.isfile(os.path.join(manual, "lfw.tgz"))
            return [] if found else [f"data set {name!r}: manual_dir={manual!r} holds neither lfw/ nor lfw.tgz"]
        if name.startswith("vggface2_"):
            root = os.path.join(paths.need("manual_dir", name), "vggface2")
            wanted = [os.path.join(root, "train")] + ([os.path.join(root, "identity_meta.csv")]
                                                      if name == "vggface2_gender" else [])
            return [f"data set {name!r}: {path!r} does not exist" for path in wanted if not os.path.exists(path)]
        if name.startswith("celeb_a_") and not os.path.isdir(os.path.join(paths.data_dir, "celeb_a")):
            check_celeb_a_files(paths.need("manual_dir", name))
    except ValueError as error:
        return [f"data set {name!r}: {error}"]
    return []


def open_named_split(spec: str, paths: DataPaths) -> Split:
    """The split ``"NAME:SPLIT"`` (e.g. ``"london_gender:test"``), building the data set first if needed.

    Raises ``ValueError`` naming an unknown data set or split, or a path the data set needs.
    """
    name, _, split = spec.partition(":")
    if not split:
        raise ValueError(f"data split {spec!r} must be NAME:SPLIT, e.g. 'london_gender:train'")
    if name in FACE_SETS:
        return open_split(prepare_folder(FACE_SETS[name](paths.need("faces", name)), paths.data_dir), split)
    if name in IN_MEMORY:
        splits = IN_MEMORY[name]()
        if split not in splits:
            raise ValueError(f"split={split!r} is not in {name!r}; it has {sorted(splits)}")
        return splits[split]
    if name in ("lfw_identity", "vggface2_gender", "vggface2_identity"):
        return open_split(prepare_folder(_large_set(name, paths), paths.data_dir), split)
    if name in ("celeb_a_gender", "celeb_a_identity"):
        if not os.path.isdir(os.path.join(paths.data_dir, "celeb_a")):
            prepare_celeb_a(paths.data_dir, paths.need("manual_dir", name))
        return celeb_a_split(paths.data_dir, split, name.removeprefix("celeb_a_"))
    raise ValueError(f"data set {name!r} is unknown; choose one of {list(NAMES)}")
