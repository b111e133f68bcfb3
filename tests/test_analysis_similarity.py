"""Map similarity: correlations against brute force, top-k overlap by hand, matrices, relation groups."""

import numpy as np
import pytest

from lrpjax.analysis import similarity as S
from lrpjax.analysis import stats


def test_rankdata_and_correlations_against_brute_force():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 5, size=30).astype(float)  # many ties
    brute = np.array([np.sum(values < v) + (np.sum(values == v) + 1) / 2 for v in values])
    np.testing.assert_array_equal(stats.rankdata(values), brute)
    x, y = rng.normal(size=(2, 4, 50))
    np.testing.assert_allclose(stats.pearson(x, y), [np.corrcoef(a, b)[0, 1] for a, b in zip(x, y)], rtol=1e-12)
    ranks_x, ranks_y = stats.rankdata(x), stats.rankdata(y)
    spearman = [np.corrcoef(a, b)[0, 1] for a, b in zip(ranks_x, ranks_y)]
    np.testing.assert_allclose(stats.spearman(x, y), spearman, rtol=1e-12)


def test_map_correlation():
    rng = np.random.default_rng(1)
    maps = rng.normal(size=(3, 8, 8, 3))
    heat = maps.sum(-1)
    np.testing.assert_allclose(S.map_correlation(maps, maps), 1.0)
    np.testing.assert_allclose(S.map_correlation(heat, np.exp(heat)), 1.0)  # ranks only
    np.testing.assert_allclose(S.map_correlation(heat, -heat, method="pearson"), -1.0)
    other = rng.normal(size=(3, 8, 8))
    want = [np.corrcoef(a.ravel(), b.ravel())[0, 1] for a, b in zip(heat, other)]
    np.testing.assert_allclose(S.map_correlation(maps, other, method="pearson"), want, rtol=1e-12)
    np.testing.assert_allclose(S.map_correlation(heat, -heat, relevance_mode="absolute"), 1.0)


def test_top_k_iou_by_hand():
    a = np.zeros((1, 4, 4))
    b = np.zeros((1, 4, 4))
    a[0, 0, :4] = [4, 3, 2, 1]  # top 4: the first row
    b[0, 0, :2] = [4, 3]
    b[0, 1, :2] = [2, 1]  # top 4: half of the first row, half of the second
    assert S.top_k_iou(a, b, k=0.25).tolist() == [pytest.approx(2 / 6)]
    assert S.top_k_iou(a, a, k=0.25).tolist() == [1.0]
    assert S.top_k_mask(a, k=0.25)[0].sum() == 4


def test_similarity_matrix_and_groups():
    rng = np.random.default_rng(2)
    n = 20
    base = {task: rng.normal(size=(n, 8, 8)) for task in ("gender", "identity")}
    maps, metadata = {}, {}
    for task in ("gender", "identity"):
        for seed in range(2):
            name = f"{task}{seed}"
            maps[name] = base[task] + 0.5 * rng.normal(size=(n, 8, 8))
            metadata[name] = dict(pretraining="imagenet", task=task, seed=seed)
    result = S.similarity_matrix(maps, measure="spearman")
    assert result.per_image.shape == (4, 4, n)
    np.testing.assert_array_equal(np.diag(result.matrix), 1.0)
    np.testing.assert_allclose(result.matrix, result.matrix.T)
    groups = S.group_similarity(result, metadata, n_boot=200)
    assert set(groups) == {"other seed", "other task"}
    assert groups["other seed"]["mean"] > 0.6 > 0.2 > groups["other task"]["mean"]
    assert groups["other seed"]["low"] < groups["other seed"]["mean"] < groups["other seed"]["high"]
    fisher = S.similarity_matrix(maps, measure="pearson", summary="fisher")
    assert fisher.matrix[0, 1] == pytest.approx(np.tanh(np.arctanh(fisher.per_image[0, 1]).mean()))
    iou = S.similarity_matrix(maps, measure="top_k_iou", k=0.2)
    assert iou.matrix[0, 1] > iou.matrix[0, 2]


def test_bad_input():
    maps = np.zeros((2, 4, 4))
    with pytest.raises(ValueError, match="differ: compare maps of the same images"):
        S.map_correlation(maps, np.zeros((3, 4, 4)))
    with pytest.raises(ValueError, match="method='kendall' is unknown"):
        S.map_correlation(maps, maps, method="kendall")
    with pytest.raises(ValueError, match=r"k=0 must be a fraction of the pixels in \(0, 1\]"):
        S.top_k_iou(maps, maps, k=0)
    with pytest.raises(ValueError, match="measure='cosine' is unknown"):
        S.similarity_matrix({"a": maps, "b": maps}, measure="cosine")
    with pytest.raises(ValueError, match="at least two models"):
        S.similarity_matrix({"a": maps})
    with pytest.raises(ValueError, match="summary='median' is unknown"):
        S.summarize(np.zeros((2, 2, 3)), summary="median")
