"""The known-answer grid: three planted-cue tasks on copies of the London faces, models trained from scratch.

    python experiments/run_study.py --profile planted                              # builds this grid first
    python experiments/run_grid.py --config experiments/configs/grid_planted.py    # the grid alone
    python experiments/run_grid.py --config experiments/configs/grid_planted.py:test --workdir DIR   # the test's

The images (:mod:`experiments.planted`) are London neutral faces with a green or magenta square planted on the
left eye and/or the mouth; the colour is the class:

- ``eye`` (task A): the left eye's mark decides; the mouth carries an independent colour (uninformative);
- ``mouth`` (task B): the mouth's mark decides, on the same images (the eye's colour is uninformative);
- ``either`` (task C): one colour on the eye, the mouth or both; either mark decides.

Every model is the CPU-scale VGG-16 (1/8 width, batch norm, 64x64, ``pool_to=None``) trained from a random
initialisation with AdamW, without flips or random crops (a flip would move the left eye's mark to the right
eye) and without colour jitter. ``arg="test"``: 1/16 width, 32x32, few faces and steps (the test's small version).
"""

from experiments.planted import folder_configs

PREPROCESSING = {"name": "planted64", "pixel_range": [0.0, 1.0], "mean": [0.485, 0.456, 0.406],
                 "std": [0.229, 0.224, 0.225], "resize": 72, "crop": 64}


def get_config(arg=None):
    """The planted grid; ``arg="test"``: the small version the tests train (seconds)."""
    test = arg == "test"
    size = 32 if test else 64
    workdir = "out/grid_planted_test" if test else "out/grid_planted"
    data = f"{workdir}/data"
    train_copies = {"train": 3 if test else 4, "validation": 1 if test else 2, "test": 1 if test else 2}
    model = {"width": 0.0625 if test else 0.125, "batch_norm": True, "pool_to": None, "input_size": size}
    preprocessing = {**PREPROCESSING, "name": f"planted{size}", "resize": size * 9 // 8, "crop": size}
    return {
        "description": "Planted-cue grid (known answers)" + (", test" if test else ""),
        "workdir": workdir,
        "data": {"data_dir": None, "faces": "../shared/data/faces", "manual_dir": None},
        "planted": {"faces": "../shared/data/faces", "out_dir": data, "size": 64 if test else 128,
                    "mark": 0.1 if test else 0.07, "seed": 0, "limit": 60 if test else None,
                    "copies": {"independent": train_copies, "either": train_copies,
                               "agreeing": {"test": 2}}},
        "folders": folder_configs(data),
        "bases": {"scratch": {"checkpoint": None, "description": "no pretraining: a random initialisation"}},
        "tasks": {
            "eye": {"train": "planted_eye:train", "validation": "planted_eye:validation",
                    "tests": {"eye test": "planted_eye:test"}},
            "mouth": {"train": "planted_mouth:train", "validation": "planted_mouth:validation",
                      "tests": {"mouth test": "planted_mouth:test"}, **({"seeds": [0]} if test else {})},
            "either": {"train": "planted_either:train", "validation": "planted_either:validation",
                       "tests": {"either test": "planted_either:test"}, **({"seeds": [0]} if test else {})},
        },
        "seeds": [0, 1] if test else [0, 1, 2],
        "finetune": {"model": model, "preprocessing": preprocessing, "trainable": "all", "optimizer": "adamw",
                     "learning_rate": 2e-3, "weight_decay": 1e-4, "schedule": "cosine", "warmup_steps": 5,
                     "steps": 40 if test else 60, "batch_size": 32, "augment": False, "colour_jitter": 0.0,
                     "eval_every": 20, "checkpoint_every": 40 if test else 60, "log_every": 20, "workers": 2},
    }

