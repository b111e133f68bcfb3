"""lrpjax: layer-wise relevance propagation for Flax VGG and ResNet networks, hand-written and jit-compiled."""

from lrpjax import attribution, composites, rules, stabilizers
from lrpjax.attribution import gradient_x_input, integrated_gradients, occlusion, smoothgrad
from lrpjax.composites import Composite
from lrpjax.diagnostics import Conservation, conservation
from lrpjax.engine import Explanation, explain, explain_full, sum_channels
from lrpjax.models import (
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

_SUBMODULES = (
    "analysis", "batch", "canonize", "checkpoints", "cli", "crosscheck", "data", "demo", "engine", "finite",
    "gallery", "imagefiles", "imagelist", "layers", "models", "pngs", "prefetch", "preprocess", "progress",
    "sharded", "store", "targets", "train", "viz", "workdir",
)
"""Public submodules imported on first use (``lrpjax.checkpoints.load`` works after ``import lrpjax``; data,
training and the analyses pull in orbax, optax and tensorflow-datasets, which a plain ``explain`` does not need)."""


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
