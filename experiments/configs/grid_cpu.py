"""The model grid at CPU scale, on the small real face sets in ``../shared/data/faces``.

    python experiments/run_grid.py --config experiments/configs/grid_cpu.py          # ~15 min on 2 cores
    python experiments/run_grid.py --config experiments/configs/grid_cpu.py:smoke    # seconds: the test's
    python experiments/run_grid.py --config experiments/configs/grid_cpu.py:resnet18 # the same grid of ResNet-18s

No converted VGG-16 weights exist on a CPU machine without downloads, so the two bases are stand-ins
trained here first, with the same VGG-16 (1/8 width, batch norm, 64x64) and the same budget:

- ``vggface`` (face-pretrained): identity of ORL people s1-s20 (20 classes).
- ``imagenet`` (not face-pretrained): which of ten non-face photographs shipped with scikit-image a patch
  comes from (brick, coffee, coins, grass, gravel, Hubble deep field, a slide, a retina, a rocket, the
  moon): learnt natural-image filters that have never seen a face, as ImageNet pretraining gives, rather
  than a random initialisation, which would confound "pretrained on faces" with "pretrained at all".

Each base is finetuned (every layer, SGD with momentum, cosine schedule; the new head from the seed) for

- ``gender``: London people 0.7/0.1/0.2 (train/validation/test, nobody in two splits), tested on the
  London test people and, separately, on the Canada set (another camera and population);
- ``identity``: ORL people s21-s40 (not the face base's people), each person's 10 photos 7/1/2.

Expect London gender ~0.8-0.95, Canada near chance to ~0.7, ORL identity ~0.8-1.0; the table is
``out/grid_cpu/results.md``.
"""

PREPROCESSING = {"name": "cpu64", "pixel_range": [0.0, 1.0], "mean": [0.485, 0.456, 0.406],
                 "std": [0.229, 0.224, 0.225], "resize": 72, "crop": 64}


ARCHITECTURES = ("vgg16", "resnet18", "resnet34", "resnet50")


def get_config(arg=None):
    """The CPU-scale grid; ``arg`` holds comma-separated options: ``smoke`` (1/16 width, 32x32, a few steps, one
    seed: the test's) and an architecture of :data:`ARCHITECTURES` (default ``vgg16``), the ``model`` field of
    the stand-in bases (``{"family": "resnet", "depth": 18, ...}`` for a ResNet)."""
    options = [option for option in (arg or "").split(",") if option]
    unknown = [option for option in options if option != "smoke" and option not in ARCHITECTURES]
    if unknown:
        raise ValueError(f"grid_cpu.py options {unknown} are unknown; use smoke and/or one of {ARCHITECTURES}")
    smoke = "smoke" in options
    architecture = next((option for option in options if option in ARCHITECTURES), "vgg16")
    size = 32 if smoke else 64
    preprocessing = {**PREPROCESSING, "name": f"cpu{size}", "resize": size * 9 // 8, "crop": size}
    model = {"width": 0.0625 if smoke else 0.125, "input_size": size}
    if architecture == "vgg16":
        model.update(batch_norm=True, pool_to=None)
    else:
        model.update(family="resnet", depth=int(architecture.removeprefix("resnet")))
    name = {"vgg16": "VGG-16"}.get(architecture, architecture.replace("resnet", "ResNet-"))
    base_training = {"model": model, "preprocessing": preprocessing, "optimizer": "adamw", "learning_rate": 1e-3,
                     "weight_decay": 1e-4, "warmup_steps": 2 if smoke else 30, "steps": 3 if smoke else 400,
                     "batch_size": 32, "colour_jitter": 0.3, "eval_every": 3 if smoke else 50,
                     "checkpoint_every": 3 if smoke else 100, "log_every": 1 if smoke else 50, "workers": 2}
    return {
        "description": "CPU-scale grid (stand-in bases)" + "".join(f", {option}" for option in options),
        "workdir": "out/grid_cpu" + "".join(f"_{option}" for option in options if option != "vgg16"),
        "data": {"data_dir": None if smoke else "out/tfds", "faces": "../shared/data/faces", "manual_dir": None},
        "bases": {
            "imagenet": {"description": f"stand-in: {name} trained here on patches of 10 non-face photos",
                         "train": "natural_patches:train", "validation": "natural_patches:validation",
                         "tests": ["natural_patches:test"], "config": base_training},
            "vggface": {"description": f"stand-in: {name} trained here on ORL identity, people s1-s20",
                        "train": "orl_identity_a:train", "validation": "orl_identity_a:validation",
                        "tests": ["orl_identity_a:test"], "config": base_training},
        },
        "tasks": {
            "gender": {"train": "london_gender:train", "validation": "london_gender:validation",
                       "tests": {"London test": "london_gender:test", "Canada": "canada_gender:test"}},
            "identity": {"train": "orl_identity_b:train", "validation": "orl_identity_b:validation",
                         "tests": {"ORL test": "orl_identity_b:test"}},
        },
        "seeds": [0] if smoke else [0, 1, 2],
        "finetune": {"trainable": "all", "optimizer": "sgd", "learning_rate": 0.01, "momentum": 0.9,
                     "weight_decay": 5e-4, "schedule": "cosine", "warmup_steps": 1 if smoke else 20,
                     "steps": 2 if smoke else 200, "batch_size": 32, "colour_jitter": 0.3,
                     "eval_every": 2 if smoke else 25, "checkpoint_every": 2 if smoke else 100,
                     "log_every": 1 if smoke else 50, "workers": 2},
    }
