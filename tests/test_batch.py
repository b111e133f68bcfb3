"""lrpjax explain / lrpjax.jobs.explain: the HDF5 store, skipped images, resuming, devices and processes.

One tiny VGG-16 (1/16 width, 32x32, two classes) and eleven images (ten readable, one not) in chunks of four:
the last chunk is short, so every run pads a batch. The reference store is an uninterrupted single-process,
single-device run with batch size 1; other runs must reproduce it exactly.
"""

import json
import os
import signal
import socket
import subprocess
import sys

import h5py
import numpy as np
import pytest
from PIL import Image

import lrpjax
from conftest import random_variables
from lrpjax.io import checkpoints
from lrpjax.io.preprocess import TORCHVISION
from lrpjax.jobs import explain as batch
from lrpjax.jobs.progress import Progress
from lrpjax.jobs.store import STORE_FILE, merge_parts

COMPOSITES = ["epsilon", "epsilon_gamma_box"]
RUN = {"composite_names": COMPOSITES, "batch_size": 1, "chunk_size": 4, "dtype": "float32", "workers": 2}
CLI = ["--composite", *COMPOSITES, "--chunk-size", "4", "--dtype", "float32", "--workers", "2"]


def _tiny_variables(model, seed=0):
    return random_variables(model, seed=seed, dtype=np.float32)


def _write_images(folder, count, seed=0):
    """``count`` random RGB images in two class folders (PNG and JPEG), a broken file and labels.csv."""
    rng = np.random.default_rng(seed)
    rows = ["id,label"]
    for k in range(count):
        name, suffix = ("cats", ".png") if k % 2 else ("dogs", ".jpg")
        os.makedirs(folder / name, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)).save(folder / name / f"{k:02d}{suffix}")
        rows.append(f"{name}/{k:02d}{suffix},{k % 2}")
    (folder / "cats" / "broken.png").write_bytes(b"this is not a png")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return folder


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny checkpoint, an image folder and the reference store (in this process)."""
    root = tmp_path_factory.mktemp("explain")
    model = lrpjax.vgg16(num_classes=2, width=1 / 16, pool_to=None, input_size=32)
    variables = _tiny_variables(model)
    preprocessing = {**TORCHVISION, "resize": 32, "crop": 32}
    checkpoint = checkpoints.save(root / "ckpt", model, variables, {"preprocessing": preprocessing})
    images = _write_images(root / "images", 10)
    summary = batch.explain_dataset(checkpoint, str(images), str(root / "reference"), **RUN)
    return {"root": root, "checkpoint": checkpoint, "images": images, "summary": summary,
            "reference": root / "reference" / STORE_FILE}


def _contents(path):
    """Every dataset and attribute of a store, as numpy arrays and plain values."""
    with h5py.File(path, "r") as store:
        data = {}
        store.visititems(lambda name, item: data.__setitem__(name, item[()]) if isinstance(item, h5py.Dataset)
                         else None)
        return data, {key: batch.attribute(value) for key, value in store.attrs.items()}


def _assert_same_store(got, want, *, float_rtol=0.0):
    """Same attributes and arrays; floating arrays within ``float_rtol`` of the largest value when it is given."""
    got_data, got_attrs = _contents(got)
    want_data, want_attrs = _contents(want)
    assert got_attrs == want_attrs
    assert sorted(got_data) == sorted(want_data)
    for name in want_data:
        wanted = np.asarray(want_data[name])
        if float_rtol and np.issubdtype(wanted.dtype, np.floating) and wanted.size:
            np.testing.assert_allclose(got_data[name], wanted, rtol=float_rtol,
                                       atol=float_rtol * float(np.nanmax(np.abs(wanted), initial=0.0)), err_msg=name)
        else:
            np.testing.assert_array_equal(got_data[name], wanted, err_msg=name)


def _cli(setup, out, *extra, env=None):
    command = [sys.executable, "-m", "lrpjax", "explain", str(setup["checkpoint"]), "--images",
               str(setup["images"]), "--out", str(out), *CLI, *extra]
    return subprocess.Popen(command, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


KILLED_RUN = """
import os, signal, sys
from lrpjax.jobs import explain as batch

def die(marked):  # after this many chunks are marked done, write one more batch and die with it unmarked
    if marked >= int(sys.argv[4]):
        os.kill(os.getpid(), signal.SIGKILL)

batch.explain_dataset(sys.argv[1], sys.argv[2], sys.argv[3], composite_names=["epsilon", "epsilon_gamma_box"],
                      batch_size=1, chunk_size=4, dtype="float32", workers=2, on_batch_written=die)
