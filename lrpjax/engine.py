"""The LRP engine: a forward pass that keeps each layer's input, then one loop backwards over the layers.

For one image, ``forward`` walks the model's chain (batch norm merged into its conv)
and keeps every layer's input ``x`` and output ``z``; ``backward`` starts from the
output relevance and applies each layer's rule in reverse. That single-image
function is vmapped over the batch and jit-compiled once per (chain, composites,
flags); jax then compiles once per input shape and dtype. Several composites share
one forward pass.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lrpjax import layers as L
from lrpjax.canonize import merge_batch_norm
from lrpjax.composites import Composite
from lrpjax.finite import require_finite_rows
from lrpjax.models.vgg import VGG, LayerSpec, apply_parameter_free
from lrpjax.rules import Gradient, Layer, Pass, Rule

Array = jax.Array
MIN_SIZE = 32  # five 2x2 max pools


class Explanation(NamedTuple):
    """What :func:`explain_full` returns.

    Attributes:
      relevance: ``[B, H, W, C]`` per composite (a tuple when several composites were given).
      logits: ``[B, num_classes]`` of the explained (canonized) model.
      layers: per composite, a dict layer name -> relevance at that layer's input (empty unless asked).
    """

    relevance: Any
    logits: Array
    layers: Any


def _affine(x: Array, params: dict[str, Array], kind: str) -> Array:
    f = L.conv2d if kind == "conv" else L.dense
    return f(x, params["kernel"], params.get("bias"))


def _linear_view(spec: LayerSpec):
    """The linear map a rule sees: the affine layer itself, or a pool's averaging."""
    if spec.kind in ("conv", "dense"):
        return functools.partial(_affine_apply, kind=spec.kind)
    if spec.kind == "maxpool":
        return lambda x, params: L.avg_pool(x)
    if spec.kind == "avgpool":
        return lambda x, params: L.adaptive_avg_pool(x, spec.size)
    return lambda x, params: x


def _affine_apply(x, params, *, kind):
    return _affine(x, params, kind)


def forward(chain: Sequence[LayerSpec], params: Sequence[dict], image: Array):
    """Logits of one image ``[H, W, C]``, with every layer's input and output (batch axis of one)."""
    x = image[None]
    inputs, outputs = [], []
    for spec, p in zip(chain, params):
        inputs.append(x)
        x = _affine(x, p, spec.kind) if spec.kind in ("conv", "dense") else apply_parameter_free(spec, x)
        outputs.append(x)
    return x[0], inputs, outputs


KEEPS_SIGN = ("maxpool", "avgpool", "flatten", "dropout")


def known_facts(chain: Sequence[LayerSpec], rules: Sequence[Rule | None]) -> list[tuple[bool, bool]]:
    """For each layer, what the rules may assume: (input is non-negative, relevance at the output is
    zero wherever the output is <= 0).

    The first holds after a ReLU (through pools, flatten and dropout). The second holds for a layer
    followed by a ReLU under Pass whose relevance comes back from a rule that multiplies by its input,
    possibly through flatten, dropout and winner-take-all max pools (which route relevance only to
    their winners, positive where the window's output is).
    """
    nonnegative, facts = False, []
    for i, spec in enumerate(chain):
        facts.append((nonnegative, _zero_off_positive(chain, rules, i)))
        nonnegative = spec.kind == "relu" or (nonnegative and spec.kind in KEEPS_SIGN)
    return facts


def _zero_off_positive(chain, rules, index: int) -> bool:
    after = index + 1
    if after >= len(chain) or chain[after].kind != "relu" or not isinstance(rules[after], Pass):
        return False
    for spec, rule in zip(chain[after + 1:], rules[after + 1:]):
        if rule is not None and rule.multiplies_input:
            return True
        passes = spec.kind == "flatten" or (spec.kind == "dropout" and isinstance(rule, Pass)) or (
            spec.kind == "maxpool" and isinstance(rule, Gradient))
        if not passes:
            return False
    return False


