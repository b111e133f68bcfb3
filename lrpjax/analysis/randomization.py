r"""Model parameter randomisation: cascading re-initialisation from the top, and the similarity of the maps.

Adebayo et al.'s sanity check: if the maps of a model barely change when its parameters are replaced by random
ones, they do not explain what the model learnt. The parametric layers are randomised cumulatively from the
output down (``fc8``, then ``fc7``, ..., ``conv1_1``): at step :math:`k` the top :math:`k` layers hold fresh
draws of the model's own initialisers (He normal over the fan-out for convs, :math:`\mathcal{N}(0, 0.01^2)` for
dense kernels, zero biases; drawn on the host with numpy, :func:`lrpjax.core.models.graph.draw_kernel`: jax's
partitionable threefry would make XLA:CPU compile each shape's draw for seconds), each layer's draw fixed by the
key's data and the layer's position (:func:`layer_seed`), so step :math:`k + 1` adds one layer to step :math:`k`. A
batch norm after a randomised conv is reset to its initial state too (scale 1, shift 0, running mean 0, variance 1:
the identity in inference mode, as in a freshly initialised network): the trained statistics describe activations of
the trained conv, and with a re-drawn conv they would rescale its outputs by arbitrary, learnt amounts.

Per step and image, the maps after randomisation are compared with the original ones by Spearman's
:math:`\rho` of the absolute heatmaps :math:`|\sum_c R_c|` and by SSIM of Adebayo et al.'s normalised maps
(:func:`lrpjax.analysis.similarity.ssim`).

Reference: Adebayo, Gilmer, Muelly, Goodfellow, Hardt, Kim 2018, *Sanity Checks for Saliency Maps*, NeurIPS,
https://arxiv.org/abs/1810.03292.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lrpjax.analysis import similarity
from lrpjax.core.models.graph import draw_kernel, node_inputs
from lrpjax.core.models.vgg import VGG

ExplainFn = Callable[[VGG, Any, Any, Any], Any]


def layer_order(model: VGG) -> list[str]:
    """The parametric (conv and dense) layers from the output down: ``["fc8", "fc7", "fc6", "conv5_3", ...]``.

    >>> import lrpjax
    >>> layer_order(lrpjax.vgg11(num_classes=2))[:5]
    ['fc8', 'fc7', 'fc6', 'conv5_2', 'conv5_1']
    """
    return [spec.name for spec in reversed(model.layers) if spec.kind in ("conv", "dense")]


def _batch_norm_of(model: VGG) -> dict[str, str]:
    """conv name -> the batch norm that reads it (in a ResNet too)."""
    kinds = {spec.name: spec.kind for spec in model.layers}
    return {sources[0]: spec.name for spec, sources in zip(model.layers, node_inputs(model.layers))
            if spec.kind == "batchnorm" and kinds.get(sources[0]) == "conv"}


def layer_seed(key: jax.Array, position: int) -> np.random.Generator:
    """The host generator of the layer at ``position`` in :func:`layer_order`: seeded by ``key``'s data and the
    position, so a layer's draw does not depend on how many layers a step randomises."""
    data = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    return np.random.default_rng([*np.asarray(data, np.uint32).ravel().tolist(), position])


def randomize_layers(model: VGG, variables: Any, count: int, *, key: jax.Array) -> dict[str, Any]:
    """``variables`` with the top ``count`` layers of :func:`layer_order` re-drawn from their initialisers (and the
    batch norms after them reset); the others, and ``variables`` itself, unchanged.

    Raises:
      ValueError: ``count`` outside ``[0, number of parametric layers]``.
    """
    order = layer_order(model)
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or not 0 <= count <= len(order):
        raise ValueError(f"count={count!r} must be an integer in [0, {len(order)}] (parametric layers)")
    params = dict(variables["params"])
    stats = dict(variables.get("batch_stats", {}))
    if count == 0:
        return {**variables, "params": params}
    kinds = {spec.name: spec.kind for spec in model.layers}
    batch_norm = _batch_norm_of(model)
    for position, name in enumerate(order[:count]):
        kernel = params[name]["kernel"]
        draw = jnp.asarray(draw_kernel(layer_seed(key, position), kinds[name], kernel.shape), kernel.dtype)
        params[name] = {field: draw if field == "kernel" else jnp.zeros_like(value)  # a ResNet's convs: no bias
                        for field, value in params[name].items()}
        if name in batch_norm:
            bn = batch_norm[name]
            params[bn] = {"scale": jnp.ones_like(params[bn]["scale"]), "bias": jnp.zeros_like(params[bn]["bias"])}
            stats[bn] = {"mean": jnp.zeros_like(stats[bn]["mean"]), "var": jnp.ones_like(stats[bn]["var"])}
    out = {**variables, "params": params}
    if "batch_stats" in variables:
        out["batch_stats"] = stats
    return out


class MPRT(NamedTuple):
    """Similarity of the maps after each cascading step to the original maps.

    Attributes:
      layers: the layer randomised last at each step (step ``k`` randomised ``layers[:k + 1]``).
      counts: ``[S]`` layers randomised at each step.
      spearman: ``[S, B]`` Spearman's rho of the absolute heatmaps.
      ssim: ``[S, B]`` SSIM of the normalised heatmaps.
    """

    layers: tuple[str, ...]
    counts: np.ndarray
    spearman: np.ndarray
    ssim: np.ndarray


def mprt(explain_fn: ExplainFn, model: VGG, variables: Any, images: Any, targets: Any, *, key: jax.Array,
         counts: Sequence[int] | None = None, maps: Any = None) -> MPRT:
    r"""The model parameter randomisation test of one explanation method.

    Args:
      explain_fn: ``(model, variables, images, targets) -> maps [B, H, W(, C)]``, e.g.
        ``lambda m, v, x, t: lrpjax.explain(m, v, x, t, composite)`` or :func:`lrpjax.gradient_x_input`.
      model, variables, images, targets: the trained model and what to explain (targets stay fixed).
      key: the random parameters (one draw per layer, shared by all steps).
      counts: how many top layers to randomise at each step (default: 1, 2, ..., all).
      maps: the original maps, if already computed (default: ``explain_fn`` with ``variables``).

    Returns:
      :class:`MPRT` with ``[S, B]`` Spearman and SSIM per step.

    Raises:
      ValueError: counts out of range or not increasing.
    """
    order = layer_order(model)
    counts = np.arange(1, len(order) + 1) if counts is None else np.asarray(counts)
    if counts.ndim != 1 or counts.size == 0 or counts.min() < 1 or counts.max() > len(order) \
            or np.any(np.diff(counts) <= 0):
        raise ValueError(f"counts={counts.tolist()} must increase within [1, {len(order)}]")
    original = explain_fn(model, variables, images, targets) if maps is None else maps
    spearman, structural = [], []
    for count in counts:
        randomized = explain_fn(model, randomize_layers(model, variables, int(count), key=key), images, targets)
        spearman.append(similarity.map_correlation(original, randomized, relevance_mode="absolute"))
        structural.append(similarity.ssim(original, randomized))
    return MPRT(tuple(order[c - 1] for c in counts), counts, np.stack(spearman), np.stack(structural))
