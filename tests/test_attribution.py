"""Attributors: float64 parity with Zennit's Gradient, SmoothGrad (the same noise) and IntegratedGradients on a
converted torch VGG; gradient x input equals LRP-0; SmoothGrad's noise is seeded; bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import lrpjax
from lrpjax.core import attribution
from weights_conversion.convert import torchvision_to_variables
from weights_conversion.zennit_modules import import_zennit

try:  # pytest's default "prepend" import mode puts tests/ on sys.path
    from torch_vgg import torch_vgg
except ModuleNotFoundError:  # tests/ imported as a package
    from tests.torch_vgg import torch_vgg

Z = import_zennit()
B, SIZE, K = 3, 32, 4


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Zennit's loops of small float64 passes run fastest on one thread (and far faster on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def setup():
    net = torch_vgg(11, K, batch_norm=True, width=1 / 16, seed=3).double()
    model, variables = torchvision_to_variables(net.state_dict())
    variables = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), variables)
    images = np.random.default_rng(0).normal(size=(B, SIZE, SIZE, 3))
    targets = np.array([0, 3, 1])
    return net, model, variables, images, targets


def zennit(attributor, net, images, targets):
    x = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
    one_hot = torch.nn.functional.one_hot(torch.from_numpy(targets), K).double()
    with attributor as a:
        _, relevance = a(x, one_hot)
    return relevance.detach().numpy().transpose(0, 2, 3, 1)


def relative(got, want):
    return float(np.abs(np.asarray(got) - want).max() / np.abs(want).max())


def test_gradient_x_input_matches_zennit_and_lrp0(setup):
    net, model, variables, images, targets = setup
    got = attribution.gradient_x_input(model, variables, images, targets)
    want = images * zennit(Z.attribution.Gradient(net), net, images, targets)
    assert relative(got, want) < 1e-10
    lrp0 = lrpjax.explain(model, variables, images, targets, lrpjax.composites.epsilon(epsilon=0, stabilizer=1e-30))
    assert relative(got, lrp0) < 1e-10


def test_smoothgrad_matches_zennit_with_the_same_noise(setup, monkeypatch):
    net, model, variables, images, targets = setup
    key, samples = jax.random.key(5), 4
    noise = np.asarray(attribution._standard_noise(key, samples, images.shape, jnp.float64))
    draws = iter(torch.from_numpy(n.transpose(0, 3, 1, 2).copy()) for n in noise)
    monkeypatch.setattr(torch, "randn_like", lambda tensor: next(draws))
    want = zennit(Z.attribution.SmoothGrad(net, noise_level=0.2, n_iter=samples), net, images, targets)
    got = attribution.smoothgrad(model, variables, images, targets, key=key, samples=samples, noise_level=0.2)
    assert relative(got, want) < 1e-10
    gradient = zennit(Z.attribution.Gradient(net), net, images, targets)
    assert relative(got, gradient) > 1e-3  # the noise changed the result
    noise_free = attribution.smoothgrad(model, variables, images, targets, key=key, samples=samples, noise_level=0)
    assert relative(noise_free, gradient) < 1e-10


def test_smoothgrad_noise_is_seeded(setup):
    _, model, variables, images, targets = setup
    run = lambda seed: attribution.smoothgrad(model, variables, images, targets, key=jax.random.key(seed), samples=4)
    np.testing.assert_array_equal(run(1), run(1))
    assert not np.allclose(run(1), run(2))


def test_integrated_gradients_matches_zennit(setup):
    net, model, variables, images, targets = setup
    want = zennit(Z.attribution.IntegratedGradients(net, n_iter=20), net, images, targets)
    got = attribution.integrated_gradients(model, variables, images, targets)
    assert relative(got, want) < 1e-10
    with_baseline = Z.attribution.IntegratedGradients(net, baseline_fn=lambda t: torch.full_like(t, 0.3))
    want = zennit(with_baseline, net, images, targets)
    got = attribution.integrated_gradients(model, variables, images, targets, baseline=np.full(3, 0.3))
    assert relative(got, want) < 1e-10


def zennit_occlusion(net, images, targets, output_fn, **options):
    x = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
    _, relevance = Z.attribution.Occlusion(net, **options)(x, output_fn)
    return relevance.detach().numpy().transpose(0, 2, 3, 1)


def test_occlusion_matches_zennit(setup):
    net, model, variables, images, targets = setup
    one_hot = torch.nn.functional.one_hot(torch.from_numpy(targets), K).double()
    target = lambda out: out * one_hot
    # Zennit's defaults: keep an 8x8 window, zeros elsewhere; tiles of 32x32
    want = zennit_occlusion(net, images, targets, target)
    got = attribution.occlusion(model, variables, images, targets, chunk=5)
    assert relative(got, want) < 1e-10 and np.ptp(want) > 0
    # overlapping windows wrapping round the border (Zennit rolls its mask), window filled with 0.3 inside
    fill = lambda t, m: Z.attribution.occlude_independent(t, m, fill_fn=lambda u: torch.full_like(u, 0.3),
                                                          invert=True)
    want = zennit_occlusion(net, images, targets, target, window=(10, 8), stride=(8, 6), occlusion_fn=fill)
    got = attribution.occlusion(model, variables, images, targets, window=(10, 8), stride=(8, 6), mode="remove",
                                fill=0.3)
    assert relative(got, want) < 1e-10
    # the drop: f_t(x) - f_t(window filled), Zennit with an output function that subtracts from f_t(x)
    reference = net(torch.from_numpy(images.transpose(0, 3, 1, 2).copy())).detach()
    drop = lambda out: (reference - out) * one_hot
    want = zennit_occlusion(net, images, targets, drop, window=8, stride=8, occlusion_fn=fill)
    got = attribution.occlusion(model, variables, images, targets, mode="drop", fill=0.3)
    assert relative(got, want) < 1e-10
    # the contrast z_t - mean of the other logits
    weights = one_hot - (1 - one_hot) / (K - 1)
    want = zennit_occlusion(net, images, targets, lambda out: (reference - out) * weights, window=8, stride=8,
                            occlusion_fn=fill)
    got = attribution.occlusion(model, variables, images, targets, mode="drop", fill=0.3, output="contrast")
    assert relative(got, want) < 1e-10


class OnePixel:
    """A stand-in model whose two logits read one pixel: :math:`z = (x_{5,9,1}, -x_{5,9,1})`."""

    num_classes, input_spec = 2, lrpjax.core.models.graph.InputSpec()

    def apply(self, variables, images):
        value = images[:, 5, 9, 1] * variables["scale"]
        return jnp.stack([value, -value], axis=-1)


def test_occlusion_of_a_one_pixel_model_covers_that_pixel_only():
    images = np.random.default_rng(1).uniform(1, 2, size=(2, 16, 16, 3))
    got = np.asarray(attribution.occlusion(OnePixel(), {"scale": 2.0}, images, [0, 1], window=4, stride=2,
                                           mode="drop"))
    windows = attribution.occlusion_windows(16, 16, 4, 2)
    covers = windows[:, 5, 9].sum()  # the windows that hold pixel (5, 9): rows 2-5, 4-7 x columns 6-9, 8-11
    expected = windows[windows[:, 5, 9]].sum(0)[None, :, :, None] * (2 * images[:, 5, 9, 1] * [1, -1])[:, None, None,
                                                                                                       None]
    assert covers == 4
    np.testing.assert_allclose(got, np.broadcast_to(expected, got.shape), rtol=1e-12)
    assert np.all(got[:, 10:] == 0) and np.all(got[:, :, :6] == 0)


def test_bad_input(setup):
    _, model, variables, images, targets = setup
    with pytest.raises(ValueError, match="samples=0"):
        attribution.smoothgrad(model, variables, images, targets, key=jax.random.key(0), samples=0)
    with pytest.raises(ValueError, match="noise_level"):
        attribution.smoothgrad(model, variables, images, targets, key=jax.random.key(0), noise_level=-1.0)
    with pytest.raises(ValueError, match="steps=0"):
        attribution.integrated_gradients(model, variables, images, targets, steps=0)
    with pytest.raises(ValueError, match="baseline"):
        attribution.integrated_gradients(model, variables, images, targets, baseline=np.zeros(5))
    with pytest.raises(ValueError, match="out of range"):
        attribution.gradient_x_input(model, variables, images, np.array([0, 1, K]))
    with pytest.raises(ValueError, match="class indices"):
        attribution.gradient_x_input(model, variables, images, "predicted")
    with pytest.raises(ValueError, match="window=0"):
        attribution.occlusion(model, variables, images, targets, window=0)
    with pytest.raises(ValueError, match="mode='outside'"):
        attribution.occlusion(model, variables, images, targets, mode="outside")
    with pytest.raises(ValueError, match="fill"):
        attribution.occlusion(model, variables, images, targets, fill=np.zeros(5))
    with pytest.raises(ValueError, match="output='odds'"):
        attribution.occlusion(model, variables, images, targets, output="odds")
