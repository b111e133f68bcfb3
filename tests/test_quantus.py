"""An independent cross-check against Quantus 0.6.0: its ROAD imputation, pixel-flipping and region-perturbation
curves.

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

``quantus.RegionPerturbation(patch_size=p)`` cuts the image into the non-overlapping ``p x p`` squares of
``skimage.util.view_as_blocks``, numbered row-major as lrpjax's ``patch_units``, scores each by its summed
attribution (a ``[B, 1, H, W]`` map broadcast over the channels: ``C`` times lrpjax's patch score, the same order),
sorts them with ``np.argsort`` (MoRF: of the negated scores) and, after each of the first ``regions_evaluation``
patches, records ``y(x) - y(x_k)``, the fall of the target's probability from the unperturbed image: lrpjax's
``probability[0] - probability[k]`` at fraction ``k / U`` of the ``U`` patches. Its default fill ``"black"`` is
the image's minimum over all pixels and channels (a constant per image, as ``fill=`` an array is in lrpjax). Where
the two differ by definition, the test stays out: a side that is not a multiple of ``p`` (Quantus pads the image
evenly on both sides, so its squares sit off lrpjax's grid, whose edge patches are smaller on the bottom and
right), tied patch scores (``np.argsort``'s quicksort order against lrpjax's seeded random tie break), the random
order (numpy's global generator against lrpjax's seed) and ``"mean"`` (the mean of the image perturbed so far,
recomputed at every step, against lrpjax's fixed data-set mean).
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from lrpjax.analysis import imputation, masking
from weights_conversion.convert import torchvision_to_variables
from weights_conversion.zennit_modules import import_zennit

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


@pytest.fixture(scope="module")
def vgg11():
    """A float32 torch VGG-11 (3 classes, 1/16 width), its converted float64 variables and one jax function of
    them (one object, so that masking's compiled steps are reused across orders)."""
    net = torch_vgg(11, 3, width=1 / 16, seed=4).float().eval()
    model, variables = torchvision_to_variables(net.state_dict())
    variables = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), variables)
    return net, lambda x: model.apply(variables, x)


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


def test_pixel_flipping_curves_equal_quantus(vgg11):
    net, logits_fn = vgg11
    rng = np.random.default_rng(1)
    batch, side, per_step = 2, 32, 16
    images = rng.normal(size=(batch, side, side, 3))
    maps = rng.random((batch, side, side)) + 0.01  # positive, no ties
    labels = np.array([2, 0])
    metric = quantus.PixelFlipping(features_in_step=per_step, perturb_baseline=0.0, normalise=False,
                                   disable_warnings=True)
    scores = metric(model=net, x_batch=images.transpose(0, 3, 1, 2).astype(np.float32), y_batch=labels,
                    a_batch=maps[:, None].astype(np.float32), device="cpu", softmax=True)
    want = np.asarray(scores)[:, 2::3]  # [B, steps]: whole pixels masked after every third step
    steps = side * side // per_step
    fractions = np.arange(1, steps + 1) * per_step / (side * side)
    curves = masking.masking_curves(logits_fn, jnp.asarray(images), jnp.asarray(maps), jnp.asarray(labels),
                                    order="morf", fractions=fractions, fill="zero")
    assert want.shape == (batch, steps)
    np.testing.assert_allclose(curves.probability.T, want, rtol=0, atol=1e-5)
    assert want[:, 0].std() > 0 and np.ptp(want) > 0.05  # the curves move



def test_region_perturbation_curves_equal_quantus(vgg11):
    net, logits_fn = vgg11
    rng = np.random.default_rng(2)
    batch, side, patch, regions = 2, 32, 4, 40
    images = rng.normal(size=(batch, side, side, 3))
    maps = rng.random((batch, side, side))  # no two patch sums tied
    labels = np.array([1, 2])
    fractions = np.arange(regions + 1) / (side // patch) ** 2
    black = images.astype(np.float32).astype(np.float64).min(axis=(1, 2, 3), keepdims=True)
    for order in ("morf", "lerf"):
        metric = quantus.RegionPerturbation(patch_size=patch, order=order, regions_evaluation=regions,
                                            normalise=False, disable_warnings=True)
        want = np.asarray(metric(model=net, x_batch=images.transpose(0, 3, 1, 2).astype(np.float32),
                                 y_batch=labels, a_batch=maps[:, None].astype(np.float32), device="cpu",
                                 softmax=True))
        curves = masking.masking_curves(logits_fn, jnp.asarray(images), jnp.asarray(maps), jnp.asarray(labels),
                                        order=order, fractions=fractions, fill=black, patch_size=patch)
        assert want.shape == (batch, regions)
        np.testing.assert_allclose((curves.probability[:1] - curves.probability[1:]).T, want, rtol=0, atol=1e-5)
        assert np.ptp(want) > 0.05  # the curves move
