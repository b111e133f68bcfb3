"""The VGG family (Simonyan & Zisserman, 2015) as one chain of named layers.

The chain (:func:`vgg_layers`) is the single description of the network: the Flax
module's ``__call__`` walks it to compute logits and the LRP engine walks it to
keep each layer's input and to propagate relevance back, so the model and its
explanation cannot disagree. Layer names follow the VGG literature: ``conv1_1`` …
``conv5_3``, ``pool1`` … ``pool5``, ``fc6``, ``fc7``, ``fc8``.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from lrpjax.core.models.graph import LINEAR_KINDS, InputSpec, LayerSpec, apply_parameter_free, flax_node, walk

__all__ = ["BLOCKS", "BLOCK_CHANNELS", "HIDDEN", "LINEAR_KINDS", "LayerSpec", "VGG", "apply_parameter_free",
           "vgg11", "vgg13", "vgg16", "vgg19", "vgg_layers"]

BLOCKS = {
    11: (1, 1, 2, 2, 2),
    13: (2, 2, 2, 2, 2),
    16: (2, 2, 3, 3, 3),
    19: (2, 2, 4, 4, 4),
}
BLOCK_CHANNELS = (64, 128, 256, 512, 512)
HIDDEN = 4096
MIN_SIZE = 32  # five 2x2 max pools


def vgg_layers(
    depth: int = 16,
    num_classes: int = 1000,
    *,
    batch_norm: bool = False,
    width: float = 1.0,
    pool_to: int | None = 7,
) -> tuple[LayerSpec, ...]:
    """The chain of a VGG-``depth`` network (11, 13, 16 or 19) with ``num_classes`` outputs."""
    if depth not in BLOCKS:
        raise ValueError(f"depth={depth!r} is not a VGG depth; choose one of {sorted(BLOCKS)}")
    if width <= 0:
        raise ValueError(f"width={width!r} must be positive")
    chain: list[LayerSpec] = []
    for block, (repeat, channels) in enumerate(zip(BLOCKS[depth], BLOCK_CHANNELS), start=1):
        for i in range(1, repeat + 1):
            chain.append(LayerSpec("conv", f"conv{block}_{i}", _scaled(channels, width)))
            if batch_norm:
                chain.append(LayerSpec("batchnorm", f"bn{block}_{i}", _scaled(channels, width)))
            chain.append(LayerSpec("relu", f"relu{block}_{i}"))
        chain.append(LayerSpec("maxpool", f"pool{block}", kernel=2, stride=2))
    if pool_to is not None:
        chain.append(LayerSpec("avgpool", "avgpool", pool_to))
    chain.append(LayerSpec("flatten", "flatten"))
    hidden = _scaled(HIDDEN, width)
    for index in (6, 7):
        chain += [
            LayerSpec("dense", f"fc{index}", hidden),
            LayerSpec("relu", f"relu{index}"),
            LayerSpec("dropout", f"drop{index}"),
        ]
    chain.append(LayerSpec("dense", "fc8", num_classes))
    return tuple(chain)


def _scaled(channels: int, width: float) -> int:
    return max(1, round(channels * width))


class VGG(nn.Module):
    """A VGG classifier on NHWC images.

    Attributes:
      depth: 11, 13, 16 or 19.
      num_classes: outputs of ``fc8``.
      batch_norm: a batch norm after every conv (torchvision's ``vgg16_bn``); LRP merges it into the conv.
      width: multiplier on every channel count and on the 4096 hidden units (e.g. 0.125 for CPU-scale runs).
      pool_to: side of torchvision's adaptive average pool before ``fc6`` (7), or ``None`` to flatten
        ``pool5`` directly (the VGG-Face layout); then images must be ``input_size`` square.
      input_size: the image side the network is built for (``fc6``'s input when ``pool_to`` is None).
      dropout_rate: dropout after ``fc6`` and ``fc7`` while training.
    """

    depth: int = 16
    num_classes: int = 1000
    batch_norm: bool = False
    width: float = 1.0
    pool_to: int | None = 7
    input_size: int = 224
    dropout_rate: float = 0.5
    param_dtype: Any = jnp.float32

    @property
    def layers(self) -> tuple[LayerSpec, ...]:
        return vgg_layers(
            self.depth, self.num_classes, batch_norm=self.batch_norm, width=self.width, pool_to=self.pool_to
        )

    @property
    def input_spec(self) -> InputSpec:
        """What images the model takes: 3 channels, at least 32x32, exactly ``input_size`` when ``pool_to=None``."""
        fixed = self.input_size if self.pool_to is None else None
        return InputSpec(3, MIN_SIZE, "VGG's five pools", fixed, "this model (pool_to=None)")

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        return walk(self.layers, x, lambda spec, v: flax_node(
            spec, v, train=train, dropout_rate=self.dropout_rate, param_dtype=self.param_dtype))


def vgg11(num_classes: int = 1000, **kwargs: Any) -> VGG:
    """VGG-11 (configuration A)."""
    return VGG(depth=11, num_classes=num_classes, **kwargs)


def vgg13(num_classes: int = 1000, **kwargs: Any) -> VGG:
    """VGG-13 (configuration B)."""
    return VGG(depth=13, num_classes=num_classes, **kwargs)


def vgg16(num_classes: int = 1000, **kwargs: Any) -> VGG:
    """VGG-16 (configuration D), the network of the study."""
    return VGG(depth=16, num_classes=num_classes, **kwargs)


def vgg19(num_classes: int = 1000, **kwargs: Any) -> VGG:
    """VGG-19 (configuration E)."""
    return VGG(depth=19, num_classes=num_classes, **kwargs)
