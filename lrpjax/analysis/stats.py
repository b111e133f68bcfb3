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


def bootstrap_interval(estimate: np.ndarray, replicates: np.ndarray, *, confidence: float = 0.95) -> Interval:
    r"""The percentile interval of ``replicates`` (axis 0), widened where needed to contain ``estimate``.

    .. math:: [\min(q_{(1-c)/2}, \hat\theta), \max(q_{(1+c)/2}, \hat\theta)]

    :math:`\hat\theta` is the full-sample estimate and :math:`q_p` the :math:`p` quantile of its bootstrap
    replicates (Efron & Tibshirani 1993, *An Introduction to the Bootstrap*, ch. 13). The percentile interval
    misses :math:`\hat\theta` only when the bootstrap distribution is strongly skewed (a ratio whose denominator
    comes near 0); widening it there only adds coverage, and no printed estimate lies outside its interval.
    NaN where the estimate is NaN.

    >>> bootstrap_interval(np.array(2.0), np.array([0.5, 1.0, 1.5])).high.item()
    2.0
    """
    estimate = np.asarray(estimate, np.float64)
    low, high = percentile_interval(replicates, confidence=confidence)
    with np.errstate(invalid="ignore"):
        return Interval(np.where(np.isfinite(estimate), np.fmin(low, estimate), np.nan),
                        np.where(np.isfinite(estimate), np.fmax(high, estimate), np.nan))


class PermutationTest(NamedTuple):
    """A permutation p-value with its resolution: ``p_value``, the ``permutations`` drawn (or enumerated, when
    ``exact``) and ``resolution``, the smallest p-value they can give."""

    p_value: float
    permutations: int
    resolution: float
    exact: bool

    def significant(self, alpha: float = 0.05) -> bool:
        """``p <= alpha``, claimed only when at least ten times finer p-values were attainable
        (``resolution <= alpha / 10``): with 20 permutations :math:`p = 1/21 = 0.048` is the floor, not
        evidence."""
        return bool(self.p_value <= alpha and self.resolution <= alpha / 10)


def sign_flip_test(differences: np.ndarray, *, n_perm: int, seed: int) -> PermutationTest:
    r"""Two-sided paired permutation test that the mean of per-item ``differences`` is zero.

    Under the null each difference is symmetric about 0, so its sign is exchangeable. With
    :math:`2^n \le n_\mathrm{perm}` every sign vector is enumerated (the exact test,
    :math:`p = \#\{|\bar d^*| \ge |\bar d|\} / 2^n`, resolution :math:`2^{-n}`); otherwise ``n_perm`` random
    sign vectors are drawn and
    :math:`p = (1 + \#\{|\bar d^*| \ge |\bar d|\}) / (1 + n_\mathrm{perm})` (resolution
    :math:`1 / (1 + n_\mathrm{perm})`; Phipson & Smyth 2010, *Permutation p-values should never be zero*,
    https://arxiv.org/abs/1603.05766; Good 2005, *Permutation, Parametric and Bootstrap Tests of Hypotheses*).

    >>> sign_flip_test(np.array([1.0, 2.0, 3.0]), n_perm=100, seed=0)
    PermutationTest(p_value=0.25, permutations=8, resolution=0.125, exact=True)

    Raises:
      ValueError: ``n_perm < 1`` or no differences.
    """
    differences = np.asarray(differences, np.float64).ravel()
    if n_perm < 1:
        raise ValueError(f"n_perm={n_perm!r} must be a positive number of permutations")
    if differences.size == 0:
        raise ValueError("sign_flip_test needs at least one difference, got none")
    n = differences.size
    exact = n <= 30 and 2 ** n <= n_perm
    if exact:
        signs = 1.0 - 2.0 * ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1)
    else:
        signs = np.random.default_rng(seed).choice(np.array([-1.0, 1.0]), size=(n_perm, n))
    observed = abs(differences.mean())
    extreme = np.sum(np.abs(signs @ differences / n) >= observed - 1e-12 * max(observed, 1.0))
    if exact:
        return PermutationTest(float(extreme / 2 ** n), 2 ** n, 1.0 / 2 ** n, True)
    return PermutationTest(float((1 + extreme) / (1 + n_perm)), n_perm, 1.0 / (1 + n_perm), False)


def check_confidence(confidence: float) -> None:
    """Raise ``ValueError`` unless ``0 < confidence < 1``."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence!r} must lie strictly between 0 and 1")