"""


def _killed_after_chunks(setup, out, chunks):
    """A run in its own process that SIGKILLs itself through the injected ``on_batch_written`` callback."""
    command = [sys.executable, "-c", KILLED_RUN, str(setup["checkpoint"]), str(setup["images"]), str(out),
               str(chunks)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_store_has_the_documented_layout(setup):
    data, attrs = _contents(setup["reference"])
    n = 11
    assert data["ids"].shape == (n,) and batch.attribute(data["ids"][0]) == "cats/01.png"
    for name in COMPOSITES:
        assert data[f"relevance/{name}"].shape == (n, 32, 32) and data[f"relevance/{name}"].dtype == np.float32
    assert data["logits"].shape == (n, 2) and data["logits"].dtype == np.float32
    for name in ("predictions", "targets", "labels"):
        assert data[name].shape == (n,) and data[name].dtype == np.int64
    assert data["done"].tolist() == [True, True, True] and data["chunk_ids"].tolist() == [0, 1, 2]
    assert attrs["composites"] == COMPOSITES and attrs["dtype"] == "float32" and attrs["num_images"] == n
    assert attrs["lrpjax_version"] == lrpjax.__version__ and attrs["checkpoint"] == setup["checkpoint"]
    assert attrs["image_shape"] == [32, 32, 3] and json.loads(attrs["preprocessing"])["crop"] == 32
    valid = data["valid"]
    np.testing.assert_array_equal(data["predictions"][valid], data["logits"][valid].argmax(-1))
    np.testing.assert_array_equal(data["targets"], data["predictions"])  # target "predicted"
    with h5py.File(setup["reference"], "r") as store:
        assert store["relevance/epsilon"].chunks == (1, 32, 32)
        ids = list(store["ids"].asstr()[:])
    assert ids == sorted(ids) and ids[2:4] == ["cats/05.png", "cats/07.png"]
    labels = dict(zip(ids, data["labels"].tolist()))
    assert labels["cats/01.png"] == 1 and labels["dogs/00.jpg"] == 0 and labels["cats/broken.png"] == -1


def test_unreadable_image_is_reported_and_skipped(setup):
    data, _ = _contents(setup["reference"])
    broken = 5  # cats/01.png ... cats/09.png, cats/broken.png, dogs/00.jpg ...
    assert data["valid"].sum() == 10 and not data["valid"][broken]
    assert b"cannot read image file" in data["errors"][broken]
    assert np.isnan(data["relevance/epsilon"][broken]).all() and data["predictions"][broken] == -1
    assert np.isfinite(data["relevance/epsilon"][data["valid"]]).all()
    skipped = (setup["root"] / "reference" / "skipped.csv").read_text().splitlines()
    assert skipped[0] == "path,reason" and len(skipped) == 2 and "broken.png" in skipped[1]
    summary = json.loads((setup["root"] / "reference" / "summary.json").read_text())
    assert (summary["images"], summary["explained"], summary["skipped"]) == (11, 10, 1)
    assert summary["skipped_files"][0]["path"].endswith(os.path.join("cats", "broken.png"))


def test_four_devices_equal_one_device(setup):
    """Per-device batch 1 in both runs: XLA's CPU round-off depends on the per-device batch size."""
    out = setup["root"] / "four"
    process = _cli(setup, out, "--batch-size", "4", env={"XLA_FLAGS": "--xla_force_host_platform_device_count=4"})
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert json.loads((out / "summary.json").read_text())["devices"] == 4
    # XLA's CPU program for four devices does not round bit for bit like the one-device program (seen: a float32
    # ulp in a logit, 5e-11 absolute in relevance): floats to float32 round-off, ids, labels, predictions exact
    _assert_same_store(out / STORE_FILE, setup["reference"], float_rtol=1e-5)


def test_killed_run_resumes_to_the_uninterrupted_store(setup):
    out = setup["root"] / "killed"
    process = _killed_after_chunks(setup, out, 1)
    process.communicate(timeout=120)
    assert process.returncode == -signal.SIGKILL
    with h5py.File(out / STORE_FILE, "r") as store:
        assert store["done"][:].tolist() == [True, False, False]  # chunk 1 half written, not marked
    summary = batch.explain_dataset(setup["checkpoint"], str(setup["images"]), str(out), **RUN)
    assert (summary["chunks_resumed"], summary["chunks_this_run"], summary["computed_this_run"]) == (1, 2, 7)
    _assert_same_store(out / STORE_FILE, setup["reference"])
    again = batch.explain_dataset(setup["checkpoint"], str(setup["images"]), str(out), **RUN)
    assert again["computed_this_run"] == 0 and again["explained"] == 10


