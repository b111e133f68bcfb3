"""A rehearsal of the full profile as a researcher with the real files runs it, on stand-ins in the real formats.

In a fresh working directory laid out as the configs document it (``checkpoints/``, ``data/manual/``,
``data/human/``, ``../shared/data/faces``): the two ``.pth`` files (torchvision's and VGG-Face's key names, 1/32
width) are converted with the documented commands, then ``grid_full.py:quick`` trains its four models and
``study_full.py:quick`` runs every stage on them, with only the step count, batch and image counts and
resampling counts lowered. The stand-ins are the smallest the code takes: 224x224 (VGG-Face's fc6 fixes it),
8 people of each gender (0.8/0.1/0.1 of each gender's people leaves no split empty) with 8 photos each.
"""

import csv
import json
import os
import pathlib
import subprocess
import sys

import pytest
import standins

from experiments.grid import load_config as load_grid_config
from experiments.grid import run_grid
from experiments.study import load_config as load_study_config
from experiments.study import run_study
from lrpjax.data import celeb_a
from lrpjax.io import checkpoints
from weights_conversion import cli as conversion

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "experiments" / "configs"
WIDTH = 1 / 32
GRID_OVERRIDES = {"steps": 2, "warmup_steps": 1, "batch_size": 8, "eval_every": 2, "checkpoint_every": 2,
                  "log_every": 1, "workers": 2}
# compilation dominates at this size: XLA's cheaper CPU code generation halves it (the programs are the same), and
# identity_people=2 gives the identity models the gender models' architecture, so they share compiled steps
FAST_COMPILE = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"


def lay_out_stand_ins(repo: pathlib.Path, monkeypatch) -> list[str]:
    """The documented files under ``repo`` (and ``repo/../shared/data/faces``); returns the face ids."""
    standins.write_torchvision_vgg16(repo / "vgg16-397923af.pth", width=WIDTH)
    standins.write_vggface(repo / "vgg_face_dag.pth", width=WIDTH)
    standins.write_vggface2(repo / "data" / "manual", people=16, images=8)
    sha = standins.write_celeb_a(repo / "data" / "manual")
    monkeypatch.setattr(celeb_a, "registered_sha256", lambda: sha)  # a stand-in cannot have CelebA's hashes
    ids = standins.write_faces(repo.parent / "shared" / "data" / "faces", count=8)
    standins.write_human(repo / "data" / "human", ids)
    return ids


def shrink_study(config):
    """The study's overrides: fewer images, resamples and heatmap rows; everything else as configured."""
    for name in ("gender_test", "identity_test", "faces"):
        config["image_sets"][name]["limit"] = 8
    config["relevance"]["batch_size"] = 8
    # ROAD's joint solve over 224x224 images costs minutes per model here; it is checked against scipy and Quantus in
    # test_analysis_imputation.py / test_quantus.py and runs in the study test, so the rehearsal masks with zeros
    config["masking"].update(fractions=(0.0, 0.25, 0.5, 1.0), fill="zero")
    config["statistics"].update(n_boot=50, n_perm=50)
    config["heatmaps"]["images"] = 4
    # the controls and MPRT stages (and the control sources' masking) took over half the rehearsal's time; their
    # code is the same at every size and runs end to end in test_study.py, so the rehearsal leaves them out
    del config["controls"], config["mprt"]
    return config


def rehearse(repo: pathlib.Path) -> None:
    """Lay out the stand-ins in ``repo``, convert, train the quick grid and run the quick study (as a script)."""

    class Patch:  # the one monkeypatch the stand-ins need, outside pytest
        setattr = staticmethod(setattr)

    os.chdir(repo)
    lay_out_stand_ins(repo, Patch())
    # conversion, exactly as grid_full.py documents it
    assert conversion.main(["torchvision", "vgg16-397923af.pth", "checkpoints/vgg16_imagenet"]) == 0
    assert conversion.main(["vggface", "vgg_face_dag.pth", "checkpoints/vggface"]) == 0
    config = load_grid_config(f"{CONFIGS / 'grid_full.py'}:quick")
    config["finetune"].update(GRID_OVERRIDES)
    config["data"]["identity_people"] = 2
    run_grid(config)
    study = shrink_study(load_study_config(f"{CONFIGS / 'study_full.py'}:quick"))
    study["data"]["identity_people"] = 2
    assert study["grid"] == config["workdir"] == "out/grid_full_quick"
    run_study(study)


def test_full_profile_conversion_grid_and_study_on_real_format_stand_ins(tmp_path):
    repo = tmp_path / "lrpjax"
    repo.mkdir()
    env = {**os.environ, "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE}".strip(),
           "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "jax_cache"), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, __file__, str(repo)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-4000:]

    metadata = checkpoints.load_metadata(str(repo / "checkpoints" / "vggface"))
    assert metadata["num_classes"] == 2622 and metadata["preprocessing"]["name"] == "vggface"
    assert metadata["architecture"] == "vgg16" and "vgg_face_dag.pth" in metadata["source"]
    grid = repo / "out" / "grid_full_quick"
    with open(grid / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["base"], r["task"]) for r in rows] == [("imagenet", "gender"), ("imagenet", "identity"),
                                                      ("vggface", "gender"), ("vggface", "identity")]
    assert all(0 <= float(rows[k]["CelebA test"]) <= 1 and 0 <= float(rows[k]["VGGFace2 test"]) <= 1 for k in (0, 2))
    assert all(0 <= float(rows[k]["VGGFace2 identity test"]) <= 1 for k in (1, 3))
    gender = checkpoints.load_metadata(str(grid / "runs" / "vggface" / "gender" / "seed0" / "model"))
    assert gender["class_names"] == ["f", "m"] and gender["base_checkpoint"].endswith("checkpoints/vggface")
    built = sorted(p.name for p in (repo / "data" / "tfds" / "face_folder").iterdir())
    assert built == ["vggface2_gender", "vggface2_identity_2"] and (repo / "data" / "tfds" / "celeb_a").is_dir()

    study = repo / "out" / "study_full_quick"
    report = (study / "report.md").read_text()
    assert "SYNTHETIC" not in report and "3 rater RDM(s)" in report
    human = json.loads((study / "stages" / "human.json").read_text())
    assert human["summary"]["images"] == 8 and human["summary"]["raters"] == 3
    assert len(list(study.rglob("*.png"))) >= 10
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("broken", ["human", "checkpoint"])
def test_the_rehearsal_layout_with_a_file_missing_stops_before_any_work(tmp_path, monkeypatch, broken):
    repo = tmp_path / "lrpjax"
    repo.mkdir()
    monkeypatch.chdir(repo)
    lay_out_stand_ins(repo, monkeypatch)
    if broken == "human":
        (repo / "data" / "human" / "triads.csv").unlink()
        with pytest.raises(ValueError, match="triads.csv' does not exist"):
            run_study(load_study_config(f"{CONFIGS / 'study_full.py'}:quick"))
        assert not (repo / "out" / "study_full_quick").exists()
    else:
        with pytest.raises(ValueError, match=r"(?s)no checkpoint at 'checkpoints/vgg16_imagenet'.*"
                                             r"no checkpoint at 'checkpoints/vggface'"):
            run_grid(load_grid_config(f"{CONFIGS / 'grid_full.py'}:quick"))
        assert not (repo / "out").exists() and not (repo / "data" / "tfds").exists()


if __name__ == "__main__":
    rehearse(pathlib.Path(sys.argv[1]))
