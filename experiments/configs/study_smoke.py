"""The study at CPU scale, on the grid of ``grid_cpu.py`` (12 models: 2 stand-in bases x 2 tasks x 3 seeds).

    python experiments/run_grid.py --config experiments/configs/grid_cpu.py     # first, if out/grid_cpu is missing
    python experiments/run_study.py --profile smoke                             # tens of minutes on 2 cores

Writes ``out/study_smoke/report.md`` with its figures. Image sets (64x64 crops, as the grid's models see them):

- ``gender_test``: London gender test people (neutral and smiling), for the gender models' masking curves and
  their within-task generalization, scored against the true gender;
- ``identity_test``: ORL people s21-s40, two test photos each, for the identity models, against the true identity;
- ``faces``: London neutral faces of the validation and test people (no model trained on them), shown to every
  model: cross-task generalization, map similarity, face regions (landmarks) and the human-similarity demo.

Masking uses 4x4 patches (256 units), ROAD's noisy linear imputation (noise std 0.01 in [0, 1] pixel units,
mapped through each model's preprocessing; ``fill`` ``zero``, ``mean``, ``blur`` and ``noise`` stay available)
and 9 fractions. Controls (centre prior, image gradient, mean map, LRP of a randomised copy, gradient x input,
SmoothGrad, Integrated Gradients) are scored beside every relation, and the parameter randomisation test runs on
16 faces. No
human data ships with the project: the human-similarity section uses clearly labelled synthetic raters made
from the face-identity stand-in base (``base:vggface``, no grid member) plus noise.
"""


def get_config(arg=None):
    """The smoke profile; ``arg`` is unused."""
    del arg
    faces = "../shared/data/faces"
    return {
        "profile": "smoke",
        "description": "CPU-scale study on the stand-in grid (1/8-width VGG-16, 64x64): the pipeline end to end; "
                       "small image sets, so intervals are wide.",
        "workdir": "out/study_smoke",
        "grid": "out/grid_cpu",
        "data": {"data_dir": "out/tfds", "faces": faces, "manual_dir": None},
        "geometry": None,
        "image_sets": {
            "gender_test": {"splits": ["london_gender:test"], "models": "gender", "limit": 40, "labels": "true",
                            "masking": True, "generalization": True},
            "identity_test": {"splits": ["orl_identity_b:test"], "models": "identity", "limit": 40,
                              "labels": "true", "masking": True, "generalization": True},
            "faces": {"splits": ["london_gender:validation", "london_gender:test"], "condition": "neutral",
                      "models": "all", "limit": 40, "labels": "predicted", "masking": False,
                      "generalization": True, "landmarks": f"{faces}/london/landmarks.csv"},
        },
        "relevance": {"composites": ["epsilon_gamma_box", "epsilon_plus_flat"], "batch_size": 16},
        "masking": {"fractions": (0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0), "patch_size": 4, "fill": "road",
                    "noise_std_pixels": 0.01, "relevance_mode": "positive", "batch_size": 96, "seed": 0,
                    "metric": "probability"},
        "statistics": {"n_boot": 1000, "n_perm": 9999, "confidence": 0.95, "seed": 0, "reliability_floor": 0.01},
        "asymmetry": [
            {"name": "vggface → imagenet (same task)", "a": {"pretraining": "vggface"},
             "b": {"pretraining": "imagenet"}, "same": ["task"]},
            {"name": "gender → identity (same pretraining)", "a": {"task": "gender"}, "b": {"task": "identity"},
             "same": ["pretraining"]},
        ],
        "similarity": {"image_set": "faces", "top_k": 0.1},
        "regions": {"image_set": "faces", "regions_json": f"{faces}/regions.json", "relevance_mode": "positive"},
        "human": {"image_set": "faces", "mode": "synthetic", "source": "base:vggface", "raters": 6, "noise": 1.0,
                  "triads_per_rater": 100, "seed": 0, "layer": "fc7", "keep": 0.25},
        "heatmaps": {"images": 6, "tile": 96},
        "controls": {"centre_sigma": 0.25, "smoothgrad_samples": 20, "smoothgrad_noise": 0.1, "ig_steps": 20,
                     "seed": 0},
        "mprt": {"image_set": "faces", "images": 16, "threshold": 0.5, "seed": 0},
    }
