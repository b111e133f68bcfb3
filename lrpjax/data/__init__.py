"""Face data for training and explaining: TFDS builders, named data sets and the input pipeline.

No TensorFlow is needed: data sets are built and read as array_record with tensorflow-datasets, images
are decoded with PIL in the pipeline. See :mod:`lrpjax.data.tasks` for the named data sets.
"""

from lrpjax.data.celeb_a import CelebA, celeb_a_split, prepare_celeb_a
from lrpjax.data.folders import FaceFolder, FaceFolderConfig, catalogue
from lrpjax.data.pipeline import (
    Batch,
    decode_image,
    eval_batches,
    prefetch,
    prefetch_to_device,
    prepare_example,
    train_batches,
)
from lrpjax.data.shipped import lfw_subset_splits, natural_patch_splits
from lrpjax.data.sources import (
    Split,
    array_split,
    open_split,
    prepare_folder,
    read_metadata,
)
from lrpjax.data.tasks import FACE_SETS, NAMES, DataPaths, open_named_split

__all__ = [
    "FACE_SETS",
    "NAMES",
    "Batch",
    "CelebA",
    "DataPaths",
    "FaceFolder",
    "FaceFolderConfig",
    "Split",
    "array_split",
    "catalogue",
    "celeb_a_split",
    "decode_image",
    "eval_batches",
    "lfw_subset_splits",
    "natural_patch_splits",
    "open_named_split",
    "open_split",
    "prefetch",
    "prefetch_to_device",
    "prepare_celeb_a",
    "prepare_example",
    "prepare_folder",
    "read_metadata",
    "train_batches",
]
