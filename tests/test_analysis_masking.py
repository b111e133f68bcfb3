"""Masking curves: a linear model's exact contributions, the end points, fills, patches, batching, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lrpjax
from conftest import random_vgg
from lrpjax import analysis
from lrpjax.analysis import masking

B, H, W, C, K = 12, 8, 8, 3, 2


def linear_problem(seed=0):
    """Images, a linear model's weights, its logits function and the exact per-pixel contributions x * w."""
    images = jax.random.normal(jax.random.key(seed), (B, H, W, C))
    weights = jax.random.normal(jax.random.key(seed + 1), (H * W * C, K))
    logits_fn = lambda x: x.reshape(x.shape[0], -1) @ weights
    labels = jnp.asarray(np.arange(B) % K)
    contributions = images * weights.T[labels].reshape(B, H, W, C)  # target logit = sum of contributions
    return images, weights, logits_fn, labels, contributions


def tiny_vgg(seed=0):
    """A 1/16-width VGG-16 for 32x32 inputs."""
    return random_vgg(width=1 / 16, size=32, num_classes=2, pool_to=None, seed=seed)


def test_exported_names_import():
    for name in analysis.__all__:
        assert getattr(analysis, name) is not None, name


def test_morf_drops_faster_and_lerf_slower_than_random():
    images, _, logits_fn, labels, contributions = linear_problem()
    result = masking.masking_analysis(logits_fn, images, contributions, labels)
    aucs = result.auc("logit")
    assert aucs["morf"] < aucs["random"] < aucs["lerf"]
    assert result.morf_minus_lerf("logit") < 0
    assert np.all(result.morf.auc("logit") < result.random.auc("logit"))  # per image, not just on average
    assert np.all(result.lerf.auc("logit") > result.random.auc("logit"))
    assert result.morf.accuracy.shape == (len(masking.FRACTIONS), B)


def test_curve_end_points_and_exact_linear_drop():
    images, _, logits_fn, labels, contributions = linear_problem()
    curves = masking.masking_curves(logits_fn, images, contributions, labels, order="morf")
    unmasked = np.asarray(logits_fn(images))[np.arange(B), labels]
    np.testing.assert_allclose(curves.logit[0], unmasked, rtol=1e-12)
    np.testing.assert_allclose(curves.logit[-1], 0.0, atol=1e-12)  # zero fill: the fully filled image
    # at 10% (6 of 64 pixels) MoRF removes exactly the six largest contributions
    per_pixel = np.asarray(contributions.sum(-1)).reshape(B, -1)
    expected = unmasked - np.sort(per_pixel, axis=1)[:, -6:].sum(axis=1)
    np.testing.assert_allclose(curves.logit[list(masking.FRACTIONS).index(0.1)], expected, rtol=1e-10)
    probability = np.asarray(jax.nn.softmax(logits_fn(images)))[np.arange(B), labels]
    np.testing.assert_allclose(curves.probability[0], probability, rtol=1e-12)


@pytest.mark.parametrize("fill", ["mean", "blur", "noise"], ids=["mean", "blur", "noise"])
def test_fully_masked_equals_the_fill(fill):
    images, _, logits_fn, labels, contributions = linear_problem()
    options = dict(fill=fill, mean=[0.1, -0.2, 0.3], blur_sigma=1.5, noise_std=0.5, seed=3)
    curves = masking.masking_curves(logits_fn, images, contributions, labels, order="lerf", **options)
    filled = masking.fill_values(images, fill, mean=options["mean"], blur_sigma=1.5, noise_std=0.5, seed=3)
    np.testing.assert_allclose(curves.logit[-1], np.asarray(logits_fn(filled))[np.arange(B), labels], rtol=1e-10)


def test_fills():
    images = jnp.full((2, 8, 8, 3), 2.0)
    np.testing.assert_allclose(masking.fill_values(images, "blur", blur_sigma=2.0), 2.0, rtol=1e-12)
    noise = masking.fill_values(jnp.zeros((4, 32, 32, 3)), "noise", noise_std=0.5, seed=1)
    again = masking.fill_values(jnp.zeros((4, 32, 32, 3)), "noise", noise_std=0.5, seed=1)
    np.testing.assert_array_equal(noise, again)
    assert abs(float(noise.std()) - 0.5) < 0.02 and abs(float(noise.mean())) < 0.02
    mean = masking.fill_values(images, "mean", mean=[1.0, 2.0, 3.0])
    np.testing.assert_array_equal(mean[1, 4, 4], [1.0, 2.0, 3.0])


def test_batching_and_jit_do_not_change_the_curves():
    images, weights, logits_fn, labels, contributions = linear_problem()
    one = masking.masking_curves(logits_fn, images, contributions, labels, batch_size=7)
    other = masking.masking_curves(logits_fn, images, contributions, labels, batch_size=1000)
    numpy_fn = lambda x: np.asarray(x).reshape(len(x), -1) @ np.asarray(weights)  # jax cannot trace this one
    eager = masking.masking_curves(numpy_fn, images, contributions, labels, batch_size=50, jit=False)
    for metric in masking.METRICS:
        np.testing.assert_allclose(getattr(one, metric), getattr(other, metric), rtol=1e-12)
        np.testing.assert_allclose(getattr(one, metric), getattr(eager, metric), rtol=1e-10)


