"""Reference VGGs in plain ``torch.nn`` (no torchvision) for the conversion tests.

:class:`TorchVGG` has torchvision's module layout, so its ``state_dict()`` keys are those of
``torchvision.models.vgg16()`` etc. (``features.N.*``, ``classifier.{0,3,6}.*``);
:class:`TorchVGGFace` has the layout of the VGG-Face port ``vgg_face_dag`` (``conv1_1`` …
``conv5_3``, ``fc6`` … ``fc8``; ``pool5`` is flattened directly, no adaptive pool).
"""

from __future__ import annotations

import math

import torch
from torch import nn

BLOCKS = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
BLOCK_CHANNELS = (64, 128, 256, 512, 512)
HIDDEN = 4096


def scaled(channels: int, width: float) -> int:
    """Channels of a width-scaled layer, rounded as ``lrpjax.core.models.VGG`` does."""
    return max(1, round(channels * width))


class TorchVGG(nn.Module):
    """torchvision's VGG: ``features`` (conv[/bn]/relu/maxpool), ``avgpool`` (7), ``classifier``."""

    def __init__(self, depth: int = 16, num_classes: int = 1000, *, batch_norm: bool = False,
                 width: float = 1.0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for repeat, out in zip(BLOCKS[depth], BLOCK_CHANNELS, strict=True):
            for _ in range(repeat):
                layers.append(nn.Conv2d(channels, scaled(out, width), kernel_size=3, padding=1))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(scaled(out, width)))
                layers.append(nn.ReLU(inplace=True))
                channels = scaled(out, width)
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        hidden = scaled(HIDDEN, width)
        self.classifier = nn.Sequential(
            nn.Linear(channels * 7 * 7, hidden), nn.ReLU(True), nn.Dropout(),
            nn.Linear(hidden, hidden), nn.ReLU(True), nn.Dropout(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


class TorchVGGFace(nn.Module):
    """VGG-Face (a VGG-16) with named layers and no adaptive pool: ``pool5`` of a 224 image is 7x7."""

    def __init__(self, num_classes: int = 2622, *, width: float = 1.0, input_size: int = 224) -> None:
        super().__init__()
        channels = 3
        for block, (repeat, out) in enumerate(zip(BLOCKS[16], BLOCK_CHANNELS, strict=True), start=1):
            for i in range(1, repeat + 1):
                setattr(self, f"conv{block}_{i}", nn.Conv2d(channels, scaled(out, width), 3, padding=1))
                channels = scaled(out, width)
        side = input_size // 32
        hidden = scaled(HIDDEN, width)
        self.fc6 = nn.Linear(channels * side * side, hidden)
        self.fc7 = nn.Linear(hidden, hidden)
        self.fc8 = nn.Linear(hidden, num_classes)
        self.dropout = nn.Dropout()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block, repeat in enumerate(BLOCKS[16], start=1):
            for i in range(1, repeat + 1):
                x = torch.relu(getattr(self, f"conv{block}_{i}")(x))
            x = nn.functional.max_pool2d(x, kernel_size=2, stride=2)
        x = torch.flatten(x, 1)
        x = self.dropout(torch.relu(self.fc6(x)))
        x = self.dropout(torch.relu(self.fc7(x)))
        return self.fc8(x)


@torch.no_grad()
def randomize_(module: nn.Module, seed: int = 0) -> nn.Module:
    """Fill ``module`` in place with seeded random weights, non-zero biases and BN statistics.

    Conv/linear weights are He-scaled (``std = sqrt(2 / fan_in)``) so activations keep their size
    through the network; biases are uniform in +-0.1 away from zero; BN scale, shift, running mean
    and running variance are random too. Returns ``module`` in eval mode.
    """
    generator = torch.Generator().manual_seed(seed)

    def normal(shape: torch.Size, std: float) -> torch.Tensor:
        return torch.randn(shape, generator=generator) * std

    def uniform(shape: torch.Size, low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(shape, generator=generator)

    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            fan_in = layer.weight[0].numel()
            layer.weight.copy_(normal(layer.weight.shape, math.sqrt(2.0 / fan_in)))
            sign = torch.where(uniform(layer.bias.shape, 0, 1) < 0.5, -1.0, 1.0)
            layer.bias.copy_(sign * uniform(layer.bias.shape, 0.01, 0.1))
        elif isinstance(layer, nn.BatchNorm2d):
            layer.weight.copy_(uniform(layer.weight.shape, 0.5, 1.5))
            layer.bias.copy_(normal(layer.bias.shape, 0.1))
            layer.running_mean.copy_(normal(layer.running_mean.shape, 0.1))
            layer.running_var.copy_(uniform(layer.running_var.shape, 0.5, 1.5))
            layer.num_batches_tracked.fill_(7)
    return module.eval()


def _built(make: type[nn.Module], seed: int, *args: object, **kwargs: object) -> nn.Module:
    """Construct without torch's (slow) default init, on the meta device, then randomise."""
    with torch.device("meta"):
        module = make(*args, **kwargs)
    return randomize_(module.to_empty(device="cpu"), seed)


def torch_vgg(depth: int = 16, num_classes: int = 1000, *, batch_norm: bool = False, width: float = 1.0,
              seed: int = 0) -> TorchVGG:
    """A randomised :class:`TorchVGG` in eval mode."""
    return _built(TorchVGG, seed, depth, num_classes, batch_norm=batch_norm, width=width)


def torch_vggface(num_classes: int = 2622, *, width: float = 1.0, input_size: int = 224,
                  seed: int = 0) -> TorchVGGFace:
    """A randomised :class:`TorchVGGFace` in eval mode."""
    return _built(TorchVGGFace, seed, num_classes, width=width, input_size=input_size)
