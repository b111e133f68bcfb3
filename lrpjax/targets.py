"""Output relevance for the common targets that are not a single class: the start of an explanation."""

from __future__ import annotations

import numpy as np


def contrast_relevance(logits: np.ndarray) -> np.ndarray:
    r"""Output relevance ``[B, K]`` explaining the predicted class :math:`c` against the others' mean:
    :math:`R_c = z_c`, :math:`R_k = -z_k / (K - 1)`, summing to :math:`z_c - \overline{z_{k \ne c}}` (for two
    classes the log-odds, which decides the probability).

    Reference: Montavon et al. (2019), "Layer-wise relevance propagation: an overview", sec. 10.1 (explaining
    a class against the competing classes).

    >>> contrast_relevance(np.array([[2.0, -1.0, 0.5]])).tolist()
    [[2.0, 0.5, -0.25]]
    """
    logits = np.asarray(logits, np.float32)
    chosen = np.eye(logits.shape[-1], dtype=bool)[logits.argmax(-1)]
    return np.where(chosen, logits, -logits / (logits.shape[-1] - 1)).astype(np.float32)
