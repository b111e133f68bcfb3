"""The full study on a GPU: VGG-16 pretrained on ImageNet or on VGGFace, finetuned for gender or identity.

    python experiments/run_grid.py --config experiments/configs/grid_full.py         # out/grid_full
    python experiments/run_grid.py --config experiments/configs/grid_full.py:quick   # 200 steps, one seed

Then the study on it: ``python experiments/run_study.py --profile full`` (reads ``out/grid_full``), or for the
quick grid ``python experiments/run_study.py --config experiments/configs/study_full.py:quick`` (reads
``out/grid_full_quick``). Run every command from the repository root: the paths below are relative to the
working directory, made absolute once at the start, and checked before the first model is trained (a missing
checkpoint, VGGFace2 file or CelebA file, or a CelebA file whose sha256 is not the registered one, stops the
run at once with all problems listed).

Paths (relative to the repository root; change them here; ``checkpoints/`` and ``data/`` are ignored by git):

- ``checkpoints/vgg16_imagenet``: ``python -m weights_conversion torchvision vgg16-397923af.pth
  checkpoints/vgg16_imagenet`` (torchvision's weights, torchvision preprocessing);
- ``checkpoints/vggface``: ``python -m weights_conversion vggface vgg_face_dag.pth checkpoints/vggface``
  (VGG-Face, its own preprocessing: RGB 0-255 minus the mean face);
- ``data/manual/vggface2/train/n000002/0001_01.jpg …`` and ``data/manual/vggface2/identity_meta.csv``
  (VGGFace2, Cao et al. 2018, from its authors; ``identity_meta.csv`` as distributed, ``Class_ID, Name,
  Sample_Num, Flag, Gender`` with a space after each comma and quoted names);
- ``data/manual/`` also holds CelebA's five files (``img_align_celeba.zip``, ``list_eval_partition.txt``,
  ``list_attr_celeba.txt``, ``list_landmarks_align_celeba.txt``, ``identity_CelebA.txt``) for the
  cross-data-set gender test;
- ``data/tfds``: where the data sets are built once (array_record holding the original JPEG bytes: VGGFace2's
  train set is about 36 GB of JPEGs, CelebA's aligned images 1.4 GB).

Each base is finetuned end to end (SGD with momentum 0.9, learning rate 1e-3 with a 500-step warm-up and a
cosine decay, weight decay 5e-4, batch 64, 224x224 with random crops of the 256-pixel resize and flips);
``trainable`` can be set to ``"fc"`` or ``"conv5"`` to finetune only the top. Gender: VGGFace2 people split
0.8/0.1/0.1 (nobody in two splits), tested on VGGFace2's test people and on CelebA's test split. Identity:
VGGFace2's 500 people with the most photos (``data.identity_people``; the set is named by the number it holds,
``vggface2_identity_500``), each person's photos split 0.8/0.1/0.1. The splits need enough people: at least 8
of each gender (0.8/0.1/0.1 of each gender's people) and 8 photos per person for identity. The table is
``out/grid_full/results.md``; this config has not been run on this repository's machines (no weights or
VGGFace2 there): check it with ``:quick`` first.
"""


def get_config(arg=None):
    """The study's grid; ``arg="quick"``: 200 steps and one seed, to check the set-up end to end."""
    quick = arg == "quick"
    steps = 200 if quick else 20000
    return {
        "description": "VGG-16: ImageNet vs VGGFace pretraining, gender vs identity" + (", quick" if quick else ""),
        "workdir": "out/grid_full_quick" if quick else "out/grid_full",
        "data": {"data_dir": "data/tfds", "faces": "../shared/data/faces", "manual_dir": "data/manual",
                 "identity_people": 500},
        "bases": {
            "imagenet": {"checkpoint": "checkpoints/vgg16_imagenet",
                         "description": "torchvision's ImageNet VGG-16 (converted)"},
            "vggface": {"checkpoint": "checkpoints/vggface",
                        "description": "VGG-Face (Parkhi et al. 2015, converted)"},
        },
        "tasks": {
            "gender": {"train": "vggface2_gender:train", "validation": "vggface2_gender:validation",
                       "tests": {"VGGFace2 test": "vggface2_gender:test", "CelebA test": "celeb_a_gender:test"}},
            "identity": {"train": "vggface2_identity:train", "validation": "vggface2_identity:validation",
                         "tests": {"VGGFace2 identity test": "vggface2_identity:test"}},
        },
        "seeds": [0] if quick else [0, 1, 2, 3, 4],
        "finetune": {"trainable": "all", "optimizer": "sgd", "learning_rate": 1e-3, "momentum": 0.9,
                     "weight_decay": 5e-4, "schedule": "cosine", "warmup_steps": min(500, steps // 10),
                     "steps": steps, "batch_size": 64, "eval_every": min(1000, steps), "checkpoint_every": 500,
                     "log_every": 50, "workers": 16},
    }
