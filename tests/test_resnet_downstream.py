"""ResNets downstream, as a user runs them: the ``lrpjax explain`` job, ``lrpjax crosscheck`` against Zennit with
its ResNetCanonizer, training in the model grid (resumed exactly), the study and the face embedding.

One tiny ResNet-18 (1/16 width, 32x32, two classes, batch norms far from the identity) serves every test, so each
compiled function is compiled once for the module.
"""

from __future__ import annotations

import functools
import json
import os

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from PIL import Image

import lrpjax
from lrpjax.analysis import human, randomization
from lrpjax.io import checkpoints
from lrpjax.io.preprocess import TORCHVISION, load_image, preprocess
from lrpjax.jobs import cli, train
from lrpjax.jobs import crosscheck as cc
from lrpjax.jobs import explain as batch
from lrpjax.jobs.store import STORE_FILE
from weights_conversion.resnet import resnet_to_variables
from weights_conversion.torch_resnet import torch_resnet_for

try:  # pytest's default "prepend" import mode puts tests/ on sys.path
    from torch_resnet import torch_resnet
except ModuleNotFoundError:  # tests/ imported as a package
    from tests.torch_resnet import torch_resnet

SIZE = 32
PREPROCESSING = {**TORCHVISION, "name": "tiny32", "resize": 36, "crop": SIZE}
COMPOSITES = ["epsilon_gamma_box"]  # one backward pass to compile: each ResNet compilation takes seconds


def tiny_resnet(seed: int = 0) -> tuple[lrpjax.core.models.ResNet, dict]:
    """ResNet-18 at 1/16 width for 32x32 images, He-normal convs, batch norms far from the identity, fc bias."""
    model = lrpjax.resnet18(num_classes=2, width=1 / 16, input_size=SIZE)
    rng = np.random.default_rng(seed)
    variables = train.random_variables(model, seed)

    def perturb(path, leaf):
        kind = path[-1].key
        if kind in ("scale", "var"):
            return jnp.asarray(rng.uniform(0.5, 1.5, leaf.shape), leaf.dtype)
        if kind in ("mean", "bias"):
            return jnp.asarray(rng.normal(0, 0.1, leaf.shape), leaf.dtype)
        return leaf

    return model, jax.tree_util.tree_map_with_path(perturb, variables)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("resnet")
    model, variables = tiny_resnet()
    checkpoint = checkpoints.save(root / "ckpt", model, variables, {"preprocessing": PREPROCESSING,
                                                                     "class_names": ["a", "b"]})
    images = root / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for k in range(5):
        Image.fromarray(rng.integers(0, 256, (36, 40, 3), dtype=np.uint8)).save(images / f"{k}.png")
    ids = [f"{k}.png" for k in range(5)]
    x = np.stack([np.asarray(preprocess(load_image(images / i), PREPROCESSING)[0]) for i in ids]).astype(np.float32)
    logits = np.asarray(jax.jit(model.apply)(variables, x))
    return {"root": root, "checkpoint": checkpoint, "images": images, "model": model, "variables": variables,
            "ids": ids, "x": x, "logits": logits}


