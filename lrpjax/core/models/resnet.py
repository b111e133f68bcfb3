"""Residual networks (He et al., 2016) as graphs of named nodes: ResNet-18 … 152 and the VGGFace2 ResNet-50.

:func:`resnet_layers` is the single description the Flax module and the LRP engine walk. Names are
torchvision's, so composites and converted state dicts address the same layers: ``conv1``, ``bn1``,
``relu``, ``maxpool``, ``layer1.0.conv1`` … ``layer4.2.bn3``, ``layer2.0.downsample.0`` (the projection
shortcut's conv) and ``.downsample.1`` (its batch norm), ``avgpool``, ``fc``. Each block ends in
``layerI.J.add`` (the residual sum, summands ``(shortcut, residual)`` as Zennit's ``ResNetCanonizer``
stacks them) and ``layerI.J.relu``; the ReLUs inside a block are ``relu1`` and ``relu2``.

Two layouts:

``torchvision``
    torchvision's ResNet (v1.5): a bottleneck's stride on its 3x3 conv, a 3x3/2 stem pool with padding 1,
    an adaptive (global) average pool, so any image of at least 32x32.
``vggface2``
    the Caffe layout of the VGGFace2 models (Cao et al., 2018) as the widely used PyTorch port
    (cydonia999/VGGFace2-pytorch, ``models/resnet.py``) has it: the stride on a bottleneck's first 1x1
    conv, a 3x3/2 stem pool without padding in ceil mode, and a 7x7 average pool, so exactly 224x224
    images (where layer4 is 7x7 and that pool is the global one). Its images are BGR, 0–255, minus the
    mean (91.4953, 103.8827, 131.0912), no std (:data:`lrpjax.io.preprocess.VGGFACE2`).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from lrpjax.core.models.graph import InputSpec, LayerSpec, check_graph, flax_node, walk

BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
BOTTLENECK_DEPTHS = (50, 101, 152)
STAGE_CHANNELS = (64, 128, 256, 512)
LAYOUTS = ("torchvision", "vggface2")
VGGFACE2_CLASSES = 8631
MIN_SIZE = 32  # five stride-2 stages


def _scaled(channels: int, width: float) -> int:
    return max(1, round(channels * width))


def _conv_bn(prefix: str, index: str, size: int, kernel: int, stride: int, inputs: tuple[str, ...] = ()):
    conv = LayerSpec("conv", f"{prefix}conv{index}", size, inputs, kernel=kernel, stride=stride,
                     padding=kernel // 2, bias=False)
    return [conv, LayerSpec("batchnorm", f"{prefix}bn{index}", size)]


def _block(prefix: str, block_in: str, in_channels: int, planes: int, stride: int, bottleneck: bool,
           layout: str) -> tuple[list[LayerSpec], int]:
    """One basic or bottleneck block reading ``block_in``; returns its nodes and output channels."""
    if bottleneck:
        out = planes * 4
        first_stride, middle_stride = (stride, 1) if layout == "vggface2" else (1, stride)
        nodes = _conv_bn(prefix, "1", planes, 1, first_stride, (block_in,))
        nodes += [LayerSpec("relu", f"{prefix}relu1"), *_conv_bn(prefix, "2", planes, 3, middle_stride)]
        nodes += [LayerSpec("relu", f"{prefix}relu2"), *_conv_bn(prefix, "3", out, 1, 1)]
    else:
        out = planes
        nodes = _conv_bn(prefix, "1", planes, 3, stride, (block_in,))
        nodes += [LayerSpec("relu", f"{prefix}relu1"), *_conv_bn(prefix, "2", planes, 3, 1)]
    residual, shortcut = nodes[-1].name, block_in
    if stride != 1 or in_channels != out:
        nodes += [
            LayerSpec("conv", f"{prefix}downsample.0", out, (block_in,), kernel=1, stride=stride, padding=0,
                      bias=False),
            LayerSpec("batchnorm", f"{prefix}downsample.1", out),
        ]
        shortcut = f"{prefix}downsample.1"
    nodes += [LayerSpec("add", f"{prefix}add", inputs=(shortcut, residual)), LayerSpec("relu", f"{prefix}relu")]
    return nodes, out


def resnet_layers(depth: int = 50, num_classes: int = 1000, *, width: float = 1.0,
                  layout: str = "torchvision") -> tuple[LayerSpec, ...]:
    """The graph of a ResNet-``depth`` (18, 34, 50, 101 or 152) with ``num_classes`` outputs.

    Raises:
      ValueError: unknown ``depth`` or ``layout``, or ``width <= 0``.
    """
    if depth not in BLOCKS:
        raise ValueError(f"depth={depth!r} is not a ResNet depth; choose one of {sorted(BLOCKS)}")
    if layout not in LAYOUTS:
        raise ValueError(f"layout={layout!r}; choose one of {LAYOUTS}")
    if width <= 0:
        raise ValueError(f"width={width!r} must be positive")
    stem = _scaled(64, width)
    pool = dict(kernel=3, stride=2, padding=0, ceil_mode=True) if layout == "vggface2" else dict(
        kernel=3, stride=2, padding=1)
    graph = [
        LayerSpec("conv", "conv1", stem, kernel=7, stride=2, padding=3, bias=False),
        LayerSpec("batchnorm", "bn1", stem),
        LayerSpec("relu", "relu"),
        LayerSpec("maxpool", "maxpool", **pool),
    ]
    channels, previous = stem, "maxpool"
    for stage, (repeat, planes) in enumerate(zip(BLOCKS[depth], STAGE_CHANNELS), start=1):
        for index in range(repeat):
            stride = 2 if stage > 1 and index == 0 else 1
            nodes, channels = _block(f"layer{stage}.{index}.", previous, channels, _scaled(planes, width), stride,
                                     depth in BOTTLENECK_DEPTHS, layout)
            graph += nodes
            previous = nodes[-1].name
    graph += [LayerSpec("avgpool", "avgpool", 1), LayerSpec("flatten", "flatten"),
              LayerSpec("dense", "fc", num_classes)]
    check_graph(graph)
    return tuple(graph)


class ResNet(nn.Module):
    """A ResNet classifier on NHWC images (see the module docstring for the layouts).

    Attributes:
      depth: 18, 34 (basic blocks), 50, 101 or 152 (bottleneck blocks).
      num_classes: outputs of ``fc``.
      width: multiplier on every channel count (e.g. 0.25 for CPU-scale runs; the topology is unchanged).
      layout: ``"torchvision"`` or ``"vggface2"``.
      input_size: the image side the network is built for (the only one the ``vggface2`` layout takes).
      dropout_rate: unused (ResNets have no dropout); kept so training configs need not special-case it.
    """

    depth: int = 50
    num_classes: int = 1000
    width: float = 1.0
    layout: str = "torchvision"
    input_size: int = 224
    dropout_rate: float = 0.0
    param_dtype: Any = jnp.float32

    @property
    def layers(self) -> tuple[LayerSpec, ...]:
        return resnet_layers(self.depth, self.num_classes, width=self.width, layout=self.layout)

    @property
    def input_spec(self) -> InputSpec:
        """3 channels, at least 32x32; exactly ``input_size`` in the ``vggface2`` layout (its 7x7 average pool)."""
        fixed = self.input_size if self.layout == "vggface2" else None
        return InputSpec(3, MIN_SIZE, "ResNet's five stride-2 stages", fixed,
                         "the VGGFace2 layout (7x7 average pool)")

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        return walk(self.layers, x, lambda spec, v: flax_node(
            spec, v, train=train, dropout_rate=self.dropout_rate, param_dtype=self.param_dtype))


def resnet18(num_classes: int = 1000, **kwargs: Any) -> ResNet:
    """ResNet-18 (basic blocks 2-2-2-2), torchvision's layout."""
    return ResNet(depth=18, num_classes=num_classes, **kwargs)


