"""Face regions: real landmarks, an exact partition, shares that sum to 1, consensus maps, bad input."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrpjax.analysis import masking, regions

FACES = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces"
needs_faces = pytest.mark.skipif(not (FACES / "regions.json").exists(), reason=f"no face data at {FACES}")


@pytest.fixture(scope="module")
def london():
    landmarks = regions.load_landmarks(FACES / "london" / "landmarks.csv")
    polygons = regions.load_regions(FACES / "regions.json")
    return landmarks, polygons


@needs_faces
def test_partition_is_exclusive_and_exhaustive(london):
    landmarks, polygons = london
    assert len(landmarks) == 102 and landmarks["001"].shape == (189, 2)
    partitions = regions.face_partitions(landmarks, ["001", "002", "003"], polygons, size=64)
    assert partitions.shape == (3, len(regions.SHARE_REGIONS), 64, 64)
    np.testing.assert_array_equal(partitions.sum(axis=1), 1)
    areas = regions.region_areas(partitions)
    np.testing.assert_allclose(areas.sum(axis=1), 1.0)
    assert np.all(areas > 0)  # every region has pixels at 64x64
    eyes, nose, mouth = (regions.SHARE_REGIONS.index(r) for r in ("eyes", "nose", "mouth"))
    assert np.all(areas[:, nose] > areas[:, eyes] / 2) and np.all(areas[:, mouth] > 0.002)


@needs_faces
def test_shares_sum_to_one_and_a_mouth_map_is_all_mouth(london):
    landmarks, polygons = london
    ids = sorted(landmarks)[::40]  # three faces across the set
    partitions = regions.face_partitions(landmarks, ids, polygons, size=48)
    relevance = jax.random.normal(jax.random.key(0), (3, 48, 48, 3))
    for mode in ("positive", "absolute"):
        np.testing.assert_allclose(regions.region_shares(relevance, partitions, relevance_mode=mode).sum(1), 1.0)
    mouth_maps = np.stack([regions.region_masks(landmarks[i], polygons, size=48)["mouth"] for i in ids]).astype(float)
    shares = regions.region_shares(mouth_maps, partitions)
    np.testing.assert_allclose(shares[:, regions.SHARE_REGIONS.index("mouth")], 1.0)


def test_rasterization_scales_with_size():
    points = np.array([[64.0, 64.0], [192.0, 64.0], [192.0, 192.0], [64.0, 192.0]])
    for size in (32, 64, 256):
        square = regions.region_masks(points, {"square": (0, 1, 2, 3, 0)}, size=size)["square"]
        assert square.shape == (size, size)
        assert square.mean() == pytest.approx(0.25, abs=2.5 / size)  # half the side, edges within a pixel
        assert square[size // 2, size // 2] and not square[0, 0]


def test_groups_and_consensus():
    shares = {"a": np.array([[0.5, 0.5]]), "b": np.array([[1.0, 0.0]]), "c": np.array([[0.0, 1.0]])}
    metadata = {"a": dict(task="gender"), "b": dict(task="gender"), "c": dict(task="identity")}
    grouped = regions.shares_by_group(shares, metadata, by="task")
    np.testing.assert_allclose(grouped["gender"], [[0.75, 0.25]])
    maps = {"a": np.array([[[4.0, 0.0], [0.0, 0.0]]]), "b": np.array([[[1.0, 1.0], [-1.0, 0.0]]])}
    mean = regions.consensus_map(maps)
    np.testing.assert_allclose(mean, [[[0.75, 0.25], [0.0, 0.0]]])
    votes = regions.consensus_map(maps, method="vote", k=0.25, min_models=2)  # top pixel of a; b's tie: seeded
    assert votes.shape == (1, 2, 2) and votes.max() <= 2 and set(np.unique(votes)) <= {0.0, 2.0}
    unanimous = regions.consensus_map([maps["a"], maps["a"]], method="vote", k=0.25, min_models=2)
    np.testing.assert_array_equal(unanimous, [[[2.0, 0.0], [0.0, 0.0]]])


def test_consensus_masking_runs_the_masking():
    images = jax.random.normal(jax.random.key(0), (4, 8, 8, 1))
    weights = jax.random.normal(jax.random.key(1), (64, 2))
    logits_fn = lambda x: x.reshape(x.shape[0], -1) @ weights
    labels = jnp.asarray([0, 1, 0, 1])
    exact = images * weights.T[labels].reshape(4, 8, 8, 1)
    result = regions.consensus_masking(logits_fn, images, labels, {"m1": exact, "m2": exact},
                                       fractions=(0.0, 0.1, 0.5, 1.0))
    direct = masking.masking_analysis(logits_fn, images, regions.consensus_map([exact]), labels,
                                      fractions=(0.0, 0.1, 0.5, 1.0))
    np.testing.assert_allclose(result.morf.logit, direct.morf.logit, rtol=1e-12)
    assert result.auc("logit")["morf"] < result.auc("logit")["lerf"]


def test_bad_input(tmp_path):
    incomplete = tmp_path / "landmarks.csv"
    incomplete.write_text("face_id,point,x,y\n001,0,1,2\n001,1,3,4\n")
    with pytest.raises(ValueError, match="lack some of the 3 points"):
        regions.load_landmarks(incomplete, points=3)
    no_column = tmp_path / "bad.csv"
    no_column.write_text("face_id,point,x\n001,0,1\n")
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['y'\]"):
        regions.load_landmarks(no_column)
    with pytest.raises(ValueError, match=r"no landmarks for face id\(s\) \['999'\]"):
        regions.face_partitions({"001": np.zeros((189, 2))}, ["999"], {"mouth": (0, 1, 2)}, size=8)
    with pytest.raises(ValueError, match="the share partition needs"):
        regions.share_partition({"face": np.zeros((4, 4), bool)})
    with pytest.raises(ValueError, match="do not fit relevance maps"):
        regions.region_shares(np.zeros((2, 4, 4)), np.zeros((2, 6, 5, 5), bool))
    with pytest.raises(ValueError, match="method='median' is unknown"):
        regions.consensus_map([np.zeros((1, 2, 2))], method="median")
    with pytest.raises(ValueError, match=r"min_models=3 must lie in \[1, 2\]"):
        regions.consensus_map([np.zeros((1, 2, 2))] * 2, method="vote", min_models=3)
    with pytest.raises(ValueError, match="share one shape"):
        regions.consensus_map([np.zeros((1, 2, 2)), np.zeros((1, 3, 3))])
    with pytest.raises(ValueError, match="no metadata key by='task'"):
        regions.shares_by_group({"a": np.zeros((1, 6))}, {"a": {}})
