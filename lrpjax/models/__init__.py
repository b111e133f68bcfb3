"""Flax models: the VGG family."""

from lrpjax.models.vgg import VGG, LayerSpec, vgg11, vgg13, vgg16, vgg19, vgg_layers

__all__ = ["VGG", "LayerSpec", "vgg11", "vgg13", "vgg16", "vgg19", "vgg_layers"]