def test_explain_job_on_a_resnet_checkpoint_writes_its_store_resumes_and_writes_pngs(setup):
    out = setup["root"] / "job"
    run = dict(composite_names=COMPOSITES, batch_size=2, chunk_size=2, dtype="float32", workers=1)

    def stop_after_first_chunk(marked):
        if marked == 1:
            raise KeyboardInterrupt("stopped by the test")

    with pytest.raises(KeyboardInterrupt):
        batch.explain_dataset(setup["checkpoint"], str(setup["images"]), str(out), **run,
                              on_batch_written=stop_after_first_chunk)
    argv = ["explain", setup["checkpoint"], "--images", str(setup["images"]), "--out", str(out), "--composite",
            *COMPOSITES, "--batch-size", "2", "--chunk-size", "2", "--workers", "1", "--png", "--gallery"]
    assert cli.main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["explained"], summary["computed_this_run"]) == (5, 3)  # the first chunk was kept
    with h5py.File(out / STORE_FILE, "r") as store:
        ids = [i.decode() for i in store["ids"][:]]
        stored = {name: store[f"relevance/{name}"][:] for name in COMPOSITES}
        logits, targets = store["logits"][:], store["targets"][:]
    assert ids == setup["ids"]
    want = setup["logits"]
    np.testing.assert_allclose(logits, want, rtol=1e-5, atol=1e-6 * np.abs(want).max())
    np.testing.assert_array_equal(targets, want.argmax(1))
    for name in COMPOSITES:
        assert stored[name].shape == (5, SIZE, SIZE) and np.isfinite(stored[name]).all()
        assert np.abs(stored[name]).max(axis=(1, 2)).min() > 0, name  # every image explained, none left empty
    for name in COMPOSITES:
        assert (out / "png" / name / "4.png.heatmap.png").is_file(), name
    assert "4.png" in (out / "index.html").read_text()


def test_crosscheck_of_a_resnet_checkpoint_against_zennit_and_the_torch_twins_weights(setup, capsys, tmp_path):
    argv = ["crosscheck", setup["checkpoint"], "--images", str(setup["images"]), "--limit", "2"]
    for name in COMPOSITES:
        argv += ["--composite", name]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "resnet18 (width 0.0625, 2 classes, layout torchvision)" in printed and "all composites agree" in printed
    # a torchvision .pth is converted in memory and checked against the torch model it came from; the twin of a
    # checkpoint directory gets its weights by the conversion run backwards, which returns the file's tensors
    state_dict = torch_resnet(18, 2, width=1 / 16, seed=3).state_dict()
    model, variables = resnet_to_variables(state_dict)
    back = torch_resnet_for(model, variables, None).state_dict()
    from_numpy = torch_resnet_for(model, variables, {k: v.numpy() for k, v in state_dict.items()}).state_dict()
    for key, value in state_dict.items():
        torch.testing.assert_close(back[key], value, rtol=0, atol=0)
        torch.testing.assert_close(from_numpy[key], value, rtol=0, atol=0)
    path = tmp_path / "resnet18_tiny.pth"
    torch.save(state_dict, path)
    with pytest.raises(ValueError, match="size=16 is too small: ResNet's five stride-2 stages need at least 32x32"):
        cc.crosscheck(path, setup["images"], COMPOSITES, size=16)


def _resnet_grid(root, faces, *, steps=4):
    """One ResNet stand-in base (the ``model`` field) and one finetuned ResNet, both on London gender."""
    model = {"family": "resnet", "depth": 18, "width": 1 / 16, "input_size": SIZE}
    training = {"trainable": "layer4", "optimizer": "sgd", "learning_rate": 0.01, "momentum": 0.9,
                "weight_decay": 5e-4, "schedule": "cosine", "warmup_steps": 1, "steps": steps, "batch_size": 8,
                "eval_every": 2, "checkpoint_every": 2, "log_every": 2, "workers": 1}
    return {
        "description": "ResNet grid", "workdir": str(root),
        "data": {"data_dir": str(root.parent / "tfds"), "faces": str(faces), "manual_dir": None},
        "bases": {"scratch": {"description": "a ResNet-18 trained here", "train": "london_gender:train",
                              "config": {**training, "model": model,
                                         "preprocessing": PREPROCESSING}}},
        "tasks": {"gender": {"train": "london_gender:train", "validation": None,
                             "tests": {"London test": "london_gender:test"}}},
        "seeds": [0], "finetune": training,
    }


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FACES = os.path.join(ROOT, "..", "shared", "data", "faces")


