"""The full profile's set-up: VGGFace2 paths resolved once, empty splits and changed folders refused at build time,
the identity set's size from the config, the quick grid/study pair, every path checked before the first stage,
the download folders ignored by git. Tiny stand-ins in the real formats (see ``standins.py``)."""

import pathlib
import shutil
import subprocess

import numpy as np
import pytest
import standins

import lrpjax
from conftest import random_variables
from experiments.configs import grid_full, study_full
from experiments.grid import load_config as load_grid_config
from experiments.preflight import preflight
from experiments.study import load_config as load_study_config
from lrpjax import data
from lrpjax.data import celeb_a, sources, tasks

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "experiments" / "configs"


def test_vggface2_with_the_documented_relative_manual_dir_builds_and_survives_a_move(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    standins.write_vggface2("data/manual", people=16, images=8)
    relative = data.DataPaths("data/tfds", manual_dir="data/manual")
    train = data.open_named_split("vggface2_gender:train", relative)  # the meta CSV is read once, beside train/
    assert train.class_names == ("f", "m") and len(train) == 2 * 6 * 8  # 6 of each gender's 8 people train
    directory = sources.folder_directory("data/tfds", "vggface2_gender")
    settings = data.read_metadata(directory)["settings"]
    assert settings["labels_csv"] == "../identity_meta.csv"
    # the same set through absolute paths, then with VGGFace2 moved elsewhere: reused, not refused
    assert len(data.open_named_split("vggface2_gender:test", relative.resolved())) == 2 * 8
    shutil.move("data/manual", "moved")
    again = data.open_named_split("vggface2_gender:train", data.DataPaths("data/tfds", manual_dir="moved"))
    assert len(again) == len(train)
    meta = tmp_path / "moved" / "vggface2" / "identity_meta.csv"
    absolute = tasks.vggface2(str(tmp_path / "moved" / "vggface2" / "train"), "gender", str(meta))
    assert absolute.settings() == tasks.vggface2("moved/vggface2/train", "gender").settings()


def test_too_few_people_or_images_fail_at_build_naming_the_empty_split_and_the_need(tmp_path):
    standins.write_vggface2(tmp_path, people=12, images=6)
    paths = data.DataPaths(str(tmp_path / "tfds"), manual_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"split 'validation' would be empty: .* each label needs at least 8 "
                                         r"people; it has 6 'f', 6 'm'"):
        data.open_named_split("vggface2_gender:train", paths)
    with pytest.raises(ValueError, match=r"split 'validation' would be empty: .* a person needs at least 8 "
                                         r"images; the 12 people have at most 6"):
        data.open_named_split("vggface2_identity:train", paths)
    assert not (tmp_path / "tfds" / "face_folder" / "vggface2_gender" / "1.0.0" / "dataset_info.json").exists()


@pytest.mark.parametrize("change", ["add", "remove", "resize", "labels"])
def test_a_changed_source_folder_is_noticed_when_the_build_would_be_reused(tmp_path, change):
    standins.write_vggface2(tmp_path, people=16, images=8)
    config = tasks.vggface2(str(tmp_path / "vggface2" / "train"), "gender")
    directory = data.prepare_folder(config, str(tmp_path / "tfds"))
    assert data.prepare_folder(config, str(tmp_path / "tfds")) == directory  # unchanged: reused
    person = tmp_path / "vggface2" / "train" / "n000002"
    if change == "add":
        (person / "0009_01.jpg").write_bytes(standins.jpeg(7, (40, 40)))
    elif change == "remove":
        (person / "0001_01.jpg").unlink()
    elif change == "resize":
        (person / "0001_01.jpg").write_bytes(standins.jpeg(7, (60, 60)))
        sources._listing_once.cache_clear()  # a folder's stamp changes only when files come or go
    else:
        meta = tmp_path / "vggface2" / "identity_meta.csv"
        meta.write_text(meta.read_text().replace("n000002, \"Person_0\", 8, 1, f", "n000002, \"Person_0\", 8, 1, m"))
    field = {"add": "files 128 then, 129 now", "remove": "files 128 then, 127 now", "resize": "listing_sha256",
             "labels": "labels_sha256"}[change]
    with pytest.raises(ValueError, match=f"changed since .*{field}.*delete"):
        data.prepare_folder(config, str(tmp_path / "tfds"))


def test_the_identity_sets_size_is_a_setting_and_the_set_is_named_by_what_it_holds(tmp_path, recwarn):
    standins.write_vggface2(tmp_path, people=16, images=8)
    four = data.open_named_split("vggface2_identity:train",
                                 data.DataPaths(str(tmp_path / "tfds"), manual_dir=str(tmp_path), identity_people=4))
    assert four.name == "vggface2_identity_4:train" and len(four.class_names) == 4 and len(recwarn) == 0
    every = data.open_named_split("vggface2_identity:test", data.DataPaths(str(tmp_path / "tfds"),
                                                                           manual_dir=str(tmp_path)))
    assert every.name == "vggface2_identity_16:test" and len(every) == 16
    assert any("16 people, fewer than identity_people=500" in str(w.message) for w in recwarn)
    with pytest.raises(ValueError, match="identity_people=0 must be a positive integer"):
        data.DataPaths("x", identity_people=0)
    assert grid_full.get_config()["data"]["identity_people"] == study_full.get_config()["data"]["identity_people"]


def test_the_quick_grid_and_quick_study_are_a_pair_and_documented():
    for arg in (None, "quick"):
        assert study_full.get_config(arg)["grid"] == grid_full.get_config(arg)["workdir"]
        assert study_full.get_config(arg)["data"] == grid_full.get_config(arg)["data"]
    quick_study = "python experiments/run_study.py --config experiments/configs/study_full.py:quick"
    quick_grid = "python experiments/run_grid.py --config experiments/configs/grid_full.py:quick"
    assert quick_study in study_full.__doc__ and quick_grid in study_full.__doc__ and quick_study in grid_full.__doc__
    assert "vggface/identity/s0" in study_full.__doc__ and "s4" not in study_full.__doc__


def _tiny_grid(root, seeds=(0,)):
    model = lrpjax.vgg16(num_classes=2, width=1 / 16, pool_to=None, input_size=32)
    variables = random_variables(model, dtype=np.float32)
    preprocessing = {"name": "t32", "pixel_range": [0, 1], "mean": [0.5] * 3, "std": [0.25] * 3, "resize": 32,
                     "crop": 32}
    for base in ("imagenet", "vggface"):
        for seed in seeds:
            lrpjax.checkpoints.save(root / "runs" / base / "identity" / f"seed{seed}" / "model", model, variables,
                                    {"task": "identity", "seed": seed, "class_names": ["a", "b"],
                                     "preprocessing": preprocessing})


def test_the_study_checks_every_path_and_model_name_before_the_first_stage(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _tiny_grid(tmp_path / "out" / "grid_full_quick")
    standins.write_vggface2("data/manual", people=16, images=8)
    standins.write_faces("faces", count=4)
    config = load_study_config(f"{CONFIGS / 'study_full.py'}:quick")
    config["data"]["faces"] = "faces"
    for key, name in (("folder", "london/neutral"), ("labels_csv", "london/info.csv"),
                      ("landmarks", "london/landmarks.csv")):
        config["image_sets"]["faces"][key] = f"faces/{name}"
    config["regions"]["regions_json"] = "faces/regions.json"
    config["image_sets"]["faces"]["maps"] = "faces/cue_maps.npz"
    with pytest.raises(ValueError) as caught:
        preflight(config, "study")
    message = str(caught.value)
    assert "no file matches ['data/human/rdm_*.csv']" in message and "'data/human/triads.csv' does not exist" in message
    assert "image set 'faces': maps 'faces/cue_maps.npz' does not exist" in message
    del config["image_sets"]["faces"]["maps"]
    assert "models='gender', but the grid 'out/grid_full_quick' has tasks ['identity']" in message
    for chosen, refused in ((["identity", "gender"], True), (["identity"], False)):  # a list: each task known
        config["image_sets"]["faces"]["models"] = chosen
        with pytest.raises(ValueError) as caught:
            preflight(config, "study")
        assert (f"image set 'faces': models={chosen!r}, but" in str(caught.value)) is refused
    config["human"] = {**config["human"], "mode": "synthetic", "source": "vggface/identity/s4"}
    with pytest.raises(ValueError, match=r"human.source='vggface/identity/s4' is not a model of the grid .*"
                                         r"'vggface/identity/s0'"):
        preflight(config, "study")
    standins.write_human("data/human", ["001", "002", "099"])  # too few faces in common with the set
    config["human"] = load_study_config(f"{CONFIGS / 'study_full.py'}:quick")["human"]
    with pytest.raises(ValueError, match="shares 2 face ids with image set 'faces'"):
        preflight(config, "study")


def test_the_grid_checks_checkpoints_files_and_celeb_as_sha256_before_training(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    standins.write_celeb_a("data/manual")
    standins.write_vggface2("data/manual", people=16, images=8)
    config = load_grid_config(f"{CONFIGS / 'grid_full.py'}:quick")
    config["finetune"]["optimizer"] = "sgdd"
    with pytest.raises(ValueError) as caught:
        preflight(config, "grid")
    message = str(caught.value)
    expected = celeb_a.registered_sha256()["img_align_celeba.zip"]
    assert "img_align_celeba.zip has sha256 " in message and f"expected {expected}" in message
    assert "no checkpoint at 'checkpoints/vgg16_imagenet'" in message and "'sgdd'" in message
    assert "nothing was run" in message and not (tmp_path / "out").exists()


def test_checkpoints_and_data_are_ignored_by_git():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    paths = ["checkpoints/vggface/metadata.json", "data/manual/vggface2/identity_meta.csv", "data/human/rdm_1.csv"]
    ignored = subprocess.run(["git", "check-ignore", *paths], cwd=ROOT, capture_output=True, text=True)
    assert ignored.stdout.split() == paths
