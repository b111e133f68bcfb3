"""The LRP engine: a forward pass that keeps each node's input, then one loop backwards over the nodes.

For one image, ``forward`` walks the model's graph (batch norms merged into their convs)
and keeps every node's input ``x`` and output ``z``; ``backward`` starts from the
output relevance, walks the nodes in reverse order, applies each node's rule and sums
the relevance that comes back to a node from all its consumers (a residual block's
input gets its share from the block and from the shortcut). That single-image
function is vmapped over the batch and jit-compiled once per (graph, composites,
flags); jax then compiles once per input shape and dtype. Several composites share
one forward pass. A VGG is a graph without branches, so its loop is the plain chain.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lrpjax.core import layers as L
from lrpjax.core import targets as targets_lib
from lrpjax.core.canonize import merge_batch_norm, merged_graph
from lrpjax.core.composites import Composite
from lrpjax.core.finite import require_finite_rows
from lrpjax.core.models.graph import (
    INPUT,
    LINEAR_KINDS,
    LayerSpec,
    apply_affine,
    apply_parameter_free,
    consumers,
    node_inputs,
)
from lrpjax.core.rules import Gradient, Layer, Pass, Rule

Array = jax.Array
Model = Any
"""A network module with ``layers`` (its graph), ``input_spec`` and ``num_classes``: a VGG or a ResNet."""


class Explanation(NamedTuple):
    """What :func:`explain_full` returns.

    Attributes:
      relevance: ``[B, H, W, C]`` per composite (a tuple when several composites were given).
      logits: ``[B, num_classes]`` of the explained (canonized) model.
      layers: per composite, a dict layer name -> relevance at that layer's input (empty unless asked; an
        ``add`` node's is ``[B, K, ...]``, one slice per summand).
      targets: ``[B]`` the class each image was explained for: the given class, the predicted class (for
        ``"predicted"`` and ``"contrast"``), or the class with the largest output relevance (for a function
        of the logits or a given ``output_relevance``).
      output_relevance: ``[B, num_classes]`` the relevance the backward pass started from.
    """

    relevance: Any
    logits: Array
    layers: Any
    targets: Array
    output_relevance: Array


def _linear_view(spec: LayerSpec):
    """The linear map a rule sees: the affine layer itself, a pool's averaging, or the residual sum."""
    if spec.kind in LINEAR_KINDS:
        return functools.partial(_affine_apply, spec=spec)
    if spec.kind == "maxpool":
        return lambda x, params: L.avg_pool(x, spec.pool)
    if spec.kind == "avgpool":
        return lambda x, params: L.adaptive_avg_pool(x, spec.size)
    if spec.kind == "add":
        return lambda x, params: L.add(x)
    return lambda x, params: x


def _affine_apply(x, params, *, spec):
    return apply_affine(spec, x, params)


def forward(chain: Sequence[LayerSpec], params: Sequence[dict], image: Array):
    """Logits of one image ``[H, W, C]``, with every node's input and output (batch axis of one; an ``add``
    node's input is its summands stacked on a leading axis)."""
    values = {INPUT: image[None]}
    inputs, outputs = [], []
    for spec, p, sources in zip(chain, params, node_inputs(chain)):
        x = values[sources[0]] if len(sources) == 1 else jnp.stack([values[name] for name in sources])
        inputs.append(x)
        values[spec.name] = apply_affine(spec, x, p) if spec.kind in LINEAR_KINDS else apply_parameter_free(spec, x)
        outputs.append(values[spec.name])
    return values[chain[-1].name][0], inputs, outputs


KEEPS_SIGN = ("maxpool", "avgpool", "flatten", "dropout", "add")


