"""The full study on a GPU, on the grid of ``grid_full.py`` (VGG-16 from ImageNet or VGG-Face weights, finetuned
for gender or identity on VGGFace2, five seeds: 20 models).

    python experiments/run_grid.py --config experiments/configs/grid_full.py    # first
    python experiments/run_study.py --profile full                              # the same code as the smoke profile

Not run on this repository's machines (no converted weights, VGGFace2 or human data there). What it needs:

- ``out/grid_full``: the finished grid (``runs/BASE/TASK/seedN/model``);
- ``data/tfds`` and ``data/manual`` as in ``grid_full.py`` (the VGGFace2 test splits are read from there);
- ``../shared/data/faces``: the London neutral faces with their landmarks (all 102 people: no grid model was
  trained on them);
- ``data/human/rdm_*.csv``: one dissimilarity matrix per rater over the London neutral faces (first row and
  column: face ids such as ``001``), and ``data/human/triads.csv`` (``target, option1, option2, choice``).
  Without human data, set ``"human": {..., "mode": "synthetic", "source": "vggface/identity/s4", "raters": 6,
  "noise": 1.0, "triads_per_rater": 200, "seed": 0}`` to check the pipeline.

The two bases preprocess differently (torchvision: resize 256, crop 224; VGG-Face: resize 224, crop 224), so the
study shows every model the same 224x224 crops of the 224-pixel resize (``geometry``), each normalised its own way.
Masking is by 8x8 patches (784 units) at 14 fractions with ROAD's noisy linear imputation (noise std 0.01 of
the pixel range, mapped through each model's preprocessing); relevance in batches of 64. The run time has not been
measured: the masking curves dominate, about 2.6 million masked forward passes of VGG-16 at 224x224 (each task
set: 10 targets x (10 + 2 consensus sources + LeRF + random) x 14 fractions x 500 images; the London faces: 20
targets x 24 x 14 x 102), so check the set-up with ``:quick`` first.
"""


def get_config(arg=None):
    """The full profile; ``arg="quick"``: 100 images per set and 200 bootstrap replicates, to check the set-up."""
    quick = arg == "quick"
    limit = 100 if quick else 500
    faces = "../shared/data/faces"
    return {
        "profile": "full" + (" (quick)" if quick else ""),
        "description": "VGG-16 pretrained on ImageNet or VGG-Face, finetuned for gender or identity on VGGFace2.",
        "workdir": "out/study_full_quick" if quick else "out/study_full",
        "grid": "out/grid_full",
        "data": {"data_dir": "data/tfds", "faces": faces, "manual_dir": "data/manual"},
        "geometry": {"resize": 224, "crop": 224},
        "image_sets": {
            "gender_test": {"splits": ["vggface2_gender:test"], "models": "gender", "limit": limit, "labels": "true",
                            "masking": True, "generalization": True},
            "identity_test": {"splits": ["vggface2_identity:test"], "models": "identity", "limit": limit,
                              "labels": "true", "masking": True, "generalization": True},
            "faces": {"folder": f"{faces}/london/neutral", "labels_csv": f"{faces}/london/info.csv",
                      "label": "face_gender", "models": "all", "labels": "predicted", "masking": False,
                      "generalization": True, "landmarks": f"{faces}/london/landmarks.csv"},
        },
        "relevance": {"composites": ["epsilon_gamma_box", "epsilon_plus_flat", "epsilon_alpha2_beta1"],
                      "batch_size": 64},
        "masking": {"fractions": (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
                    "patch_size": 8, "fill": "road", "noise_std_pixels": 0.01, "relevance_mode": "positive",
                    "batch_size": 512, "seed": 0, "metric": "probability"},
        "statistics": {"n_boot": 200 if quick else 2000, "n_perm": 999 if quick else 9999, "confidence": 0.95,
                       "seed": 0, "reliability_floor": 0.01},
        "asymmetry": [
            {"name": "vggface → imagenet (same task)", "a": {"pretraining": "vggface"},
             "b": {"pretraining": "imagenet"}, "same": ["task"]},
            {"name": "gender → identity (same pretraining)", "a": {"task": "gender"}, "b": {"task": "identity"},
             "same": ["pretraining"]},
        ],
        "similarity": {"image_set": "faces", "top_k": 0.1},
        "regions": {"image_set": "faces", "regions_json": f"{faces}/regions.json", "relevance_mode": "positive"},
        "human": {"image_set": "faces", "mode": "csv", "rdm_csvs": ["data/human/rdm_*.csv"],
                  "triads_csv": "data/human/triads.csv", "seed": 0, "layer": "fc7", "keep": 0.25},
        "heatmaps": {"images": 8, "tile": 112},
        "controls": {"centre_sigma": 0.25, "smoothgrad_samples": 20, "smoothgrad_noise": 0.1, "ig_steps": 20,
                     "seed": 0},
        "mprt": {"image_set": "faces", "images": 32, "threshold": 0.5, "seed": 0},
    }
