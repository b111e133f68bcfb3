"""Flax models: the VGG family and the ResNet family, each a graph of named nodes."""

from lrpjax.core.models.graph import InputSpec, LayerSpec
from lrpjax.core.models.resnet import (
    ResNet,
    resnet18,
    resnet34,
    resnet50,
    resnet101,
    resnet152,
    resnet_layers,
    vggface2_resnet50,
)
from lrpjax.core.models.vgg import VGG, vgg11, vgg13, vgg16, vgg19, vgg_layers

__all__ = ["VGG", "InputSpec", "LayerSpec", "ResNet", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
           "resnet_layers", "vgg11", "vgg13", "vgg16", "vgg19", "vgg_layers", "vggface2_resnet50"]
