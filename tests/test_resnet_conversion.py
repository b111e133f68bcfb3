"""ResNet conversion: architecture from keys, one error listing every bad key, the VGGFace2 port's pickle."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

import lrpjax
from lrpjax.io import checkpoints
from weights_conversion.convert import convert_file
from weights_conversion.resnet import read_numpy_pickle, resnet_entries, resnet_to_variables


def fake_state_dict(model) -> dict[str, np.ndarray]:
    """Zeros with the shapes of torchvision's keys for ``model`` (``num_batches_tracked`` included)."""
    return {e.key: np.zeros(e.shape, np.int64 if e.target is None else np.float32) for e in resnet_entries(model)}


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152], ids=lambda d: f"resnet{d}")
def test_architecture_width_and_classes_are_inferred_from_keys(depth):
    state = fake_state_dict(lrpjax.ResNet(depth, 7, width=0.5))
    model, variables = resnet_to_variables(state)
    assert (model.depth, model.num_classes, model.width, model.layout) == (depth, 7, 0.5, "torchvision")
    checkpoints.check_variables(model, variables)


def test_published_torchvision_key_names():
    """A few key names and shapes of torchvision.models.resnet50() as published."""
    entries = {e.key: e.shape for e in resnet_entries(lrpjax.resnet50(1000))}
    assert entries["conv1.weight"] == (64, 3, 7, 7) and entries["fc.weight"] == (1000, 2048)
    assert entries["layer1.0.downsample.0.weight"] == (256, 64, 1, 1)
    assert entries["layer2.0.conv2.weight"] == (128, 128, 3, 3) and entries["layer4.2.bn3.running_var"] == (2048,)
    assert "layer1.1.downsample.0.weight" not in entries and len(entries) == 320


def test_one_error_lists_every_missing_extra_and_misshaped_key():
    state = fake_state_dict(lrpjax.resnet18(10))
    del state["layer2.0.bn1.running_var"]
    state["layer3.0.conv1.weight"] = np.zeros((256, 128, 1, 1), np.float32)
    state["layer9.weight"] = np.zeros(3, np.float32)
    with pytest.raises(ValueError) as error:
        resnet_to_variables(state)
    message = str(error.value)
    assert "3 problem(s)" in message and "'layer2.0.bn1.running_var'" in message
    assert "'layer3.0.conv1.weight' has shape (256, 128, 1, 1), expected (256, 128, 3, 3)" in message
    assert "unexpected key 'layer9.weight'" in message


def test_vggface2_pickle_converts_with_its_preprocessing(tmp_path):
    model = lrpjax.vggface2_resnet50(width=0.0625)
    state = {k: v for k, v in fake_state_dict(model).items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "resnet50_ft_weight.pkl"
    with open(path, "wb") as handle:
        pickle.dump(state, handle, protocol=2)
    converted, metadata = convert_file("vggface2", path, tmp_path / "ckpt")
    assert (converted.layout, converted.num_classes, metadata["architecture"]) == ("vggface2", 8631,
                                                                                 "vggface2_resnet50")
    assert metadata["preprocessing"]["channel_order"] == "BGR"
    assert metadata["preprocessing"]["mean"] == [91.4953, 103.8827, 131.0912]
    assert metadata["preprocessing"]["std"] == [1.0, 1.0, 1.0] and metadata["preprocessing"]["crop"] == 224
    loaded, _, _ = checkpoints.load(tmp_path / "ckpt")
    assert loaded == converted


class RunsACommand:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_pickle_that_would_run_a_command_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pkl"
    with open(path, "wb") as handle:
        pickle.dump({"conv1.weight": np.zeros(3), "payload": RunsACommand(str(marker))}, handle)
    with pytest.raises(ValueError, match="refusing to load (posix|os|nt).system"):
        read_numpy_pickle(path)
    assert not marker.exists()
    with pytest.raises(ValueError, match="refusing"):
        convert_file("vggface2", path, tmp_path / "ckpt")
    assert not marker.exists() and not (tmp_path / "ckpt").exists()


class Python2Pickler(pickle.Pickler):
    """Arrays as a Python 2 pickle (the VGGFace2 port's files) reads under ``encoding="latin1"``: data as a str."""

    def reducer_override(self, obj):
        if isinstance(obj, np.ndarray):
            rebuild, args, state = obj.__reduce__()
            return rebuild, args, state[:4] + (state[4].decode("latin1"),)
        return NotImplemented


def test_vggface2_pickle_of_random_weights_converts_and_crosschecks_against_zennit(tmp_path, capsys):
    """End to end as a user runs the port's .pkl: ``python -m weights_conversion vggface2`` and ``lrpjax
    crosscheck --format vggface2`` (Zennit with its ResNetCanonizer on the torch twin loaded from the pickle)."""
    from PIL import Image

    from lrpjax.jobs import cli
    from weights_conversion.cli import main as convert_main
    from weights_conversion.torch_resnet import TorchResNet

    rng = np.random.default_rng(0)
    state = {}
    for key, value in TorchResNet(50, 5, width=1 / 16, layout="vggface2").state_dict().items():
        if key.endswith(("running_var", "bn1.weight", "bn2.weight", "bn3.weight", "downsample.1.weight")):
            state[key] = rng.uniform(0.5, 1.5, value.shape).astype(np.float32)  # batch norms far from identity
        elif key.endswith(("running_mean", "bias")):
            state[key] = rng.normal(0, 0.1, value.shape).astype(np.float32)
        elif not key.endswith("num_batches_tracked"):
            state[key] = value.numpy()
    python3, python2 = tmp_path / "python3.pkl", tmp_path / "resnet50_ft_weight.pkl"
    with open(python3, "wb") as handle:
        pickle.dump(state, handle, protocol=2)
    with open(python2, "wb") as handle:
        Python2Pickler(handle, protocol=2).dump(state)
    for path in (python3, python2):
        read = read_numpy_pickle(path)
        assert read.keys() == state.keys() and all(np.array_equal(read[k], state[k]) for k in state)

    assert convert_main(["vggface2", str(python2), str(tmp_path / "ckpt")]) == 0
    assert "vggface2_resnet50 (5 classes, width 0.0625, layout vggface2)" in capsys.readouterr().out
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(rng.integers(0, 256, (240, 250, 3), dtype=np.uint8)).save(images / "0.png")
    argv = ["crosscheck", str(python2), "--format", "vggface2", "--images", str(images), "--composite",
            "epsilon_plus"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "vggface2_resnet50 (width 0.0625, 5 classes, layout vggface2)" in out and "all composites agree" in out
    logits = float(out.split("logits max rel diff ")[1].split()[0])
    relevance = float(next(line for line in out.splitlines() if line.startswith("epsilon_plus")).split()[2])
    assert logits <= 1e-12 and relevance <= 1e-12