def known_facts(chain: Sequence[LayerSpec], rules: Sequence[Rule | None]) -> list[tuple[bool, bool]]:
    """For each node, what the rules may assume: (input is non-negative, relevance at the output is
    zero wherever the output is <= 0).

    The first holds after a ReLU (through pools, flatten, dropout, and sums of such inputs), for every
    input of the node. The second holds for a node read only by ReLUs under Pass whose relevance comes
    back, on every path, from rules that multiply by their input, possibly through flatten, dropout and
    winner-take-all max pools (which route relevance only to their winners, positive where the window's
    output is). A fact holds at a node only if it holds on every path through it.
    """
    rule_of = {spec.name: rule for spec, rule in zip(chain, rules)}
    kind_of = {spec.name: spec.kind for spec in chain}
    users = consumers(chain)
    nonnegative, facts = {INPUT: False}, []
    for spec, sources in zip(chain, node_inputs(chain)):
        nonnegative_input = all(nonnegative[name] for name in sources)
        facts.append((nonnegative_input, _zero_off_positive(spec.name, users, kind_of, rule_of)))
        nonnegative[spec.name] = spec.kind == "relu" or (nonnegative_input and spec.kind in KEEPS_SIGN)
    return facts


def _zero_off_positive(name: str, users, kind_of, rule_of) -> bool:
    relus = users[name]
    return bool(relus) and all(kind_of[r] == "relu" and isinstance(rule_of[r], Pass)
                               and _zero_where_input_is(r, users, kind_of, rule_of) for r in relus)


def _zero_where_input_is(name: str, users, kind_of, rule_of) -> bool:
    """Whether the relevance reaching ``name``'s output is zero wherever that output is zero."""
    def carries(user: str) -> bool:
        rule, kind = rule_of[user], kind_of[user]
        if rule is not None and rule.multiplies_input:
            return True
        passes = kind == "flatten" or (kind == "dropout" and isinstance(rule, Pass)) or (
            kind == "maxpool" and isinstance(rule, Gradient))
        return passes and _zero_where_input_is(user, users, kind_of, rule_of)

    return bool(users[name]) and all(carries(user) for user in users[name])


def backward(chain, params, rules, inputs, outputs, relevance, keep_layers: bool):
    """Relevance at the input of the graph from ``relevance`` at its output: one rule per node, in reverse,
    each node's relevance the sum of what its consumers send back."""
    per_layer = {}
    facts = known_facts(chain, rules)
    arriving = {chain[-1].name: relevance}
    for spec, p, rule, x, z, sources, (nonnegative, positive_only) in reversed(
            list(zip(chain, params, rules, inputs, outputs, node_inputs(chain), facts))):
        relevance = arriving.pop(spec.name)
        if spec.kind == "flatten":
            relevance = relevance.reshape(x.shape)
        else:
            layer = Layer(spec.kind, spec.name, _linear_view(spec), p, nonnegative, positive_only, spec.pool)
            if spec.kind == "maxpool":
                z = layer.apply(x, p)  # rules read a max pool through its proportional (average) view
            relevance = rule(layer, x, z, relevance)
        if keep_layers:
            per_layer[spec.name] = relevance[0] if spec.kind != "add" else relevance[:, 0]
        for source, share in zip(sources, relevance if spec.kind == "add" else (relevance,)):
            arriving[source] = arriving[source] + share if source in arriving else share
    return arriving[INPUT][0], per_layer


@functools.lru_cache(maxsize=64)
def _compiled(chain: tuple[LayerSpec, ...], composites: tuple[Composite, ...], mode: str | Callable,
              keep_layers: bool):
    """One jitted function per (graph, composites, target mode, flags); jax caches per shape/dtype inside.
    The forward pass and the backward pass are each vmapped over the batch; between them the target mode
    turns the batch's logits into the output relevance (:func:`lrpjax.core.targets.start`)."""
    rules_per_composite = [c.resolve(merged_graph(chain)) for c in composites]

    def batched(variables, images, given):
        variables = jax.tree.map(lambda a: jnp.asarray(a, images.dtype), variables)
        merged_chain, params = merge_batch_norm(chain, variables)
        logits, inputs, outputs = jax.vmap(lambda image: forward(merged_chain, params, image))(images)
        explained, relevance = targets_lib.start(mode, logits, given)

        def single(inputs, outputs, relevance):
            results = [backward(merged_chain, params, rules, inputs, outputs, relevance[None], keep_layers)
                       for rules in rules_per_composite]
            return tuple(r[0] for r in results), tuple(r[1] for r in results)

        maps, layers = jax.vmap(single)(inputs, outputs, relevance)
        return maps, logits, layers, explained, relevance

    return jax.jit(batched)


