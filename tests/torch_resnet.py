"""Random reference ResNets in plain ``torch.nn`` for the ResNet parity and conversion tests.

The modules (:class:`weights_conversion.torch_resnet.TorchResNet`, torchvision's key names, torchvision's or the
VGGFace2 port's layout, block classes that Zennit's ``ResNetCanonizer`` recognises) live beside the converter,
where ``lrpjax crosscheck`` uses them too; here they get random weights far from the identity.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from weights_conversion.torch_resnet import BLOCKS, BasicBlock, Bottleneck, TorchResNet, scaled
from weights_conversion.torch_resnet import fold_batch_norm as _fold_batch_norm

__all__ = ["BLOCKS", "BasicBlock", "Bottleneck", "TorchResNet", "fold_batch_norm", "scaled", "torch_resnet"]


def torch_resnet(depth: int = 50, num_classes: int = 1000, *, width: float = 1.0, layout: str = "torchvision",
                 seed: int = 0, zero_biases: bool = False) -> TorchResNet:
    """A :class:`TorchResNet` with He-normal convs and batch norms that are far from the identity
    (scale U(0.5, 1.5), shift N(0, 0.1), mean N(0, 0.1), variance U(0.5, 1.5)) so canonization matters;
    ``zero_biases``: batch norms with zero shift and zero mean and a zero ``fc`` bias (every merged bias 0)."""
    torch.manual_seed(seed)
    net = TorchResNet(depth, num_classes, width=width, layout=layout)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.running_var.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.0 if zero_biases else 0.1)
                module.running_mean.normal_(0, 0.0 if zero_biases else 0.1)
            elif isinstance(module, nn.Linear):
                module.weight.normal_(0, 0.01)
                module.bias.normal_(0, 0.0 if zero_biases else 0.05)
    return net.eval()


def fold_batch_norm(net: nn.Module) -> nn.Module:
    """A float64 copy of ``net`` with every batch norm folded exactly into its conv
    (:func:`weights_conversion.torch_resnet.fold_batch_norm`)."""
    return _fold_batch_norm(copy.deepcopy(net).double())
