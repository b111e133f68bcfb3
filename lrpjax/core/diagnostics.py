"""Conservation of relevance, node by node: how much of the output's relevance reaches each layer, and how
much each layer's biases and stabilisers (and non-conserving rules) absorb.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from lrpjax.core.canonize import merged_graph
from lrpjax.core.models.graph import consumers, node_inputs


class Conservation(NamedTuple):
    """Per node of the explained (batch-norm merged) graph, in forward order, per image.

    Attributes:
      layers: node names (the graph's names; the first node's input relevance is the heatmap's).
      kinds: node kinds.
      sums: ``[L, B]`` :math:`\\sum_i R_i^{(l)}`, the relevance at the node's input.
      output: ``[B]`` :math:`\\sum_k R_k^{(L)}`, the output relevance.
      ratio: ``[L, B]`` ``sums / output``.
      absorbed: ``[L, B]`` the share the node's rule did not pass on.
    """

    layers: tuple[str, ...]
    kinds: tuple[str, ...]
    sums: np.ndarray
    output: np.ndarray
    ratio: np.ndarray
    absorbed: np.ndarray

    def __str__(self) -> str:
        lines = [f"{'layer':14s} {'kind':8s} {'sum R / sum R_out':>30s} {'absorbed':>22s}",
                 f"{'':14s} {'':8s} {'mean [min, max]':>30s} {'mean [min, max]':>22s}"]
        for name, kind, ratio, absorbed in zip(self.layers, self.kinds, self.ratio, self.absorbed):
            lines.append(f"{name:14s} {kind:8s} {_spread(ratio):>30s} {_spread(absorbed):>22s}")
        return "\n".join(lines)


def _spread(values: np.ndarray) -> str:
    return f"{values.mean():.4g} [{values.min():.3g}, {values.max():.3g}]"


def conservation(explanation: Any, model: Any) -> Conservation | tuple[Conservation, ...]:
    r"""Where the relevance goes: per node :math:`l` of ``model``'s graph (batch norms merged into their convs),
    the relevance at its input against the output relevance, and the share it absorbs.

    .. math::

        \rho^{(l)} = \frac{\sum_i R_i^{(l)}}{\sum_k R_k^{(L)}}, \qquad
        a^{(l)} = \frac{\sum_j R_j^{(l+1)} - \sum_i R_i^{(l)}}{\sum_k R_k^{(L)}},

    where :math:`R^{(l+1)}` is the relevance at the node's output (summed over all the nodes that read it).
    A conserving rule has :math:`a^{(l)} = 0` (Bach et al. 2015, eq. 2; Montavon et al. 2019, sec. 10.2); at an
    affine layer under LRP-:math:`\epsilon` the biases :math:`b_j` and the stabiliser :math:`s_j` take
    :math:`a^{(l)} \sum_k R_k^{(L)} = \sum_j R_j^{(l+1)} (b_j + s_j) / (z_j + s_j)`; the first node's
    :math:`\rho` is the share the heatmap keeps.

    Args:
      explanation: :func:`lrpjax.explain_full`'s result with ``return_layers=True``.
      model: the model it explains (its graph names the nodes).

    Returns:
      A :class:`Conservation` table (one per composite when several were explained); ``print`` it to read it.

    Raises:
      ValueError: the explanation holds no layers.
    """
    several = not isinstance(explanation.layers, dict)
    layer_sets = explanation.layers if several else (explanation.layers,)
    output = np.asarray(explanation.output_relevance, np.float64).sum(axis=-1)
    tables = tuple(_table(merged_graph(model.layers), layers, output) for layers in layer_sets)
    return tables if several else tables[0]


def _table(graph, layers: dict, output: np.ndarray) -> Conservation:
    if not layers:
        raise ValueError("explanation has no layers: explain with explain_full(..., return_layers=True)")
    kind = {spec.name: spec.kind for spec in graph}
    sources = dict(zip(kind, node_inputs(graph)))
    users = consumers(graph)

    def summed(values: Any) -> np.ndarray:
        values = np.asarray(values, np.float64)
        return values.reshape(values.shape[0], -1).sum(axis=1)

    def sent(user: str, source: str) -> np.ndarray:  # what ``user`` passes back to ``source``
        if kind[user] != "add":
            return summed(layers[user])
        return summed(np.asarray(layers[user])[:, sources[user].index(source)])

    sums = np.stack([summed(layers[n]) for n in kind])
    arriving = np.stack([sum(sent(u, n) for u in users[n]) if users[n] else output for n in kind])
    return Conservation(tuple(kind), tuple(kind.values()), sums, output, sums / output, (arriving - sums) / output)
