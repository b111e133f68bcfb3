r"""Human similarity judgements against models: RDMs, representational similarity analysis and triads.

Human data come as a pairwise dissimilarity matrix (CSV: the first row and column hold image ids) or as triad
judgements (CSV: ``target, option1, option2, choice``, the choice being the id of the option judged more similar
to the target). The model side is a representational dissimilarity matrix (RDM) from embeddings, e.g. a VGG's
``fc7`` activations or a ResNet's global-average-pooled features (:func:`fc7_features`), of the images as they
are or masked by their own relevance.

RSA is Spearman's :math:`\rho` between the upper triangles of two RDMs; its p-value comes from permuting the
image labels of one RDM (rows and columns together). The noise ceiling of several raters' RDMs is the mean
split-half correlation :math:`r` over random halves of the raters, Spearman-Brown corrected to the full set:
:math:`2r / (1 + r)`. A model agrees with a triad when the option it finds closer to the target is the one
chosen (ties count one half).

References: Kriegeskorte et al. 2008, *Representational similarity analysis*,
https://doi.org/10.3389/neuro.06.004.2008; Nili et al. 2014, *A toolbox for RSA*,
https://doi.org/10.1371/journal.pcbi.1003553.
"""

from __future__ import annotations

import csv
import functools
import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lrpjax.analysis import stats
from lrpjax.analysis.masking import mask_images
from lrpjax.core.models import VGG, ResNet

RDM_METRICS = ("correlation", "euclidean")
PENULTIMATE = "penultimate"
"""The layer name :func:`layer_features` reads as the input of the model's last (dense) layer: what its classifier
sees (a VGG's ``fc7`` after ReLU and dropout, a ResNet's global-average-pooled features)."""


class Triads(NamedTuple):
    """Triad judgements, one entry per triad: image ids of the target, the two options and the chosen option."""

    target: tuple[str, ...]
    option1: tuple[str, ...]
    option2: tuple[str, ...]
    choice: tuple[str, ...]


class RSAResult(NamedTuple):
    """Spearman ``r`` between two RDMs and its one-sided permutation p-value (``r`` larger than by chance)."""

    r: float
    p_value: float


class NoiseCeiling(NamedTuple):
    """Mean split-half Spearman ``split_half`` of the raters' RDMs and its Spearman-Brown ``corrected`` value."""

    split_half: float
    corrected: float


class TriadAgreement(NamedTuple):
    """Share of triads where the model picks the human choice, its percentile bootstrap interval, the count."""

    agreement: float
    low: float
    high: float
    n: int


def read_dissimilarity_csv(path: str | os.PathLike[str]) -> tuple[list[str], np.ndarray]:
    """Image ids and the ``[N, N]`` dissimilarity matrix of a CSV whose first row and column hold the ids.

    Rows may come in another order than the columns; they are put in the columns' order.

    Raises:
      ValueError: not square, row and column ids that differ or repeat, a non-numeric or missing value, or a
        matrix that is not symmetric.
    """
    with open(path, newline="") as handle:
        rows = [row for row in csv.reader(handle) if row]
    if len(rows) < 3:
        raise ValueError(f"{path}: a dissimilarity CSV needs a header row and at least two rows of values")
    columns = [c.strip() for c in rows[0][1:]]
    row_ids = [r[0].strip() for r in rows[1:]]
    if len(set(columns)) != len(columns) or sorted(columns) != sorted(row_ids):
        raise ValueError(f"{path}: row ids {row_ids[:5]}... and column ids {columns[:5]}... must be the same ids, "
                         "each once")
    try:
        values = np.array([[float(v) for v in r[1:]] for r in rows[1:]])
    except ValueError as error:
        raise ValueError(f"{path}: non-numeric value ({error})") from None
    if values.shape != (len(columns), len(columns)) or not np.all(np.isfinite(values)):
        raise ValueError(f"{path}: expected a complete {len(columns)}x{len(columns)} matrix of numbers, got shape "
                         f"{values.shape} with {int(np.sum(~np.isfinite(values)))} missing values")
    values = values[[row_ids.index(c) for c in columns]]
    if not np.allclose(values, values.T):
        raise ValueError(f"{path}: the dissimilarity matrix is not symmetric")
    return columns, values


