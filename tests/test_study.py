"""The study end to end on a tiny synthetic grid (four random 1/16-width VGG-16s at 32x32, ten synthetic faces with
landmarks): report and figures written, the generalization diagonal 1, a rerun loads every stage."""

import csv
import json
import re

import numpy as np
import pytest
from PIL import Image

import lrpjax
from conftest import random_variables
from experiments import run_study as run_study_cli
from experiments.study import analyses, check_config, compute, human, run_study
from experiments.study import models as grid_models
from experiments.study.cache import Stages
from experiments.study.images import ImageSet
from lrpjax.analysis import figures

PREPROCESSING = {"name": "tiny32", "pixel_range": [0.0, 1.0], "mean": [0.485, 0.456, 0.406],
                 "std": [0.229, 0.224, 0.225], "resize": 36, "crop": 32}
MODELS = (("imagenet", "gender", 0), ("imagenet", "gender", 1), ("vggface", "gender", 0), ("vggface", "identity", 0))
# 22 landmarks on a 40x40 photo: a face square and six triangles (eyes, brows, nose, mouth)
POINTS = [(6, 4), (34, 4), (34, 38), (6, 38),
          (10, 14), (17, 14), (13, 18), (23, 14), (30, 14), (27, 18),
          (10, 10), (17, 10), (13, 8), (23, 10), (30, 10), (27, 8),
          (18, 18), (22, 18), (20, 26), (14, 30), (26, 30), (20, 34)]
REGIONS = {"face": [0, 1, 2, 3, 0], "left_eye": [4, 5, 6, 4], "right_eye": [7, 8, 9, 7], "left_brow": [10, 11, 12, 10],
           "right_brow": [13, 14, 15, 13], "nose": [16, 17, 18, 16], "mouth": [19, 20, 21, 19]}


def make_grid(root):
    """runs/BASE/TASK/seedN/model checkpoints with the grid's metadata, random weights."""
    for k, (base, task, seed) in enumerate(MODELS):
        model = lrpjax.vgg16(num_classes=2, width=1 / 16, pool_to=None, input_size=32)
        variables = random_variables(model, seed=k, dtype=np.float32)
        classes = ["female", "male"] if task == "gender" else ["s1", "s2"]
        metadata = {"task": task, "seed": seed, "class_names": classes, "preprocessing": PREPROCESSING,
                    "test": {f"{task}:test": {"accuracy": 0.5}}}
        lrpjax.checkpoints.save(root / "runs" / base / task / f"seed{seed}" / "model", model, variables, metadata)


