"""Cross-model generalization: self scores exactly 1, random maps ~0, the formula, bootstrap, relations, asymmetry."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrpjax.analysis import generalization as G
from lrpjax.analysis import grouping

N, H, W, C, K = 48, 6, 6, 3, 2
FRACTIONS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)


@pytest.fixture(scope="module")
def linear_models():
    """Three linear models (``b`` a perturbed copy of ``a``, ``c`` unrelated), their exact maps, random maps."""
    images = jax.random.normal(jax.random.key(0), (N, H, W, C))
    labels = jnp.asarray(np.arange(N) % K)
    base = 0.15 * jax.random.normal(jax.random.key(1), (H * W * C, K))
    weights = {"a": base, "b": base + 0.05 * jax.random.normal(jax.random.key(2), base.shape),
               "c": 0.15 * jax.random.normal(jax.random.key(3), base.shape)}
    logits_fns = {name: (lambda x, w=w: x.reshape(x.shape[0], -1) @ w) for name, w in weights.items()}
    maps = {name: images * w.T[labels].reshape(N, H, W, C) for name, w in weights.items()}
    maps["random maps"] = jax.random.normal(jax.random.key(4), (N, H, W))
    aucs = G.cross_masking_aucs(logits_fns, maps, images, labels, fractions=FRACTIONS)
    return aucs


def test_self_is_exactly_one_and_random_maps_about_zero(linear_models):
    scores = G.generalization_scores(linear_models, n_boot=300, seed=0)
    assert scores.sources == ("a", "b", "c", "random maps") and scores.targets == ("a", "b", "c")
    assert scores.score.shape == (4, 3)
    assert np.all(np.diag(scores.score[:3]) == 1.0)  # exactly, by construction
    random_row = scores.score[3]
    assert np.all(np.abs(random_row) < 0.2), random_row
    assert np.all(scores.low[3] < 0) and np.all(scores.high[3] > 0)  # the interval covers 0
    # a perturbed copy generalizes better than an unrelated model
    assert scores.score[0, 1] > scores.score[2, 1] and scores.score[1, 0] > scores.score[2, 0]
    assert np.all(scores.low <= scores.score + 1e-12) and np.all(scores.score <= scores.high + 1e-12)


def test_score_formula():
    rng = np.random.default_rng(0)
    cross = rng.uniform(0.1, 0.5, size=(3, 2, 10))
    random = rng.uniform(0.6, 0.9, size=(2, 10))
    aucs = G.CrossAUCs(("x", "y", "z"), ("x", "y"), cross, random, "probability")
    score = G.normalized_scores(aucs)
    for s in range(3):
        for t in range(2):
            want = (random[t].mean() - cross[s, t].mean()) / (random[t].mean() - cross[t, t].mean())
            assert score[s, t] == pytest.approx(want, rel=1e-12)
    weights = np.full((1, 10), 0.1)
    np.testing.assert_allclose(G.normalized_scores(aucs, weights=weights)[0], score, rtol=1e-12)


def test_bootstrap_is_seeded():
    rng = np.random.default_rng(1)
    aucs = G.CrossAUCs(("x", "y"), ("x", "y"), rng.uniform(0.1, 0.5, (2, 2, 20)), rng.uniform(0.6, 0.9, (2, 20)),
                       "probability")
    one, same = G.generalization_scores(aucs, n_boot=50, seed=3), G.generalization_scores(aucs, n_boot=50, seed=3)
    np.testing.assert_array_equal(one.replicates, same.replicates)
    assert one.replicates.shape == (50, 2, 2)


def test_relations():
    meta = dict(pretraining="imagenet", task="gender", seed=0)
    assert grouping.relation(meta, meta, same_model=True) == "self"
    assert grouping.relation(meta, {**meta, "seed": 1}) == "other seed"
    assert grouping.relation(meta, {**meta, "task": "identity", "seed": 1}) == "other task"
    assert grouping.relation(meta, {**meta, "pretraining": "vggface", "seed": 1}) == "other pretraining"
    assert grouping.relation(meta, {**meta, "pretraining": "none", "task": "id"}) == "other task and pretraining"
    with pytest.raises(ValueError, match="share the metadata"):
        grouping.relation(meta, dict(meta))
    with pytest.raises(ValueError, match=r"lacks \['seed'\]"):
        grouping.relation(meta, dict(pretraining="imagenet", task="gender"))


def test_group_scores_and_asymmetry():
    metadata = {"a0": dict(pretraining="imagenet", task="gender", seed=0),
                "a1": dict(pretraining="imagenet", task="gender", seed=1),
                "b0": dict(pretraining="imagenet", task="identity", seed=0)}
    rng = np.random.default_rng(2)
    n = 200
    random = np.full((3, n), 0.8)
    cross = np.empty((3, 3, n))
    own = 0.3 + 0.05 * rng.normal(size=(3, n))
    for t in range(3):
        cross[t, t] = own[t]
    # a0 <-> a1 symmetric (score ~0.8 both ways); a0 -> b0 scores ~0.6 but b0 -> a0 only ~0.2
    for (s, t), level in {(0, 1): 0.8, (1, 0): 0.8, (0, 2): 0.6, (2, 0): 0.2, (1, 2): 0.5, (2, 1): 0.5}.items():
        cross[s, t] = 0.8 - level * (0.8 - own[t]) + 0.05 * rng.normal(size=n)
    aucs = G.CrossAUCs(("a0", "a1", "b0"), ("a0", "a1", "b0"), cross, random, "probability")
    scores = G.generalization_scores(aucs, n_boot=200)
    groups = G.group_scores(scores, metadata)
    assert set(groups) == {"other seed", "other task"}
    assert groups["other seed"]["pairs"] == 2 and groups["other task"]["pairs"] == 4
    assert groups["other seed"]["mean"] == pytest.approx(0.8, abs=0.05)
    assert groups["other task"]["low"] < groups["other task"]["mean"] < groups["other task"]["high"]
    lopsided = G.asymmetry(aucs, "a0", "b0", n_boot=200, n_perm=500)
    assert lopsided.index == pytest.approx(scores.score[0, 2] - scores.score[2, 0], rel=1e-12)
    assert lopsided.index == pytest.approx(0.4, abs=0.05) and lopsided.p_value < 0.01
    assert lopsided.low < lopsided.index < lopsided.high
    balanced = G.asymmetry(aucs, "a0", "a1", n_boot=200, n_perm=500)
    assert abs(balanced.index) < 0.05 and balanced.p_value > 0.01
    matrix = G.asymmetry_matrix(scores)
    np.testing.assert_allclose(matrix, -matrix.T)


def test_bad_input(linear_models):
    images = jnp.zeros((2, 4, 4, 1))
    labels = jnp.asarray([0, 1])
    fn = lambda x: x.reshape(x.shape[0], -1)[:, :2]
    with pytest.raises(ValueError, match=r"target model\(s\) \['m'\] have no maps of their own"):
        G.cross_masking_aucs({"m": fn}, {"other": images}, images, labels)
    with pytest.raises(ValueError, match="do not pass order="):
        G.cross_masking_aucs({"m": fn}, {"m": images}, images, labels, order="lerf")
    with pytest.raises(ValueError, match="metric='loss' is unknown"):
        G.cross_masking_aucs({"m": fn}, {"m": images}, images, labels, metric="loss")
    with pytest.raises(ValueError, match="is not a target model"):
        G.asymmetry(linear_models, "a", "random maps")
    with pytest.raises(ValueError, match="two different models"):
        G.asymmetry(linear_models, "a", "a")
    with pytest.raises(ValueError, match=r"no metadata for model\(s\) \['c'\]"):
        G.group_scores(G.generalization_scores(linear_models, n_boot=10),
                       {"a": dict(pretraining=0, task=0, seed=0), "b": dict(pretraining=0, task=0, seed=1)})


def test_ratio_of_means_bootstrap_known_answer():
    """Per-image ratios average 5.5, the ratio of means is 1.5: the score is the latter, each replicate is the
    ratio of the resampled means, and every interval contains its point estimate."""
    random = np.full((1, 4), 1.0)
    own = np.array([0.9, 0.0, 0.9, 0.0])  # own margins per image 0.1, 1.0, 0.1, 1.0 -> mean 0.55
    other = np.array([0.0, 0.7, 0.0, 0.7])  # other margins per image 1.0, 0.3, 1.0, 0.3 -> mean 0.65
    aucs = G.CrossAUCs(("t", "x"), ("t",), np.stack([own, other])[:, None, :], random, "probability")
    scores = G.generalization_scores(aucs, n_boot=500, seed=0)
    assert scores.score[1, 0] == pytest.approx(0.65 / 0.55, rel=1e-12)
    assert np.mean((1 - other) / (1 - own)) == pytest.approx(5.15)  # the mean of ratios it must not be
    np.testing.assert_allclose(scores.margin[:, 0], [0.55, 0.65], rtol=1e-12)
    weights = G.stats.bootstrap_weights(4, n_boot=500, seed=0)
    want = (weights @ (1 - other)) / (weights @ (1 - own))
    np.testing.assert_allclose(scores.replicates[:, 1, 0], want, rtol=1e-12)
    for estimate, low, high in ((scores.score, scores.low, scores.high),
                                (scores.margin, scores.margin_low, scores.margin_high)):
        assert np.all(low <= estimate) and np.all(estimate <= high)
    assert scores.low[1, 0] < scores.score[1, 0] < scores.high[1, 0]


def test_interval_contains_the_estimate_even_when_the_denominator_nears_zero():
    rng = np.random.default_rng(5)
    own = 0.8 + rng.normal(0, 0.05, 12)  # own margin about 0: a meaningless ratio
    cross = np.stack([own, 0.5 + rng.normal(0, 0.05, 12)])[:, None, :]
    scores = G.generalization_scores(G.CrossAUCs(("t", "x"), ("t",), cross, np.full((1, 12), 0.8), "probability"),
                                     n_boot=300, seed=1)
    assert scores.low[1, 0] <= scores.score[1, 0] <= scores.high[1, 0]
    assert not G.reliable_targets(scores)[0]


def test_reliability_floor():
    """Float32-noise margins (1e-8, with a tight interval above 0) are refused; a margin of 0.1 is reliable."""
    rng = np.random.default_rng(0)
    random = np.full((3, 30), 0.5)
    own = np.stack([0.5 - 1.9e-8 + rng.normal(0, 1e-10, 30), 0.5 - 8.7e-7 + rng.normal(0, 1e-9, 30),
                    0.4 + rng.normal(0, 0.01, 30)])
    cross = np.full((3, 3, 30), 0.45)
    cross[np.arange(3), np.arange(3)] = own
    scores = G.generalization_scores(G.CrossAUCs(("a", "b", "c"), ("a", "b", "c"), cross, random, "probability"),
                                     n_boot=200)
    assert np.all(np.diag(scores.margin_low)[:2] > 0)  # what "interval above 0" used to count as reliable
    assert G.reliable_targets(scores).tolist() == [False, False, True]
    assert G.reliable_targets(scores, floor=0.0).tolist() == [True, True, True]
    assert G.RELIABILITY_FLOOR == 0.01
    with pytest.raises(ValueError, match="floor=-1 must be"):
        G.reliable_targets(scores, floor=-1)


def test_relation_is_a_ratio_of_means_and_controls_compare_on_the_same_targets():
    metadata = {"a0": dict(pretraining="p", task="g", seed=0), "a1": dict(pretraining="p", task="g", seed=1)}
    random = np.full((2, 6), 1.0)
    cross = np.empty((3, 2, 6))  # sources a0, a1, control
    cross[0, 0], cross[1, 1] = 0.9, 0.5  # own margins 0.1 and 0.5
    cross[1, 0], cross[0, 1] = 0.95, 0.8  # margins a1->a0 0.05, a0->a1 0.2
    cross[2] = 0.99  # the control's margin 0.01 on both
    scores = G.generalization_scores(G.CrossAUCs(("a0", "a1", "c"), ("a0", "a1"), cross, random, "probability"),
                                     n_boot=50)
    group = G.group_scores(scores, metadata)["other seed"]
    assert group["mean"] == pytest.approx((0.05 + 0.2) / (0.1 + 0.5), rel=1e-9)  # not (0.5 + 0.4) / 2
    assert group["margin"][0] == pytest.approx(0.125) and group["pairs"] == 2 and group["targets"] == 2
    only = G.group_scores(scores, metadata, targets=["a1"])["other seed"]
    assert only["mean"] == pytest.approx(0.4) and only["pairs"] == 1
    versus = G.control_comparison(scores, metadata, "c")["other seed"]
    assert versus["control"][0] == pytest.approx(0.02 / 0.6, rel=1e-9)
    assert versus["difference"][0] == pytest.approx((0.25 - 0.02) / 0.6, rel=1e-9) and versus["beats"]
    with pytest.raises(ValueError, match="control='nope' is not a source"):
        G.control_comparison(scores, metadata, "nope")
    with pytest.raises(ValueError, match=r"targets \['z'\] are not target models"):
        G.group_scores(scores, metadata, targets=["z"])


def test_sign_flip_test_respects_its_resolution():
    exact = G.stats.sign_flip_test(np.array([1.0, 2.0, 3.0, 4.0]), n_perm=1000, seed=0)
    assert exact.exact and exact.permutations == 16 and exact.p_value == pytest.approx(2 / 16)
    coarse = G.stats.sign_flip_test(np.arange(1.0, 41.0), n_perm=20, seed=0)
    assert coarse.p_value == pytest.approx(1 / 21) and coarse.resolution == pytest.approx(1 / 21)
    assert not coarse.significant(0.05)  # the smallest p twenty permutations allow is no evidence
    fine = G.stats.sign_flip_test(np.arange(1.0, 41.0), n_perm=999, seed=0)
    assert fine.p_value == pytest.approx(1 / 1000) and fine.significant(0.05)
    null = G.stats.sign_flip_test(np.random.default_rng(0).normal(size=40), n_perm=999, seed=0)
    assert null.p_value > 0.05 and not null.significant()
    with pytest.raises(ValueError, match="n_perm=0 must be"):
        G.stats.sign_flip_test(np.ones(3), n_perm=0, seed=0)