def read_triads_csv(path: str | os.PathLike[str]) -> Triads:
    """Triads from a CSV with columns ``target, option1, option2, choice`` (choice: the chosen option's id).

    Raises:
      ValueError: missing columns, or a choice that is neither option.
    """
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        needed = ("target", "option1", "option2", "choice")
        missing = [c for c in needed if c not in (reader.fieldnames or ())]
        if missing:
            raise ValueError(f"{path}: triad CSV lacks column(s) {missing}; has {reader.fieldnames}")
        rows = [tuple(row[c].strip() for c in needed) for row in reader]
    for line, (_, first, second, choice) in enumerate(rows, start=2):
        if choice not in (first, second):
            raise ValueError(f"{path}, line {line}: choice {choice!r} is neither option {first!r} nor {second!r}")
    return Triads(*(tuple(column) for column in zip(*rows))) if rows else Triads((), (), (), ())


def _indices(wanted: Sequence[str], available: Sequence[str], *, what: str, where: str) -> np.ndarray:
    position = {name: i for i, name in enumerate(available)}
    missing = sorted({i for i in wanted if i not in position})
    if missing:
        raise ValueError(f"{what} id(s) {missing[:5]} not found among {where} ({len(position)} ids, e.g. "
                         f"{list(available)[:3]})")
    return np.array([position[i] for i in wanted], dtype=int)


def align_rdm(ids: Sequence[str], rdm: np.ndarray, image_ids: Sequence[str]) -> np.ndarray:
    """The ``[N, N]`` sub-matrix of ``rdm`` (rows/columns named ``ids``) in the order of ``image_ids``.

    Raises:
      ValueError: an image id that the RDM lacks.
    """
    index = _indices(image_ids, ids, what="image", where="the dissimilarity matrix's ids")
    return np.asarray(rdm)[np.ix_(index, index)]