@pytest.mark.skipif(not os.path.isdir(os.path.join(FACES, "london")), reason="the shared face sets are absent")
def test_grid_trains_a_resnet_from_its_model_field_and_a_resumed_run_ends_equal(tmp_path, monkeypatch):
    from experiments.grid import load_config, run_grid

    shipped = load_config(os.path.join(ROOT, "experiments", "configs", "grid_cpu.py:smoke,resnet18"))
    assert shipped["bases"]["vggface"]["config"]["model"] == {"family": "resnet", "depth": 18, "width": 0.0625,
                                                             "input_size": 32}

    quiet = functools.partial(run_grid, log=lambda line: None)
    whole = quiet(_resnet_grid(tmp_path / "whole", FACES))
    assert whole["trained"] == [str(tmp_path / "whole" / "runs" / "scratch" / "gender" / "seed0")]

    def stop_at_step_2(step, state):
        if step == 2:
            raise KeyboardInterrupt("stopped by the test")

    original = train.run
    interrupted = functools.partial(original, hooks=[stop_at_step_2])
    cut = _resnet_grid(tmp_path / "cut", FACES)
    monkeypatch.setattr("experiments.grid.train.run", lambda config, workdir, **kw: (
        interrupted if config.task == "gender" else original)(config, workdir, **kw))
    with pytest.raises(KeyboardInterrupt):
        quiet(cut)
    monkeypatch.setattr("experiments.grid.train.run", original)
    again = quiet(cut)
    assert again["trained"] and again["rows"] == whole["rows"]
    a = checkpoints.load(tmp_path / "whole" / "runs" / "scratch" / "gender" / "seed0" / "model")
    b = checkpoints.load(tmp_path / "cut" / "runs" / "scratch" / "gender" / "seed0" / "model")
    assert isinstance(b[0], lrpjax.core.models.ResNet) and b[0].depth == 18
    for x, y in zip(jax.tree.leaves(a[1]), jax.tree.leaves(b[1])):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    base = checkpoints.load(tmp_path / "cut" / "bases" / "scratch" / "model")[1]
    for group in ("params", "batch_stats"):
        for name, layer in base[group].items():
            same = all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(layer), jax.tree.leaves(b[1][group][name])))
            assert same == (not name.startswith("layer4.") and name != "fc"), name  # trainable="layer4"
    with pytest.raises(ValueError, match="trainable='layer4' is not a VGG group"):
        train.trainable_layers({"fc8": {}}, "layer4")


# the grid's training settings (_resnet_grid) as `lrpjax train` flags
GRID_TRAINING = ["--trainable", "layer4", "--optimizer", "sgd", "--learning-rate", "0.01", "--weight-decay", "5e-4",
                 "--schedule", "cosine", "--warmup-steps", "1", "--steps", "4", "--batch-size", "8", "--eval-every",
                 "2", "--checkpoint-every", "2", "--workers", "1"]


def test_train_command_starts_a_resnet_from_scratch_and_names_bad_model_flags(tmp_path, capsys):
    """After the grid test, whose from-scratch base has these settings: its compiled step is reused."""
    workdir = tmp_path / "resnet"
    argv = ["train", str(workdir), "--train", "lfw_subset:train", "--test", "lfw_subset:test", "--data-dir",
            str(tmp_path / "tfds"), "--family", "resnet", "--depth", "18", "--width", "0.0625", "--input-size", "32",
            "--preprocessing", json.dumps(PREPROCESSING), *GRID_TRAINING]
    assert cli.main(argv) == 0
    model, variables, metadata = checkpoints.load(workdir / "model")
    assert checkpoints.model_config(model) == {"family": "resnet", "depth": 18, "num_classes": 2, "width": 0.0625,
                                               "layout": "torchvision", "input_size": 32, "dropout_rate": 0.0,
                                               "param_dtype": "float32"}
    assert variables["params"]["layer4.1.conv2"]["kernel"].shape == (3, 3, 32, 32)
    assert metadata["test"]["lfw_subset:test"]["count"] == 40
    capsys.readouterr()
    bad = {("--depth", "16"): "depth=16 is not a ResNet depth; choose one of [18, 34, 50, 101, 152]",
           ("--width", "0"): "width=0.0 must be positive",
           ("--batch-norm", None): "--batch-norm is not a resnet option",
           ("--family", "vgg", "--layout", "vggface2"): "--layout is not a vgg option",
           ("--base", str(workdir / "model")): "--family/--depth given with --base"}
    for change, message in bad.items():
        wrong = list(argv)
        for flag, value in zip(change[::2], change[1::2]):
            if flag in wrong and value is not None:
                wrong[wrong.index(flag) + 1] = value
            else:
                wrong += [flag] + ([value] if value is not None else [])
        assert cli.main([a if a != str(workdir) else str(tmp_path / "bad") for a in wrong]) == 2, change
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (change, lines)


