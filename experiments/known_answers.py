r"""The planted profile's known answers, measured from a finished study's cached arrays and, for what the
models rely on, by swapping the marks' colours.

The planted models (``configs/grid_planted.py``, :mod:`experiments.planted`) have evidence we put there: task
``eye`` (A) reads a mark on the left eye, ``mouth`` (B) one on the mouth, ``either`` (C) either mark. What a
faithful pipeline must then measure, stated before measuring:

1. **Regions.** Each task's positive relevance on its cue's region (A: eyes, B: mouth, C: eyes + mouth) is far
   above the region's share of the image: the mean share at least ``ENRICHMENT`` (5) times the area share (the
   marks cover about 1 % of the image) and its interval above the area share (no enrichment); and (kind
   ``map``) above the share on the other cue's region.
2. **Own maps beat random.** Each model's own margin AUC_random − AUC_MoRF (probability) has its interval above
   the reliability floor (:data:`lrpjax.analysis.RELIABILITY_FLOOR`, 0.01).
3. **Same task, other seed: s(A_i → A_j) near 1.** Every seed finds the same mark, so masking by another
   seed's map removes the cue as early as the model's own (kind ``map``: only if both maps rank that mark
   before anything else; where they also light up the other mark, in an order that differs between seeds, the
   cue comes later in one order than in the other).
4. **Other cue: s(A → B) near 0** (and B → A). A's maps rank the eye first; B's evidence is on the mouth, which
   A's order reaches no earlier than random order does (A's label is independent of B's cue).
5. **Either cue: s(C → A) − s(A → C) > 0.** C's maps cover both marks, so they remove A's cue as early as A's
   own (s(C → A) near 1). A's maps remove only the eye mark; C still sees the mouth's and keeps its class until
   the mouth is masked, which A's order reaches at a random time. If C keeps its class until both marks are
   masked (an OR read-out), random order loses the class when the later of two uniform times comes
   (mean 2/3), A's order when the mouth's comes (mean 1/2), C's own order at once, so s(A → C) ≈ (2/3 − 1/2) /
   (2/3) = 1/4: the asymmetry s(C → A) − s(A → C) ≈ 3/4, the same for B. A soft read-out (each mark adding
   evidence) moves s(A → C) up, but not to s(C → A).

**The measurement's own known answers** (kind ``cue``, :func:`cue_answers`). Answers 4-5 ask two things at
once: that the measurement returns the right transfer for a given pair of maps, and that a model's maps rank its
cue first and nothing else early. The planted cue maps (:func:`experiments.planted.cue_map`, ``cue_maps.npz``
beside the images: 1 on the mark squares, 0 elsewhere, so that their order is the random baseline's own with the
cues' patches moved to the front, a paired comparison image by image) answer the first alone: a model masked by
its own cue's map loses its class (margin above the floor), s(eye cue → mouth models) and s(mouth cue → eye
models) are near 0 (each normalised by the target's margin under its own cue's map), and one mark's map leaves an
either-cue model its class (below 1 − DELTA of both marks' map).

Answers 1-2 are ``known``: they follow from the data and the models' decisions. That premise is measured, not
assumed (:func:`reliance_answers`, answer 0): on the held-out faces drawn with both marks in every colour pair,
swapping the colour of a model's own mark must flip the decisions of the ``eye`` and ``mouth`` models and swapping
the other mark's colour must keep them (each in at least ``DECISIONS``, 95 %, of the face x colour cases: a model
right on held-out faces; the tests' 32x32 models miss one case in 48). Answers 3-5 and s(C → A) near 1 (kind
``map``) rest on one more premise: that a model's map ranks the pixels it does not use no earlier than random order
does, and, for C, that its maps cover both marks although either one suffices for its decision. Answer 3 was
``known`` until it moved with the training's arithmetic while the models' reliance stayed put: with the same data
and config, s(mouth_i → mouth_j) was 0.999 on one training of the 64x64 grid and 0.78 on the next, and the small
version's s(eye_i → eye_j) 0.873 [0.826, 0.914] with two compute threads per process and 0.812 [0.685, 0.898]
with one (the tests' pinned workers), every ``premise`` answer met in each; the maps' order of the two marks is
what changed. Its half that
concerns the models is measured too (kind ``premise``): the log-odds must barely move when the other mark's colour
is swapped, relative to how much they move when the model's own mark's colour is (near 0). What is left, if
``premise`` holds and ``map`` fails, is a property of the maps: they rank pixels the model does not use among the
first.

**What the planted profile measured** (64x64, 9 models, ROAD fill, 40 held-out images per set; ``python
experiments/run_study.py --profile planted``, this grid trained once more): every ``known`` answer is met (22 of
22 in the run with the cue maps below; relevance on the eyes 23x their area). Of the same-task answers (``map``),
s(eye_i → eye_j) = 0.999 [0.997, 1.001] (independent) and 0.997 [0.993, 1.000] (agreeing) and s(either_i →
either_j) = 0.808 [0.776, 0.837] are met; s(mouth_i → mouth_j) is not: 0.783 [0.730, 0.825] (independent) and
0.769 [0.705, 0.814] (agreeing), its lower end below 0.75 (the previous training of the same grid gave 0.999).
The ``premise`` holds: no decision of the 6 eye and mouth models changes when the other mark's colour is swapped
(0 of 126 each), every decision flips with the own mark's (126 of 126), and the other mark moves the log-odds
0.104 [0.094, 0.115] (eye) and 0.108 [0.101, 0.116] (mouth) times as much as the own mark does.
Most ``map`` answers are not met: s(eye → mouth) = 0.946 [0.919, 0.968] and s(mouth → eye) = 0.884 [0.830, 0.927]
instead of 0; the asymmetry either → eye is -0.032 [-0.071, 0.012] and either → mouth -0.003
[-0.027, 0.024] (either → eye 0.890, eye → either 0.923) instead of about 0.75. So the models leave the other mark
nearly alone and their LRP maps do not: on the seed-0 models (20 held-out faces, both marks) epsilon_gamma_box puts
0.31 of an eye model's positive relevance on the mouth mark's square (0.39 on its own mark's) and 0.33 of a mouth
model's on the eye mark's (0.35 on its own), and ranks the other mark's first 4x4 patch 2nd of 256 (median);
gradient x input puts 0.03-0.04 there (0.11-0.25 on the own mark) and ranks it 5th, Integrated Gradients 0.04 and
4th-5th. A 32x32 eye model whose log-odds do not move with the mouth mark at all (-2.25, -2.36, -2.31 with a green,
magenta or no mouth mark) still gets 0.18 of its epsilon_gamma_box relevance there. No score computed from the
masking order can repair this: an order that masks the other mark second removes the target's cue in the first
percent of the patches. s(A → B) thus measures whether A's maps point at B's evidence at all, not whether A relies
on it: a high s between models is no evidence of shared reliance unless the maps are specific, and these rules'
maps are not (gamma and z+ layers favour strongly activated inputs whatever the layers above use, Sixt et al.
2020).

**With the cues' own maps** (kind ``cue``; the same 9 models retrained, both image sets, the model-free controls
only, no occlusion: :func:`run_planted` on ``configs/study_planted.py`` with ``controls = {"methods": ["centre
prior", "image gradient", "mean map"], "seed": 0}``, 343 s for grid and study on 2 idle cores once the planted
data were written): every ``cue`` answer is met, 21 of 21. Each model masked by its own cue's map loses its class
(margins 0.19-0.47, within 0.002 of its own LRP map's: LRP ranks the own mark first); s(eye cue → mouth)
= -0.042 [-0.101, -0.005] (independent) and -0.056 [-0.098, -0.024] (agreeing), s(mouth cue → eye) = 0.047
[0.002, 0.089] and 0.022 [-0.047, 0.074]; one mark's map leaves the either-cue models most of their class:
s(eye cue → either) = 0.167 [0.115, 0.224], s(mouth cue → either) = 0.125 [0.068, 0.189] of both marks' map (an
OR read-out predicts 1/4). With the models' LRP maps in the same run, s(eye → mouth) = 0.946 / 0.937 and
s(mouth → eye) = 0.884 / 0.932. So the masking measurement returns the known transfer when the maps carry only
the evidence, and the LRP transfer near 1 is the maps', not the measurement's. Before the cue maps were paired
with the random order (a random order of their own for the other pixels), the same answers came out near 0 but
with intervals of ± 0.2 (two of 21 missed the ± 0.25 test): the paired map removes the spread of a second
random order.

**With occlusion maps** (kind ``occlusion``; :func:`lrpjax.occlusion`, ``mode="drop"``: the drop of the
predicted class's log-odds when an 8x8 window is set to 0, the training mean, windows 4 apart; each model's maps
mask every model as the sources ``"occlusion of A"``, each score normalised by the target's own occlusion margin).
Measured on the same 9 models, ``agreeing`` set only, occlusion the only control (:func:`run_planted` on
``configs/study_planted.py`` with ``image_sets`` cut to ``agreeing`` and ``controls = {"methods": ["occlusion"],
"occlusion_window": 8, "occlusion_stride": 4, "cross": ["occlusion"], "seed": 0}``; 1396 s for the study on the
loaded 2 cores, the grid trained before it in about 8 min). This
training reproduces the LRP rows above to the third decimal (s(mouth_i → mouth_j) 0.769 [0.705, 0.814]). Occlusion
leaves the other mark alone where LRP does not: the own-cue region minus the other cue's is 0.028 [0.017, 0.040]
(eye models; LRP -0.021 [-0.030, -0.012]) and 0.128 [0.117, 0.139] (mouth; LRP 0.102), and the first patch of the
other cue's region comes 13th-94th of 256 (median over images; LRP 2nd-3rd, 12th for one mouth model). But it does
not give the known answers either: 15 of 25 met. Met: own margins 8 of 9 (either/s0 -0.006 [-0.019, 0.000]),
s(eye_i → eye_j) 1.000 [1.000, 1.000], the either → mouth asymmetry 0.259 [0.111, 0.408] (LRP -0.003), the
regions except either's. Not met: s(mouth_i → mouth_j) 0.233 [0.077, 0.359], s(either_i → either_j) 0.618
[0.409, 0.849], s(eye → mouth) 0.412 [0.342, 0.468], s(mouth → eye) -0.156 [-0.383, 0.022] (its point near 0, its
interval wider than ± 0.25), s(either → eye) 0.670, the either → eye asymmetry -0.241 [-0.474, -0.030],
s(either → mouth) 0.315. The reason is in the maps again, on the other side: several models' occlusion maps do
not rank their own cue first (first own-cue patch 14th for eye/s0 and eye/s2, 18th-26th for mouth/s0 and s2,
13th-64th for either/s0 and s2): an 8x8 mean-grey square elsewhere on the face moves the log-odds as much as one
on the mark (an image the models never saw), so another seed's occlusion order reaches the mark late. Own margins
survive this (the cue is still masked within the first fraction step), transfers do not. So neither LRP maps
(not specific: they light up the unused mark) nor mean-fill occlusion maps (specific to the mark but not
selective for it) make the ``map`` answers come out; the measurement itself (ROAD masking, margins, ratio of
means, bootstrap) gives the answers its maps imply: s near 1 where the two maps rank the target's cue first
(s(eye_i → eye_j) with both methods), near 0 only where the source's map ranks the target's cue late.

**Which maps are specific** (:func:`map_specificity`, the report's "Map specificity" section; the planted
profile's ``independent`` set, 40 faces, 3 models per task; positions of 256 patches, median and quartiles over
images). The task's own cue map, which checks the bookkeeping, reaches the other mark at the 41st (18th-71st;
eye models) and 38th (24th-52nd; mouth) patch, where random order reaches it at the 38th and 34th. The two LRP
composites put 0.14-0.25 of the positive relevance on the unused mark (a mark is 0.007 of the image; 0.16-0.34 on
the own) and reach it 2nd-3rd (quartiles 1st-16th); gradient x input and Integrated Gradients put 0.03-0.06 there
and reach it 4th-17th; SmoothGrad 0.02, 16th-19th; occlusion 0.01-0.03, 23rd (eye models) and 100th (mouth
models); the randomised models' LRP maps 0.01-0.02, 20th-52nd. Only the mouth models' occlusion maps leave the
unused mark as late as random order does: no attribution method of the project is specific for both tasks on
these models, consistent with the ``map`` answers failing with each of them while the cue maps meet every
measurement answer (kind ``cue``).

**Training reproducibility.** Training is bit-reproducible on this CPU: the small grid (``grid_planted.py:test``,
4 models) trained three times in plain processes gave bit-equal parameters, and the full grid trained again gave
the LRP rows above to the third decimal (the same numbers as the run before it). Trained under the tests'
settings (``tests/conftest.py``: ``jax_enable_x64`` and ``JAX_THREEFRY_PARTITIONABLE=false``, which change the
optimizer's arithmetic and the dropout draws), the same config gives other weights (max |Δ| 1.5-2.0 on
parameters up to 3-6) and other answers (small version, s(eye_i → eye_j): 0.873 [0.826, 0.914] under pytest,
0.848 [0.745, 0.921] in a plain process). So the 0.999 of an earlier training against 0.78 now for
s(mouth_i → mouth_j) comes from different trainings (the training code changed between them), not from
nondeterminism: different weights, whose LRP maps split relevance between the marks differently.

**Which output is explained.** The study explains the predicted logit :math:`z_c`. For these two-class models
the class probability that masking tracks is decided by the log-odds :math:`z_c - z_{k \ne c}`, which
``relevance.target = "contrast"`` explains (:func:`lrpjax.core.targets.contrast_relevance`; the rules are linear in
the output relevance for fixed activations, so the contrast map is LRP(:math:`z_c`) − LRP(:math:`z_k`)). It
changes nothing here, and need not: with two classes and softmax cross-entropy,
:math:`\partial L / \partial z_0 = -\partial L / \partial z_1`, so training moves only the log-odds and leaves
:math:`z_0 + z_1` near its random initialisation; then :math:`z_k \approx -z_c` up to that residue and the
contrast map is about twice the predicted logit's. Measured on the 64x64 seed-0 models (20 held-out faces, every
colour pair): the positive share on each mark's square agrees to 0.001 between the two targets for
epsilon_gamma_box, epsilon_plus_flat, epsilon and epsilon_alpha2_beta1, the signed totals 1.97-2.17 times as
large. Gamma, z+ and alpha-beta layers make a map depend little on the relevance that enters them at all (Sixt
et al. 2020, *When Explanations Lie*; the study's MPRT shows the same). The planted, smoke and full profiles
therefore keep the predicted logit: the contrast would change nothing for the two-class gender models, and for
the many-class identity models it is a different explanation that no known answer has tested.

**Controls** (kind ``control``, :mod:`lrpjax.analysis.controls` and the study's model controls) are listed
with the naive expectation, s near 0 for a map that knows nothing of the model, and are not asserted: on these
centred faces the cues sit on the central features, so the centre prior and the mean map rank them among the
first patches, the image gradient and a randomised model's LRP map respond to the saturated marks, and
gradient × input, SmoothGrad and Integrated Gradients explain the same model; each can score high with no
knowledge of which mark decides. They show how high a map without model-specific knowledge scores here.

"Near x" is an equivalence test on the 95 % bootstrap interval (images resampled): the interval lies within
``[x − DELTA, x + DELTA]``, DELTA = 0.25 (a quarter of the way from random order to the model's own maps).
Scores of several pairs of models pool them as a ratio of means (sum of margins over sum of the targets' own
margins, as :func:`lrpjax.analysis.group_scores` pools a relation), one image resampling shared by all.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from PIL import Image

from experiments import planted
from experiments.study import models as grid_models
from experiments.study.cache import load_arrays
from experiments.study.compute import CONTROLS
from experiments.study.images import ImageSet, given_maps
from lrpjax import analysis
from lrpjax.analysis import stats
from lrpjax.io import imagefiles, preprocess

DELTA = 0.25
DECISIONS = 0.95  # share of swaps that must flip (own mark) or keep (other mark) a decision: held-out accuracy
ENRICHMENT = 5.0
CUE_REGIONS = {"eye": ("eyes",), "mouth": ("mouth",), "either": ("eyes", "mouth")}


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class Answer(NamedTuple):
    """One answer: what is measured, the expectation, the measured value, whether it is met, and its ``kind``:
    ``known`` (follows from the planted data and the models' decisions alone), ``cue`` (the measurement with
    maps that know where the cues are, :func:`cue_answers`), ``premise`` (what the models rely
    on), ``map`` (holds only if each model's maps carry its own evidence and nothing else; see the module
    docstring), ``control``, or the name of a ``controls.cross`` method (``occlusion``: answers 1-5 again with
    each model's occlusion maps)."""

    quantity: str
    expected: str
    measured: str
    met: bool
    kind: str = "known"


def _read_json(path: str) -> dict[str, Any]:
    with open(path) as handle:
        return json.load(handle)["summary"]


def load_cross(workdir: str, image_set: str) -> analysis.CrossAUCs:
    """The :class:`lrpjax.analysis.CrossAUCs` of ``image_set`` from the study's ``masking_SET`` stage."""
    stages = os.path.join(workdir, "stages")
    summary = _read_json(os.path.join(stages, f"masking_{image_set}.json"))
    parts = {f[:-4] for f in os.listdir(os.path.join(stages, f"masking_{image_set}")) if f.endswith(".npz")}
    sources = tuple(summary["sources"])
    targets = tuple(s for s in sources if s.replace("/", "_") in parts)
    arrays = [load_arrays(os.path.join(stages, f"masking_{image_set}", f"{t.replace('/', '_')}.npz")) for t in targets]
    cross = np.stack([a["cross"] for a in arrays], axis=1)
    return analysis.CrossAUCs(sources, targets, cross, np.stack([a["random"] for a in arrays]),
                              summary.get("metric", "probability"))


def task_of(name: str) -> str:
    """The task of a grid model name ``BASE/TASK/sN``."""
    return name.split("/")[1]


def pooled_score(scores: analysis.GeneralizationScores, pairs: Sequence[tuple[str, str]], confidence: float,
                 own: Sequence[str] | None = None) -> tuple[list[float], np.ndarray]:
    r"""The score of ``pairs`` (source, target) as a ratio of means, as :func:`lrpjax.analysis.group_scores` pools a
    relation, :math:`s_P = \sum_{(A,B)\in P} m_{A\to B} / \sum_{(A,B)\in P} m_{o(B)\to B}`: ``[s, low, high]``
    (the bootstrap interval over images, containing ``s``) and its replicates ``[n_boot]``. The denominator's
    source :math:`o(B)` is the target itself (its own maps) unless ``own`` names one per pair (e.g. the target's
    occlusion maps, ``"occlusion of B"``)."""
    rows = np.array([scores.sources.index(a) for a, _ in pairs])
    cols = np.array([scores.targets.index(b) for _, b in pairs])
    base = cols if own is None else np.array([scores.sources.index(o) for o in own])
    with np.errstate(invalid="ignore", divide="ignore"):
        value = scores.margin[rows, cols].sum() / scores.margin[base, cols].sum()
        replicates = (scores.margin_replicates[:, rows, cols].sum(axis=1)
                      / scores.margin_replicates[:, base, cols].sum(axis=1))
    low, high = stats.bootstrap_interval(value, replicates, confidence=confidence)
    return [float(value), float(low), float(high)], replicates


def _text(values: Sequence[float]) -> str:
    return f"{values[0]:.3f} [{values[1]:.3f}, {values[2]:.3f}]"


def _near(values: Sequence[float], target: float) -> bool:
    return bool(target - DELTA <= values[1] and values[2] <= target + DELTA)


def _pairs(models: Sequence[str], source_task: str, target_task: str) -> list[tuple[str, str]]:
    return [(a, b) for a in models for b in models
            if a != b and task_of(a) == source_task and task_of(b) == target_task]


def generalization_answers(aucs: analysis.CrossAUCs, statistics: Mapping[str, Any], *, same_task: Sequence[str],
                           other_cue: Sequence[tuple[str, str]], either: Sequence[str], method: str | None = None
                           ) -> list[Answer]:
    """Answers 2-5 on one image set: own margins of every target (above
    :data:`lrpjax.analysis.RELIABILITY_FLOOR`), s(A_i → A_j) for each task in ``same_task`` with two models or
    more, s between the tasks of each ``other_cue`` pair, and the asymmetry of ``either`` against the others.

    ``method=None``: the models' own (LRP) maps, and the controls; ``method="occlusion"``: every answer again with
    each model's maps of that method (the sources ``"occlusion of A"`` of ``controls.cross``), each score
    normalised by the target's own margin under the same method's maps; kind ``occlusion``."""
    confidence = statistics["confidence"]
    scores = analysis.generalization_scores(aucs, n_boot=statistics["n_boot"], confidence=confidence,
                                            seed=statistics["seed"])
    floor = analysis.RELIABILITY_FLOOR
    models = list(aucs.targets)
    source = (lambda m: m) if method is None else (lambda m: f"{method} of {m}")

    def score(pairs: Sequence[tuple[str, str]]) -> tuple[list[float], np.ndarray]:
        return pooled_score(scores, [(source(a), b) for a, b in pairs], confidence, [source(b) for _, b in pairs])

    def kind(plain: str) -> str:
        return plain if method is None else method

    out = []
    for k, target in enumerate(models):
        s = scores.sources.index(source(target))
        values = [scores.margin[s, k], scores.margin_low[s, k], scores.margin_high[s, k]]
        out.append(Answer(f"own margin AUC_random − AUC_MoRF, {target}", f"> {floor} (reliability floor)",
                          _text(values), bool(values[1] > floor), kind("known")))
    for task in same_task:
        pairs = _pairs(models, task, task)
        if pairs:
            values, _ = score(pairs)
            # another seed's order reaches the target's cue as early as the target's own only if both maps rank
            # that cue before everything else (both marks, for an either-cue model): a property of the maps
            out.append(Answer(f"s({task}_i → {task}_j), other seed ({len(pairs)} pairs)", f"1 ± {DELTA}",
                              _text(values), _near(values, 1.0), kind("map")))
    for first, second in other_cue:
        for a_task, b_task in ((first, second), (second, first)):
            pairs = _pairs(models, a_task, b_task)
            values, _ = score(pairs)
            out.append(Answer(f"s({a_task} → {b_task}) ({len(pairs)} pairs)", f"0 ± {DELTA}", _text(values),
                              _near(values, 0.0), kind("map")))
    for control in [c for c in CONTROLS if c in aucs.sources and method is None]:
        values, _ = pooled_score(scores, [(control, t) for t in models], confidence)
        out.append(Answer(f"s({control} → every model)", f"0 ± {DELTA}", _text(values), _near(values, 0.0),
                          "control"))
    for task in either:
        for other in sorted({task_of(m) for m in models} - {task}):
            forward = _pairs(models, task, other)
            there, there_boot = score(forward)
            back, back_boot = score([(b, a) for a, b in forward])
            # either cue suffices, so the model may rely on one of them: its maps need not cover the other's cue
            out.append(Answer(f"s({task} → {other})", f"1 ± {DELTA}", _text(there), _near(there, 1.0), kind("map")))
            out.append(Answer(f"s({other} → {task})", f"< s({task} → {other})", _text(back), back[0] < there[0],
                              kind("map")))
            low, high = stats.bootstrap_interval(there[0] - back[0], there_boot - back_boot, confidence=confidence)
            values = [there[0] - back[0], float(low), float(high)]
            out.append(Answer(f"asymmetry s({task} → {other}) − s({other} → {task}) ({len(forward)} pairs)", "> 0",
                              _text(values), bool(values[1] > 0), kind("map")))
    return out


def cue_answers(aucs: analysis.CrossAUCs, statistics: Mapping[str, Any]) -> list[Answer]:
    """The measurement's own known answers (kind ``cue``), with the planted cues' maps as the sources
    (:data:`experiments.planted.CUE_MAPS`: the random baseline's order with the mark squares' patches moved to the
    front), so that no attribution method is involved:

    - the margin of each model masked by its own task's cue map is above the reliability floor;
    - s(eye cue → mouth models) and s(mouth cue → eye models) near 0, each normalised by the target's margin
      under its own task's cue map (A's label is independent of B's cue, so masking B's cue at a random time
      is random order);
    - for the ``either`` models, s(eye cue → either) and s(mouth cue → either) normalised by ``both cues``:
      below 1 − DELTA, since either mark decides, masking one leaves the other to keep the class (an OR
      read-out: 1/4, module docstring, answer 5).
    """
    confidence = statistics["confidence"]
    scores = analysis.generalization_scores(aucs, n_boot=statistics["n_boot"], confidence=confidence,
                                            seed=statistics["seed"])
    cue_of = {"eye": "eye cue", "mouth": "mouth cue", "either": "both cues"}
    models = [m for m in aucs.targets if task_of(m) in cue_of]
    out = []
    for target in models:
        s, k = scores.sources.index(cue_of[task_of(target)]), scores.targets.index(target)
        values = [scores.margin[s, k], scores.margin_low[s, k], scores.margin_high[s, k]]
        out.append(Answer(f"margin AUC_random − AUC_MoRF({cue_of[task_of(target)]}), {target}",
                          f"> {analysis.RELIABILITY_FLOOR} (reliability floor)", _text(values),
                          bool(values[1] > analysis.RELIABILITY_FLOOR), "cue"))
    tasks = {task_of(m) for m in models}
    for source_task, target_task in (("eye", "mouth"), ("mouth", "eye"), ("eye", "either"), ("mouth", "either")):
        if {source_task, target_task} <= tasks:
            targets = [m for m in models if task_of(m) == target_task]
            pairs = [(cue_of[source_task], t) for t in targets]
            values, _ = pooled_score(scores, pairs, confidence, [cue_of[target_task]] * len(targets))
            near, met = ((f"0 ± {DELTA}", _near(values, 0.0)) if target_task != "either"
                         else (f"< {1 - DELTA} (the other mark still decides)", values[2] < 1 - DELTA))
            out.append(Answer(f"s({cue_of[source_task]} → {target_task}), by {cue_of[target_task]} "
                              f"({len(targets)} models)", near, _text(values), met, "cue"))
    return out


def region_answers(workdir: str, image_set: str, statistics: Mapping[str, Any], method: str | None = None
                   ) -> list[Answer]:
    """Answer 1: each task's share of positive relevance on its cue's region (seeds averaged per image) against
    the region's area share; of the models' (first composite's) LRP maps, or (``method``, kind ``method``) of
    their maps by that control method (the study's ``controls_SET`` stage)."""
    stages = os.path.join(workdir, "stages")
    partitions = load_arrays(os.path.join(stages, f"images_{image_set}.npz"))["partitions"]
    folder = os.path.join(stages, f"relevance_{image_set}" if method is None else f"controls_{image_set}")
    heats = {f[:-4]: (load_arrays(os.path.join(folder, f))["heat"][0] if method is None
                      else load_arrays(os.path.join(folder, f))[method])
             for f in sorted(os.listdir(folder)) if f.endswith(".npz")}
    weights = stats.bootstrap_weights(partitions.shape[0], n_boot=statistics["n_boot"], seed=statistics["seed"])
    areas = analysis.region_areas(partitions)
    out = []
    for task, regions in CUE_REGIONS.items():
        chosen = [h for key, h in heats.items() if key.split("_")[1] == task]
        if not chosen:
            continue
        index = [analysis.SHARE_REGIONS.index(r) for r in regions]
        share = np.mean([analysis.region_shares(h, partitions)[:, index].sum(axis=1) for h in chosen], axis=0)
        area = float(areas[:, index].sum(axis=1).mean())
        low, high = stats.percentile_interval(weights @ share, confidence=statistics["confidence"])
        values = [float(share.mean()), float(low), float(high)]
        out.append(Answer(f"share of relevance on {' + '.join(regions)}, {task} ({len(chosen)} models)",
                          f"≥ {ENRICHMENT:.0f} × area {area:.4f} = {ENRICHMENT * area:.3f}, interval above the area",
                          _text(values), values[0] >= ENRICHMENT * area and values[1] > area, method or "known"))
        other = {"eye": "mouth", "mouth": "eyes"}.get(task)
        if other is not None:
            k = analysis.SHARE_REGIONS.index(other)
            rest = np.mean([analysis.region_shares(h, partitions)[:, k] for h in chosen], axis=0)
            low, high = stats.bootstrap_interval((share - rest).mean(), weights @ (share - rest),
                                                 confidence=statistics["confidence"])
            values = [float((share - rest).mean()), float(low), float(high)]
            out.append(Answer(f"share on {regions[0]} − share on {other} (the other cue), {task}", "> 0",
                              _text(values), values[1] > 0, method or "map"))
    return out


def swapped_log_odds(model: grid_models.GridModel, planted_options: Mapping[str, Any]) -> np.ndarray:
    """The model's log-odds :math:`z_1 - z_0` on the planted held-out faces with both marks in every colour
    pair, ``[F, 2, 2]`` (face, eye colour, mouth colour; colours as :data:`experiments.planted.COLOURS` sorted),
    the images drawn as :func:`experiments.planted.build_design` draws them, then resized and cropped as the
    model's preprocessing says."""
    faces, size = planted_options["faces"], planted_options["size"]
    london = os.path.join(faces, "london")
    landmarks = analysis.load_landmarks(os.path.join(london, "landmarks.csv"))
    regions = analysis.load_regions(os.path.join(faces, "regions.json"))
    ids = sorted(landmarks)[:planted_options.get("limit")]
    test = planted.split_faces(ids, planted_options.get("seed", 0))["test"]
    side = max(1, int(round(planted_options["mark"] * size)))
    colours = sorted(planted.COLOURS)
    images = []
    for face in test:
        source = imagefiles.load_image(os.path.join(london, "neutral", f"{face}.jpg"))
        small = np.asarray(Image.fromarray(source).resize((size, size), Image.Resampling.BILINEAR))
        centres = planted.cue_centres(landmarks[face], regions, size / source.shape[0])
        for eye in colours:
            for mouth in colours:
                images.append(planted.draw_mark(planted.draw_mark(small, centres["eye"], side, eye),
                                                centres["mouth"], side, mouth))
    logits = np.asarray(grid_models.logits_fn(model.path)(preprocess.preprocess(np.stack(images), model.metadata)))
    return (logits[:, 1] - logits[:, 0]).reshape(len(test), 2, 2)


def reliance_answers(models: Sequence[grid_models.GridModel], planted_options: Mapping[str, Any],
                     statistics: Mapping[str, Any]) -> list[Answer]:
    r"""What the ``eye`` and ``mouth`` models rely on, by intervention (:func:`swapped_log_odds`): swapping the
    colour of the model's own mark must flip its decisions and swapping the other mark's colour keep them, each in
    at least :data:`DECISIONS` of the cases (kind ``known``, the premise of answers 2-3); and (kind ``premise``, the
    premise of the ``map`` answers) the log-odds :math:`\ell` must not move with the other mark, measured as the
    ratio of means over faces :math:`\sum_f |\Delta_\text{other}\ell_f| / \sum_f |\Delta_\text{own}\ell_f|` (0: the
    other mark is not used; 1: as much as the model's own), its interval from the bootstrap over faces."""
    out = []
    for task, own_axis in (("eye", 2), ("mouth", 3)):
        chosen = [m for m in models if m.task == task]
        if not chosen:
            continue
        odds = np.stack([swapped_log_odds(m, planted_options) for m in chosen])  # [M, F, 2, 2]
        own = np.diff(odds, axis=own_axis).squeeze(own_axis)  # [M, F, 2]: own colour swapped, other fixed
        other = np.diff(odds, axis=5 - own_axis).squeeze(5 - own_axis)
        sign = np.sign(odds)
        flipped = (np.diff(sign, axis=own_axis) != 0).sum()
        changed = (np.diff(sign, axis=5 - own_axis) != 0).sum()
        pairs = own.size
        out.append(Answer(f"decisions flipped by swapping the own mark's colour, {task} ({len(chosen)} models)",
                          f"≥ {DECISIONS:.0%} of {pairs}", f"{flipped} of {pairs}", bool(flipped >= DECISIONS * pairs)))
        out.append(Answer(f"decisions changed by swapping the other mark's colour, {task}",
                          f"≤ {1 - DECISIONS:.0%} of {pairs}", f"{changed} of {pairs}",
                          bool(changed <= (1 - DECISIONS) * pairs)))
        num, den = np.abs(other).sum(axis=(0, 2)), np.abs(own).sum(axis=(0, 2))  # per face
        weights = stats.bootstrap_weights(len(num), n_boot=statistics["n_boot"], seed=statistics["seed"])
        value = num.sum() / den.sum()
        low, high = stats.bootstrap_interval(value, (weights @ num) / (weights @ den),
                                             confidence=statistics["confidence"])
        values = [float(value), float(low), float(high)]
        out.append(Answer(f"size of Δ log-odds, other mark's colour swapped / own mark's swapped, {task}",
                          f"0 ± {DELTA}", _text(values), _near(values, 0.0), "premise"))
    return out


def _first_position(ranks: np.ndarray, unit_of_pixel: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """``[N]``: 1 + the earliest position in the masking order (``ranks`` ``[N, U]``) of a unit that holds a pixel
    of ``masks`` ``[N, H, W]``; NaN for an image whose mask is empty (a mark cropped away)."""
    units = [np.unique(unit_of_pixel[m.ravel()]) for m in masks]
    return np.array([1.0 + ranks[i, u].min() if len(u) else np.nan for i, u in enumerate(units)])


class Specificity(NamedTuple):
    """One row of :func:`map_specificity`: a method's maps of one task's models. Shares are ``[mean, low, high]``
    (95 % bootstrap interval over images); positions ``[median, first quartile, third quartile]`` over the
    models' images, counted from 1 (masked first)."""

    method: str
    task: str
    models: int
    own_share: list[float]
    other_share: list[float]
    area_share: float
    own_first: list[float]
    other_first: list[float]
    other_first_random: list[float]


OWN_CUE = "the task's cue map"


def map_specificity(workdir: str, config: Mapping[str, Any], image_set: str) -> list[Specificity]:
    r"""How specific each method's maps are to the evidence the ``eye`` and ``mouth`` models use, on ``image_set``
    of a finished planted study (its images carry both marks, and the planted cues' maps).

    Per method (each task's own cue map, the study's composites, then each model control it computed) and task,
    over the task's models and the set's images: the share of positive relevance on the own mark's square and on
    the other mark's, :math:`\sum_{p \in \text{mark}} \max(R_p, 0) / \sum_p \max(R_p, 0)` (0 for a map with no
    positive relevance; the task's models averaged per image; mean and 95 % bootstrap interval over images),
    beside a mark's share of the image's area; and the position in the study's MoRF order (its patch size,
    relevance mode and tie-breaking seed) of the first patch that holds a pixel of each mark (median and quartiles
    over the models' images), against random order's (the study's baseline). A mark is every pixel that its
    square, resized and cropped as the images were, touches (the cue map above 0).

    The ``map`` answers need the other mark's first patch no earlier than random order's: an order that reaches it
    among the first few patches masks the other model's cue in the first fraction step (module docstring). The
    cue-map rows check the bookkeeping: their shares are 1 and 0 by the definition of a mark, and their positions
    test the order, the own mark first and the other mark where random order puts it, a few positions later (the
    own mark's patches are moved before it). Maps and cue maps follow the image set's own order (its
    ``images`` stage, which the cached maps were computed on).
    """
    stages = os.path.join(workdir, "stages")
    spec = config["image_sets"][image_set]
    images = ImageSet.from_arrays(load_arrays(os.path.join(stages, f"images_{image_set}.npz")))
    models = grid_models.discover(config["grid"])
    cues = given_maps(spec["maps"], images, grid_models.common_geometry(models, config.get("geometry")))
    marks = {task: cues[f"{task} cue"] > 0 for task in ("eye", "mouth")}
    masking, statistics = config["masking"], config["statistics"]
    shape = images.pixels.shape[:3]
    rank_options = {"shape": shape, "patch_size": masking.get("patch_size", 1),
                    "relevance_mode": masking.get("relevance_mode", "positive"), "seed": masking.get("seed", 0)}
    random_ranks, unit_of_pixel = analysis.masking_ranks(None, order="random", **rank_options)
    weights = stats.bootstrap_weights(shape[0], n_boot=statistics["n_boot"], seed=statistics["seed"])
    shown = {f[:-4] for f in os.listdir(os.path.join(stages, f"relevance_{image_set}")) if f.endswith(".npz")}

    def maps_of(model: grid_models.GridModel) -> dict[str, np.ndarray]:
        heats = load_arrays(os.path.join(stages, f"relevance_{image_set}", f"{model.key}.npz"))["heat"]
        out = {OWN_CUE: cues[f"{model.task} cue"], **dict(zip(config["relevance"]["composites"], heats))}
        controls = os.path.join(stages, f"controls_{image_set}", f"{model.key}.npz")
        if os.path.exists(controls):
            out.update({k: v for k, v in load_arrays(controls).items() if not k.startswith("_")})
        return out

    def spread(positions: np.ndarray) -> list[float]:
        return [float(q) for q in np.nanpercentile(positions, [50, 25, 75])]

    chosen = {task: [m for m in models if m.task == task and m.key in shown] for task in ("eye", "mouth")}
    area = float(np.mean([mark.mean() for mark in marks.values()]))
    chance = {task: spread(_first_position(np.asarray(random_ranks), unit_of_pixel, mark))
              for task, mark in marks.items()}  # random order's first patch of each mark
    per_model = {m.name: maps_of(m) for ms in chosen.values() for m in ms}
    methods = [m for m in [OWN_CUE, *config["relevance"]["composites"], *CONTROLS]
               if per_model and all(m in maps for maps in per_model.values())]
    rows = []
    for method in methods:
        for task, own_models in chosen.items():
            if not own_models:
                continue
            other = "mouth" if task == "eye" else "eye"
            shares, first = {"own": [], "other": []}, {"own": [], "other": []}
            for model in own_models:
                heat = per_model[model.name][method]
                positive = np.maximum(heat, 0)
                total = positive.sum(axis=(1, 2))
                ranks = np.asarray(analysis.masking_ranks(heat, order="morf", **rank_options)[0])
                for which, mark in (("own", marks[task]), ("other", marks[other])):
                    inside = (positive * mark).sum(axis=(1, 2))
                    shares[which].append(np.divide(inside, total, out=np.zeros_like(inside), where=total > 0))
                    first[which].append(_first_position(ranks, unit_of_pixel, mark))
            intervals = []
            for which in ("own", "other"):
                share = np.mean(shares[which], axis=0)
                low, high = stats.bootstrap_interval(share.mean(), weights @ share,
                                                     confidence=statistics["confidence"])
                intervals.append([float(share.mean()), float(low), float(high)])
            rows.append(Specificity(method, task, len(own_models), *intervals, area,
                                    spread(np.concatenate(first["own"])), spread(np.concatenate(first["other"])),
                                    chance[other]))
    return rows


def specificity_table(rows: Sequence[Specificity]) -> list[str]:
    """:func:`map_specificity`'s rows as a Markdown table (positions: median, quartiles in parentheses)."""
    position = lambda q: f"{q[0]:.0f} ({q[1]:.0f}-{q[2]:.0f})"
    lines = ["| maps | task (models) | share on own mark [95% CI] | share on other mark [95% CI] | a mark's area "
             "| own mark's first patch | other mark's first patch | random order's, other mark |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r.method} | {r.task} ({r.models}) | {_text(r.own_share)} | {_text(r.other_share)} | "
              f"{r.area_share:.4f} | {position(r.own_first)} | {position(r.other_first)} | "
              f"{position(r.other_first_random)} |" for r in rows]
    return [*lines, ""]


def planted_answers(workdir: str, config: Mapping[str, Any]) -> list[Answer]:
    """Every known answer of a finished planted study in ``workdir`` (its config: ``config``): the region shares on
    the regions' image set, then answers 2-5 on each generalization set for the tasks shown it (s(A_i → A_j) for
    tasks with two seeds or more, s between ``eye`` and ``mouth``, the asymmetry of ``either`` to each); then the
    same with each model's maps by every method of ``controls.cross`` (kind named after the method)."""
    statistics = config["statistics"]
    methods = [None, *(config.get("controls") or {}).get("cross", ())]
    answers = []
    for method in methods:
        found = region_answers(workdir, config["regions"]["image_set"], statistics, method)
        answers += [a._replace(quantity=f"{method} maps: {a.quantity}") if method else a for a in found]
    for method in methods:
        for name, spec in config["image_sets"].items():
            if not spec.get("generalization"):
                continue
            aucs = load_cross(workdir, name)
            tasks = sorted({task_of(t) for t in aucs.targets})
            cue_pairs = [("eye", "mouth")] if {"eye", "mouth"} <= set(tasks) else []
            found = generalization_answers(aucs, statistics, same_task=tasks, other_cue=cue_pairs,
                                           either=[t for t in tasks if t == "either"], method=method)
            if method is None and set(planted.CUE_MAPS) <= set(aucs.sources):
                found = cue_answers(aucs, statistics) + found
            prefix = f"{method} maps, {name}" if method else name
            answers += [a._replace(quantity=f"{prefix}: {a.quantity}") for a in found]
    return answers


def answers_table(answers: Sequence[Answer]) -> list[str]:
    """The answers as a Markdown table with closing counts per kind."""
    lines = ["| quantity | kind | expected | measured [95% CI] | met |", "|---|---|---|---|---|"]
    lines += [f"| {a.quantity} | {a.kind} | {a.expected} | {a.measured} | {'yes' if a.met else '**no**'} |"
              for a in answers]
    kinds = ["known", "cue", "premise", "map", "control"]
    kinds += sorted({a.kind for a in answers} - set(kinds))
    counts = [f"{kind} answers met: {sum(a.met for a in answers if a.kind == kind)} of "
              f"{sum(a.kind == kind for a in answers)}" for kind in kinds if any(a.kind == kind for a in answers)]
    return [*lines, "", "; ".join(counts) + ".", ""]


def run_planted(config: Mapping[str, Any], *, grid_spec: str, workdir: str | None = None,
                log: Callable[[str], None] = _stderr) -> dict[str, Any]:
    """The planted profile end to end: train the planted grid (``grid_spec``, into the study config's ``grid``;
    finished models are skipped, so a second run only checks them), run the study, then measure the known
    answers and append their table to the report.

    Returns:
      :func:`experiments.study.run_study`'s result with ``answers`` (:class:`Answer` list), ``table`` and
      ``specificity`` (image set -> :func:`map_specificity` rows).
    """
    from experiments.grid import load_config as load_grid_config
    from experiments.grid import run_grid
    from experiments.study import run_study

    grid_config = load_grid_config(grid_spec)
    run_grid(grid_config, config["grid"], log=log)
    result = run_study(config, workdir=workdir, log=log)
    answers = reliance_answers(grid_models.discover(config["grid"]), grid_config["planted"], config["statistics"])
    answers += planted_answers(workdir or config["workdir"], config)
    table = answers_table(answers)
    specificity = {name: map_specificity(workdir or config["workdir"], config, name)
                   for name, spec in config["image_sets"].items() if spec.get("maps")}
    section = [line for name, rows in specificity.items() if rows
               for line in (f"### {name}", "", *specificity_table(rows))]
    section = ["## Map specificity", "", _SPECIFICITY, "", *section] if section else []
    with open(result["report"], "a") as handle:
        handle.write("\n".join(["", "## Known answers", "", _INTRO, "", *table, *section]))
    return {**result, "answers": answers, "table": "\n".join(table), "specificity": specificity}


_INTRO = ("The planted cues decide each task, so these numbers are predicted before measuring "
          "(`experiments/known_answers.py` argues each). Kind `known`: follows from the data and the models' "
          "decisions; kind `cue`: the measurement itself, with maps that move the planted cues' patches to the "
          "front of the random order, so no attribution method is involved; kind `premise`: the "
          "models' log-odds do not move with the other, unused mark (measured by "
          "swapping its colour); kind `map`: holds only if each model's map ranks the pixels the model does not use "
          "no earlier than random order; kind `control`: what maps without model-specific knowledge score (not "
          "asserted); kind `occlusion`: the region, own-map and `map` answers again with each model's occlusion "
          "maps (the drop of its log-odds when a window is set to the mean), which carry only what the model "
          "responds to. "
          f"\"Near x\": the 95% bootstrap interval lies within x ± {DELTA}; region shares: the interval's "
          f"lower end at least {ENRICHMENT:.0f}× the region's area share.")

_SPECIFICITY = ("Where each method's maps put the eye and mouth models' relevance (`experiments/known_answers.py`, "
                "`map_specificity`): the share of positive relevance on the model's own mark and on the other, "
                "unused mark (95% bootstrap intervals over images) beside a mark's area, and the position in the "
                "MoRF order (1: masked first; median and quartiles over images) of the first patch holding each "
                "mark, against random order's. The `map` answers need the other mark no earlier than random "
                "order puts it. The first rows, each task's own cue map, check the bookkeeping (shares 1 and 0 "
                "by construction; the other mark a few positions after random order's).")
