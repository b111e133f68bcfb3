"""lrpjax: layer-wise relevance propagation for Flax VGG and ResNet networks, hand-written and jit-compiled.

The package has four parts, each importing only the ones listed before it:

- :mod:`lrpjax.core`: models, layer functions, rules, stabilisers, composites, canonization, the engine;
- :mod:`lrpjax.io`: checkpoints, image files, preprocessing, heatmap rendering (and :mod:`lrpjax.data`, the
  training data sets);
- :mod:`lrpjax.analysis`: the study's measures (masking, generalization, similarity, regions, human judgments);
- :mod:`lrpjax.jobs`: the explain job, training, the Zennit cross-check, the demo and the ``lrpjax`` command.
"""

from lrpjax.core import attribution, composites, rules, stabilizers
from lrpjax.core.attribution import gradient_x_input, integrated_gradients, occlusion, smoothgrad
from lrpjax.core.composites import Composite
from lrpjax.core.diagnostics import Conservation, conservation
from lrpjax.core.engine import Explanation, explain, explain_full, sum_channels
from lrpjax.core.models import (
    VGG,
    LayerSpec,
    ResNet,
    resnet18,
    resnet34,
    resnet50,
    resnet101,
    resnet152,
    resnet_layers,
    vgg11,
    vgg13,
    vgg16,
    vgg19,
    vgg_layers,
    vggface2_resnet50,
)

__version__ = "0.1.0"

PUBLIC_PATHS = (
    "canonize", "checkpoints", "composites", "imagefiles", "preprocess", "rules", "stabilizers", "train", "viz",
)
"""Modules the README names by a short path: ``lrpjax/<name>.py`` makes ``lrpjax.<name>`` the module itself
(``lrpjax.checkpoints`` is ``lrpjax.io.checkpoints``), so ``from lrpjax.rules import Epsilon`` and
``import lrpjax.checkpoints`` keep working wherever the module lives."""

_SUBMODULES = ("core", "io", "jobs", "analysis", "data", *PUBLIC_PATHS)
"""Imported on first use: ``lrpjax.checkpoints.load`` works after ``import lrpjax``, while data, training and the
analyses pull in orbax, optax and tensorflow-datasets, which a plain ``explain`` does not need."""


def __getattr__(name: str):  # PEP 562: lazy submodules
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"lrpjax.{name}")
    raise AttributeError(f"module 'lrpjax' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SUBMODULES))

__all__ = [
    "Composite",
    "Conservation",
    "Explanation",
    "LayerSpec",
    "ResNet",
    "VGG",
    "attribution",
    "composites",
    "conservation",
    "explain",
    "explain_full",
    "gradient_x_input",
    "integrated_gradients",
    "occlusion",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnet_layers",
    "rules",
    "smoothgrad",
    "stabilizers",
    "sum_channels",
    "vgg11",
    "vgg13",
    "vgg16",
    "vgg19",
    "vgg_layers",
    "vggface2_resnet50",
]