def explain_full(
    model: Model,
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
    images = check_images(model, images)
    given, mode = _start_relevance(model, images, targets, output_relevance)
    relevance, logits, layers, explained, start = _compiled(model.layers, composites, mode, return_layers)(
        variables, images, given)
    if isinstance(composite, Composite):
        return Explanation(relevance[0], logits, layers[0], explained, start)
    return Explanation(relevance, logits, layers, explained, start)


def explain(
    model: Model,
    variables: Any,
    images: Array,
    targets: Array | Sequence[int] | None,
    composite: Composite | Sequence[Composite],
    *,
    output_relevance: Array | None = None,
) -> Array:
    """Layer-wise relevance of ``images`` for ``targets`` under ``composite``.

    Args:
      model: a :class:`~lrpjax.core.models.VGG` or :class:`~lrpjax.core.models.ResNet` (anything with ``layers``,
        ``input_spec`` and ``num_classes``).
      variables: its variables (``{"params": ..., "batch_stats": ...}``); cast to the images' dtype.
      images: ``[B, H, W, C]`` floating point (float32 by default; float64 with ``jax_enable_x64`` for exact
        cross-checks; bfloat16 for speed on accelerators).
      targets: class index per image (relevance starts at that logit: ``R = logit`` at the target, 0
        elsewhere), or a mode computed from the logits inside the same compiled pass: ``"predicted"`` (the
        highest logit), ``"contrast"`` (the predicted class :math:`c` against the others' mean,
        :math:`R_c = z_c`, :math:`R_k = -z_k / (K - 1)`; Montavon et al. 2019, sec. 10.1;
        :func:`lrpjax.core.targets.contrast_relevance`) or a jit-traceable function of the logits ``[B, K]``
        returning the output relevance ``[B, K]`` (compiled once per function object: pass the same one
        again to reuse it).
      composite: a :class:`~lrpjax.core.composites.Composite`, or several (one forward pass, a tuple of results).
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
    >>> relevance = lrpjax.explain(model, variables, images, [0, 1, 1, 0], lrpjax.core.composites.get("epsilon"))
    >>> relevance.shape
    (4, 32, 32, 3)
    """
    return explain_full(model, variables, images, targets, composite, output_relevance=output_relevance).relevance


def check_images(model: Model, images: Any) -> Array:
    """``images`` as a jax array after the model's own input checks (rank, channels, dtype, size, at least one
    image) and a refusal of rows holding NaN or inf; raises ``ValueError`` naming what is at fault."""
    images = model.input_spec.check(images)
    require_finite_rows("images", images)
    return images


def _start_relevance(model: Model, images: Array, targets: Any, output_relevance: Any) -> tuple[Array, str]:
    """The array the compiled pass starts from, and how (a mode of :func:`lrpjax.core.targets.start`)."""
    batch = images.shape[0]
    if (targets is None) == (output_relevance is None):
        raise ValueError("give exactly one of targets (class per image, a target mode or a function of the "
                         "logits) and output_relevance ([B, num_classes])")
    if output_relevance is not None:
        require_finite_rows("output_relevance", output_relevance)
        output_relevance = jnp.asarray(output_relevance, images.dtype)
        if output_relevance.shape != (batch, model.num_classes):
            raise ValueError(f"output_relevance must be [{batch}, {model.num_classes}], "
                             f"got {tuple(output_relevance.shape)}")
        return output_relevance, "given"
    if isinstance(targets, str) or callable(targets):
        if not callable(targets) and targets not in targets_lib.MODES:
            raise ValueError(f"targets={targets!r} is unknown: give class indices, "
                             f"{' or '.join(map(repr, targets_lib.MODES))}, or a function of the logits")
        if targets == "contrast" and model.num_classes < 2:
            raise ValueError(f"targets='contrast' needs at least 2 classes, the model has {model.num_classes}")
        return jnp.zeros((batch, model.num_classes), images.dtype), targets
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
    return jnp.asarray(targets), "target_logit"


def sum_channels(relevance: Array) -> Array:
    """``[B, H, W, C]`` -> ``[B, H, W]``: a heatmap per image."""
    return jnp.sum(relevance, axis=-1)
