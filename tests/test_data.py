"""Data: builders on the shared face sets (counts, labels, disjoint splits), corrupt images, the pipeline,
CelebA and LFW from a manual-download folder (offline, with tiny stand-in files), the shipped sets."""

import csv
import io
import pathlib
import sys
import tarfile
import zipfile

import numpy as np
import pytest
from PIL import Image

from lrpjax import data
from lrpjax.data import pipeline, sources, tasks
from lrpjax.io.preprocess import preprocess

FACES = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "faces"
needs_faces = pytest.mark.skipif(not (FACES / "london").is_dir(), reason="the shared face sets are not beside the repo")
SPEC = {"name": "t", "pixel_range": [0, 1], "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
        "resize": 36, "crop": 32}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    paths = data.DataPaths(str(tmp_path_factory.mktemp("tfds")), faces=str(FACES))
    cache = {}

    def split(spec):
        if spec not in cache:
            cache[spec] = data.open_named_split(spec, paths)
        return cache[spec]

    split.paths = paths
    return split


def _records(split):
    records = split.records.__getitems__(list(range(len(split))))
    return [(r["person"].decode(), r["condition"].decode(), r["file"].decode(), int(r["label"])) for r in records]


@needs_faces
def test_london_gender_splits_people_apart_with_csv_labels(built):
    with open(FACES / "london" / "info.csv", newline="") as handle:
        gender = {row["face_id"]: row["face_gender"] for row in csv.DictReader(handle)}
    people = {}
    for name, count in (("train", 142), ("validation", 20), ("test", 42)):
        split = built(f"london_gender:{name}")
        assert len(split) == count and split.class_names == ("female", "male")
        records = _records(split)
        assert all(split.class_names[label] == gender[person] for person, _, _, label in records)
        people[name] = {person for person, _, _, _ in records}
        for person in people[name]:  # both photos of a person go to the same split
            assert sorted(c for p, c, _, _ in records if p == person) == ["neutral", "smiling"]
    assert not (people["train"] & people["test"]) and not (people["train"] & people["validation"])
    assert not (people["validation"] & people["test"])
    assert len(people["train"] | people["validation"] | people["test"]) == 102
    assert np.bincount(built("london_gender:test").labels()).tolist() == [20, 22]


@needs_faces
def test_canada_and_london_identity_across_expression(built):
    canada = built("canada_gender:test")
    assert len(canada) == 40 and np.bincount(canada.labels()).tolist() == [20, 20]
    train, test = built("london_identity:train"), built("london_identity:test")
    assert len(train) == len(test) == 102 and len(train.class_names) == 102
    assert {c for _, c, _, _ in _records(train)} == {"neutral"} and {c for _, c, _, _ in _records(test)} == {"smiling"}
    for split in (train, test):
        assert all(split.class_names[label] == person for person, _, _, label in _records(split))


@needs_faces
def test_orl_identity_divides_each_persons_images(built):
    files = {}
    for name, per_person in (("train", 7), ("validation", 1), ("test", 2)):
        split = built(f"orl_identity:{name}")
        assert len(split) == 40 * per_person and split.class_names[:3] == ("s1", "s2", "s3")
        records = _records(split)
        assert all(split.class_names[label] == person == file.split("/")[0] for person, _, file, label in records)
        assert np.bincount(split.labels(), minlength=40).tolist() == [per_person] * 40
        files[name] = {file for _, _, file, _ in records}
    assert sum(map(len, files.values())) == len(set.union(*files.values())) == 400
    half = built("orl_identity_b:test")
    assert half.class_names == tuple(f"s{i}" for i in range(21, 41)) and len(half) == 40


@needs_faces
def test_metadata_counts_and_a_rebuild_with_other_settings_is_refused(built, tmp_path):
    built("london_gender:train")
    directory = sources.folder_directory(built.paths.data_dir, "london_gender")
    metadata = data.read_metadata(directory)
    assert metadata["skipped"] == 0 and metadata["people"] == {"train": 71, "validation": 10, "test": 21}
    assert metadata["class_counts"]["test"] == {"female": 20, "male": 22}
    config = tasks.london_gender(str(FACES))
    data_dir = built.paths.data_dir
    assert data.prepare_folder(config, data_dir) == directory  # built already: reused
    with pytest.raises(ValueError, match=r"was built with other settings \(seed: 0 -> 1\); give the config "
                                         r"another name or delete the folder$"):
        data.prepare_folder(config.__class__(**{**config.__dict__, "seed": 1}), data_dir)


def _jpeg(seed, size=(40, 48)):
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def _person_folders(root, people=("ann", "bob"), per_person=4):
    for p, person in enumerate(people):
        (root / person).mkdir(parents=True)
        for i in range(per_person):
            (root / person / f"{i}.jpg").write_bytes(_jpeg(10 * p + i))


