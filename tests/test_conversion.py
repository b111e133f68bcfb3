"""PyTorch -> lrpjax conversion, checkpoints and preprocessing.

Reference networks are plain-``torch.nn`` VGGs (``tests/torch_vgg.py``) with random weights;
nothing is downloaded. Logits of the converted network must equal torch's to 1e-5 relative.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from PIL import Image

from lrpjax.io import checkpoints
from lrpjax.io.preprocess import (
    TORCHVISION,
    VGGFACE,
    load_image,
    preprocess,
    preset,
    zbox_bounds,
)
from weights_conversion.convert import (
    ARCHITECTURES,
    convert_file,
    finetuned_to_variables,
    torchvision_to_variables,
    vggface_to_variables,
)

try:  # pytest's default "prepend" import mode puts tests/ on sys.path
    from torch_vgg import torch_vgg, torch_vggface
except ModuleNotFoundError:  # tests/ imported as a package
    from tests.torch_vgg import torch_vgg, torch_vggface

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RTOL = 1e-5


# ----------------------------------------------------------------------------- helpers


def random_images(size: int = 224, batch: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def assert_same_logits(torch_model, model, variables, size: int = 224) -> None:
    """float32 logits of ``model`` on NHWC equal ``torch_model``'s on NCHW, to 1e-5 relative."""
    x = random_images(size)
    with torch.no_grad():
        expected = torch_model(x).numpy()
    with jax.default_matmul_precision("highest"):
        got = np.asarray(jax.jit(model.apply)(variables, jnp.asarray(x.numpy().transpose(0, 2, 3, 1))))
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=RTOL * np.abs(expected).max())


def save_pth(obj, path) -> str:
    torch.save(obj, path)
    return str(path)


def assert_nothing_written(dest) -> None:
    """``dest`` is absent and no temporary sibling of it was left behind."""
    dest = str(dest)
    assert not os.path.exists(dest)
    parent, name = os.path.split(dest)
    assert [entry for entry in os.listdir(parent) if entry.startswith(f".{name}.")] == []


@pytest.fixture(scope="module")
def small_pth(tmp_path_factory) -> tuple[torch.nn.Module, str]:
    """A narrow torchvision-layout VGG-16 with 5 classes, saved once for the error tests."""
    module = torch_vgg(16, 5, width=0.125, seed=3)
    return module, save_pth(module.state_dict(), tmp_path_factory.mktemp("weights") / "small.pth")


# ----------------------------------------------------------------------------- full conversions


def test_torchvision_vgg16_matches_torch(tmp_path):
    reference = torch_vgg(16, 1000, seed=0)
    source = save_pth(reference.state_dict(), tmp_path / "vgg16.pth")
    convert_file("torchvision", source, tmp_path / "ckpt")
    model, variables, metadata = checkpoints.load(tmp_path / "ckpt")
    fields = (model.depth, model.batch_norm, model.width, model.pool_to, model.num_classes)
    assert fields == (16, False, 1.0, 7, 1000)
    assert metadata["architecture"] == "vgg16"
    assert metadata["num_classes"] == 1000 and metadata["class_names"] is None
    assert metadata["preprocessing"] == preset("torchvision")
    assert metadata["source"] == os.path.abspath(source)
    with open(source, "rb") as handle:
        assert metadata["source_sha256"] == hashlib.sha256(handle.read()).hexdigest()
    assert metadata["model"]["input_size"] == 224
    assert_same_logits(reference, model, variables)


def test_torchvision_vgg16_bn_matches_torch_in_eval_mode(tmp_path):
    reference = torch_vgg(16, 10, batch_norm=True, width=0.25, seed=1)
    source = save_pth(reference.state_dict(), tmp_path / "vgg16_bn.pth")
    convert_file("torchvision", source, tmp_path / "ckpt")
    model, variables, metadata = checkpoints.load(tmp_path / "ckpt")
    assert metadata["architecture"] == "vgg16_bn" and model.batch_norm and model.width == 0.25
    bn = reference.features[1]
    np.testing.assert_array_equal(variables["batch_stats"]["bn1_1"]["var"], bn.running_var.numpy())
    np.testing.assert_array_equal(variables["params"]["bn1_1"]["scale"], bn.weight.detach().numpy())
    assert_same_logits(reference, model, variables)


def test_vggface_full_size_matches_torch(tmp_path):
    reference = torch_vggface(seed=2)
    source = save_pth(reference.state_dict(), tmp_path / "vgg_face_dag.pth")
    convert_file("vggface", source, tmp_path / "ckpt")
    model, variables, metadata = checkpoints.load(tmp_path / "ckpt")
    assert (model.depth, model.pool_to, model.input_size, model.num_classes) == (16, None, 224, 2622)
    assert metadata["preprocessing"] == preset("vggface")
    assert variables["params"]["fc6"]["kernel"].shape == (512 * 7 * 7, 4096)
    assert_same_logits(reference, model, variables)


