"""Cascading parameter randomisation, SSIM against scikit-image, and the MPRT's steps."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage.metrics import structural_similarity

from conftest import random_vgg
from lrpjax.analysis import randomization, similarity


@pytest.fixture(scope="module")
def vgg():
    return random_vgg(width=1 / 16, size=32, num_classes=2, pool_to=None, batch_norm=True, seed=0)


def test_layer_order_from_the_top(vgg):
    model, _ = vgg
    order = randomization.layer_order(model)
    assert order[:4] == ["fc8", "fc7", "fc6", "conv5_3"] and order[-1] == "conv1_1" and len(order) == 16


def test_randomize_layers_cascades_from_the_top(vgg):
    model, variables = vgg
    key = jax.random.key(7)
    order = randomization.layer_order(model)
    same = lambda a, b: bool(jnp.all(jnp.asarray(a) == b))
    unchanged = randomization.randomize_layers(model, variables, 0, key=key)
    assert jax.tree.all(jax.tree.map(same, unchanged, variables))
    three = randomization.randomize_layers(model, variables, 3, key=key)
    four = randomization.randomize_layers(model, variables, 4, key=key)
    params, original = four["params"], variables["params"]
    for name in order[:4]:
        assert not same(params[name]["kernel"], original[name]["kernel"]), name
        assert same(params[name]["bias"], 0.0)
    for name in order[:3]:  # each layer's draw does not depend on how many are randomised
        assert same(params[name]["kernel"], three["params"][name]["kernel"])
    for name in order[4:]:
        assert same(params[name]["kernel"], original[name]["kernel"]), name
    assert same(params["bn5_3"]["scale"], 1.0) and same(four["batch_stats"]["bn5_3"]["var"], 1.0)
    assert same(four["batch_stats"]["bn5_2"]["var"], variables["batch_stats"]["bn5_2"]["var"])
    fan_out = 9 * params["conv5_3"]["kernel"].shape[-1]
    assert abs(float(params["conv5_3"]["kernel"].std()) / np.sqrt(2 / fan_out) - 1) < 0.1  # He normal
    assert abs(float(params["fc8"]["kernel"].std()) / 0.01 - 1) < 0.25
    assert same(original["fc8"]["kernel"], vgg[1]["params"]["fc8"]["kernel"])  # the input is not modified
    with pytest.raises(ValueError, match="count=17"):
        randomization.randomize_layers(model, variables, 17, key=key)


def test_redraws_are_host_draws_of_the_key_and_position_and_compile_no_random_program(vgg, caplog):
    """jax's partitionable threefry (its default) makes XLA:CPU compile each draw for seconds (a minute for a
    VGG's layers): the re-drawn kernels come from numpy, seeded by the key's data and the layer's position."""
    from lrpjax.core.models.graph import draw_kernel

    model, variables = vgg
    order = randomization.layer_order(model)
    key = jax.random.key(11)
    with jax.log_compiles(True), caplog.at_level("WARNING", logger="jax"):
        out = randomization.randomize_layers(model, variables, 2, key=key)
    compiled = " ".join(record.getMessage() for record in caplog.records)
    assert not any(word in compiled for word in ("threefry", "random", "normal", "draw")), compiled
    for position, name in enumerate(order[:2]):
        kernel = variables["params"][name]["kernel"]
        want = draw_kernel(np.random.default_rng([*np.asarray(jax.random.key_data(key)), position]),
                           "conv" if name.startswith("conv") else "dense", kernel.shape)
        np.testing.assert_array_equal(np.asarray(out["params"][name]["kernel"]), want.astype(kernel.dtype))
    other = randomization.randomize_layers(model, variables, 2, key=jax.random.key(12))
    assert not np.array_equal(other["params"]["fc8"]["kernel"], out["params"]["fc8"]["kernel"])


def test_ssim_equals_scikit_image():
    rng = np.random.default_rng(0)
    maps_a = rng.normal(size=(3, 20, 24, 3))
    maps_b = maps_a + rng.normal(scale=0.7, size=maps_a.shape)
    got = similarity.ssim(maps_a, maps_b)
    norm_a, norm_b = similarity.normalized_heatmaps(maps_a), similarity.normalized_heatmaps(maps_b)
    want = [structural_similarity(a, b, data_range=1.0) for a, b in zip(norm_a, norm_b)]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    assert np.all(got < 0.9)
    raw_a, raw_b = maps_a.sum(-1), maps_b.sum(-1)
    got = similarity.ssim(raw_a, raw_b, normalize=False, data_range=4.0, win_size=5)
    want = [structural_similarity(a, b, data_range=4.0, win_size=5) for a, b in zip(raw_a, raw_b)]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    np.testing.assert_allclose(similarity.ssim(maps_a, maps_a), 1.0, atol=1e-12)
    with pytest.raises(ValueError, match="win_size=8"):
        similarity.ssim(maps_a, maps_b, win_size=8)


def test_normalized_heatmaps_follow_adebayo():
    maps = np.random.default_rng(1).normal(size=(2, 10, 10))
    heat = np.abs(maps)
    low, high = heat.min(axis=(1, 2), keepdims=True), np.percentile(heat, 99, axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(similarity.normalized_heatmaps(maps), np.clip((heat - low) / (high - low), 0, 1))
    np.testing.assert_array_equal(similarity.normalized_heatmaps(np.ones((1, 4, 4))), 0.0)


def test_mprt_steps_follow_the_cascade(vgg):
    """A 'method' that reads only conv1_1 keeps its maps until the last step randomises conv1_1."""
    model, variables = vgg
    images = jax.random.normal(jax.random.key(0), (2, 32, 32, 3))
    explain_fn = lambda m, v, x, t: x * v["params"]["conv1_1"]["kernel"][1, 1, 0, :3] ** 2
    result = randomization.mprt(explain_fn, model, variables, images, np.array([0, 1]), key=jax.random.key(1),
                                counts=[1, 15, 16])
    assert result.layers == ("fc8", "conv1_2", "conv1_1")
    assert result.spearman.shape == result.ssim.shape == (3, 2)
    np.testing.assert_allclose(result.spearman[:2], 1.0, atol=1e-12)
    np.testing.assert_allclose(result.ssim[:2], 1.0, atol=1e-12)
    assert np.all(result.spearman[2] < 0.99) and np.all(result.ssim[2] < 0.99)
    with pytest.raises(ValueError, match="counts"):
        randomization.mprt(explain_fn, model, variables, images, np.array([0, 1]), key=jax.random.key(1),
                           counts=[2, 1])