def test_fc7_features_of_a_resnet_are_its_pooled_features_before_fc(setup):
    model, variables = setup["model"], setup["variables"]
    features = human.fc7_features(model, variables, setup["x"], batch_size=5)
    fc = variables["params"]["fc"]
    assert features.shape == (5, 32) and np.all(features >= 0)  # layer4 of 1/16 width: 32 channels
    np.testing.assert_allclose(features @ np.asarray(fc["kernel"], np.float64) + np.asarray(fc["bias"]),
                               setup["logits"], rtol=1e-5, atol=1e-6 * np.abs(setup["logits"]).max())
    with pytest.raises(ValueError, match="layer='fc7' is not a conv or dense layer of this ResNet"):
        human.layer_features(model, variables, setup["x"], layer="fc7")


def test_study_on_a_grid_of_resnets_writes_every_section(setup, tmp_path):
    from test_study import make_faces, tiny_config

    from experiments.study import run_study

    for k, base in enumerate(("imagenet", "vggface")):
        model, variables = tiny_resnet(seed=k)
        metadata = {"task": "gender", "seed": 0, "class_names": ["female", "male"], "preprocessing": PREPROCESSING,
                    "test": {"gender:test": {"accuracy": 0.5}}}
        checkpoints.save(tmp_path / "grid" / "runs" / base / "gender" / "seed0" / "model", model, variables, metadata)
    make_faces(tmp_path, count=6)
    config = tiny_config(tmp_path)
    for optional in ("controls", "mprt"):  # both run the models as the stages below do; MPRT on ResNets: below
        config.pop(optional)
    config["image_sets"].pop("gender_test")
    config["image_sets"]["faces"]["limit"] = 6
    config["relevance"]["composites"] = COMPOSITES
    config["human"] = {**config["human"], "source": "imagenet/gender/s0"}
    result = run_study(config)
    report = (tmp_path / "study" / "report.md").read_text()
    assert result["report"] == str(tmp_path / "study" / "report.md")
    for heading in ("## Masking curves", "## Cross-model generalization", "## Map similarity", "## Face regions",
                    "## Human similarity"):
        assert heading in report, heading
    score = np.load(tmp_path / "study" / "stages" / "generalization_faces.npz")["score"]
    np.testing.assert_allclose(np.diag(score[:2]), 1.0, atol=1e-12)


def test_parameter_randomisation_of_a_resnet_redraws_the_top_layers_and_resets_their_batch_norms(setup):
    model, variables = setup["model"], setup["variables"]
    order = randomization.layer_order(model)
    assert order[:4] == ["fc", "layer4.1.conv2", "layer4.1.conv1", "layer4.0.downsample.0"]
    out = randomization.randomize_layers(model, variables, 4, key=jax.random.key(0))
    for name in order[:6]:
        changed = not np.array_equal(out["params"][name]["kernel"], variables["params"][name]["kernel"])
        assert changed == (name in order[:4]) and ("bias" in out["params"][name]) == (name == "fc"), name
    np.testing.assert_array_equal(out["batch_stats"]["layer4.0.downsample.1"]["var"], 1.0)
    np.testing.assert_array_equal(out["params"]["layer4.1.bn2"]["scale"], 1.0)
    assert not np.array_equal(out["params"]["layer4.0.bn2"]["scale"], 1.0)  # layer4.0.conv2 is not redrawn yet
