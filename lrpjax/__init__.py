"""lrpjax: layer-wise relevance propagation for Flax VGG networks, hand-written and jit-compiled."""

from lrpjax import attribution, composites, rules, stabilizers
from lrpjax.attribution import gradient_x_input, integrated_gradients, smoothgrad
from lrpjax.composites import Composite
from lrpjax.engine import Explanation, explain, explain_full, sum_channels
from lrpjax.models import VGG, LayerSpec, vgg11, vgg13, vgg16, vgg19, vgg_layers

__version__ = "0.1.0"

__all__ = [
    "Composite",
    "Explanation",
    "LayerSpec",
    "VGG",
    "attribution",
    "composites",
    "explain",
    "explain_full",
    "gradient_x_input",
    "integrated_gradients",
    "rules",
    "smoothgrad",
    "stabilizers",
    "sum_channels",
    "vgg11",
    "vgg13",
    "vgg16",
    "vgg19",
    "vgg_layers",
]
