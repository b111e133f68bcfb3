"""lrpjax.jobs.gallery: the HTML page of an explain run, its images, and the viz helpers it uses."""

import os
from html.parser import HTMLParser

import h5py
import numpy as np
import pytest
from PIL import Image

import lrpjax
from conftest import random_variables
from lrpjax.io import checkpoints, viz
from lrpjax.io.preprocess import TORCHVISION
from lrpjax.jobs import gallery
from lrpjax.jobs.cli import main
from lrpjax.jobs.store import STORE_FILE

VOID = {"meta", "img", "br", "link", "input", "hr"}


def _tiny_variables(model, seed=0):
    return random_variables(model, seed=seed, dtype=np.float32)


class _Page(HTMLParser):
    """Collects the doctype, image sources and nesting errors of an HTML page."""

    def __init__(self):
        super().__init__()
        self.doctype, self.sources, self.stack, self.errors, self.text = None, [], [], [], []

    def handle_decl(self, decl):
        self.doctype = decl

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.sources.append(dict(attrs)["src"])
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(tag)

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """`lrpjax explain --png --gallery` on five images and a broken one, float16, two composites."""
    root = tmp_path_factory.mktemp("gallery")
    model = lrpjax.vgg16(num_classes=2, width=1 / 16, pool_to=None, input_size=32)
    variables = _tiny_variables(model)
    metadata = {"preprocessing": {**TORCHVISION, "resize": 32, "crop": 32}, "class_names": ["female", "male"]}
    checkpoint = checkpoints.save(root / "ckpt", model, variables, metadata)
    rng = np.random.default_rng(1)
    os.makedirs(root / "images" / "sub dir")
    for k in range(5):
        pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "images" / "sub dir" / f"<{k}>.png")
    (root / "images" / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    out = root / "out"
    assert main(["explain", checkpoint, "--images", str(root / "images"), "--out", str(out), "--composite",
                 "epsilon", "epsilon_plus", "--batch-size", "2", "--chunk-size", "4", "--dtype", "float16",
                 "--png", "--gallery"]) == 0
    return out


def test_page_is_valid_html_and_every_image_exists(run):
    page = _Page()
    page.feed((run / "index.html").read_text(encoding="utf-8"))
    page.close()
    assert page.doctype.lower() == "doctype html" and page.errors == [] and page.stack == []
    assert len(page.sources) == 2 + 5 * 3  # legend, comparison; five images x (input + two composites)
    for source in page.sources:
        assert not os.path.isabs(source) and (run / source).is_file(), source
    text = " ".join(page.text)
    assert "sub dir/<0>.png" in text and "prediction:" in text and "broken.jpg" not in text
    assert "(female)" in text or "(male)" in text


def test_comparison_grid_and_legend(run):
    grid = np.asarray(Image.open(run / "gallery" / "comparison.png"))
    assert grid.shape[0] > 5 * 112 and grid.shape[1] > 3 * 112  # five rows, three enlarged columns
    legend = np.asarray(Image.open(run / "gallery" / "legend.png"))
    np.testing.assert_array_equal(legend[0, 0], viz.colormap("coldnhot")[0])
    np.testing.assert_array_equal(legend[0, -1], viz.colormap("coldnhot")[255])


def test_png_heatmaps_and_overlays_per_image_and_composite(run):
    for composite in ("epsilon", "epsilon_plus"):
        for k in range(5):
            stem = run / "png" / composite / "sub dir" / f"<{k}>.png"
            heat = np.asarray(Image.open(f"{stem}.heatmap.png"))
            assert heat.shape == (32, 32, 3) and Image.open(f"{stem}.overlay.png").size == (32, 32)
    assert not (run / "png" / "epsilon" / "broken.jpg.heatmap.png").exists()
    with h5py.File(run / STORE_FILE, "r") as store:
        assert store["relevance/epsilon"].dtype == np.float16 and store["valid"][:].sum() == 5


def test_colour_map_choice_and_missing_store(run, tmp_path):
    index = gallery.write_gallery(str(run), cmap="bwr", max_images=2, compare_images=1)
    assert index.endswith("index.html")
    legend = np.asarray(Image.open(run / "gallery" / "legend.png"))
    np.testing.assert_array_equal(legend[0, 0], [0, 0, 255])
    with pytest.raises(FileNotFoundError, match="no relevance.h5"):
        gallery.write_gallery(str(tmp_path))
    with pytest.raises(ValueError, match="not an RGB hex colour"):
        gallery.write_gallery(str(run), cmap="rainbow")


def test_denormalize_inverts_preprocessing():
    pixels = np.array([[[0, 128, 255]]], np.uint8)
    mean, std = np.array(TORCHVISION["mean"]), np.array(TORCHVISION["std"])
    normalized = (pixels / 255.0 - mean) / std
    np.testing.assert_array_equal(viz.denormalize(normalized, mean, std), pixels)
    np.testing.assert_array_equal(viz.denormalize(np.zeros((1, 1, 3)), [127.5] * 3, [1.0] * 3, (0, 255)),
                                  [[[128, 128, 128]]])
