"""ROAD's noisy linear imputation: a direct sparse solve of the same system, border and fully masked cases, the
noise, its use inside the masking curves, pixel-unit noise, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg

from lrpjax.analysis import imputation, masking
from lrpjax.io import preprocess

H, W, C = 12, 10, 3
OFFSETS = [(di, dj, 1 / 6 if di == 0 or dj == 0 else 1 / 12) for di in (-1, 0, 1) for dj in (-1, 0, 1)
           if (di, dj) != (0, 0)]


def sparse_reference(image, mask):
    """The system S_i x_i - sum_{j masked} w_ij x_j = sum_{j kept} w_ij x_j assembled as a scipy sparse matrix
    pixel by pixel and solved directly, channel by channel."""
    height, width, channels = image.shape
    variables = -np.ones((height, width), int)
    variables[mask] = np.arange(mask.sum())
    rows, cols, values = [], [], []
    b = np.zeros((mask.sum(), channels))
    for i, j in zip(*np.nonzero(mask)):
        k = variables[i, j]
        for di, dj, weight in OFFSETS:
            ni, nj = i + di, j + dj
            if not (0 <= ni < height and 0 <= nj < width):
                continue
            rows.append(k), cols.append(k), values.append(weight)  # S_i, summed by the COO -> CSC conversion
            if mask[ni, nj]:
                rows.append(k), cols.append(variables[ni, nj]), values.append(-weight)
            else:
                b[k] += weight * image[ni, nj]
    matrix = scipy.sparse.coo_matrix((values, (rows, cols)), shape=(len(b), len(b))).tocsc()
    out = image.copy()
    out[mask] = scipy.sparse.linalg.spsolve(matrix, b).reshape(len(b), channels)
    return out


def masks_under_test():
    rng = np.random.default_rng(0)
    border = np.zeros((H, W), bool)
    border[0], border[:, -1], border[-3:, :4] = True, True, True
    block = np.zeros((H, W), bool)
    block[1:-1, 1:-2] = True  # a large region, one kept ring around it
    return {"random 30%": rng.random((H, W)) < 0.3, "random 90%": rng.random((H, W)) < 0.9, "border": border,
            "block": block, "one pixel kept": ~np.eye(H, W, dtype=bool) | (np.arange(H)[:, None] > 0)}


@pytest.mark.parametrize("name", list(masks_under_test()))
def test_equals_direct_sparse_solve(name):
    mask = masks_under_test()[name]
    image = np.random.default_rng(1).normal(size=(H, W, C))
    got = imputation.road_imputation(jnp.asarray(image[None]), jnp.asarray(mask[None]))[0]
    want = sparse_reference(image, mask)
    assert np.abs(np.asarray(got) - want).max() <= 1e-5 * np.abs(want).max()
    np.testing.assert_array_equal(np.asarray(got)[~mask], image[~mask])  # kept pixels untouched


def test_items_are_solved_alike_in_chunks_and_one_by_one():
    """11 items (one empty mask, one full), sorted by mask size into three chunks of 4 (one empty pad), come back
    in their own order; small masks stopping early do not change the others; fewer items than a chunk, and
    none, work too."""
    rng = np.random.default_rng(3)
    images = jnp.asarray(rng.normal(size=(11, H, W, C)))
    masks = rng.random((11, H, W)) < rng.permutation(np.linspace(0.05, 0.95, 11))[:, None, None]
    masks[3], masks[7] = False, True
    got = imputation.road_solve_items(images, jnp.asarray(masks), chunk=4)
    for image, mask, out in zip(images, masks, got):
        want = sparse_reference(np.asarray(image), mask) if 0 < mask.sum() < mask.size else np.where(
            mask[..., None], 0.0, np.asarray(image))  # no kept neighbour: 0 (module docstring)
        np.testing.assert_allclose(out, want, rtol=0, atol=1e-9)
    np.testing.assert_allclose(imputation.road_solve_items(images[:3], jnp.asarray(masks[:3]), chunk=4), got[:3],
                               rtol=0, atol=1e-12)
    assert imputation.road_solve_items(images[:0], jnp.asarray(masks[:0])).shape == (0, H, W, C)


def test_fully_masked_image_is_zero_plus_noise():
    images = jax.random.normal(jax.random.key(0), (2, H, W, C))
    masks = jnp.ones((2, H, W), bool)
    np.testing.assert_array_equal(imputation.road_imputation(images, masks), 0.0)
    noisy = imputation.road_imputation(images, masks, noise_std=0.5, seed=3)
    np.testing.assert_allclose(noisy, imputation.road_noise(images, 0.5, 3), rtol=0, atol=0)
    assert 0.4 < float(jnp.std(noisy)) < 0.6


def test_noise_is_seeded_per_channel_and_only_on_masked_pixels():
    images = jax.random.normal(jax.random.key(0), (2, H, W, C))
    masks = jnp.asarray(np.broadcast_to(masks_under_test()["random 30%"], (2, H, W)))
    clean = imputation.road_imputation(images, masks)
    std = [0.0, 0.1, 1.0]
    a, b = (imputation.road_imputation(images, masks, noise_std=std, seed=s) for s in (1, 1))
    other = imputation.road_imputation(images, masks, noise_std=std, seed=2)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, other)
    delta = np.asarray(a - clean)
    np.testing.assert_array_equal(delta[~np.asarray(masks)], 0.0)
    np.testing.assert_allclose(delta[..., 0], 0.0, atol=1e-12)  # channel 0 has no noise
    spread = delta[np.asarray(masks)].std(axis=0)
    assert 0.07 < spread[1] < 0.13 and 0.7 < spread[2] < 1.3


def test_masking_curves_solve_every_fraction_and_image():
    """The compiled (fraction, image) step gives the imputation of each item's own mask."""
    rng = np.random.default_rng(2)
    images = jnp.asarray(rng.normal(size=(3, 8, 8, C)))
    relevance = jnp.asarray(rng.random((3, 8, 8)))  # no ties
    weights = jnp.asarray(rng.normal(size=(8 * 8 * C, 2)))
    logits_fn = lambda x: x.reshape(x.shape[0], -1) @ weights
    labels = jnp.asarray([0, 1, 0])
    fractions = (0.0, 0.25, 0.5, 1.0)
    curves = masking.masking_curves(logits_fn, images, relevance, labels, fractions=fractions, fill="road",
                                    noise_std=0.0, patch_size=2, batch_size=5)
    for f, fraction in enumerate(fractions):
        kept = masking.mask_images(jnp.ones_like(images), relevance, fraction=fraction, fill="zero", patch_size=2)
        road = imputation.road_imputation(images, kept[..., 0] == 0)
        want = np.asarray(logits_fn(road))[np.arange(3), labels]
        np.testing.assert_allclose(curves.logit[f], want, rtol=1e-9, atol=1e-12)
        masked = masking.mask_images(images, relevance, fraction=fraction, fill="road", noise_std=0.0, patch_size=2)
        np.testing.assert_allclose(masked, road, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(curves.logit[-1], 0.0, atol=1e-12)  # everything masked: 0, as Quantus gives


def test_pixel_std_to_input():
    np.testing.assert_allclose(preprocess.pixel_std_to_input(0.01, preprocess.TORCHVISION),
                               0.01 / np.array([0.229, 0.224, 0.225]))
    np.testing.assert_allclose(preprocess.pixel_std_to_input([0.01, 0.02, 0.0], preprocess.VGGFACE),
                               [2.55, 5.1, 0.0])
    with pytest.raises(ValueError, match="std="):
        preprocess.pixel_std_to_input(-0.01, preprocess.TORCHVISION)


def test_bad_input():
    images = jnp.zeros((1, 4, 4, C))
    mask = jnp.ones((1, 4, 4), bool)
    with pytest.raises(ValueError, match="needs noise_std"):
        masking.mask_pixels(images, mask, fill="road")
    with pytest.raises(ValueError, match="depends on the mask"):
        masking.fill_values(images, "road", noise_std=0.0)
    with pytest.raises(ValueError, match="noise_std"):
        imputation.road_imputation(images, mask, noise_std=[0.1, 0.1])
    with pytest.raises(ValueError, match="noise_std"):
        masking.mask_pixels(images, mask, fill="road", noise_std=-1.0)
    with pytest.raises(ValueError, match="masks must be boolean"):
        imputation.road_imputation(images, jnp.ones((1, 4, 4)))
