"""The demo job end to end: the shipped face/non-face task and the shared face sets (one short epoch)."""

import json
import os
import pathlib

import pytest

from lrpjax.jobs.cli import main

FACES = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "faces"


@pytest.mark.skipif(not (FACES / "london").is_dir(), reason="the shared face sets are not beside the repository")
def test_demo_writes_report_heatmaps_and_summary(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--faces", str(FACES), "--out", str(out), "--epochs", "1", "--size", "32"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["train_images"] == 162 and summary["test_images"] == 42
    assert 0.0 <= summary["test_accuracy"] <= 1.0 and 0.0 <= summary["canada_accuracy"] <= 1.0
    assert (out / "heatmaps.png").stat().st_size > 0
    assert "heatmaps.png" in (out / "report.md").read_text()
    assert len([f for f in os.listdir(out) if f.startswith("overlay_")]) == 8


def test_demo_runs_offline_on_the_faces_scikit_image_ships(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--epochs", "1"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["task"] == "face or not" and summary["train_images"] == 160 and summary["test_images"] == 40
    assert set(summary["per_class_accuracy"]) == {"face", "non-face"} and "canada_accuracy" not in summary
    assert (out / "heatmaps.png").stat().st_size > 0 and "heatmaps.png" in (out / "report.md").read_text()
    assert len([f for f in os.listdir(out) if f.startswith("overlay_")]) == 8


def test_demo_names_a_missing_faces_folder(tmp_path, capsys):
    assert main(["demo", "--faces", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    assert "nowhere" in capsys.readouterr().err
