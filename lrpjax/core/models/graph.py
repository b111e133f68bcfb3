"""A network as a graph of named nodes: the one description the Flax modules and the LRP engine walk.

A graph is a tuple of :class:`LayerSpec` nodes in topological order (every node after the nodes
it reads); its last node is the output. A node names its inputs; an empty ``inputs`` means the
node listed just before it (the image, :data:`INPUT`, for the first), so a chain such as a VGG is
a graph without branches and without any input names. A ResNet adds ``add`` nodes (the residual
sums) with two inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lrpjax.core import layers as L

INPUT = "input"
"""The name by which nodes read the image."""

LINEAR_KINDS = ("conv", "dense")
KINDS = ("conv", "dense", "batchnorm", "relu", "maxpool", "avgpool", "flatten", "dropout", "add")


class LayerSpec(NamedTuple):
    """One node of a network graph.

    ``kind`` is one of ``conv``, ``batchnorm``, ``relu``, ``maxpool``, ``avgpool`` (torchvision's
    adaptive average pool; ``size=1`` is the global average pool), ``flatten``, ``dense``, ``dropout``,
    ``add`` (the sum of its inputs); ``size`` is the output channels/features of ``conv``/``dense``/
    ``batchnorm`` and the output side of ``avgpool``. ``inputs`` names the nodes it reads (``()``: the
    node before it). ``kernel``, ``stride``, ``padding`` (``None``: ``kernel // 2``, 'same') and
    ``bias`` configure a conv; ``kernel`` (the window), ``stride``, ``padding`` and ``ceil_mode`` a max
    pool (``padding=None`` is 0 there).
    """

    kind: str
    name: str
    size: int = 0
    inputs: tuple[str, ...] = ()
    kernel: int = 3
    stride: int = 1
    padding: int | None = None
    bias: bool = True
    ceil_mode: bool = False

    @property
    def pool(self) -> tuple[int, int, int, bool]:
        """A max pool's ``(window, stride, padding, ceil_mode)``."""
        return self.kernel, self.stride, self.padding or 0, self.ceil_mode


Graph = tuple[LayerSpec, ...]


class InputSpec(NamedTuple):
    """The images a model takes, checked at the boundary (:meth:`check`) before anything is compiled.

    ``channels`` on the last axis, each side at least ``min_size`` (``min_reason`` says why), and exactly
    ``fixed_size`` square when not None (``fixed_reason`` names the layout that needs it).
    """

    channels: int = 3
    min_size: int = 1
    min_reason: str = ""
    fixed_size: int | None = None
    fixed_reason: str = ""

    def check(self, images: Any) -> jax.Array:
        """``images`` as a jax array, or a ``ValueError`` naming the shape, channels, dtype or size at fault."""
        if not hasattr(images, "shape") or not hasattr(images, "dtype"):
            images = np.asarray(images)
        if images.ndim != 4:
            raise ValueError(f"images must be [batch, height, width, channels], got shape {tuple(images.shape)}")
        if not jnp.issubdtype(images.dtype, jnp.floating):
            raise ValueError(f"images must be floating point (preprocessed), got dtype {images.dtype}")
        if images.shape[0] == 0:
            raise ValueError(f"images holds 0 images (shape {tuple(images.shape)}); give at least one")
        if images.shape[-1] != self.channels:
            raise ValueError(f"images have {images.shape[-1]} channels (NHWC, last axis); the model takes "
                             f"{self.channels}")
        height, width = images.shape[1:3]
        if min(height, width) < self.min_size:
            raise ValueError(f"images of {height}x{width} are too small: {self.min_reason} need at least "
                             f"{self.min_size}x{self.min_size}")
        if self.fixed_size is not None and (height, width) != (self.fixed_size, self.fixed_size):
            raise ValueError(f"images of {height}x{width}: {self.fixed_reason} takes exactly "
                             f"{self.fixed_size}x{self.fixed_size}")
        return jnp.asarray(images)


def node_inputs(graph: Sequence[LayerSpec]) -> tuple[tuple[str, ...], ...]:
    """Each node's input names, the implicit "node before" made explicit."""
    previous, out = INPUT, []
    for spec in graph:
        out.append(tuple(spec.inputs) or (previous,))
        previous = spec.name
    return tuple(out)


def consumers(graph: Sequence[LayerSpec]) -> dict[str, list[str]]:
    """Node name (and :data:`INPUT`) -> the names of the nodes that read it."""
    users: dict[str, list[str]] = {INPUT: [], **{spec.name: [] for spec in graph}}
    for spec, sources in zip(graph, node_inputs(graph)):
        for source in sources:
            users[source].append(spec.name)
    return users


def check_graph(graph: Sequence[LayerSpec]) -> None:
    """Refuse a graph the engine cannot walk: unknown kinds, duplicate names, an input not yet computed,
    an ``add`` with fewer than two inputs, or a node whose output nobody reads.

    Raises:
      ValueError: naming the node and the problem.
    """
    seen = {INPUT}
    for spec, sources in zip(graph, node_inputs(graph)):
        if spec.kind not in KINDS:
            raise ValueError(f"node {spec.name!r} has unknown kind {spec.kind!r}; choose one of {KINDS}")
        if spec.name in seen:
            raise ValueError(f"node name {spec.name!r} is used twice")
        missing = [s for s in sources if s not in seen]
        if missing:
            raise ValueError(f"node {spec.name!r} reads {missing}, which no earlier node computes")
        if (spec.kind == "add") != (len(sources) > 1) or (spec.kind == "add" and len(sources) < 2):
            raise ValueError(f"node {spec.name!r} ({spec.kind}) has inputs {sources}; only add nodes, with two "
                             "or more inputs, may read several")
        seen.add(spec.name)
    unused = [name for name, users in consumers(graph).items() if not users and name != graph[-1].name]
    if unused:
        raise ValueError(f"the outputs of {unused} are never read; every node but the last must feed another")


def walk(graph: Sequence[LayerSpec], x: jax.Array, apply: Callable[[LayerSpec, jax.Array], jax.Array]) -> jax.Array:
    """The graph's output for input ``x``: ``apply(node, input)`` node by node in order, where an ``add``
    node's input is its inputs stacked on a new leading axis."""
    values = {INPUT: x}
    for spec, sources in zip(graph, node_inputs(graph)):
        args = [values[source] for source in sources]
        values[spec.name] = apply(spec, args[0] if len(args) == 1 else jnp.stack(args))
    return values[graph[-1].name]


def apply_parameter_free(spec: LayerSpec, x: jax.Array) -> jax.Array:
    """Forward of a node without parameters (dropout is the identity outside training)."""
    if spec.kind == "relu":
        return L.relu(x)
    if spec.kind == "maxpool":
        return L.max_pool(x, spec.pool)
    if spec.kind == "avgpool":
        return L.adaptive_avg_pool(x, spec.size)
    if spec.kind == "flatten":
        return L.flatten(x)
    if spec.kind == "dropout":
        return x
    if spec.kind == "add":
        return L.add(x)
    raise ValueError(f"layer {spec.name!r} has unknown kind {spec.kind!r}")


def apply_affine(spec: LayerSpec, x: jax.Array, params: Any) -> jax.Array:
    """Forward of a conv or dense node with its parameters (``bias`` may be absent)."""
    if spec.kind == "conv":
        return L.conv2d(x, params["kernel"], params.get("bias"), spec.stride, spec.padding)
    return L.dense(x, params["kernel"], params.get("bias"))


def kernel_initializer(kind: str):
    """The initialiser of a ``conv`` (He normal over the fan-out, torchvision's) or ``dense`` (N(0, 0.01^2)) kernel;
    biases start at 0."""
    if kind == "conv":
        return nn.initializers.variance_scaling(2.0, "fan_out", "normal")
    return nn.initializers.normal(0.01)


TRUNCATED_NORMAL_STD = 0.87962566103423978
"""Standard deviation of a standard normal truncated to [-2, 2] (flax's ``variance_scaling`` divides by it)."""


def draw_kernel(rng: np.random.Generator, kind: str, shape: Sequence[int]) -> np.ndarray:
    r"""A float64 draw of :func:`kernel_initializer`'s distribution on the host, with numpy.

    Conv kernels (HWIO): :math:`\sigma z` with :math:`z` a standard normal truncated to :math:`[-2, 2]` and
    :math:`\sigma = \sqrt{2 / (k_h k_w c_\text{out})} / 0.8796` (He et al. 2015 over the fan-out, as flax's
    ``variance_scaling(2, "fan_out", "normal")``); dense kernels :math:`\mathcal{N}(0, 0.01^2)`. jax's own draws
    (partitionable threefry) make XLA:CPU compile for seconds per shape; these cost milliseconds and depend only on
    ``rng``.

    Reference: He, Zhang, Ren, Sun 2015, *Delving Deep into Rectifiers*, ICCV, https://arxiv.org/abs/1502.01852.
    """
    shape = tuple(int(n) for n in shape)
    if kind != "conv":
        return 0.01 * rng.standard_normal(shape)
    z = rng.standard_normal(shape)
    while np.any(outside := np.abs(z) > 2):
        z[outside] = rng.standard_normal(int(outside.sum()))
    return np.sqrt(2.0 / (shape[0] * shape[1] * shape[3])) / TRUNCATED_NORMAL_STD * z


class Affine(nn.Module):
    """A conv or dense node whose parameters live under its name."""

    kind: str
    features: int
    param_dtype: Any = jnp.float32
    spec: LayerSpec | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        spec = self.spec or LayerSpec(self.kind, "", self.features)
        init = kernel_initializer(self.kind)
        if self.kind == "conv":
            shape = (spec.kernel, spec.kernel, x.shape[-1], self.features)
        else:
            shape = (x.shape[-1], self.features)
        params = {"kernel": self.param("kernel", init, shape, self.param_dtype).astype(x.dtype)}
        if spec.bias:
            params["bias"] = self.param("bias", nn.initializers.zeros, (self.features,), self.param_dtype)
            params["bias"] = params["bias"].astype(x.dtype)
        return apply_affine(spec, x, params)


def flax_node(spec: LayerSpec, x: jax.Array, *, train: bool, dropout_rate: float, param_dtype: Any) -> jax.Array:
    """One node's forward inside a Flax module's ``__call__`` (submodules named as the nodes)."""
    if spec.kind in LINEAR_KINDS:
        return Affine(spec.kind, spec.size, param_dtype, spec, name=spec.name)(x)
    if spec.kind == "batchnorm":
        return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                            param_dtype=param_dtype, name=spec.name)(x)
    if spec.kind == "dropout":
        return nn.Dropout(dropout_rate, deterministic=not train, name=spec.name)(x)
    return apply_parameter_free(spec, x)
