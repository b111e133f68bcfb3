"""Small statistics in numpy: ranks, correlations, bootstrap and permutation helpers.

Everything here is plain numpy (no scipy) and seeded explicitly, so the analyses built on it are
reproducible from their arguments alone.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Interval(NamedTuple):
    """A confidence interval: ``low`` and ``high`` (arrays when several quantities were resampled)."""

    low: np.ndarray
    high: np.ndarray


def rankdata(values: np.ndarray, *, axis: int = -1) -> np.ndarray:
    """Ranks 1..n along ``axis``, ties given their average rank (as ``scipy.stats.rankdata``).

    >>> rankdata(np.array([10.0, 30.0, 20.0, 20.0])).tolist()
    [1.0, 4.0, 2.5, 2.5]
    """
    return np.apply_along_axis(_rank_1d, axis, np.asarray(values, np.float64))


def _rank_1d(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    inverse = np.empty_like(order)
    inverse[order] = np.arange(values.size)
    ordered = values[order]
    run_starts = np.concatenate([[True], ordered[1:] != ordered[:-1]])
    run = np.cumsum(run_starts)[inverse]  # 1-based run of each value
    bounds = np.concatenate([np.flatnonzero(run_starts), [values.size]])
    return 0.5 * (bounds[run] + bounds[run - 1] + 1)


def pearson(x: np.ndarray, y: np.ndarray, *, axis: int = -1) -> np.ndarray:
    r"""Pearson correlation along ``axis``.

    .. math:: r = \frac{\sum_i (x_i - \bar x)(y_i - \bar y)}{\sqrt{\sum_i (x_i - \bar x)^2 \sum_i (y_i - \bar y)^2}}

    NaN where either input is constant.

    >>> float(pearson(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 7.0]))).__round__(4)
    0.9934
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    x = x - x.mean(axis=axis, keepdims=True)
    y = y - y.mean(axis=axis, keepdims=True)
    denominator = np.sqrt((x * x).sum(axis=axis) * (y * y).sum(axis=axis))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.clip((x * y).sum(axis=axis) / denominator, -1.0, 1.0)


def spearman(x: np.ndarray, y: np.ndarray, *, axis: int = -1) -> np.ndarray:
    r"""Spearman correlation along ``axis``: Pearson's :math:`r` of the (average-tie) ranks.

    >>> float(spearman(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 7.0])))
    1.0
    """
    return pearson(rankdata(x, axis=axis), rankdata(y, axis=axis), axis=axis)


def bootstrap_weights(n: int, *, n_boot: int, seed: int) -> np.ndarray:
    """``[n_boot, n]`` resampling weights: how often each of ``n`` items is drawn (with replacement), over ``n``.

    A bootstrap mean is then ``weights @ values``; the weights of one replicate sum to 1.
    """
    if n < 1:
        raise ValueError(f"bootstrap needs at least one item, got n={n}")
    if n_boot < 1:
        raise ValueError(f"n_boot={n_boot!r} must be a positive number of bootstrap replicates")
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64) / n


def percentile_interval(replicates: np.ndarray, *, confidence: float = 0.95, axis: int = 0) -> Interval:
    """The percentile interval of bootstrap ``replicates``: their ``(1 - confidence)/2`` and ``(1 + confidence)/2``
    quantiles along ``axis`` (NaN replicates ignored)."""
    check_confidence(confidence)
    low, high = np.nanquantile(np.asarray(replicates, np.float64), [(1 - confidence) / 2, (1 + confidence) / 2],
                               axis=axis)
    return Interval(low, high)


def sign_flip_p_value(differences: np.ndarray, *, n_perm: int, seed: int) -> float:
    r"""Two-sided paired permutation test that the mean of per-item ``differences`` is zero.

    Each replicate flips the sign of every difference with probability 1/2;
    :math:`p = (1 + \#\{|\bar d^*| \ge |\bar d|\}) / (1 + n_\mathrm{perm})`.
    """
    differences = np.asarray(differences, np.float64)
    if n_perm < 1:
        raise ValueError(f"n_perm={n_perm!r} must be a positive number of permutations")
    rng = np.random.default_rng(seed)
    signs = rng.choice(np.array([-1.0, 1.0]), size=(n_perm, differences.size))
    observed = abs(differences.mean())
    null = np.abs(signs @ differences / differences.size)
    return float((1 + np.sum(null >= observed - 1e-12 * max(observed, 1.0))) / (1 + n_perm))


def check_confidence(confidence: float) -> None:
    """Raise ``ValueError`` unless ``0 < confidence < 1``."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence!r} must lie strictly between 0 and 1")