def embedding_rdm(features: Any, *, metric: str = "correlation") -> np.ndarray:
    r"""``[N, N]`` dissimilarities of embeddings ``[N, D]``: :math:`1 - r(f_i, f_j)` (Pearson) or
    :math:`\lVert f_i - f_j \rVert_2`.

    >>> embedding_rdm(np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])).round(12).tolist()
    [[0.0, 2.0], [2.0, 0.0]]
    """
    features = np.asarray(features, np.float64)
    if features.ndim != 2:
        raise ValueError(f"features must be [images, dimensions], got shape {features.shape}")
    if metric == "correlation":
        centred = features - features.mean(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            unit = centred / np.linalg.norm(centred, axis=1, keepdims=True)
        rdm = np.clip(1 - unit @ unit.T, 0, 2)
    elif metric == "euclidean":
        squared = (features**2).sum(axis=1)
        rdm = np.sqrt(np.maximum(squared[:, None] + squared[None, :] - 2 * features @ features.T, 0))
    else:
        raise ValueError(f"metric={metric!r} is unknown; choose one of {RDM_METRICS}")
    np.fill_diagonal(rdm, 0.0)
    return rdm


@functools.partial(jax.jit, static_argnames=("model", "layer", "after_relu"))
def _layer_output(model: VGG | ResNet, variables: Any, images: jax.Array, layer: str, after_relu: bool) -> jax.Array:
    _, state = model.apply(variables, images, capture_intermediates=lambda module, _: module.name == layer,
                           mutable=["intermediates"])
    out = state["intermediates"][layer]["__call__"][0]
    out = jnp.maximum(out, 0) if after_relu else out
    return out.reshape(out.shape[0], -1)


@functools.partial(jax.jit, static_argnames=("model",))
def _last_layer_input(model: VGG | ResNet, variables: Any, images: jax.Array) -> jax.Array:
    """The input of the model's last node (its dense classifier) as ``model.apply`` computes it."""
    last, seen = model.layers[-1].name, []

    def record(next_fun, args, kwargs, context):
        if context.module.name == last and context.method_name == "__call__":
            seen.append(args[0])
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
        model.apply(variables, images)
    return seen[0].reshape(seen[0].shape[0], -1)


def layer_features(model: VGG | ResNet, variables: Any, images: Any, *, layer: str = "fc7", after_relu: bool = True,
                   batch_size: int = 64) -> np.ndarray:
    """``[N, D]`` activations of a conv or dense ``layer`` (Flax ``capture_intermediates``; batch norm in inference
    mode), after its ReLU by default, flattened; or, for ``layer="penultimate"`` (:data:`PENULTIMATE`), the input of
    the last dense layer (``after_relu`` does not apply). Computed ``batch_size`` images at a time.

    Raises:
      ValueError: a layer that is neither one of the model's conv/dense layers nor ``"penultimate"``.
    """
    names = [spec.name for spec in model.layers if spec.kind in ("conv", "dense")]
    if layer not in names and layer != PENULTIMATE:
        raise ValueError(f"layer={layer!r} is not a conv or dense layer of this {type(model).__name__}; choose one "
                         f"of {names} or {PENULTIMATE!r}")
    images = jnp.asarray(images)

    def features(x: jax.Array) -> jax.Array:
        if layer == PENULTIMATE:
            return _last_layer_input(model, variables, x)
        return _layer_output(model, variables, x, layer, after_relu)

    return np.concatenate([np.asarray(features(images[s:s + batch_size]))
                           for s in range(0, images.shape[0], batch_size)])


def fc7_features(model: VGG | ResNet, variables: Any, images: Any, *, after_relu: bool = True, batch_size: int = 64
                 ) -> np.ndarray:
    """``[N, D]`` face embeddings: a VGG's ``fc7`` activations (after ReLU by default), a ResNet's penultimate
    features (the global-average-pooled features before ``fc``; non-negative already, ``after_relu`` does not
    apply)."""
    if isinstance(model, ResNet):
        return layer_features(model, variables, images, layer=PENULTIMATE, batch_size=batch_size)
    return layer_features(model, variables, images, layer="fc7", after_relu=after_relu, batch_size=batch_size)


def relevance_masked_features(feature_fn: Callable[[Any], Any], images: Any, relevance: Any, *, keep: float = 0.25,
                              **masking: Any) -> np.ndarray:
    """Features of each image with only its ``keep`` most relevant pixels left (the others masked least relevant
    first, :func:`~lrpjax.analysis.masking.mask_images` with ``order="lerf"``, fraction ``1 - keep``).

    ``masking`` holds the fill options (``fill``, ``mean``, ``patch_size``, ``relevance_mode``, ``seed``, ...).
    """
    if not 0 < keep <= 1:
        raise ValueError(f"keep={keep!r} must be the fraction of pixels kept, in (0, 1]")
    masked = mask_images(images, relevance, fraction=1.0 - keep, order="lerf", **masking)
    return np.asarray(feature_fn(masked))


def _upper(rdm: Any, name: str) -> np.ndarray:
    rdm = np.asarray(rdm, np.float64)
    if rdm.ndim != 2 or rdm.shape[0] != rdm.shape[1] or rdm.shape[0] < 3:
        raise ValueError(f"{name} must be a square [N, N] matrix with N >= 3, got shape {rdm.shape}")
    return rdm[np.triu_indices(rdm.shape[0], 1)]


def rsa(rdm_a: Any, rdm_b: Any) -> float:
    """Spearman correlation of the upper triangles (diagonal excluded) of two ``[N, N]`` RDMs.

    >>> rdm = embedding_rdm(np.random.default_rng(0).normal(size=(5, 3)))
    >>> rsa(rdm, rdm)
    1.0
    """
    a, b = _upper(rdm_a, "rdm_a"), _upper(rdm_b, "rdm_b")
    if a.shape != b.shape:
        raise ValueError(f"RDMs of {np.shape(rdm_a)} and {np.shape(rdm_b)} differ: align them to the same images")
    return float(stats.spearman(a, b))


def rsa_test(rdm_a: Any, rdm_b: Any, *, n_perm: int = 1000, seed: int = 0) -> RSAResult:
    r"""RSA with a permutation test: the images of ``rdm_b`` are relabelled (rows and columns permuted together)
    ``n_perm`` times; :math:`p = (1 + \#\{r^* \ge r\}) / (1 + n_\mathrm{perm})`."""
    r = rsa(rdm_a, rdm_b)
    if n_perm < 1:
        raise ValueError(f"n_perm={n_perm!r} must be a positive number of permutations")
    n = np.shape(rdm_a)[0]
    rows, cols = np.triu_indices(n, 1)
    ranks_a = stats.rankdata(_upper(rdm_a, "rdm_a"))
    ranks_b = np.zeros((n, n))
    ranks_b[rows, cols] = stats.rankdata(_upper(rdm_b, "rdm_b"))
    ranks_b = ranks_b + ranks_b.T  # permuting labels permutes the ranks: Spearman is Pearson of them
    rng = np.random.default_rng(seed)
    centred_a = ranks_a - ranks_a.mean()
    chunk = max(1, 4_000_000 // rows.size)
    null = []
    for start in range(0, n_perm, chunk):
        perms = np.argsort(rng.random((min(chunk, n_perm - start), n)), axis=1)
        null.append(stats.pearson(ranks_b[perms[:, rows], perms[:, cols]], centred_a[None]))
    null = np.concatenate(null)
    return RSAResult(r, float((1 + np.sum(null >= r - 1e-12)) / (1 + n_perm)))


def noise_ceiling(rdms: Any, *, n_splits: int = 100, seed: int = 0) -> NoiseCeiling:
    r"""Split-half reliability of several raters' RDMs ``[R, N, N]`` (R >= 2): the raters are split at random into
    halves ``n_splits`` times; each half's mean RDM (missing entries NaN, ignored) is correlated with the other's
    (Spearman over the pairs both halves have), :math:`r` is the mean, and the corrected value
    :math:`2r / (1 + r)` estimates the reliability of all R raters' mean."""
    rdms = np.asarray(rdms, np.float64)
    if rdms.ndim != 3 or rdms.shape[0] < 2 or rdms.shape[1] != rdms.shape[2]:
        raise ValueError(f"rdms must be [raters >= 2, N, N], got shape {rdms.shape}")
    rows, cols = np.triu_indices(rdms.shape[1], 1)
    upper = rdms[:, rows, cols]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_splits):
        order = rng.permutation(rdms.shape[0])
        half = rdms.shape[0] // 2
        with warnings.catch_warnings():  # a pair no rater of a half judged: NaN, left out below
            warnings.simplefilter("ignore", RuntimeWarning)
            a, b = np.nanmean(upper[order[:half]], axis=0), np.nanmean(upper[order[half:]], axis=0)
        both = np.isfinite(a) & np.isfinite(b)
        values.append(stats.spearman(a[both], b[both]))
    r = float(np.nanmean(values))
    return NoiseCeiling(r, 2 * r / (1 + r))


def triad_agreement(rdm: Any, image_ids: Sequence[str], triads: Triads, *, n_boot: int = 1000,
                    confidence: float = 0.95, seed: int = 0) -> TriadAgreement:
    r"""Share of triads where the model's choice, :math:`\arg\min_{o} d(\mathrm{target}, o)` under ``rdm`` (rows in
    the order of ``image_ids``), is the human's; ties count 1/2. Percentile bootstrap interval over triads.

    Raises:
      ValueError: a triad id not among ``image_ids``, no triads, or an RDM that does not match ``image_ids``.
    """
    rdm = np.asarray(rdm, np.float64)
    if rdm.shape != (len(image_ids), len(image_ids)):
        raise ValueError(f"rdm of shape {rdm.shape} does not match {len(image_ids)} image ids")
    if not triads.target:
        raise ValueError("no triads to score")
    target, first, second, choice = (_indices(column, image_ids, what=f"triad {name}",
                                                              where="image_ids")
                                     for name, column in zip(Triads._fields, triads))
    model_first = np.sign(rdm[target, second] - rdm[target, first])  # +1: option1 closer, 0: tie
    human_first = np.where(choice == first, 1.0, -1.0)
    scores = np.where(model_first == 0, 0.5, (model_first == human_first).astype(np.float64))
    weights = stats.bootstrap_weights(scores.size, n_boot=n_boot, seed=seed)
    low, high = stats.percentile_interval(weights @ scores, confidence=confidence)
    return TriadAgreement(float(scores.mean()), float(low), float(high), int(scores.size))


def triads_from_rdm(rdm: Any, image_ids: Sequence[str], *, n_triads: int, seed: int = 0) -> Triads:
    """``n_triads`` random triads of distinct images answered by ``rdm`` (the option closer to the target is chosen;
    triads with ties are skipped): simulated observers, and a check that a model agrees with itself."""
    rdm = np.asarray(rdm, np.float64)
    n = len(image_ids)
    if n < 3 or rdm.shape != (n, n):
        raise ValueError(f"need an [N, N] rdm for N = len(image_ids) >= 3 images, got {rdm.shape} and {n} ids")
    rng = np.random.default_rng(seed)
    drawn = np.argsort(rng.random((4 * n_triads + 16, n)), axis=1)[:, :3]
    gap = rdm[drawn[:, 0], drawn[:, 2]] - rdm[drawn[:, 0], drawn[:, 1]]
    drawn, gap = drawn[gap != 0][:n_triads], gap[gap != 0][:n_triads]
    if len(drawn) < n_triads:
        raise ValueError(f"could not draw {n_triads} triads without ties from this rdm")
    ids = np.asarray(image_ids, dtype=object)
    chosen = np.where(gap > 0, drawn[:, 1], drawn[:, 2])
    return Triads(*(tuple(ids[column].tolist()) for column in (drawn[:, 0], drawn[:, 1], drawn[:, 2], chosen)))
