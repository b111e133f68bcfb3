"""Colour maps, normalisation, overlays and grids."""

import numpy as np
import pytest
from PIL import Image

from lrpjax.io import viz


def test_coldnhot_runs_cyan_blue_black_red_yellow_white():
    table = viz.colormap("coldnhot")
    assert table.shape == (256, 3) and table.dtype == np.uint8
    np.testing.assert_array_equal(table[0], [0, 255, 255])
    np.testing.assert_array_equal(table[128], [0, 0, 0])
    np.testing.assert_array_equal(table[255], [255, 255, 255])
    np.testing.assert_array_equal(table[64], [0, 0, 255])


def test_bwr_is_white_at_zero_relevance():
    heat = viz.heatmap_image(np.array([[-2.0, 0.0, 2.0]]), "bwr", "symmetric")
    np.testing.assert_array_equal(heat[0], [[0, 0, 255], [255, 255, 255], [255, 0, 0]])


@pytest.mark.parametrize("mode, want", [("symmetric", [0.0, 0.5, 0.75, 1.0]), ("absolute", [1.0, 0.0, 0.5, 1.0]),
                                        ("minmax", [0.0, 0.5, 0.75, 1.0])], ids=["symmetric", "absolute", "minmax"])
def test_normalizations(mode, want):
    np.testing.assert_allclose(viz.normalize(np.array([-2.0, 0.0, 1.0, 2.0]), mode), want)


def test_constant_maps_do_not_divide_by_zero():
    for mode in viz.NORMALIZATIONS:
        assert np.isfinite(viz.normalize(np.zeros((4, 4)), mode)).all()


def test_bad_colormap_and_mode_are_refused():
    with pytest.raises(ValueError, match="not an RGB hex colour"):
        viz.colormap("rainbowish")
    with pytest.raises(ValueError, match="normalization"):
        viz.normalize(np.ones(3), "log")
    with pytest.raises(ValueError, match="shape"):
        viz.heatmap_image(np.ones(5))


def test_overlay_grid_and_png(tmp_path):
    face = np.full((8, 8, 3), 200, np.uint8)
    heat = viz.heatmap_image(np.random.default_rng(0).normal(size=(8, 8, 3)))
    mixed = viz.overlay(face, heat, alpha=0.5)
    np.testing.assert_array_equal(mixed, np.round(0.5 * 200 + 0.5 * heat.astype(float)).astype(np.uint8))
    picture = viz.grid([[face, heat], [heat, mixed]], row_labels=["a", "b"], column_labels=["x", "y"])
    path = viz.save_png(picture, tmp_path / "sub" / "grid.png")
    assert Image.open(path).size == (picture.shape[1], picture.shape[0])


def test_grid_labels_draw_accented_letters_not_boxes():
    """``é`` in a label is drawn as an ``e`` with an accent above it (the default font drew a box)."""
    tile = np.zeros((24, 24, 3), np.uint8)
    plain = viz.grid([[tile]], row_labels=["Zoe"], label_width=60)[:, :60].min(-1) < 128
    accented = viz.grid([[tile]], row_labels=["Zoé"], label_width=60)[:, :60].min(-1) < 128
    rows = np.flatnonzero(plain.any(1))
    assert accented[rows].sum() >= 0.9 * plain[rows].sum()  # the same letters where "Zoe" has ink
    assert accented[:rows[0]].sum() > 0  # and an accent above them
    np.testing.assert_array_equal(accented[rows][:, :20], plain[rows][:, :20])  # "Zo" unchanged
