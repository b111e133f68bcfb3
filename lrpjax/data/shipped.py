"""Small real image sets that ship inside scikit-image's wheel: usable on a fresh machine with no download.

- :func:`lfw_subset_splits`: ``skimage.data.lfw_subset()``, 100 face and 100 non-face 25x25 grayscale crops
  from Labeled Faces in the Wild (the first 100 are faces); the demo's default task, face versus non-face.
- :func:`natural_patch_splits`: patches of ten of scikit-image's photographs of things that are not faces
  (brick, coffee, coins, grass, gravel, the Hubble deep field, an immunohistochemistry slide, a retina, a
  rocket, the moon), labelled by the photograph they come from: the CPU-scale stand-in for ImageNet
  pretraining (learnt filters for natural images, never a face).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from lrpjax.data.sources import Split, array_split

LFW_SUBSET_CLASSES = ("face", "non-face")
NATURAL_PHOTOS = ("brick", "coffee", "coins", "grass", "gravel", "hubble_deep_field", "immunohistochemistry",
                  "retina", "rocket", "moon")


def lfw_subset_splits(test_every: int = 5) -> dict[str, Split]:
    """``{"train", "test"}`` splits of the 200 LFW crops (uint8 grayscale 25x25): every ``test_every``-th
    image of each class is a test image (40 test, 160 train)."""
    from skimage import data

    images = np.round(data.lfw_subset() * 255).astype(np.uint8)
    labels = np.repeat([0, 1], 100)
    files = [f"{LFW_SUBSET_CLASSES[label]}_{i % 100:03d}" for i, label in enumerate(labels)]
    test = np.arange(200) % 100 % test_every == 0
    return {name: array_split(f"lfw_subset:{name}", images[chosen], labels[chosen], LFW_SUBSET_CLASSES,
                              [f for f, c in zip(files, chosen) if c])
            for name, chosen in (("train", ~test), ("test", test))}


def natural_patch_splits(per_photo: int = 60, side: int = 96, seed: int = 0,
                         fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)) -> dict[str, Split]:
    """``{"train", "validation", "test"}`` splits of ``per_photo`` square patches of each photo in
    :data:`NATURAL_PHOTOS` (random position, side a fifth to a half of the photo's shorter side, resized to
    ``side``; RGB), labelled by photo; drawn from ``seed``."""
    from skimage import data

    rng = np.random.default_rng(seed)
    patches, labels = [], []
    for label, name in enumerate(NATURAL_PHOTOS):
        photo = getattr(data, name)()
        photo = np.repeat(photo[..., None], 3, -1) if photo.ndim == 2 else photo[..., :3]
        short = min(photo.shape[:2])
        for _ in range(per_photo):
            size = int(rng.integers(short // 5, short // 2 + 1))
            top = int(rng.integers(0, photo.shape[0] - size + 1))
            left = int(rng.integers(0, photo.shape[1] - size + 1))
            crop = Image.fromarray(np.ascontiguousarray(photo[top:top + size, left:left + size]))
            patches.append(np.asarray(crop.resize((side, side), Image.Resampling.BILINEAR)))
            labels.append(label)
    index = np.arange(len(labels)) % per_photo
    bounds = np.cumsum(fractions) * per_photo
    which = np.searchsorted(bounds, index, side="right")
    images, labels = np.stack(patches), np.asarray(labels)
    return {name: array_split(f"natural_patches:{name}", images[which == k], labels[which == k], NATURAL_PHOTOS)
            for k, name in enumerate(("train", "validation", "test"))}
