"""Where an explanation starts: the target modes of :func:`lrpjax.explain`, computed from the logits inside the
compiled pass.

A mode is ``"predicted"``, ``"contrast"``, a jit-traceable function of the logits ``[B, K] -> [B, K]``, or (from
the host) class indices or a given output relevance. :func:`start` turns the mode and the logits into the
explained classes ``[B]`` and the output relevance ``[B, K]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

MODES = ("predicted", "contrast")
"""The named target modes; class indices, a function of the logits and ``output_relevance`` are the others."""


def contrast_relevance(logits: Any) -> jax.Array:
    r"""Output relevance ``[B, K]`` explaining the predicted class :math:`c` against the others' mean:
    :math:`R_c = z_c`, :math:`R_k = -z_k / (K - 1)`, summing to :math:`z_c - \overline{z_{k \ne c}}` (for two
    classes the log-odds, which decides the probability). Traceable; keeps the logits' dtype.

    Reference: Montavon et al. (2019), "Layer-wise relevance propagation: an overview", sec. 10.1 (explaining
    a class against the competing classes).

    >>> contrast_relevance(jnp.array([[2.0, -1.0, 0.5]])).tolist()
    [[2.0, 0.5, -0.25]]
    """
    logits = jnp.asarray(logits)
    chosen = jax.nn.one_hot(jnp.argmax(logits, axis=-1), logits.shape[-1], dtype=bool)
    return jnp.where(chosen, logits, -logits / (logits.shape[-1] - 1))


def start(mode: str | Callable, logits: jax.Array, given: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(explained classes ``[B]``, output relevance ``[B, K]``) inside the compiled pass.

    ``mode`` is ``"target_logit"`` (``given`` holds class indices; :math:`R = z_t` at the target, 0 elsewhere),
    ``"given"`` (``given`` is the output relevance), ``"predicted"`` (:math:`R = z_c` at the highest logit
    :math:`c`), ``"contrast"`` (:func:`contrast_relevance`) or a function of the logits. The classes are the
    targets, the predicted class, or for a given relevance or a function the class with the largest output
    relevance.
    """
    classes = logits.shape[-1]
    if mode == "target_logit":
        return given, jax.nn.one_hot(given, classes, dtype=logits.dtype) * logits
    if mode in MODES:
        predicted = jnp.argmax(logits, axis=-1)
        if mode == "contrast":
            return predicted, contrast_relevance(logits)
        return predicted, jax.nn.one_hot(predicted, classes, dtype=logits.dtype) * logits
    relevance = given if mode == "given" else jnp.asarray(mode(logits))
    if relevance.shape != logits.shape:
        raise ValueError(f"targets={getattr(mode, '__name__', mode)!r} returned output relevance of shape "
                         f"{tuple(relevance.shape)}; it must be [B, K] = {tuple(logits.shape)}")
    return jnp.argmax(relevance, axis=-1), relevance.astype(logits.dtype)
