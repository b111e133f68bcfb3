"""Human similarity data for the study: read from the user's CSVs, or synthetic (clearly labelled) to show the
statistics when no human data exists.

``mode="csv"``: ``rdm_csvs`` (paths or glob patterns, one dissimilarity CSV per rater, see
:func:`lrpjax.analysis.read_dissimilarity_csv`) and optionally ``triads_csv``
(:func:`lrpjax.analysis.read_triads_csv`); their ids are the image set's face ids (file stems).

``mode="synthetic"``: each of ``raters`` simulated raters' RDM is the RDM of a *source* model's ``fc7``
embedding plus symmetric Gaussian noise of ``noise`` times the spread of its entries, and every rater answers
``triads_per_rater`` random triads from its own RDM. The source is a grid model (``"vggface/gender/s2"``) or a
base (``"base:vggface"``: ``GRID/bases/vggface/model``). Every number computed from it is a demonstration
of the statistics, not a finding about people.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from lrpjax import analysis


class HumanData(NamedTuple):
    """Raters' RDMs ``[R, N, N]`` over the image ids ``ids``, triads (or None) and a description."""

    ids: tuple[str, ...]
    rdms: np.ndarray
    triads: analysis.Triads | None
    description: str
    synthetic: bool


def synthetic_raters(source_rdm: np.ndarray, *, raters: int, noise: float, seed: int) -> np.ndarray:
    r"""``[raters, N, N]``: :math:`D_r = D + \sigma\,\mathrm{sd}(D_{i<j})\,(E_r + E_r^\top)/\sqrt2`, diagonal 0,
    :math:`E_r` standard normal from ``seed``."""
    if raters < 1 or noise < 0:
        raise ValueError(f"synthetic raters need raters >= 1 and noise >= 0, got raters={raters}, noise={noise}")
    source_rdm = np.asarray(source_rdm, np.float64)
    n = source_rdm.shape[0]
    spread = np.nanstd(source_rdm[np.triu_indices(n, 1)])
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(raters):
        e = rng.normal(size=(n, n))
        rdm = source_rdm + noise * spread * (e + e.T) / np.sqrt(2)
        np.fill_diagonal(rdm, 0.0)
        out.append(rdm)
    return np.stack(out)


def synthetic_triads(rdms: np.ndarray, ids: Sequence[str], *, per_rater: int, seed: int) -> analysis.Triads:
    """``per_rater`` triads answered by each rater's RDM (:func:`lrpjax.analysis.triads_from_rdm`), concatenated."""
    parts = [analysis.triads_from_rdm(rdm, ids, n_triads=per_rater, seed=seed + r) for r, rdm in enumerate(rdms)]
    return analysis.Triads(*(tuple(x for part in parts for x in getattr(part, field))
                             for field in analysis.Triads._fields))


def read_human_csvs(options: Mapping[str, Any], ids: Sequence[str]) -> HumanData:
    """Raters' RDMs and triads from the config's CSVs, restricted to the images both they and the set hold.

    Raises:
      ValueError: no CSV matches, or fewer than 3 images in common.
    """
    files = sorted({f for pattern in options["rdm_csvs"] for f in (glob.glob(pattern) or [pattern])})
    missing = [f for f in files if not os.path.isfile(f)]
    if not files or missing:
        raise ValueError(f"human.rdm_csvs: no file at {missing or options['rdm_csvs']}")
    read = [analysis.read_dissimilarity_csv(f) for f in files]
    shared = [i for i in ids if all(i in rater_ids for rater_ids, _ in read)]
    if len(shared) < 3:
        raise ValueError(f"the human RDMs share only {len(shared)} image ids with the image set (e.g. "
                         f"{list(ids)[:3]} vs {read[0][0][:3]}); they need >= 3")
    rdms = np.stack([analysis.align_rdm(rater_ids, rdm, shared) for rater_ids, rdm in read])
    triads = None
    if options.get("triads_csv"):
        every = analysis.read_triads_csv(options["triads_csv"])
        keep = [k for k in range(len(every.target)) if all(getattr(every, f)[k] in shared
                                                             for f in analysis.Triads._fields)]
        triads = analysis.Triads(*(tuple(getattr(every, f)[k] for k in keep) for f in analysis.Triads._fields))
    description = f"{len(files)} rater RDM(s) from {options['rdm_csvs']}" + (
        f", {len(triads.target)} triads from {options['triads_csv']}" if triads is not None else "")
    return HumanData(tuple(shared), rdms, triads, description, False)


def make_synthetic(options: Mapping[str, Any], ids: Sequence[str], source_rdm: np.ndarray) -> HumanData:
    """Synthetic raters and triads from ``source_rdm`` (see the module docstring)."""
    rdms = synthetic_raters(source_rdm, raters=options["raters"], noise=options["noise"], seed=options["seed"])
    triads = synthetic_triads(rdms, ids, per_rater=options["triads_per_rater"], seed=options["seed"])
    description = (f"SYNTHETIC: {options['raters']} simulated raters = the fc7 RDM of {options['source']} + noise "
                   f"({options['noise']} x its spread), {len(triads.target)} triads answered from their RDMs")
    return HumanData(tuple(ids), rdms, triads, description, True)


def human_summary(model_rdms: Mapping[str, Mapping[str, np.ndarray]], data: HumanData, *,
                  statistics: Mapping[str, Any]) -> dict[str, Any]:
    """RSA of every model's RDMs (``plain``, ``masked``) with the raters' mean RDM (permutation p), the noise
    ceiling (two or more raters) and each model's triad agreement with a bootstrap interval."""
    human = np.nanmean(data.rdms, axis=0)
    out: dict[str, Any] = {"description": data.description, "synthetic": data.synthetic, "images": len(data.ids),
                           "raters": int(data.rdms.shape[0]), "rsa": {}, "triads": {}}
    if data.rdms.shape[0] >= 2:
        out["noise_ceiling"] = analysis.noise_ceiling(data.rdms, seed=statistics["seed"])._asdict()
    for name, rdms in model_rdms.items():
        out["rsa"][name] = {kind: analysis.rsa_test(rdm, human, n_perm=statistics["n_perm"],
                                                    seed=statistics["seed"])._asdict() for kind, rdm in rdms.items()}
        if data.triads is not None and data.triads.target:
            out["triads"][name] = analysis.triad_agreement(
                rdms["plain"], data.ids, data.triads, n_boot=statistics["n_boot"],
                confidence=statistics["confidence"], seed=statistics["seed"])._asdict()
    return out
