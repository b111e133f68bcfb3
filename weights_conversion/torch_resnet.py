"""The torch reference ResNet beside the converter: a plain ``torch.nn`` twin of an lrpjax ResNet, its state dict
from lrpjax variables, and exact batch-norm folding for Zennit.

:class:`TorchResNet` has torchvision's module layout and key names (``conv1``, ``bn1``, ``layerI.J.*``,
``fc``) in two layouts: torchvision's (a bottleneck's stride on its 3x3 conv, stem pool 3x3/2 padding 1,
adaptive average pool) and the VGGFace2 port's (cydonia999/VGGFace2-pytorch: the stride on the first
1x1 conv, stem pool 3x3/2 without padding in ceil mode, ``AvgPool2d(7, stride=1)``), so the original weights
file loads into it unchanged.

Zennit's ``ResNetCanonizer`` finds blocks with ``isinstance(module, torchvision.models.resnet.Bottleneck)``
(resp. ``BasicBlock``), so the block classes here derive from whatever that module holds after
:func:`~weights_conversion.zennit_modules.import_zennit` (the placeholder classes where torchvision is absent).
Modules are registered in forward order (conv before its batch norm), as Zennit's ``SequentialMergeBatchNorm`` needs.
Importing this module imports torch and Zennit; nothing in ``import lrpjax`` imports it.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from lrpjax.core.models import ResNet
from lrpjax.core.models.resnet import BLOCKS, BOTTLENECK_DEPTHS, STAGE_CHANNELS
from weights_conversion.resnet import resnet_entries
from weights_conversion.torch_model import state_dict_of
from weights_conversion.zennit_modules import import_zennit

import_zennit()
_TORCHVISION_RESNET = sys.modules["torchvision.models.resnet"]


def scaled(channels: int, width: float) -> int:
    """Channels of a width-scaled layer, rounded as ``lrpjax.core.models.ResNet`` does."""
    return max(1, round(channels * width))


class BasicBlock(_TORCHVISION_RESNET.BasicBlock):
    """torchvision's basic block: two 3x3 convs, the stride on the first."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 layout: str = "torchvision") -> None:
        nn.Module.__init__(self)
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(out + identity)


class Bottleneck(_TORCHVISION_RESNET.Bottleneck):
    """A bottleneck block: 1x1, 3x3, 1x1 (x4); the stride on the 3x3 (torchvision) or the first 1x1 (VGGFace2)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 layout: str = "torchvision") -> None:
        nn.Module.__init__(self)
        first, middle = (stride, 1) if layout == "vggface2" else (1, stride)
        self.conv1 = nn.Conv2d(inplanes, planes, 1, first, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, middle, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class TorchResNet(nn.Module):
    """A ResNet-``depth`` with torchvision's names, in the ``torchvision`` or ``vggface2`` layout."""

    def __init__(self, depth: int = 50, num_classes: int = 1000, *, width: float = 1.0,
                 layout: str = "torchvision") -> None:
        super().__init__()
        block = Bottleneck if depth in BOTTLENECK_DEPTHS else BasicBlock
        stem = scaled(64, width)
        self.conv1 = nn.Conv2d(3, stem, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU()
        self.maxpool = (nn.MaxPool2d(3, 2, 0, ceil_mode=True) if layout == "vggface2" else nn.MaxPool2d(3, 2, 1))
        inplanes = stem
        for stage, (repeat, planes) in enumerate(zip(BLOCKS[depth], STAGE_CHANNELS), start=1):
            planes, blocks = scaled(planes, width), []
            for index in range(repeat):
                stride = 2 if stage > 1 and index == 0 else 1
                downsample = None
                if stride != 1 or inplanes != planes * block.expansion:
                    downsample = nn.Sequential(nn.Conv2d(inplanes, planes * block.expansion, 1, stride, bias=False),
                                               nn.BatchNorm2d(planes * block.expansion))
                blocks.append(block(inplanes, planes, stride, downsample, layout))
                inplanes = planes * block.expansion
            setattr(self, f"layer{stage}", nn.Sequential(*blocks))
        self.avgpool = nn.AvgPool2d(7, stride=1) if layout == "vggface2" else nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(inplanes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def torch_resnet_for(model: ResNet, variables: Mapping[str, Any], state_dict: Mapping[str, Any] | None
                     ) -> TorchResNet:
    """The torch twin of ``model`` (eval mode, float32), loaded from the original ``state_dict`` (so the conversion
    is checked too) or, for a checkpoint directory, from ``variables`` (the conversion run backwards)."""
    net = TorchResNet(model.depth, model.num_classes, width=model.width, layout=model.layout)
    source = state_dict if state_dict is not None else state_dict_of(resnet_entries(model), variables)
    tensors = {key: torch.as_tensor(value) for key, value in source.items()}  # the VGGFace2 pickle holds numpy
    missing, unexpected = net.load_state_dict(tensors, strict=False)
    missing = [key for key in missing if not key.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(f"the torch ResNet does not take the weights: missing {missing}, unexpected {unexpected}")
    return net.float().eval()


def fold_batch_norm(net: nn.Module) -> nn.Module:
    """A copy (in ``net``'s dtype) with each batch norm merged exactly into the conv before it and left as an exact
    identity (``eps = 0``). Zennit's own ``SequentialMergeBatchNorm`` keeps ``eps`` in the emptied batch norm, which
    then computes ``x / sqrt(1 + eps)``: ~1e-5 off an exact merge. On this copy its ``ResNetCanonizer`` changes
    nothing numerically and still installs the ``Sum`` of every block."""
    net = copy.deepcopy(net)
    leaves = [m for m in net.modules() if not list(m.children())]
    with torch.no_grad():
        for conv, bn in zip(leaves, leaves[1:]):
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                factor = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                bias = torch.zeros_like(bn.bias) if conv.bias is None else conv.bias
                conv.weight.mul_(factor[:, None, None, None])
                conv.bias = nn.Parameter((bias - bn.running_mean) * factor + bn.bias)
                bn.weight.fill_(1), bn.bias.zero_(), bn.running_mean.zero_(), bn.running_var.fill_(1)
                bn.eps = 0.0
    return net.eval()