def backward(chain, params, rules, inputs, outputs, relevance, keep_layers: bool):
    """Relevance at the input of the chain from ``relevance`` at its output: one rule per layer, in reverse."""
    per_layer = {}
    facts = known_facts(chain, rules)
    for spec, p, rule, x, z, (nonnegative, positive_only) in reversed(
            list(zip(chain, params, rules, inputs, outputs, facts))):
        if spec.kind == "flatten":
            relevance = relevance.reshape(x.shape)
        else:
            layer = Layer(spec.kind, spec.name, _linear_view(spec), p, nonnegative, positive_only)
            if spec.kind == "maxpool":
                z = layer.apply(x, p)  # rules read a max pool through its proportional (average) view
            relevance = rule(layer, x, z, relevance)
        if keep_layers:
            per_layer[spec.name] = relevance[0]
    return relevance[0], per_layer


@functools.lru_cache(maxsize=64)
def _compiled(chain: tuple[LayerSpec, ...], composites: tuple[Composite, ...], start: str, keep_layers: bool):
    """One jitted, vmapped function per (chain, composites, flags); jax caches per shape/dtype inside."""
    rules_per_composite = [c.resolve([s for s in chain if s.kind != "batchnorm"]) for c in composites]

    def single(variables, image, output_relevance):
        merged_chain, params = merge_batch_norm(chain, variables)
        logits, inputs, outputs = forward(merged_chain, params, image)
        if start == "predicted":
            output_relevance = jax.nn.one_hot(jnp.argmax(logits), logits.shape[-1], dtype=logits.dtype)
        relevance = output_relevance if start == "given" else output_relevance * logits
        results = [
            backward(merged_chain, params, rules, inputs, outputs, relevance[None], keep_layers)
            for rules in rules_per_composite
        ]
        return tuple(r[0] for r in results), logits, tuple(r[1] for r in results)

    def batched(variables, images, output_relevance):
        variables = jax.tree.map(lambda a: jnp.asarray(a, images.dtype), variables)
        return jax.vmap(single, in_axes=(None, 0, 0))(variables, images, output_relevance)

    return jax.jit(batched)


def explain_full(
    model: VGG,
    variables: Any,
    images: Array,
    targets: Array | Sequence[int] | None,
    composite: Composite | Sequence[Composite],
    *,
    output_relevance: Array | None = None,
    return_layers: bool = False,
) -> Explanation:
    """Relevance, logits and (optionally) per-layer relevance for a batch; see :func:`explain`."""
    composites = (composite,) if isinstance(composite, Composite) else tuple(composite)
    if not composites or not all(isinstance(c, Composite) for c in composites):
        raise TypeError(f"composite must be a lrpjax Composite or a sequence of them, got {composite!r}")
    images = _check_images(model, images)
    start, mode = _start_relevance(model, images, targets, output_relevance)
    fn = _compiled(model.layers, composites, mode, return_layers)
    relevance, logits, layers = fn(variables, images, start)
    if isinstance(composite, Composite):
        return Explanation(relevance[0], logits, layers[0])
    return Explanation(relevance, logits, layers)


def explain(
    model: VGG,
    variables: Any,
    images: Array,
    targets: Array | Sequence[int] | None,
    composite: Composite | Sequence[Composite],
    *,
    output_relevance: Array | None = None,
) -> Array:
    """Layer-wise relevance of ``images`` for ``targets`` under ``composite``.

    Args:
      model: a :class:`~lrpjax.models.VGG`.
      variables: its variables (``{"params": ..., "batch_stats": ...}``); cast to the images' dtype.
      images: ``[B, H, W, C]`` floating point (float32 by default; float64 with ``jax_enable_x64`` for exact
        cross-checks; bfloat16 for speed on accelerators).
      targets: class index per image, or ``"predicted"`` (each image's highest logit, found inside the same
        compiled pass); relevance starts at that logit (``R = logit`` at the target, 0 elsewhere).
      composite: a :class:`~lrpjax.composites.Composite`, or several (one forward pass, a tuple of results).
      output_relevance: instead of ``targets``, the relevance at the output, ``[B, num_classes]``
        (e.g. one-hot, as Zennit's attributors take).

    Returns:
      Relevance with the shape of ``images``.

    Raises:
      ValueError: wrong rank, channel count or dtype, an image too small (or of the wrong size for a model
        without adaptive pooling), targets out of range or of the wrong length, both or neither of
        ``targets`` and ``output_relevance``.

    >>> import jax, jax.numpy as jnp, lrpjax
    >>> model = lrpjax.vgg16(num_classes=2, width=1 / 16, pool_to=None, input_size=32)
    >>> variables = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
    >>> images = jax.random.normal(jax.random.key(1), (4, 32, 32, 3))
    >>> relevance = lrpjax.explain(model, variables, images, [0, 1, 1, 0], lrpjax.composites.get("epsilon"))
    >>> relevance.shape
    (4, 32, 32, 3)
    """
    return explain_full(model, variables, images, targets, composite, output_relevance=output_relevance).relevance