def test_corrupt_images_are_skipped_and_counted(tmp_path, recwarn):
    root = tmp_path / "faces"
    _person_folders(root)
    (root / "ann" / "9_not_an_image.jpg").write_bytes(b"this is no jpeg")
    (root / "bob" / "9_truncated.jpg").write_bytes(_jpeg(99)[:900])  # opens, fails to decode
    config = data.FaceFolderConfig(name="tiny", root=str(root), split_by="image", fractions=(("train", 1.0),))
    directory = data.prepare_folder(config, str(tmp_path / "tfds"))
    metadata = data.read_metadata(directory)
    assert metadata["skipped"] == 1 and metadata["skipped_files"][0][0] == "ann/9_not_an_image.jpg"
    assert any("9_not_an_image" in str(w.message) for w in recwarn)
    split = data.open_split(directory, "train")
    assert len(split) == 9  # the truncated file is only found out when decoded
    warnings = []
    batches = list(data.eval_batches(split, SPEC, batch_size=4, workers=2, warn=warnings.append))
    assert batches[-1].skipped == 1 and sum(int(b.mask.sum()) for b in batches) == 8
    assert len(warnings) == 1 and "bob/9_truncated.jpg" in warnings[0]
    stream = data.train_batches(split, SPEC, batch_size=4, seed=0, workers=2, warn=warnings.append)
    first = [next(stream) for _ in range(5)]  # 20 images from a stream of 9 per epoch: two epochs and more
    assert all(b.image.shape == (4, 32, 32, 3) for b in first)
    assert first[-1].skipped >= 2 and first[-1].cursor == 20 + first[-1].skipped


def test_eval_images_equal_lrpjax_preprocess_and_every_image_counts_once():
    images = np.random.default_rng(0).integers(0, 255, (5, 50, 40, 3), dtype=np.uint8)
    split = data.array_split("arrays:test", images, np.arange(5) % 2, ("a", "b"))
    batches = list(data.eval_batches(split, SPEC, batch_size=2, workers=2))
    assert [b.mask.tolist() for b in batches] == [[True, True], [True, True], [True, False]]
    got = np.concatenate([b.image[b.mask] for b in batches])
    np.testing.assert_array_equal(got, np.asarray(preprocess(list(images), SPEC)))
    assert np.concatenate([b.label[b.mask] for b in batches]).tolist() == [0, 1, 0, 1, 0]


def test_train_stream_is_a_pure_function_of_seed_and_cursor():
    images = np.random.default_rng(1).integers(0, 255, (7, 40, 40, 3), dtype=np.uint8)
    split = data.array_split("arrays:train", images, np.arange(7), [str(i) for i in range(7)])
    run = data.train_batches(split, SPEC, batch_size=3, seed=5, workers=2, colour=0.2)
    batches = [next(run) for _ in range(5)]
    assert sorted(np.concatenate([b.label for b in batches])[:7].tolist()) == list(range(7))  # epoch 0: all once
    resumed = data.train_batches(split, SPEC, batch_size=3, seed=5, workers=2, colour=0.2, start=batches[1].cursor)
    for want in batches[2:]:
        got = next(resumed)
        np.testing.assert_array_equal(got.image, want.image)
        np.testing.assert_array_equal(got.label, want.label)
    other = next(data.train_batches(split, SPEC, batch_size=3, seed=6, workers=2))
    assert not np.array_equal(other.image, batches[0].image)
    stream = data.train_batches(split, SPEC, batch_size=3, seed=5, colour=0.2)
    on_device = list(zip(range(2), data.prefetch_to_device(stream)))
    np.testing.assert_array_equal(np.asarray(on_device[1][1].image), batches[1].image)


def test_pipeline_and_folder_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="crop"):
        pipeline.pipeline_spec({**SPEC, "crop": None})
    with pytest.raises(ValueError, match="root="):
        data.catalogue(data.FaceFolderConfig(name="x", root=str(tmp_path / "nowhere")))
    with pytest.raises(ValueError, match="fractions="):
        data.catalogue(data.FaceFolderConfig(name="x", root=str(tmp_path), fractions=(("train", 0.5),)))
    with pytest.raises(ValueError, match="unknown"):
        data.open_named_split("imagenet:train", data.DataPaths(str(tmp_path)))
    with pytest.raises(ValueError, match="needs faces"):
        data.open_named_split("london_gender:train", data.DataPaths(str(tmp_path)))
    with pytest.raises(ValueError, match="cannot decode"):
        pipeline.decode_image(b"GIF89a broken")


