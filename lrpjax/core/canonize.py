"""Canonization: every batch norm merged into the convolution that feeds it, so LRP sees one affine layer.

For ``y = scale * (conv(x) + b - mean) / sqrt(var + eps) + beta``, the merged conv has
``kernel * c`` and ``(b - mean) * c + beta`` with ``c = scale / sqrt(var + eps)`` (``b = 0`` for a
conv without bias), the same function of ``x`` (Zennit's ``MergeBatchNorm``). The batch norm is found
by name anywhere in the graph (a VGG-BN's ``conv -> bn``, a ResNet's ``conv -> bn`` in blocks and
projection shortcuts); its consumers then read the conv. Conv and dense layers without a bias get a
zero one, so every rule sees ``kernel`` and ``bias``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from lrpjax.core.models.graph import INPUT, LINEAR_KINDS, LayerSpec, consumers, node_inputs

BATCH_NORM_EPSILON = 1e-5


def merged_graph(graph: Sequence[LayerSpec]) -> tuple[LayerSpec, ...]:
    """The graph without its batch-norm nodes, their consumers reading the conv before them instead.

    Raises:
      ValueError: a batch norm not fed by a conv, or fed by a conv that other nodes read too.
    """
    sources, users, kinds = node_inputs(graph), consumers(graph), {spec.name: spec.kind for spec in graph}
    feeds = {}
    for spec, inputs in zip(graph, sources):
        if spec.kind == "batchnorm":
            conv = inputs[0]
            if kinds.get(conv) != "conv" or users[conv] != [spec.name]:
                raise ValueError(f"batch norm {spec.name!r} must follow a conv layer that nothing else reads "
                                 f"(it reads {conv!r})")
            feeds[spec.name] = conv
    merged, previous = [], INPUT
    for spec, inputs in zip(graph, sources):
        if spec.kind == "batchnorm":
            continue
        inputs = tuple(feeds.get(name, name) for name in inputs)
        merged.append(spec._replace(inputs=() if inputs == (previous,) else inputs))
        previous = spec.name
    return tuple(merged)


def merge_batch_norm(
    chain: Sequence[LayerSpec], variables: Mapping[str, Any], epsilon: float = BATCH_NORM_EPSILON
) -> tuple[tuple[LayerSpec, ...], tuple[dict[str, jax.Array], ...]]:
    """The graph without its batch-norm nodes (:func:`merged_graph`), and each remaining node's parameters
    (``{}`` if none).

    Raises:
      ValueError: a batch norm that does not follow a conv, or a layer whose parameters are missing.
    """
    params = variables.get("params", {})
    stats = variables.get("batch_stats", {})
    merged = merged_graph(chain)
    by_name = {spec.name: dict(_required(params, spec.name)) for spec in merged if spec.kind in LINEAR_KINDS}
    for p in by_name.values():
        if "bias" not in p:
            p["bias"] = jnp.zeros(p["kernel"].shape[-1], p["kernel"].dtype)
    for spec, inputs in zip(chain, node_inputs(chain)):
        if spec.kind == "batchnorm":
            bn = {**_required(params, spec.name), **_required(stats, spec.name)}
            conv = by_name[inputs[0]]
            factor = bn["scale"] / jnp.sqrt(bn["var"] + epsilon)
            by_name[inputs[0]] = {
                "kernel": conv["kernel"] * factor,
                "bias": (conv["bias"] - bn["mean"]) * factor + bn["bias"],
            }
    return merged, tuple(by_name.get(spec.name, {}) for spec in merged)


def _required(tree: Mapping[str, Any], name: str) -> Mapping[str, jax.Array]:
    if name not in tree:
        raise ValueError(f"variables have no entry for layer {name!r} (found {sorted(tree)})")
    return tree[name]