def test_store_of_another_run_is_refused(setup, tmp_path):
    out = str(setup["root"] / "reference")
    with pytest.raises(ValueError, match=r"belongs to another run.*composites is \['epsilon', 'epsilon_gamma_box'\]"):
        batch.explain_dataset(setup["checkpoint"], str(setup["images"]), out, **{**RUN, "composite_names": ["epsilon"]})
    other = _write_images(tmp_path / "images", 12)
    with pytest.raises(ValueError, match="num_images is 11 there but 13 now; the image ids differ"):
        batch.explain_dataset(setup["checkpoint"], str(other), out, **RUN)


def test_two_processes_with_jax_distributed_make_the_whole_store(setup):
    out, port = setup["root"] / "distributed", _free_port()
    processes = [_cli(setup, out, "--batch-size", "1", "--coordinator", f"127.0.0.1:{port}",
                      "--num-processes", "2", "--process-id", str(k), "--merge-wait", "120") for k in (0, 1)]
    for process in processes:
        _, err = process.communicate(timeout=180)
        assert process.returncode == 0, err
    with h5py.File(out / "relevance.part1-of-2.h5", "r") as part:
        assert part["chunk_ids"][:].tolist() == [1] and len(part["ids"]) == 4
    _assert_same_store(out / STORE_FILE, setup["reference"])
    assert (out / "skipped.csv").read_text() == (setup["root"] / "reference" / "skipped.csv").read_text()


def test_explicit_process_partition_merges_to_the_whole_store(setup):
    out = str(setup["root"] / "partition")
    parts = [batch.explain_dataset(setup["checkpoint"], str(setup["images"]), out, **RUN, process_index=k,
                                   process_count=2) for k in (0, 1)]
    assert [p["images"] for p in parts] == [7, 4]  # chunks 0 and 2 (short) / chunk 1
    _assert_same_store(merge_parts(out), setup["reference"])


def test_merge_refuses_missing_parts(setup, tmp_path):
    with pytest.raises(ValueError, match="no relevance.part"):
        merge_parts(str(tmp_path))
    batch.explain_dataset(setup["checkpoint"], str(setup["images"]), str(tmp_path), **RUN, process_index=1,
                          process_count=2)
    with pytest.raises(ValueError, match=r"must hold exactly the parts \['relevance.part0-of-2.h5'"):
        merge_parts(str(tmp_path))


def test_bad_options_name_the_argument(setup, tmp_path):
    args = (setup["checkpoint"], str(setup["images"]), str(tmp_path))
    with pytest.raises(ValueError, match="dtype='bfloat16'"):
        batch.explain_dataset(*args, **{**RUN, "dtype": "bfloat16"})
    with pytest.raises(ValueError, match="target='label' but 1 image"):
        batch.explain_dataset(*args, **RUN, target="label")
    with pytest.raises(ValueError, match="target='7'"):
        batch.explain_dataset(*args, **RUN, target="7")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        batch.list_images(tmp_path / "nowhere")


def test_labels_from_folders_skipping_the_output_folder(tmp_path):
    for name in ("dogs/a.png", "cats/b.jpg", "top.png", "out/png/x.png", ".hidden/c.png", "notes.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    images = batch.list_images(tmp_path, labels_from_folders=True, exclude=[tmp_path / "out"])
    assert images.ids == ("cats/b.jpg", "dogs/a.png", "top.png") and images.labels.tolist() == [0, 1, -1]
    assert images.label_names == ("cats", "dogs")
    named = batch.list_images(tmp_path, labels_from_folders=True, class_names=["dogs", "cats", "out"])
    assert named.labels.tolist() == [1, 0, 2, -1] and named.ids[2] == "out/png/x.png"
    with pytest.raises(ValueError, match="label\\(s\\) \\['cats'\\] are not among"):
        batch.list_images(tmp_path, labels_from_folders=True, class_names=["dogs", "out"])


def test_progress_line_is_quiet_off_a_tty():
    class Stream(list):
        def write(self, text):
            self.append(text)

        def flush(self):
            pass

    stream = Stream()
    progress = Progress(10, stream=stream, every=3600)
    progress.update(4)
    assert stream == []  # not a TTY: nothing until `every` seconds pass or the end
    progress.update(6)
    assert len(stream) == 1 and stream[0].startswith("explain 10/10 images") and "images/s" in stream[0]
