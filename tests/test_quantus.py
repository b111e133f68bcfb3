"""An independent cross-check against Quantus 0.6.0: its ROAD imputation and its pixel-flipping curves.

Correspondence. ``quantus.functions.perturb_func.noisy_linear_imputation(arr [C, H, W], indices)`` takes flat
row-major pixel indices into ``H * W``; with ``noise=0`` it is :func:`lrpjax.analysis.road_imputation`.
``quantus.PixelFlipping`` broadcasts a ``[B, 1, H, W]`` map over the channels, sorts the ``C * H * W``
features by descending attribution (a pixel's ``C`` copies are adjacent) and masks ``features_in_step`` of them per
step, a step that must divide ``H * W``: so steps split pixels between channels, and only after every ``C``-th
step have whole pixels been masked. With no two pixels tied, after ``C k`` steps of ``n`` features the ``k n``
most relevant pixels are masked in every channel: MoRF at fraction ``k n / (H W)`` in lrpjax, which masks
whole pixels only. With ``perturb_baseline=0.0`` the fill is lrpjax's ``zero``, and
with ``softmax=True`` Quantus records the target's probability (``MaskingCurves.probability``). Quantus
evaluates the torch model in float32 (``torch.Tensor(x)``), so the torch model here is float32 too.
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from lrpjax._zennit import import_zennit
from lrpjax.analysis import imputation, masking
from weights_conversion.convert import torchvision_to_variables

try:  # pytest's default "prepend" import mode puts tests/ on sys.path
    from torch_vgg import torch_vgg
except ModuleNotFoundError:  # tests/ imported as a package
    from tests.torch_vgg import torch_vgg

import_zennit()  # Quantus imports torchvision too: the same placeholder modules serve it
quantus = pytest.importorskip("quantus")
assert "torchvision" in sys.modules
from quantus.functions.perturb_func import noisy_linear_imputation  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_road_equals_quantus_noisy_linear_imputation():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(4, 9, 11, 3))
    masks = rng.random((4, 9, 11)) < np.array([0.2, 0.5, 0.9, 1.0])[:, None, None]  # the last fully masked
    masks[0, 0, :] = masks[0, :, -1] = True  # border rows and columns
    got = np.asarray(imputation.road_imputation(jnp.asarray(images), jnp.asarray(masks)))
    for image, mask, out in zip(images, masks, got):
        want = noisy_linear_imputation(image.transpose(2, 0, 1), np.flatnonzero(mask), noise=0.0)
        np.testing.assert_allclose(out, want.transpose(1, 2, 0), rtol=0, atol=1e-5 * np.abs(want).max())
    np.testing.assert_array_equal(got[3], 0.0)


def test_pixel_flipping_curves_equal_quantus():
    net = torch_vgg(11, 3, width=1 / 16, seed=4).float()
    model, variables = torchvision_to_variables(net.state_dict())
    variables = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), variables)
    rng = np.random.default_rng(1)
    batch, side, per_step = 2, 32, 16
    images = rng.normal(size=(batch, side, side, 3))
    maps = rng.random((batch, side, side)) + 0.01  # positive, no ties
    labels = np.array([2, 0])
    metric = quantus.PixelFlipping(features_in_step=per_step, perturb_baseline=0.0, normalise=False,
                                   disable_warnings=True)
    scores = metric(model=net.eval(), x_batch=images.transpose(0, 3, 1, 2).astype(np.float32), y_batch=labels,
                    a_batch=maps[:, None].astype(np.float32), device="cpu", softmax=True)
    want = np.asarray(scores)[:, 2::3]  # [B, steps]: whole pixels masked after every third step
    steps = side * side // per_step
    fractions = np.arange(1, steps + 1) * per_step / (side * side)
    curves = masking.masking_curves(lambda x: model.apply(variables, x), jnp.asarray(images), jnp.asarray(maps),
                                    jnp.asarray(labels), order="morf", fractions=fractions, fill="zero")
    assert want.shape == (batch, steps)
    np.testing.assert_allclose(curves.probability.T, want, rtol=0, atol=1e-5)
    assert want[:, 0].std() > 0 and np.ptp(want) > 0.05  # the curves move