def resnet34(num_classes: int = 1000, **kwargs: Any) -> ResNet:
    """ResNet-34 (basic blocks 3-4-6-3), torchvision's layout."""
    return ResNet(depth=34, num_classes=num_classes, **kwargs)


def resnet50(num_classes: int = 1000, **kwargs: Any) -> ResNet:
    """ResNet-50 (bottlenecks 3-4-6-3), torchvision's layout unless ``layout="vggface2"``."""
    return ResNet(depth=50, num_classes=num_classes, **kwargs)


def resnet101(num_classes: int = 1000, **kwargs: Any) -> ResNet:
    """ResNet-101 (bottlenecks 3-4-23-3), torchvision's layout."""
    return ResNet(depth=101, num_classes=num_classes, **kwargs)


def resnet152(num_classes: int = 1000, **kwargs: Any) -> ResNet:
    """ResNet-152 (bottlenecks 3-8-36-3), torchvision's layout."""
    return ResNet(depth=152, num_classes=num_classes, **kwargs)


def vggface2_resnet50(num_classes: int = VGGFACE2_CLASSES, **kwargs: Any) -> ResNet:
    """The VGGFace2 ResNet-50 (8631 identities) in the layout of the PyTorch port of the VGGFace2 models."""
    return ResNet(depth=50, num_classes=num_classes, layout="vggface2", **kwargs)
