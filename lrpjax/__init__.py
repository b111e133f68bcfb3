"""lrpjax: layer-wise relevance propagation for Flax VGG and ResNet networks, hand-written and jit-compiled."""

from lrpjax import composites, rules, stabilizers
from lrpjax.composites import Composite
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

__all__ = [
    "Composite",
    "Explanation",
    "LayerSpec",
    "ResNet",
    "VGG",
    "composites",
    "explain",
    "explain_full",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnet_layers",
    "rules",
    "stabilizers",
    "sum_channels",
    "vgg11",
    "vgg13",
    "vgg16",
    "vgg19",
    "vgg_layers",
    "vggface2_resnet50",
]
