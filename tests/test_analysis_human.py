"""Human similarity: CSV formats, model RDMs, RSA and its permutation null, noise ceiling, triads, fc7 features."""

import jax
import numpy as np
import pytest

from conftest import random_vgg
from lrpjax.analysis import human
from lrpjax.core.canonize import merge_batch_norm
from lrpjax.core.engine import forward


def tiny_vgg(seed=0):
    """A 1/16-width VGG-16 for 32x32 inputs."""
    return random_vgg(width=1 / 16, size=32, num_classes=2, pool_to=None, seed=seed)


def random_rdm(n, rng, dims=4):
    return human.embedding_rdm(rng.normal(size=(n, dims)), metric="euclidean")


def test_dissimilarity_csv_round_trip_and_alignment(tmp_path):
    ids = ["f1", "f2", "f3", "f4"]
    rdm = random_rdm(4, np.random.default_rng(0))
    path = tmp_path / "rdm.csv"
    order = [2, 0, 3, 1]  # rows in another order than the columns
    lines = ["," + ",".join(ids)] + [ids[i] + "," + ",".join(repr(float(v)) for v in rdm[i]) for i in order]
    path.write_text("\n".join(lines) + "\n")
    read_ids, read = human.read_dissimilarity_csv(path)
    assert read_ids == ids
    np.testing.assert_allclose(read, rdm, rtol=1e-15)
    aligned = human.align_rdm(read_ids, read, ["f3", "f1", "f2"])
    np.testing.assert_allclose(aligned, rdm[np.ix_([2, 0, 1], [2, 0, 1])])
    with pytest.raises(ValueError, match=r"image id\(s\) \['f9'\] not found among the dissimilarity matrix's ids"):
        human.align_rdm(read_ids, read, ["f1", "f9", "f2"])
    path.write_text("\n".join(lines[:1] + [lines[1].replace(ids[2], "f9")] + lines[2:]) + "\n")
    with pytest.raises(ValueError, match="must be the same ids"):
        human.read_dissimilarity_csv(path)
    asymmetric = rdm.copy()
    asymmetric[0, 1] += 1
    path.write_text("\n".join(["," + ",".join(ids)] + [ids[i] + "," + ",".join(map(str, asymmetric[i]))
                                                       for i in range(4)]) + "\n")
    with pytest.raises(ValueError, match="not symmetric"):
        human.read_dissimilarity_csv(path)
    path.write_text(",a,b\na,0,x\nb,1,0\n")
    with pytest.raises(ValueError, match="non-numeric value"):
        human.read_dissimilarity_csv(path)


def test_triads_csv(tmp_path):
    path = tmp_path / "triads.csv"
    path.write_text("target,option1,option2,choice\na,b,c,b\nb,c,a,a\n")
    triads = human.read_triads_csv(path)
    assert triads.target == ("a", "b") and triads.choice == ("b", "a")
    path.write_text("target,option1,option2,choice\na,b,c,d\n")
    with pytest.raises(ValueError, match="line 2: choice 'd' is neither option"):
        human.read_triads_csv(path)
    path.write_text("target,option1,choice\na,b,b\n")
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['option2'\]"):
        human.read_triads_csv(path)
    rdm = random_rdm(3, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"triad target id\(s\) \['z'\] not found among image_ids"):
        human.triad_agreement(rdm, ["a", "b", "c"], human.Triads(("z",), ("a",), ("b",), ("a",)))


def test_embedding_rdms():
    features = np.random.default_rng(0).normal(size=(6, 10))
    np.testing.assert_allclose(human.embedding_rdm(features), 1 - np.corrcoef(features), atol=1e-12)
    brute = np.linalg.norm(features[:, None] - features[None], axis=-1)
    np.testing.assert_allclose(human.embedding_rdm(features, metric="euclidean"), brute, atol=1e-10)
    with pytest.raises(ValueError, match="metric='cosine' is unknown"):
        human.embedding_rdm(features, metric="cosine")


def test_rsa_of_a_model_with_itself_is_one():
    rdm = random_rdm(12, np.random.default_rng(1))
    assert human.rsa(rdm, rdm) == pytest.approx(1.0, abs=1e-12)
    result = human.rsa_test(rdm, rdm, n_perm=99)
    assert result.r == pytest.approx(1.0) and result.p_value == pytest.approx(1 / 100)
    with pytest.raises(ValueError, match="align them to the same images"):
        human.rsa(rdm, rdm[:5, :5])


