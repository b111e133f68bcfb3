"""``lrpjax.jobs.crosscheck``: lrpjax against Zennit on a user's weights and image folder (small models, 64x64)."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch
from PIL import Image

from lrpjax.jobs import crosscheck as cc
from weights_conversion.convert import convert_file, torchvision_to_variables
from weights_conversion.torch_model import state_dict_from_variables

try:  # pytest's default "prepend" import mode puts tests/ on sys.path
    from torch_vgg import torch_vgg, torch_vggface
except ModuleNotFoundError:  # tests/ imported as a package
    from tests.torch_vgg import torch_vgg, torch_vggface

SIZE = 64


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    """Three small RGB images of different sizes, one corrupt .jpg and a hidden file (ignored)."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for name, (height, width) in {"a.png": (70, 90), "b.jpg": (64, 64), "c.bmp": (100, 80)}.items():
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(folder / name)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / ".hidden").write_text("ignored")
    return folder


@pytest.fixture(scope="module")
def small_pth(tmp_path_factory):
    """A width-0.125 torchvision-layout VGG-16 with 5 classes, random weights and non-zero biases."""
    path = tmp_path_factory.mktemp("weights") / "vgg16_small.pth"
    torch.save(torch_vgg(16, 5, width=0.125, seed=4).state_dict(), path)
    return path


def test_all_composites_agree_in_float64_and_corrupt_files_are_skipped(small_pth, image_dir):
    lines = []
    report = cc.crosscheck(small_pth, image_dir, cc.COMPOSITES, size=SIZE, log=lines.append)
    assert [row.composite for row in report.rows] == list(cc.COMPOSITES)
    assert all(isinstance(row, cc.Row) and row.dtype == "float64" for row in report.rows)
    for row in report.rows:
        print(f"{row.composite:27s} {row.max_rel_diff:.2e} pearson {row.pearson:.15f}")
        assert row.passed and row.max_rel_diff <= 1e-9 and row.pearson > 1 - 1e-12, row
    assert report.passed
    assert [p.split("/")[-1] for p in report.images] == ["a.png", "b.jpg", "c.bmp"]
    assert len(report.skipped) == 1 and report.skipped[0][0].endswith("broken.jpg")
    assert "cannot read image file" in report.skipped[0][1]
    assert any("broken.jpg" in line for line in lines)
    assert len(report.targets) == 3 and all(0 <= t < 5 for t in report.targets)
    assert report.logit_rel_diff < 1e-12


def test_checkpoint_directory_of_a_batch_norm_model_in_float32(tmp_path, image_dir):
    source = tmp_path / "vgg16_bn.pth"
    torch.save(torch_vgg(16, 4, batch_norm=True, width=0.125, seed=5).state_dict(), source)
    convert_file("torchvision", source, tmp_path / "ckpt")
    report = cc.crosscheck(tmp_path / "ckpt", image_dir, ["epsilon_gamma_box", "epsilon_plus"], "float32",
                           size=SIZE, limit=2, batch_size=1)
    assert len(report.images) == 2
    for row in report.rows:
        print(f"{row.composite:27s} lrpjax {row.lrpjax_error:.2e} zennit {row.zennit_error:.2e}")
        assert row.dtype == "float32" and row.passed
        assert row.lrpjax_error < 1e-4 and row.max_rel_diff < 1e-4
    # in float64 the folded-BN torch twin and lrpjax's canonization agree exactly
    assert cc.crosscheck(tmp_path / "ckpt", image_dir, ["epsilon_plus"], size=SIZE, limit=1).passed


def test_vggface_layout_is_detected_and_checked(tmp_path, image_dir):
    source = tmp_path / "vgg_face_dag.pth"
    torch.save(torch_vggface(7, width=0.125, seed=6).state_dict(), source)
    report = cc.crosscheck(source, image_dir, ["epsilon_gamma_box", "guided_backprop"], limit=1)
    assert "vgg16 (width 0.125, 7 classes, pool_to None)" in report.description and "'vggface'" in report.description
    assert report.passed and all(row.max_rel_diff <= 1e-9 for row in report.rows), report.rows
    with pytest.raises(ValueError, match="pass size=224"):
        cc.crosscheck(source, image_dir, ["epsilon"], size=SIZE)


def test_command_line(small_pth, image_dir, capsys):
    parser = cc.add_arguments(argparse.ArgumentParser(prog="lrpjax crosscheck"))
    args = parser.parse_args([str(small_pth), "--images", str(image_dir), "--composite", "epsilon_plus",
                              "--composite", "deconvnet", "--size", str(SIZE), "--limit", "1"])
    assert cc.main(args) == 0
    out = capsys.readouterr()
    assert "epsilon_plus" in out.out and "deconvnet" in out.out and "all composites agree" in out.out
    args = parser.parse_args([str(small_pth), "--images", str(image_dir / "missing")])
    assert cc.main(args) == 2
    assert "missing" in capsys.readouterr().err


def test_bad_arguments_are_named(small_pth, image_dir, tmp_path):
    with pytest.raises(ValueError, match="'tutorial'"):
        cc.crosscheck(small_pth, image_dir, ["tutorial"])
    with pytest.raises(ValueError, match="dtype='float16'"):
        cc.crosscheck(small_pth, image_dir, dtype="float16")
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        cc.crosscheck(tmp_path / "nope.pth", image_dir)
    with pytest.raises(ValueError, match=r"vgg16_small.pth.*format vggface"):
        cc.crosscheck(small_pth, image_dir, ["epsilon"], fmt="vggface", size=SIZE)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="holds no readable image"):
        cc.crosscheck(small_pth, empty, size=SIZE)


def test_torch_twin_round_trips_the_conversion():
    state_dict = torch_vgg(16, 3, width=0.125, seed=6).state_dict()
    model, variables = torchvision_to_variables(state_dict)
    back = state_dict_from_variables(model, variables)
    for key, value in back.items():
        torch.testing.assert_close(value, state_dict[key], rtol=0, atol=0)
    assert cc.detect_format(state_dict) == "torchvision"
    assert cc.detect_format({"state_dict": state_dict}) == "finetuned"
    assert cc.detect_format({"conv1_1.weight": 0}) == "vggface"
