"""Model-free control maps: the centre prior's peak and spread, Sobel edges on a known step, the mean map."""

import numpy as np
import pytest

from lrpjax.analysis import controls


def test_centre_prior_peaks_at_the_centre_with_the_given_spread():
    prior = controls.centre_prior((2, 9, 9), sigma=0.2)
    assert prior.shape == (2, 9, 9) and prior[1, 4, 4] == 1.0
    # sigma = 0.2 * 9 = 1.8 pixels: one sigma from the centre the prior is exp(-1/2)
    np.testing.assert_allclose(controls.centre_prior((1, 9, 9), sigma=1 / 9)[0, 4, 5], np.exp(-0.5), rtol=1e-12)
    np.testing.assert_allclose(prior[0], prior[0].T)
    with pytest.raises(ValueError, match="sigma=0 must be a positive"):
        controls.centre_prior((1, 4, 4), sigma=0)
    with pytest.raises(ValueError, match=r"shape=\(4, 4\) must be \(N, H, W\)"):
        controls.centre_prior((4, 4))


def test_gradient_magnitude_of_a_ramp_and_a_step():
    ramp = np.broadcast_to(np.arange(6.0)[None, None, :, None], (1, 5, 6, 3))
    magnitude = controls.gradient_magnitude(ramp)
    np.testing.assert_allclose(magnitude[0, :, 1:-1], 8.0)  # Sobel of slope 1: (1 + 2 + 1) * 2
    np.testing.assert_allclose(magnitude[0, :, 0], 4.0)  # the replicated border halves the difference
    with pytest.raises(ValueError, match=r"images must be \[N, H, W, C\]"):
        controls.gradient_magnitude(np.zeros((4, 4)))


def test_mean_map_is_the_same_for_every_image():
    rng = np.random.default_rng(0)
    maps = {"a": rng.uniform(size=(3, 4, 4)), "b": rng.uniform(size=(3, 4, 4))}
    mean = controls.mean_map(maps)
    np.testing.assert_allclose(mean[0], mean[2])
    np.testing.assert_allclose(mean.sum(axis=(1, 2)), 1.0)  # each model's map normalised to sum 1
    free = controls.model_free_maps(rng.uniform(size=(3, 4, 4, 3)), maps)
    assert list(free) == list(controls.MODEL_FREE) and all(v.shape == (3, 4, 4) for v in free.values())
