"""The known-answer study: the pipeline run on models whose evidence is known (``grid_planted.py``).

    python experiments/run_study.py --profile planted    # builds the planted grid if missing, then the study

Writes ``out/study_planted/report.md``, which ends with the table of known answers (expected / measured / met,
:mod:`experiments.known_answers`). Image sets (held-out faces, 64x64 as the models see them, labels = the
models' predictions):

- ``independent``: eye and mouth marks of independent colours, shown to the ``eye`` (A) and ``mouth`` (B) models:
  own-map masking, s(A_i → A_j), s(A → B);
- ``agreeing``: both marks of one colour, shown to every model (A, B and ``either``, C): the asymmetry of A → C
  against C → A, face-region shares (landmarks of the same crops), map similarity.

``arg="test"``: the small version on ``grid_planted.py:test`` (32x32, 4 models, the ``agreeing`` set only, one
composite, fewer images and bootstrap replicates, occlusion the only control).
"""

from experiments.configs.study_smoke import get_config as smoke_config


def get_config(arg=None):
    """The planted profile; ``arg="test"``: the tests' small version."""
    test = arg == "test"
    grid = "out/grid_planted_test" if test else "out/grid_planted"
    data = f"{grid}/data"
    faces = "../shared/data/faces"
    smoke = {k: v for k, v in smoke_config().items() if k not in ("mprt", "controls")}
    controls = smoke_config()["controls"]

    def folder(design, label):
        return {"folder": f"{data}/{design}/test", "labels_csv": f"{data}/{design}/labels.csv", "label": label,
                "labels": "predicted", "masking": True, "generalization": True, "limit": 24 if test else 40,
                "maps": f"{data}/{design}/cue_maps.npz"}  # the cues' maps: the measurement's own known answers

    return {
        **smoke,
        "profile": "planted",
        "description": "Known answers: planted cues (a coloured mark on the left eye decides task `eye`, one on the "
                       "mouth task `mouth`, either mark task `either`), models trained from scratch.",
        "workdir": "out/study_planted_test" if test else "out/study_planted",
        "grid": grid,
        "data": {"data_dir": f"{grid}/tfds", "faces": faces, "manual_dir": None},
        "image_sets": {
            **({} if test else {"independent": {**folder("independent", "eye"), "models": ["eye", "mouth"]}}),
            "agreeing": {**folder("agreeing", "mark"), "models": "all",
                         "landmarks": f"{data}/agreeing/landmarks.csv"},
        },
        "relevance": {"composites": ["epsilon_gamma_box"] + ([] if test else ["epsilon_plus_flat"]),
                      "batch_size": 24 if test else 40},
        "masking": {**smoke["masking"], "patch_size": 2 if test else 4},  # ROAD fill, as the smoke profile
        "statistics": {"n_boot": 500 if test else 1000, "n_perm": 500 if test else 1000, "confidence": 0.95,
                       "seed": 0},
        "asymmetry": [
            {"name": "either → eye", "a": {"task": "either"}, "b": {"task": "eye"}, "same": []},
            {"name": "either → mouth", "a": {"task": "either"}, "b": {"task": "mouth"}, "same": []},
        ],
        "similarity": {"image_set": "agreeing", "top_k": 0.1},
        "regions": {"image_set": "agreeing", "regions_json": f"{faces}/regions.json", "relevance_mode": "positive"},
        "human": {"image_set": None},
        "heatmaps": {"images": 6, "tile": 96},
        # each model's occlusion maps (the drop of its log-odds when a window as large as the mark is set to the
        # mean; windows half a window apart, the test's tiling) also mask every other model: the `map` answers with
        # maps specific to the evidence (experiments/known_answers.py); the test's budget leaves the other controls out
        "controls": {**({"methods": ["occlusion"], "seed": 0} if test else controls),
                     "occlusion_window": 4 if test else 8, "occlusion_stride": 4,
                     "cross": ["occlusion"]},
    }