def test_lfw_from_a_manual_tgz_builds_an_identity_set(tmp_path):
    folder = tmp_path / "src" / "lfw"
    _person_folders(folder, people=("Ann_A", "Bob_B", "Cy_C"), per_person=9)  # 0.7/0.1/0.2 needs 9 each
    _person_folders(folder, people=("Few_F",), per_person=1)
    manual = tmp_path / "manual"
    manual.mkdir()
    with tarfile.open(manual / "lfw.tgz", "w:gz") as archive:
        archive.add(folder, arcname="lfw")
    root = sources.extract_lfw(str(manual), str(tmp_path / "tfds"))
    config = tasks.lfw_identity(root, min_images=2)
    directory = data.prepare_folder(config, str(tmp_path / "tfds"))
    split = data.open_split(directory, "train")
    assert split.class_names == ("Ann_A", "Bob_B", "Cy_C")  # Few_F has too few images
    assert sorted(split.labels().tolist()) == [0] * 6 + [1] * 6 + [2] * 6


class _WithoutTensorFlow:
    """Import finders that cannot find TensorFlow, as on a machine where it is not installed."""

    def __init__(self, finders):
        self.finders = finders

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow":
            return None
        for finder in self.finders:
            spec = finder.find_spec(name, path, target) if hasattr(finder, "find_spec") else None
            if spec is not None:
                return spec
        return None


def test_celeb_a_from_a_manual_folder_offline_without_tensorflow(tmp_path, monkeypatch):
    assert "tensorflow" not in sys.modules
    monkeypatch.setattr(sys, "meta_path", [_WithoutTensorFlow(list(sys.meta_path))])
    # tiny stand-ins for CelebA's five files (their sha256 cannot match the registered ones: verify=False)
    manual = tmp_path / "manual"
    manual.mkdir()
    names = [f"{i:06d}.jpg" for i in range(1, 9)]
    with zipfile.ZipFile(manual / "img_align_celeba.zip", "w") as archive:
        for i, name in enumerate(names):
            archive.writestr(f"img_align_celeba/{name}", _jpeg(i, (218, 178)))
    from tensorflow_datasets.datasets.celeb_a.celeb_a_dataset_builder import ATTR_HEADINGS, LANDMARK_HEADINGS

    partition = [0, 0, 0, 0, 0, 1, 2, 2]
    male = [1, -1, 1, -1, 1, -1, 1, -1]
    (manual / "list_eval_partition.txt").write_text("".join(f"{n} {p}\n" for n, p in zip(names, partition)))
    (manual / "identity_CelebA.txt").write_text("".join(f"{n} {7 + i % 2}\n" for i, n in enumerate(names)))
    attributes = [" ".join(str(m if h == "Male" else -1) for h in ATTR_HEADINGS) for m in male]
    (manual / "list_attr_celeba.txt").write_text(
        f"{len(names)}\n{' '.join(ATTR_HEADINGS)}\n" + "".join(f"{n} {a}\n" for n, a in zip(names, attributes)))
    (manual / "list_landmarks_align_celeba.txt").write_text(
        f"{len(names)}\n{' '.join(LANDMARK_HEADINGS)}\n" + "".join(f"{n} {' '.join(['1'] * 10)}\n" for n in names))
    paths = data.DataPaths(str(tmp_path / "tfds"), manual_dir=str(manual))
    with pytest.raises(ValueError, match="sha256"):
        data.prepare_celeb_a(paths.data_dir, manual)
    assert data.prepare_celeb_a(paths.data_dir, manual, verify=False).endswith("celeb_a/2.1.0")
    train = data.open_named_split("celeb_a_gender:train", paths)
    assert len(train) == 5 and train.class_names == ("female", "male")
    assert sorted(train.labels().tolist()) == [0, 0, 1, 1, 1]
    test = data.open_named_split("celeb_a_gender:test", paths)
    assert sorted(test.labels().tolist()) == [0, 1]
    identity = data.celeb_a_split(paths.data_dir, "train", "identity", min_images=2, fractions={"train": 1.0})
    assert identity.class_names == ("7", "8") and sorted(identity.labels().tolist()) == [0, 0, 0, 1, 1]
    batch = next(data.eval_batches(test, SPEC, batch_size=2))
    assert batch.image.shape == (2, 32, 32, 3) and batch.skipped == 0
    assert "tensorflow" not in sys.modules


def test_shipped_sets_load_offline():
    faces = data.lfw_subset_splits()
    assert len(faces["train"]) == 160 and len(faces["test"]) == 40
    assert np.bincount(faces["test"].labels()).tolist() == [20, 20] and faces["test"].class_names == ("face",
                                                                                                       "non-face")
    patches = data.natural_patch_splits(per_photo=10, side=40)
    assert [len(patches[s]) for s in ("train", "validation", "test")] == [70, 10, 20]
    assert np.bincount(patches["test"].labels()).tolist() == [2] * 10
    x = data.prepare_example(patches["train"].read([0])[0][0], SPEC)
    assert x.shape == (32, 32, 3) and x.dtype == np.float32