def test_random_order_is_seeded():
    images, _, logits_fn, labels, _ = linear_problem()
    first = masking.masking_curves(logits_fn, images, None, labels, order="random", seed=5)
    same = masking.masking_curves(logits_fn, images, None, labels, order="random", seed=5)
    other = masking.masking_curves(logits_fn, images, None, labels, order="random", seed=6)
    np.testing.assert_array_equal(first.logit, same.logit)
    assert not np.allclose(first.logit[1:-1], other.logit[1:-1])


def test_patches():
    assert masking.patch_units(9, 9, 4)[1] == 9  # 3 x 3 patches, the last row and column smaller
    images = jnp.ones((1, 8, 8, 1))
    relevance = jnp.zeros((1, 8, 8)).at[0, 2, 5].set(1.0)  # the patch at block (1, 2) is the most relevant
    masked = np.asarray(masking.mask_images(images, relevance, fraction=1 / 16, patch_size=2))[0, :, :, 0]
    expected = np.ones((8, 8))
    expected[2:4, 4:6] = 0
    np.testing.assert_array_equal(masked, expected)


def test_absolute_ranks_negative_evidence_too():
    relevance = jnp.asarray([[[-5.0, 1.0], [0.5, 0.0]]])
    images = jnp.ones((1, 2, 2, 1))
    positive = masking.mask_images(images, relevance, fraction=0.25)[0, :, :, 0]
    absolute = masking.mask_images(images, relevance, fraction=0.25, relevance_mode="absolute")[0, :, :, 0]
    assert positive.tolist() == [[1.0, 0.0], [1.0, 1.0]] and absolute.tolist() == [[0.0, 1.0], [1.0, 1.0]]


def test_auc_trapezoid():
    assert masking.auc(np.array([0.0, 1.0, 1.0]), [0.0, 0.5, 1.0]) == pytest.approx(0.75)


def test_small_vgg_smoke():
    model, variables = tiny_vgg()
    images = jax.random.normal(jax.random.key(1), (3, 32, 32, 3))
    labels = jnp.asarray([0, 1, 1])
    relevance = lrpjax.explain(model, variables, images, labels, lrpjax.composites.get("epsilon"))
    logits_fn = lambda x: model.apply(variables, x)
    result = masking.masking_analysis(logits_fn, images, relevance, labels, fractions=(0.0, 0.5, 1.0), fill="blur",
                                      patch_size=4)
    probability = np.asarray(jax.nn.softmax(logits_fn(images)))[np.arange(3), labels]
    np.testing.assert_allclose(result.morf.probability[0], probability, rtol=1e-10)
    assert np.isfinite(result.morf_minus_lerf())


def test_bad_input():
    images, _, logits_fn, labels, contributions = linear_problem()
    with pytest.raises(ValueError, match="relevance of shape"):
        masking.masking_curves(logits_fn, images, contributions[:, :4], labels)
    with pytest.raises(ValueError, match="fill='sand' is unknown"):
        masking.masking_curves(logits_fn, images, contributions, labels, fill="sand")
    with pytest.raises(ValueError, match=r"fractions must be increasing and lie in \[0, 1\]"):
        masking.masking_curves(logits_fn, images, contributions, labels, fractions=(0.0, 0.5, 1.5))
    with pytest.raises(ValueError, match="fractions must be increasing"):
        masking.masking_curves(logits_fn, images, contributions, labels, fractions=(0.5, 0.2))
    with pytest.raises(ValueError, match="needs mean="):
        masking.masking_curves(logits_fn, images, contributions, labels, fill="mean")
    with pytest.raises(ValueError, match="one value per channel"):
        masking.masking_curves(logits_fn, images, contributions, labels, fill="mean", mean=[0.0, 0.0])
    with pytest.raises(ValueError, match="labels must be 12 integer classes"):
        masking.masking_curves(logits_fn, images, contributions, labels[:3])
    with pytest.raises(ValueError, match="order='best' is unknown"):
        masking.masking_curves(logits_fn, images, contributions, labels, order="best")
    with pytest.raises(ValueError, match="needs relevance maps"):
        masking.masking_curves(logits_fn, images, None, labels, order="morf")
    with pytest.raises(ValueError, match="patch_size=9"):
        masking.masking_curves(logits_fn, images, contributions, labels, patch_size=9)
    with pytest.raises(ValueError, match="relevance_mode='signed' is unknown"):
        masking.masking_curves(logits_fn, images, contributions, labels, relevance_mode="signed")
    with pytest.raises(ValueError, match=r"must map \[n, H, W, C\] images to \[n, classes\]"):
        masking.masking_curves(lambda x: x.sum(), images, contributions, labels)
    with pytest.raises(ValueError, match="out of range for logits of 2 classes"):
        masking.masking_curves(logits_fn, images, contributions, labels + 1)
    with pytest.raises(ValueError, match=r"fraction=-0.1 must lie in \[0, 1\]"):
        masking.mask_images(images, contributions, fraction=-0.1)
    with pytest.raises(ValueError, match="fill array of shape"):
        masking.fill_values(images, jnp.zeros((5, 5)))
    with pytest.raises(ValueError, match="metric='loss' is unknown"):
        masking.masking_curves(logits_fn, images, contributions, labels).auc("loss")