def test_permutation_p_values_are_uniform_under_the_null():
    rng = np.random.default_rng(2)
    p_values = np.array([human.rsa_test(random_rdm(8, rng), random_rdm(8, rng), n_perm=199, seed=i).p_value
                         for i in range(200)])
    below = np.sum(p_values < 0.05)  # P(p < 0.05) = 9/200 for p on the grid k/200
    tolerance = 3 * np.sqrt(200 * 0.045 * 0.955)
    assert abs(below - 200 * 0.045) <= tolerance, below
    grid = np.linspace(0, 1, 201)
    ks = np.max(np.abs(np.searchsorted(np.sort(p_values), grid, side="right") / 200 - grid))
    assert ks < 1.63 / np.sqrt(200) + 1 / 200, ks  # Kolmogorov-Smirnov at 1%, plus the grid's step


def test_noise_ceiling():
    rng = np.random.default_rng(3)
    truth = random_rdm(15, rng)
    exact = human.noise_ceiling(np.stack([truth] * 4), n_splits=10)
    assert exact.split_half == pytest.approx(1.0) and exact.corrected == pytest.approx(1.0)
    noisy = np.stack([truth + rng.normal(0, 0.5, truth.shape) for _ in range(6)])
    noisy = (noisy + noisy.transpose(0, 2, 1)) / 2
    ceiling = human.noise_ceiling(noisy, n_splits=50, seed=0)
    assert 0 < ceiling.split_half < ceiling.corrected < 1
    assert ceiling.corrected == pytest.approx(2 * ceiling.split_half / (1 + ceiling.split_half))
    with pytest.raises(ValueError, match=r"rdms must be \[raters >= 2, N, N\]"):
        human.noise_ceiling(truth[None])


def test_triad_agreement():
    rng = np.random.default_rng(4)
    ids = [f"face{i}" for i in range(10)]
    rdm = random_rdm(10, rng)
    triads = human.triads_from_rdm(rdm, ids, n_triads=60, seed=0)
    itself = human.triad_agreement(rdm, ids, triads, n_boot=200)
    assert itself.agreement == 1.0 and itself.n == 60 and itself.low == pytest.approx(1.0)
    flipped = triads._replace(choice=tuple(b if c == a else a for a, b, c in
                                           zip(triads.option1, triads.option2, triads.choice)))
    assert human.triad_agreement(rdm, ids, flipped, n_boot=10).agreement == 0.0
    chance = human.triad_agreement(random_rdm(10, rng), ids, human.triads_from_rdm(rdm, ids, n_triads=400),
                                   n_boot=500)
    assert chance.low < 0.5 + 0.1 and chance.high > 0.5 - 0.1


def test_fc7_features_match_the_engine_and_masked_features():
    model, variables = tiny_vgg()
    images = jax.random.normal(jax.random.key(0), (3, 32, 32, 3))
    features = human.fc7_features(model, variables, images, batch_size=2)
    assert features.shape == (3, 256) and np.all(features >= 0)
    chain, params = merge_batch_norm(model.layers, variables)
    relu7 = [spec.name for spec in chain].index("relu7")
    want = np.stack([np.asarray(forward(chain, params, image)[2][relu7][0]) for image in images])
    np.testing.assert_allclose(features, want, rtol=1e-10, atol=1e-12)
    pre = human.layer_features(model, variables, images, layer="fc7", after_relu=False)
    np.testing.assert_allclose(np.maximum(pre, 0), features, rtol=1e-12)
    with pytest.raises(ValueError, match="layer='relu7' is not a conv or dense layer"):
        human.layer_features(model, variables, images, layer="relu7")
    flatten = lambda x: np.asarray(x).reshape(len(x), -1)
    relevance = jax.random.normal(jax.random.key(1), (3, 32, 32))
    np.testing.assert_allclose(human.relevance_masked_features(flatten, images, relevance, keep=1.0),
                               flatten(images))
    kept = human.relevance_masked_features(flatten, images, relevance, keep=0.25)
    assert np.all((kept != 0).reshape(3, 32, 32, 3).any(-1).sum(axis=(1, 2)) == 256)
