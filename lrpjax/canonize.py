"""Canonization: batch norm merged into the convolution before it, so LRP sees one affine layer.

For ``y = scale * (conv(x) + b - mean) / sqrt(var + eps) + beta``, the merged conv has
``kernel * c`` and ``(b - mean) * c + beta`` with ``c = scale / sqrt(var + eps)``,
the same function of ``x`` (Zennit's ``SequentialMergeBatchNorm``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from lrpjax.models.vgg import LayerSpec

BATCH_NORM_EPSILON = 1e-5


def merge_batch_norm(
    chain: Sequence[LayerSpec], variables: Mapping[str, Any], epsilon: float = BATCH_NORM_EPSILON
) -> tuple[tuple[LayerSpec, ...], tuple[dict[str, jax.Array], ...]]:
    """The chain without its batch-norm layers, and each remaining layer's parameters (``{}`` if none).

    Raises:
      ValueError: a batch norm that does not follow a conv, or a layer whose parameters are missing.
    """
    params = variables.get("params", {})
    stats = variables.get("batch_stats", {})
    merged_chain: list[LayerSpec] = []
    merged_params: list[dict[str, jax.Array]] = []
    for spec in chain:
        if spec.kind == "batchnorm":
            if not merged_chain or merged_chain[-1].kind != "conv":
                raise ValueError(f"batch norm {spec.name!r} must follow a conv layer")
            bn = {**_required(params, spec.name), **_required(stats, spec.name)}
            conv = merged_params[-1]
            factor = bn["scale"] / jnp.sqrt(bn["var"] + epsilon)
            merged_params[-1] = {
                "kernel": conv["kernel"] * factor,
                "bias": (conv["bias"] - bn["mean"]) * factor + bn["bias"],
            }
            continue
        merged_chain.append(spec)
        merged_params.append(dict(_required(params, spec.name)) if spec.kind in ("conv", "dense") else {})
    return tuple(merged_chain), tuple(merged_params)


def _required(tree: Mapping[str, Any], name: str) -> Mapping[str, jax.Array]:
    if name not in tree:
        raise ValueError(f"variables have no entry for layer {name!r} (found {sorted(tree)})")
    return tree[name]