def test_vggface_narrow_with_few_classes():
    reference = torch_vggface(7, width=0.25, seed=4)
    model, variables = vggface_to_variables(reference.state_dict())
    assert (model.width, model.num_classes, model.pool_to) == (0.25, 7, None)
    assert_same_logits(reference, model, variables)


def test_finetuned_through_the_cli(tmp_path):
    """The real command line: a wrapped, DataParallel-prefixed VGG-16 with a 2-class head and names."""
    reference = torch_vgg(16, 2, width=0.25, seed=5)
    wrapped = {
        "state_dict": {f"module.{key}": value for key, value in reference.state_dict().items()},
        "class_names": ["cat", "dog"],
        "epoch": 12,
    }
    source = save_pth(wrapped, tmp_path / "finetuned.pth")
    dest = tmp_path / "ckpt"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(
        [sys.executable, "-m", "weights_conversion", "finetuned", source, str(dest)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "vgg16" in result.stdout
    model, variables, metadata = checkpoints.load(dest)
    assert metadata["class_names"] == ["cat", "dog"] and metadata["architecture"] == "vgg16"
    assert metadata["source_format"] == "finetuned"
    assert_same_logits(reference, model, variables)

    again = subprocess.run(
        [sys.executable, "-m", "weights_conversion", "finetuned", source, str(dest)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert again.returncode == 1 and "already exists" in again.stderr and "--overwrite" in again.stderr


def test_finetuned_class_names(tmp_path):
    reference = torch_vgg(16, 2, width=0.125, seed=6)
    state_dict = reference.state_dict()
    model, _, names = finetuned_to_variables(state_dict)
    assert model.num_classes == 2 and names is None
    with pytest.raises(ValueError, match="'class_names' has 3 names but the head has 2"):
        finetuned_to_variables({"state_dict": state_dict, "class_names": ["a", "b", "c"]})
    with pytest.raises(ValueError, match="is not one of"):
        finetuned_to_variables(state_dict, arch="vgg17")

    source = save_pth(state_dict, tmp_path / "ft.pth")
    names_file = tmp_path / "names.txt"
    names_file.write_text("healthy\n  diseased \n\n")
    _, metadata = convert_file("finetuned", source, tmp_path / "ok", class_names_file=names_file)
    assert metadata["class_names"] == ["healthy", "diseased"]
    names_file.write_text("one\ntwo\nthree\n")
    with pytest.raises(ValueError, match="3 class names given but the model has 2 classes"):
        convert_file("finetuned", source, tmp_path / "bad", class_names_file=names_file)
    assert_nothing_written(tmp_path / "bad")


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_architecture_is_inferred_from_keys(arch):
    depth, batch_norm = ARCHITECTURES[arch]
    reference = torch_vgg(depth, 3, batch_norm=batch_norm, width=0.125, seed=depth)
    model, variables = torchvision_to_variables(reference.state_dict())
    assert (model.depth, model.batch_norm, model.width, model.num_classes) == (depth, batch_norm, 0.125, 3)
    checkpoints.check_variables(model, variables)
    if arch in ("vgg11", "vgg19_bn"):
        assert_same_logits(reference, model, variables, size=32)


def test_torchvision_module_indices():
    """The key names of torchvision.models.vgg16 / vgg16_bn (as published), not just of our torch twin."""
    from weights_conversion.convert import layout, torchvision_names

    def keys(arch: str) -> set[str]:
        depth, batch_norm = ARCHITECTURES[arch]
        reference = torch_vgg(depth, 4, batch_norm=batch_norm, width=0.125)
        model = torchvision_to_variables(reference.state_dict(), arch)[0]
        return {entry.key for entry in layout(model, torchvision_names(model))}

    convs = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
    head = {f"classifier.{i}.{p}" for i in (0, 3, 6) for p in ("weight", "bias")}
    assert keys("vgg16") == {f"features.{i}.{p}" for i in convs for p in ("weight", "bias")} | head
    convs_bn = [0, 3, 7, 10, 14, 17, 20, 24, 27, 30, 34, 37, 40]
    bn_keys = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    assert keys("vgg16_bn") == (
        {f"features.{i}.{p}" for i in convs_bn for p in ("weight", "bias")}
        | {f"features.{i + 1}.{p}" for i in convs_bn for p in bn_keys} | head
    )


# ----------------------------------------------------------------------------- refusals


def _state_dict_with(problems: set[str]) -> dict:
    state_dict = dict(torch_vgg(16, 5, width=0.125, seed=3).state_dict())
    if "missing" in problems:
        del state_dict["features.28.weight"]
    if "extra" in problems:
        state_dict["features.99.weight"] = torch.zeros(3)
    if "shape" in problems:
        state_dict["classifier.3.weight"] = torch.zeros(512, 7)
    if "dtype" in problems:
        state_dict["classifier.6.bias"] = torch.zeros(5, dtype=torch.int64)
    return state_dict


@pytest.mark.parametrize(
    ("problem", "key"),
    [("missing", "features.28.weight"), ("extra", "features.99.weight"), ("shape", "classifier.3.weight"),
     ("dtype", "classifier.6.bias")],
)
@pytest.mark.parametrize("arch", [None, "vgg16"])
def test_bad_state_dict_is_refused_naming_the_key(problem, key, arch):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        torchvision_to_variables(_state_dict_with({problem}), arch)


def test_all_bad_keys_are_listed_in_one_error(tmp_path):
    source = save_pth(_state_dict_with({"missing", "extra", "shape"}), tmp_path / "bad.pth")
    dest = tmp_path / "ckpt"
    with pytest.raises(ValueError) as error:
        convert_file("torchvision", source, dest)
    message = str(error.value)
    for key in ("features.28.weight", "features.99.weight", "classifier.3.weight", "bad.pth"):
        assert key in message
    assert "3 problem(s)" in message
    assert_nothing_written(dest)


def test_vggface_keys_are_checked():
    state_dict = dict(torch_vggface(4, width=0.125).state_dict())
    state_dict.pop("conv3_2.bias")
    state_dict["fc6.weight"] = state_dict["fc6.weight"][:, :-1]
    with pytest.raises(ValueError, match=r"missing key 'conv3_2\.bias'.*key 'fc6\.weight' has shape"):
        vggface_to_variables(state_dict)


def test_missing_unreadable_and_truncated_files(tmp_path, small_pth):
    dest = tmp_path / "ckpt"
    with pytest.raises(FileNotFoundError, match="nothere.pth"):
        convert_file("torchvision", tmp_path / "nothere.pth", dest)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a pytorch file\n" * 10)
    with pytest.raises(ValueError, match="cannot read weights file .*garbage.pth"):
        convert_file("torchvision", garbage, dest)
    truncated = tmp_path / "truncated.pth"
    with open(small_pth[1], "rb") as handle:
        data = handle.read()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cannot read weights file .*truncated.pth"):
        convert_file("torchvision", truncated, dest)
    assert_nothing_written(dest)


def test_existing_destination_needs_overwrite(tmp_path, small_pth):
    dest = tmp_path / "ckpt"
    convert_file("torchvision", small_pth[1], dest)
    with pytest.raises(FileExistsError, match="already exists"):
        convert_file("torchvision", small_pth[1], dest)
    other = torch_vgg(11, 4, width=0.125, seed=9)
    convert_file("torchvision", save_pth(other.state_dict(), tmp_path / "other.pth"), dest, overwrite=True)
    model, _, metadata = checkpoints.load(dest)
    assert metadata["architecture"] == "vgg11" and model.num_classes == 4
    assert [entry for entry in os.listdir(tmp_path) if entry.startswith(".ckpt.")] == []
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not a checkpoint directory"):
        convert_file("torchvision", small_pth[1], tmp_path / "notes", overwrite=True)
    assert (tmp_path / "notes" / "a.txt").read_text() == "keep me"


def test_failed_save_leaves_no_partial_checkpoint(tmp_path, small_pth, monkeypatch):
    model, variables = torchvision_to_variables(torch.load(small_pth[1], weights_only=True))
    checkpoints.save(tmp_path / "old", model, variables, {"note": "old"})

    def fail(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(checkpoints.json, "dump", fail)
    with pytest.raises(OSError, match="simulated"):
        checkpoints.save(tmp_path / "new", model, variables, {})
    assert_nothing_written(tmp_path / "new")
    with pytest.raises(OSError, match="simulated"):
        checkpoints.save(tmp_path / "old", model, variables, {"note": "new"}, overwrite=True)
    monkeypatch.undo()
    assert checkpoints.load(tmp_path / "old")[2]["note"] == "old"
    assert sorted(os.listdir(tmp_path)) == ["old"]


# ----------------------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip_and_metadata_checks(tmp_path, small_pth):
    model, variables = torchvision_to_variables(small_pth[0].state_dict())
    names = [f"class {i}" for i in range(5)]
    written = checkpoints.save(tmp_path / "a" / "ckpt", model, variables,
                               {"class_names": names, "preprocessing": TORCHVISION, "run": 7})
    loaded_model, loaded, metadata = checkpoints.load(written)
    assert loaded_model == model
    assert metadata["class_names"] == names and metadata["run"] == 7 and metadata["architecture"] == "vgg16"
    assert metadata["preprocessing"] == preset("torchvision") and metadata["source"] is None
    leaves = zip(jax.tree_util.tree_leaves(variables), jax.tree_util.tree_leaves(loaded), strict=True)
    for a, b in leaves:
        np.testing.assert_array_equal(a, b)
    checkpoints.save(tmp_path / "again", loaded_model, loaded, metadata)  # load -> save round trips

    with pytest.raises(ValueError, match="class_names has 2 names but the model has 5"):
        checkpoints.save(tmp_path / "x", model, variables, {"class_names": ["a", "b"]})
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        checkpoints.save(tmp_path / "x", model, variables, {"bad": object()})
    broken = {"params": dict(variables["params"])}
    broken["params"].pop("fc7")
    with pytest.raises(ValueError, match="missing params/fc7/kernel"):
        checkpoints.save(tmp_path / "x", model, broken, {})
    assert_nothing_written(tmp_path / "x")


def test_load_reports_missing_and_corrupt_checkpoints(tmp_path, small_pth):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        checkpoints.load(tmp_path / "absent")
    model, variables = torchvision_to_variables(small_pth[0].state_dict())
    good = checkpoints.save(tmp_path / "good", model, variables)

    def damaged(name: str, damage) -> str:
        path = tmp_path / name
        shutil.copytree(good, path)
        damage(path)
        return str(path)

    no_metadata = damaged("no_metadata", lambda p: os.remove(p / "metadata.json"))
    with pytest.raises(FileNotFoundError, match="no_metadata.*missing metadata.json"):
        checkpoints.load(no_metadata)
    bad_json = damaged("bad_json", lambda p: (p / "metadata.json").write_text("{not json"))
    with pytest.raises(ValueError, match="bad_json.*unreadable metadata.json"):
        checkpoints.load(bad_json)
    no_variables = damaged("no_variables", lambda p: shutil.rmtree(p / "variables"))
    with pytest.raises(FileNotFoundError, match="no_variables.*missing its variables/"):
        checkpoints.load(no_variables)

    def truncate_data(path) -> None:
        for root, _, files in os.walk(path / "variables"):
            for name in files:
                if os.path.basename(root) == "d":
                    full = os.path.join(root, name)
                    os.truncate(full, os.path.getsize(full) // 2)

    truncated = damaged("truncated_data", truncate_data)
    with pytest.raises(ValueError, match="truncated_data.*cannot restore variables/"):
        checkpoints.load(truncated)

    def truncate_largest(path) -> None:  # one array unreadable, the others' reads still in flight when it fails
        largest = max((p for p in (path / "variables").rglob("*") if p.parent.name == "d"), key=os.path.getsize)
        os.truncate(largest, 1000)

    # the CLI's stderr holds the one-line error only, no "Event loop is closed" tracebacks of reads in flight
    truncated = damaged("one_truncated", truncate_largest)
    (tmp_path / "images").mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "images" / "one.png")
    result = subprocess.run([sys.executable, "-m", "lrpjax", "explain", truncated, "--images",
                             str(tmp_path / "images"),
                             "--out", str(tmp_path / "out")], cwd=REPO, capture_output=True, text=True, timeout=300,
                            check=False)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"lrpjax explain: error: checkpoint {truncated!r}: cannot restore variables/")

    def other_model(path) -> None:
        metadata = json.loads((path / "metadata.json").read_text())
        metadata["model"]["num_classes"] = 6
        (path / "metadata.json").write_text(json.dumps(metadata))

    with pytest.raises(ValueError, match=r"params/fc8/kernel has shape \(512, 5\), expected \(512, 6\)"):
        checkpoints.load(damaged("other_model", other_model))


def test_lrpjax_does_not_import_torch():
    code = ("import sys, lrpjax, lrpjax.io.checkpoints, lrpjax.io.preprocess; "
            "assert 'torch' not in sys.modules, 'lrpjax imported torch'")
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr


# ----------------------------------------------------------------------------- preprocessing


def test_preprocess_small_image_known_numbers():
    y, x, c = np.meshgrid(np.arange(4), np.arange(6), np.arange(3), indexing="ij")
    image = (10 * y + x + 100 * c).astype(np.uint8)  # [4, 6, 3]
    spec = {"name": "test", "pixel_range": [0, 1], "mean": [0.5, 0.25, 0.0], "std": [0.25, 0.5, 2.0],
            "resize": None, "crop": 2}
    out = preprocess(image, spec)
    assert out.shape == (1, 2, 2, 3) and out.dtype == jnp.float32
    # the centre 2x2 crop is rows 1-2, columns 2-3: pixel values 12, 13, 22, 23 (+100 per channel)
    red = (np.array([[12, 13], [22, 23]]) / 255 - 0.5) / 0.25
    green = (np.array([[112, 113], [122, 123]]) / 255 - 0.25) / 0.5
    blue = np.array([[212, 213], [222, 223]]) / 255 / 2.0
    np.testing.assert_allclose(out[0], np.stack([red, green, blue], -1), rtol=1e-6)
    np.testing.assert_allclose(preprocess(image.astype(np.float32) / 255, spec), out, rtol=1e-6, atol=1e-6)


def test_preprocess_presets_on_constant_images():
    image = np.zeros((300, 400, 3), np.uint8) + np.array([255, 0, 128], np.uint8)
    out = preprocess(np.stack([image, image]), TORCHVISION)
    assert out.shape == (2, 224, 224, 3)
    np.testing.assert_allclose(out[1, 100, 50], [2.2489083, -2.0357143, 0.4264924], rtol=1e-6)
    face = preprocess(np.zeros((224, 224, 3), np.uint8) + np.array([200, 100, 50], np.uint8), VGGFACE)
    assert face.shape == (1, 224, 224, 3)
    expected = [70.813720703125, -4.76238250732422, -43.59396362304688]
    np.testing.assert_allclose(face[0, 7, 9], expected, rtol=1e-6)


@pytest.mark.parametrize(("height", "width", "resized", "offset"),
                         [(300, 200, (384, 256), (80, 16)), (333, 500, (256, 384), (16, 80))])
def test_preprocess_resize_and_crop_follow_torchvision(height, width, resized, offset):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    small = np.asarray(Image.fromarray(image).resize(resized[::-1], Image.Resampling.BILINEAR))
    top, left = offset
    crop = small[top : top + 224, left : left + 224] / np.float32(255)
    expected = (crop - np.array(TORCHVISION["mean"], np.float32)) / np.array(TORCHVISION["std"], np.float32)
    np.testing.assert_allclose(preprocess(image, TORCHVISION)[0], expected, rtol=1e-6, atol=1e-6)
    assert preprocess([image, image[::-1]], {"preprocessing": TORCHVISION}).shape == (2, 224, 224, 3)


def test_preprocess_refuses_bad_input():
    with pytest.raises(ValueError, match=r"float images must be in \[0, 1\]"):
        preprocess(np.full((8, 8, 3), 200.0), TORCHVISION)
    with pytest.raises(ValueError, match=r"images\[0\] must be \[H, W, 3\]"):
        preprocess(np.zeros((1, 8, 8, 4), np.uint8), TORCHVISION)
    with pytest.raises(ValueError, match="lacks key"):
        preprocess(np.zeros((8, 8, 3), np.uint8), {"mean": [0, 0, 0]})


def test_zbox_bounds():
    low, high = zbox_bounds(TORCHVISION)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(low, -mean / std, rtol=1e-6)
    np.testing.assert_allclose(high, (1 - mean) / std, rtol=1e-6)
    np.testing.assert_allclose(low, [-2.1179039, -2.0357143, -1.8044444], rtol=1e-6)
    low, high = zbox_bounds({"preprocessing": VGGFACE})
    np.testing.assert_allclose(low, [-129.186279296875, -104.76238250732422, -93.59396362304688], rtol=1e-7)
    np.testing.assert_allclose(high, [125.813720703125, 150.23761749267578, 161.40603637695312], rtol=1e-7)
    # black and white pixels land exactly on the bounds
    for spec in (TORCHVISION, VGGFACE):
        low, high = zbox_bounds(spec)
        corners = preprocess(np.array([[[0, 0, 0], [255, 255, 255]]], np.uint8), {**spec, "resize": None,
                                                                                   "crop": None})
        np.testing.assert_array_equal(corners[0, 0], [low, high])


def test_load_image(tmp_path):
    gray = np.arange(35, dtype=np.uint8).reshape(5, 7)
    Image.fromarray(gray, mode="L").save(tmp_path / "gray.png")
    image = load_image(tmp_path / "gray.png")
    assert image.shape == (5, 7, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image[..., 2], gray)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(ValueError, match="broken.png"):
        load_image(tmp_path / "broken.png")
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        load_image(tmp_path / "missing.jpg")