def _check_images(model: VGG, images: Any) -> Array:
    if not hasattr(images, "shape") or not hasattr(images, "dtype"):
        images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must be [batch, height, width, channels], got shape {tuple(images.shape)}")
    if not jnp.issubdtype(images.dtype, jnp.floating):
        raise ValueError(f"images must be floating point (preprocessed), got dtype {images.dtype}")
    if images.shape[0] == 0:
        raise ValueError(f"images holds 0 images (shape {tuple(images.shape)}); give at least one")
    require_finite_rows("images", images)
    channels = _input_channels(model)
    if images.shape[-1] != channels:
        raise ValueError(f"images have {images.shape[-1]} channels (NHWC, last axis); the model takes {channels}")
    height, width = images.shape[1:3]
    if min(height, width) < MIN_SIZE:
        raise ValueError(f"images of {height}x{width} are too small: VGG's five pools need at least "
                         f"{MIN_SIZE}x{MIN_SIZE}")
    if model.pool_to is None and (height, width) != (model.input_size, model.input_size):
        raise ValueError(f"images of {height}x{width}: this model (pool_to=None) takes exactly "
                         f"{model.input_size}x{model.input_size}")
    return jnp.asarray(images)


def _input_channels(model: VGG) -> int:
    return getattr(model, "in_channels", 3)


def _start_relevance(model: VGG, images: Array, targets: Any, output_relevance: Any) -> tuple[Array, str]:
    """The array the compiled pass starts from, and how: ``target_logit``, ``predicted`` or ``given``."""
    batch = images.shape[0]
    if (targets is None) == (output_relevance is None):
        raise ValueError("give exactly one of targets (class per image or 'predicted') and output_relevance "
                         "([B, num_classes])")
    if output_relevance is not None:
        require_finite_rows("output_relevance", output_relevance)
        output_relevance = jnp.asarray(output_relevance, images.dtype)
        if output_relevance.shape != (batch, model.num_classes):
            raise ValueError(f"output_relevance must be [{batch}, {model.num_classes}], "
                             f"got {tuple(output_relevance.shape)}")
        return output_relevance, "given"
    if isinstance(targets, str):
        if targets != "predicted":
            raise ValueError(f"targets={targets!r}: give class indices or 'predicted'")
        return jnp.zeros((batch, model.num_classes), images.dtype), "predicted"
    targets = np.asarray(targets)
    if targets.ndim == 0:
        targets = np.full((batch,), targets)
    if not np.issubdtype(targets.dtype, np.integer):
        raise ValueError(f"targets must be integer class indices, got dtype {targets.dtype}")
    if targets.shape != (batch,):
        raise ValueError(f"targets must have one class per image ({batch}), got shape {targets.shape}")
    bad = targets[(targets < 0) | (targets >= model.num_classes)]
    if bad.size:
        raise ValueError(f"targets {bad.tolist()} out of range for {model.num_classes} classes")
    return jax.nn.one_hot(targets, model.num_classes, dtype=images.dtype), "target_logit"


def sum_channels(relevance: Array) -> Array:
    """``[B, H, W, C]`` -> ``[B, H, W]``: a heatmap per image."""
    return jnp.sum(relevance, axis=-1)