def make_faces(root, count=10):
    """``count`` noisy 40x40 'faces', their gender labels and landmarks, and a regions.json."""
    rng = np.random.default_rng(0)
    (root / "faces").mkdir(parents=True)
    for i in range(count):
        pixels = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "faces" / f"{i:03d}.png")
    with open(root / "info.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["face_id", "face_gender"])
        writer.writerows([f"{i:03d}", ("female", "male")[i % 2]] for i in range(count))
    with open(root / "landmarks.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["face_id", "point", "x", "y"])
        for i in range(count):
            writer.writerows([f"{i:03d}", p, x + rng.uniform(-1, 1), y] for p, (x, y) in enumerate(POINTS))
    (root / "regions.json").write_text(json.dumps({"points": len(POINTS), "regions": REGIONS}))


def tiny_config(root):
    folder = {"folder": str(root / "faces"), "labels_csv": str(root / "info.csv"), "label": "face_gender"}
    return {
        "profile": "test", "workdir": str(root / "study"), "grid": str(root / "grid"),
        "data": {"data_dir": str(root / "tfds"), "faces": None, "manual_dir": None}, "geometry": None,
        "image_sets": {
            "gender_test": {**folder, "models": "gender", "labels": "true", "masking": True, "generalization": True},
            "faces": {**folder, "models": "all", "limit": 8, "labels": "predicted", "generalization": True,
                      "landmarks": str(root / "landmarks.csv")},
        },
        "relevance": {"composites": ["epsilon_gamma_box", "epsilon"], "batch_size": 8},
        "masking": {"fractions": (0.0, 0.25, 0.5, 1.0), "patch_size": 8, "fill": "road", "noise_std_pixels": 0.01,
                    "batch_size": 32, "seed": 0, "metric": "probability"},
        "statistics": {"n_boot": 100, "n_perm": 99, "confidence": 0.9, "seed": 0, "reliability_floor": 0.01},
        "controls": {"smoothgrad_samples": 2, "ig_steps": 2, "seed": 0},
        "mprt": {"image_set": "faces", "images": 3, "seed": 0},
        "asymmetry": [{"name": "vggface → imagenet", "a": {"pretraining": "vggface"},
                       "b": {"pretraining": "imagenet"}, "same": ["task"]}],
        "similarity": {"image_set": "faces", "top_k": 0.2},
        "regions": {"image_set": "faces", "regions_json": str(root / "regions.json")},
        "human": {"image_set": "faces", "mode": "synthetic", "source": "imagenet/gender/s1", "raters": 3,
                  "noise": 0.5, "triads_per_rater": 10, "seed": 0, "layer": "fc7", "keep": 0.5},
        "heatmaps": {"images": 3, "tile": 48},
    }


def test_study_end_to_end_then_a_rerun_loads_every_stage(tmp_path, capsys):
    make_grid(tmp_path / "grid")
    make_faces(tmp_path)
    config = tiny_config(tmp_path)
    first = run_study(config)
    workdir = tmp_path / "study"
    report = (workdir / "report.md").read_text()
    assert first["report"] == str(workdir / "report.md") and not first["loaded"]
    for heading in ("## Masking curves", "## Cross-model generalization", "## Map similarity", "## Face regions",
                    "## Human similarity", "Synthetic data", "## Model parameter randomisation test",
                    "| relation | control |", "reliable targets): "):
        assert heading in report, heading
    printed = re.findall(r"(-?\d+\.\d+) \[(-?\d+\.\d+), (-?\d+\.\d+)\]", report)
    assert len(printed) > 50 and all(float(lo) <= float(v) <= float(hi) for v, lo, hi in printed)
    for name in ("heatmaps_faces_epsilon_gamma_box.png", "heatmaps_gender_test_epsilon.png", "masking_gender_test.png",
                 "generalization_faces.png", "generalization_relations_faces.png", "similarity_relations.png",
                 "similarity_spearman.png", "region_shares.png", "rsa.png", "mprt.png"):
        assert (workdir / name).stat().st_size > 1000, name
        assert f"({name})" in report
    score = np.load(workdir / "stages" / "generalization_faces.npz")["score"]
    assert score.shape == (13, 4)  # four models, the two consensus maps and seven controls as sources
    np.testing.assert_allclose(np.diag(score[:4]), 1.0, atol=1e-12)
    summary = json.loads((workdir / "stages" / "generalization_faces.json").read_text())["summary"]
    # random models' own maps may not beat random order: asymmetries are drawn for pairs of reliable models only
    drawn = any(family["pairs"] for family in summary["asymmetry"])
    assert (workdir / "asymmetry_faces.png").is_file() == drawn
    assert set(summary["relations"]["all"]) == {"other seed", "other task", "other pretraining",
                                                "other task and pretraining"}
    assert set(summary["reliable"]) <= set(summary["targets"]) and len(summary["own_margin"]) == 4
    regions = json.loads((workdir / "stages" / "regions.json").read_text())["summary"]
    for values in regions["models"].values():
        assert abs(sum(v[0] for v in values) - 1) < 1e-6  # the shares of each image sum to 1
    err = capsys.readouterr().err  # the one progress display, quiet off a terminal: each stage's last line
    assert re.search(r"^  relevance on faces \(\d+ images\) 4/4 models  \d+\.\d models/s  ETA 00:00:00  \S+$", err,
                     re.M) and "\r" not in err

    second = run_study(config)
    err = capsys.readouterr().err
    assert second["computed"] == [] and set(second["loaded"]) == set(first["computed"])
    assert err.count("finished earlier, loaded") == len(first["computed"]) and "running" not in err
    assert (workdir / "report.md").read_text().split("## Relevance maps")[1] == report.split("## Relevance maps")[1]


def test_contrast_relevance_explains_the_prediction_against_the_others(tmp_path):
    np.testing.assert_allclose(lrpjax.core.targets.contrast_relevance(np.array([[2.0, -1.0, 0.5], [0.0, 3.0, 1.0]])),
                               [[2.0, 0.5, -0.25], [0.0, 3.0, -0.5]])
    make_grid(tmp_path)
    model = grid_models.discover(str(tmp_path))[0]
    pixels = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    images = ImageSet(np.array(["a", "b", "c"]), np.array(["a", "b", "c"]), pixels, np.zeros(3, np.int64),
                      np.array(["female", "male"]), np.zeros((0,), bool))
    plain = compute.explain_model(model, images, ["epsilon"], batch_size=2)
    contrast = compute.explain_model(model, images, ["epsilon"], batch_size=2, target="contrast")
    assert plain["heat"].shape == contrast["heat"].shape == (1, 3, 32, 32)
    np.testing.assert_allclose(plain["logits"], contrast["logits"], rtol=1e-5, atol=1e-6)
    assert not np.allclose(plain["heat"], contrast["heat"])
    with pytest.raises(ValueError, match="target='logit' is unknown"):
        compute.explain_model(model, images, ["epsilon"], batch_size=2, target="logit")


def test_a_changed_setting_recomputes_only_what_depends_on_it(tmp_path):
    stages = Stages(str(tmp_path), log=lambda line: None)
    calls = []

    def compute(key):
        calls.append(key)
        return {"n": len(calls)}, {"x": np.arange(3)}

    assert stages.run("a", {"k": 1}, compute).summary == {"n": 1}
    assert not stages.run("a", {"k": 1}, compute).computed
    assert stages.run("a", {"k": 2}, compute).summary == {"n": 2}
    np.testing.assert_array_equal(stages.run("a", {"k": 2}, compute).arrays["x"], np.arange(3))


def test_config_errors_are_named(tmp_path):
    config = tiny_config(tmp_path)
    with pytest.raises(ValueError, match=r"unknown keys \['typo'\]"):
        check_config({**config, "typo": 1})
    with pytest.raises(ValueError, match="similarity.image_set='nope'"):
        check_config({**config, "similarity": {"image_set": "nope"}})
    with pytest.raises(ValueError, match="exactly one of 'splits' and 'folder'"):
        check_config({**config, "image_sets": {"x": {"models": "all"}}})
    assert run_study_cli.main(["--config", str(tmp_path / "missing.py")]) == 2
    with pytest.raises(ValueError, match="no finished models"):
        run_study(config)


def test_generalization_summary_on_known_aucs():
    """Four targets whose own maps beat random except the last: scores, reliability, relations and asymmetry."""
    names = [f"{b}/{t}/s{s}" for b, t, s in MODELS]
    metadata = {n: {"pretraining": b, "task": t, "seed": s} for n, (b, t, s) in zip(names, MODELS)}
    rng = np.random.default_rng(0)
    own = np.array([0.2, 0.3, 0.2, 0.8])  # the last target's own maps do worse than random (0.6)
    cross = np.full((4, 4), 0.5)
    cross[np.arange(4), np.arange(4)] = own
    cross[2, 0] = 0.3  # vggface/gender/s0's maps transfer to imagenet/gender/s0 better than the reverse
    cross = np.concatenate([cross, np.full((1, 4), 0.58)])  # a control source: margin 0.02 on every target
    noise = rng.normal(0, 0.01, (5, 4, 30))
    aucs = lrpjax.analysis.CrossAUCs(tuple(names) + ("centre prior",), tuple(names), cross[..., None] + noise,
                                     np.full((4, 30), 0.6) + rng.normal(0, 0.01, (4, 30)), "probability")
    statistics = {"n_boot": 200, "n_perm": 1999, "confidence": 0.95, "seed": 0}
    family = {"name": "v→i", "a": {"pretraining": "vggface"}, "b": {"pretraining": "imagenet"}, "same": ["task"]}
    summary, arrays = analyses.generalization_summary(aucs, metadata, families=[family], statistics=statistics,
                                                      controls=["centre prior", "absent control"])
    assert summary["reliability_floor"] == 0.01 and list(summary["controls"]) == ["centre prior"]
    # other seed over imagenet/gender s0 <-> s1: s = (0.1 + 0.1) / (0.4 + 0.3); the control (0.02 + 0.02) / 0.7
    versus = summary["controls"]["centre prior"]["other seed"]
    assert abs(versus["control"][0] - 0.04 / 0.7) < 0.02 and versus["beats"]
    assert abs(versus["difference"][0] - 0.16 / 0.7) < 0.03
    pooled = summary["extra_sources"]["centre prior"]
    assert pooled["pooled"]["targets"] == 3 and abs(pooled["pooled"]["score"][0] - 0.06 / 1.1) < 0.02
    assert abs(pooled["margin_all"][0] - 0.02) < 0.005
    assert np.all(arrays["margin_low"] <= arrays["margin"]) and np.all(arrays["margin"] <= arrays["margin_high"])
    np.testing.assert_allclose(np.diag(arrays["score"]), 1.0)
    assert summary["reliable"] == names[:3] and summary["own_margin"][names[3]][2] < 0
    assert summary["relations"]["reliable"]["other seed"]["pairs"] == 2  # imagenet/gender s0 <-> s1, both reliable
    assert summary["relations"]["reliable"]["other task"]["pairs"] == 1
    # other task: vggface gender <-> identity; only s(identity -> gender) = (0.6 - 0.5) / 0.4 has a reliable target
    assert abs(summary["relations"]["reliable"]["other task"]["mean"] - 0.25) < 0.03
    assert abs(summary["relations"]["all"]["other task"]["mean"] - 0.25) > 0.1
    entry = summary["asymmetry"][0]
    assert entry["pairs"] == 2 and [(p["a"], p["b"]) for p in entry["by_pair"]] == [(names[2], names[0])]
    # s(v0 -> i0) = (0.6 - 0.3) / (0.6 - 0.2) = 0.75; s(i0 -> v0) = (0.6 - 0.5) / 0.4 = 0.25
    pair = entry["by_pair"][0]
    assert abs(pair["index"] - 0.5) < 0.03 and pair["p_value"] == pytest.approx(1 / 2000) and pair["significant"]
    assert pair["permutations"] == 1999 and entry["significant"] and entry["resolution"] == pytest.approx(1 / 2000)


def test_asymmetry_family_pairs_and_synthetic_raters():
    metadata = {f"{b}/{t}/s{s}": {"pretraining": b, "task": t, "seed": s} for b, t, s in MODELS}
    family = {"a": {"pretraining": "vggface"}, "b": {"pretraining": "imagenet"}, "same": ["task"]}
    assert analyses.family_pairs(list(metadata), metadata, family) == [
        ("vggface/gender/s0", "imagenet/gender/s0"), ("vggface/gender/s0", "imagenet/gender/s1")]
    source = lrpjax.analysis.embedding_rdm(np.random.default_rng(0).normal(size=(12, 5)))
    raters = human.synthetic_raters(source, raters=4, noise=0.0, seed=0)
    np.testing.assert_allclose(raters, np.broadcast_to(source, raters.shape))
    noisy = human.synthetic_raters(source, raters=4, noise=0.5, seed=0)
    np.testing.assert_allclose(noisy, noisy.transpose(0, 2, 1))
    assert 0.5 < lrpjax.analysis.rsa(noisy.mean(0), source) < 1


def test_figures_write_pngs(tmp_path):
    fractions = [0.0, 0.5, 1.0]
    curve = (np.array([1.0, 0.5, 0.1]), np.array([0.9, 0.4, 0.0]), np.array([1.0, 0.6, 0.2]))
    paths = [
        figures.masking_curves_figure(tmp_path / "curves.png", fractions, {"m": {"morf": curve, "random": curve}}),
        figures.matrix_figure(tmp_path / "matrix.png", np.array([[1.0, np.nan], [0.3, 1.0]]), rows=["a", "b"]),
        figures.asymmetry_figure(tmp_path / "asym.png", [("a vs b", 0.2, -0.1, 0.5, 0.03)]),
        figures.region_shares_figure(tmp_path / "regions.png", ["eyes", "nose"],
                                     {"g": (np.array([0.3, 0.7]), np.array([0.2, 0.6]), np.array([0.4, 0.8]))},
                                     areas=np.array([0.1, 0.9])),
        figures.rsa_figure(tmp_path / "rsa.png", {"fc7": {"a": (0.4, 0.001), "b": (0.1, 0.3)}}, ceiling=(0.5, 0.7)),
    ]
    for path in paths:
        with Image.open(path) as image:
            assert image.format == "PNG" and min(image.size) > 100
    with pytest.raises(ValueError, match="does not match"):
        figures.matrix_figure(tmp_path / "bad.png", np.zeros((2, 3)), rows=["a", "b"])


def test_given_maps_follow_the_image_set_and_its_geometry(tmp_path):
    from experiments.study.images import given_maps

    images = ImageSet(np.array(["t/b", "t/a"]), np.array(["b", "a"]), np.zeros((2, 4, 4, 3), np.uint8),
                      np.array([0, 1]), np.array(["x", "y"]), np.zeros((0,), bool))
    heat = np.zeros((3, 8, 8), np.float32)
    heat[1, 0:2, 6:8] = 1.0  # "a": its top-right 2x2 block at 8x8 is the top-right pixel at 4x4
    heat[0, 4:6, 0:2] = 2.0  # "b"
    path = tmp_path / "maps.npz"
    np.savez(path, ids=np.array(["b", "a", "c"]), cue=heat)
    maps = given_maps(str(path), images, {"resize": 4, "crop": 4})
    assert list(maps) == ["cue"] and maps["cue"].shape == (2, 4, 4)
    np.testing.assert_array_equal(np.argwhere(maps["cue"][1]), [[0, 3]])  # image "a", area-averaged
    np.testing.assert_array_equal(np.argwhere(maps["cue"][0]), [[2, 0]])
    assert maps["cue"][0, 2, 0] == 2.0
    np.savez(path, ids=np.array(["a"]), cue=heat[:1])
    with pytest.raises(ValueError, match=r"no row for 1 of the 2 images, e.g. \['b'\]"):
        given_maps(str(path), images, {"resize": 4, "crop": 4})
    np.savez(path, ids=np.array(["a", "b"]), cue=heat[:2, 0])
    with pytest.raises(ValueError, match=r"map 'cue' has shape \(2, 8\); want \[2, H, W\]"):
        given_maps(str(path), images, {"resize": 4, "crop": 4})
    np.savez(path, ids=np.array(["a", "b"]), cue=heat[:2, :2, :2])
    with pytest.raises(ValueError, match="smaller than the crop 4"):
        given_maps(str(path), images, {"resize": None, "crop": 4})
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="cannot be read"):
        given_maps(str(tmp_path / "broken.npz"), images, {"resize": 4, "crop": 4})
    np.savez(path, cue=heat)
    with pytest.raises(ValueError, match="needs 'ids' and at least one map"):
        given_maps(str(path), images, {"resize": 4, "crop": 4})
