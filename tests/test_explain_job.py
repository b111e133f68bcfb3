"""The explain and train jobs against what a new user runs into: files that are not images as expected, names
that are not UTF-8, a second run on the same folder, folders that cannot be written, options added on a rerun.

One tiny VGG-16 (1/16 width, 32x32, two classes) and five images; every run is a few seconds.
"""

import os
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
from PIL import Image

import lrpjax
from conftest import random_variables
from lrpjax.io import checkpoints
from lrpjax.io.preprocess import TORCHVISION
from lrpjax.jobs import cli
from lrpjax.jobs import explain as batch
from lrpjax.jobs.store import STORE_FILE

RUN = {"composite_names": ["epsilon"], "batch_size": 2, "chunk_size": 2, "dtype": "float32", "workers": 1}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("job")
    model = lrpjax.vgg16(num_classes=2, width=1 / 16, pool_to=None, input_size=32)
    preprocessing = {**TORCHVISION, "resize": 32, "crop": 32}
    checkpoint = checkpoints.save(root / "ckpt", model, random_variables(model, dtype=np.float32),
                                  {"preprocessing": preprocessing})
    images = root / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for k in range(4):
        Image.fromarray(rng.integers(0, 256, (36, 40, 3), dtype=np.uint8)).save(images / f"{k}.png")
    nan = np.full((32, 32), 0.5, np.float32)
    nan[3, 3] = np.nan
    Image.fromarray(nan, mode="F").save(images / "nan.tif")
    with open(os.path.join(os.fsencode(images), b"caf\xe9.png"), "wb") as handle:
        handle.write((images / "0.png").read_bytes())
    return {"root": root, "checkpoint": checkpoint, "images": images}


def _cli(setup, out, *extra):
    return ["explain", setup["checkpoint"], "--images", str(setup["images"]), "--out", str(out), "--composite",
            "epsilon", "--batch-size", "2", "--chunk-size", "2", "--workers", "1", *extra]


def test_non_finite_image_and_non_utf8_name_are_skipped_with_reasons_and_the_run_goes_on(setup):
    out = setup["root"] / "skips"
    summary = batch.explain_dataset(setup["checkpoint"], str(setup["images"]), str(out), **RUN)
    assert (summary["images"], summary["explained"], summary["skipped"]) == (5, 4, 2)
    reasons = {os.path.basename(row["path"]): row["reason"] for row in summary["skipped_files"]}
    assert "NaN or infinite" in reasons["nan.tif"]
    assert "not valid UTF-8" in reasons["caf\\xe9.png"]
    csv_text = (out / "skipped.csv").read_text(encoding="utf-8")
    assert "nan.tif" in csv_text and "caf\\xe9.png" in csv_text
    with h5py.File(out / STORE_FILE, "r") as store:
        assert np.isfinite(store["relevance/epsilon"][:][store["valid"][:]]).all()


def test_png_and_gallery_added_when_rerunning_a_finished_store_write_what_is_missing(setup, capsys):
    out = setup["root"] / "rerun"
    batch.explain_dataset(setup["checkpoint"], str(setup["images"]), str(out), **RUN)
    assert not (out / "png").exists()
    again = batch.explain_dataset(setup["checkpoint"], str(setup["images"]), str(out), **RUN, png=True)
    assert again["computed_this_run"] == 0 and again["pngs_completed"] == 4
    for k in range(4):
        assert (out / "png" / "epsilon" / f"{k}.png.heatmap.png").is_file()
        assert (out / "png" / "epsilon" / f"{k}.png.overlay.png").is_file()
    assert cli.main(_cli(setup, out, "--png", "--gallery")) == 0
    assert (out / "index.html").is_file()
    assert "pngs_completed" in (out / "summary.json").read_text()


def test_unwritable_destinations_fail_up_front_with_one_line_naming_the_path(setup, capsys, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    occupied = tmp_path / "out_with_png_file"
    occupied.mkdir()
    (occupied / "png").write_text("")
    cases = [(blocker / "out", [], str(blocker / "out")), (occupied, ["--png"], str(occupied / "png"))]
    if not os.access(tmp_path, os.W_OK) or _read_only("/sys"):
        cases.append(("/sys/lrpjax-out", [], "/sys/lrpjax-out"))  # read-only even for root
    for out, extra, named in cases:
        capsys.readouterr()
        assert cli.main(_cli(setup, out, *extra)) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and named in err and "Traceback" not in err, err
    assert sorted(os.listdir(occupied)) == ["png"]


def _read_only(folder):
    try:
        os.mkdir(os.path.join(folder, "lrpjax-probe"))
    except OSError:
        return os.path.isdir(folder)
    os.rmdir(os.path.join(folder, "lrpjax-probe"))
    return False


WAITING_RUN = """
import os, sys, time
from lrpjax.jobs import explain as batch

def wait(marked):  # hold the run (and its lock) after the first batch until the test says go on
    open(sys.argv[4] + ".started", "w").close()
    while not os.path.exists(sys.argv[4] + ".go"):
        time.sleep(0.05)

batch.explain_dataset(sys.argv[1], sys.argv[2], sys.argv[3], composite_names=["epsilon"], batch_size=2,
                      chunk_size=2, dtype="float32", workers=1, on_batch_written=wait)
"""


def _wait_for(path, process, timeout=120):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_a_second_explain_on_the_same_out_exits_2_and_leaves_the_first_intact(setup, capsys):
    out, flag = setup["root"] / "race", str(setup["root"] / "race_flag")
    first = subprocess.Popen([sys.executable, "-c", WAITING_RUN, setup["checkpoint"], str(setup["images"]),
                              str(out), flag], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(flag + ".started", first)
    capsys.readouterr()
    second = cli.main(_cli(setup, out))  # this test's own process is the second run
    err = capsys.readouterr().err
    open(flag + ".go", "w").close()
    _, first_err = first.communicate(timeout=120)
    assert first.returncode == 0, first_err
    assert second == 2
    assert err.count("\n") == 1 and str(out) in err and "in use" in err
    with h5py.File(out / STORE_FILE, "r") as store:
        assert store["done"][:].all() and sorted(store["ids"].asstr()[:])[0] == "0.png"


def test_a_second_train_on_the_same_workdir_exits_2_before_touching_it(tmp_path, capsys):
    workdir = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from lrpjax.jobs.workdir import exclusive\n"
         "with exclusive(sys.argv[1], command='train'):\n    print('held', flush=True); sys.stdin.read()",
         str(workdir)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    capsys.readouterr()
    second = cli.main(["train", str(workdir), "--train", "lfw_subset:train", "--steps", "1", "--data-dir",
                       str(tmp_path / "tfds")])
    err = capsys.readouterr().err
    holder.communicate("", timeout=30)
    assert second == 2, err
    assert err.count("\n") == 1 and str(workdir) in err and "in use" in err
    assert sorted(os.listdir(workdir)) == [".lock"] and not (tmp_path / "tfds").exists()
