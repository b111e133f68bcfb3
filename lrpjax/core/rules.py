r"""LRP rules: how relevance at a layer's output becomes relevance at its input.

A rule is a small frozen dataclass (its hyperparameters, validated when it is
built) whose ``__call__`` is the rule's math for one layer:

    rule(layer, x, z, relevance) -> relevance at x

``layer`` is a :class:`Layer` (its linear map ``layer.apply(x, params)``, its
``params`` and what the engine knows of its data), ``x`` the layer's input,
``z = layer.apply(x, layer.params)`` the output kept from the forward pass,
``relevance`` the relevance at that output. Where ``x`` is known to be
non-negative (after a ReLU), views of the negative inputs, zero there, are skipped.

Notation in the docstrings: :math:`x` the input, :math:`w, b` the parameters,
:math:`z_k = \sum_j x_j w_{jk} + b_k`, :math:`R_k` the relevance at the output,
:math:`w^+ = \max(w, 0)`, :math:`w^- = \min(w, 0)` (likewise :math:`x^\pm`,
:math:`b^\pm`), and :math:`\mathrm{stab}` the stabiliser of
:mod:`lrpjax.core.stabilizers` (by default :math:`z + \epsilon\,\mathrm{sign}(z)`
with :math:`\mathrm{sign}(0) = 1`, as Zennit). :math:`W^\top s` is the transpose
of the layer's linear map applied to :math:`s` (a transposed convolution for a
conv). Divisions by an exact zero give zero, never NaN.

Defaults are Zennit's (epsilon 1e-6, gamma 0.25, stabiliser 1e-6), so results
agree with it out of the box.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from lrpjax.core import layers as L
from lrpjax.core.stabilizers import Stabilizer, StabilizerLike, as_stabilizer

Array = jax.Array
Params = Mapping[str, Array]


class Layer(NamedTuple):
    """What a rule sees of one layer.

    ``apply(x, params)`` is the layer's affine map (conv, dense) or linear map
    (average pool; a max-pool layer's proportional reading). ``params`` holds
    ``kernel`` and ``bias`` for conv/dense and nothing for parameter-free layers.
    The engine sets two facts it can prove from the network and the composite:
    ``nonnegative_input`` (the input comes out of a ReLU) and
    ``relevance_only_where_positive`` (the relevance arriving at the output is zero
    wherever the output is <= 0: a ReLU follows and the rule above multiplies by
    its input, so views of negative outputs carry nothing). ``pool`` is a max pool's
    ``(window, stride, padding, ceil_mode)``. An ``add`` layer's ``x`` holds its summands
    stacked on a leading axis and ``apply`` sums them.
    """

    kind: str
    name: str
    apply: Callable[[Array, Params], Array]
    params: Params
    nonnegative_input: bool = False
    relevance_only_where_positive: bool = False
    pool: L.PoolGeometry = L.VGG_POOL


def safe_divide(numerator: Array, denominator: Array) -> Array:
    """``numerator / denominator`` with 0 where the denominator is exactly 0."""
    zero = denominator == 0
    return jnp.where(zero, 0, numerator / jnp.where(zero, 1, denominator))


def transpose(layer: Layer, params: Params, x: Array, s: Array) -> Array:
    """:math:`W^\\top s`: the transpose of the layer's linear part (bias dropped) at ``s``."""
    linear = without_bias(params)
    return jax.linear_transpose(lambda v: layer.apply(v, linear), x)(s)[0]


def transposes(layer: Layer, kernels: Sequence[Array], x: Array, s: Array) -> list[Array]:
    """:math:`[W_1^\\top s, \\ldots, W_M^\\top s]` for kernels of the layer's shape, as one transposed map whose
    kernel stacks them along the inputs (one pass over ``s``; on the CPU a transposed convolution into few
    channels, such as an RGB image's, is cheaper into 6 channels at once than into 3 twice)."""
    stacked = {"kernel": jnp.concatenate(list(kernels), axis=-2)}
    both = transpose(layer, stacked, jnp.concatenate([x] * len(kernels), axis=-1), s)
    return jnp.split(both, len(kernels), axis=-1)


def modify(params: Params, fn: Callable[[Array], Array], zero_params: Sequence[str] = ()) -> dict[str, Array]:
    """Apply ``fn`` to every parameter; those named in ``zero_params`` become zeros."""
    return {k: jnp.zeros_like(v) if k in zero_params else fn(v) for k, v in params.items()}


def without_bias(params: Params) -> dict[str, Array]:
    return {k: v for k, v in params.items() if k != "bias"}


def positive(a: Array) -> Array:
    return jnp.maximum(a, 0)


def negative(a: Array) -> Array:
    return jnp.minimum(a, 0)


def _identity(a: Array) -> Array:
    return a


def _zero_params(value: Sequence[str] | str | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def _check_positive(name: str, value: float, *, allow_zero: bool = True) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name}={value!r} must be a number")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name}={value!r} must be {'non-negative' if allow_zero else 'positive'}")
    return float(value)


class Rule:
    r"""Base of all rules.

    ``multiplies_input`` is True for rules whose relevance has the form :math:`x_j \cdot (\ldots)_j`,
    hence zero wherever the input is zero; the engine uses it to prove that relevance vanishes where a
    ReLU's output is zero.
    """

    multiplies_input: ClassVar[bool] = False

    def __call__(self, layer: Layer, x: Array, z: Array, relevance: Array) -> Array:
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class Epsilon(Rule):
    r"""LRP-:math:`\epsilon` (Bach et al. 2015); LRP-0 for :math:`\epsilon = 0`.

    .. math:: R_j = x_j \sum_k \frac{w_{jk} R_k}{\mathrm{stab}(z_k)},
              \qquad \mathrm{stab}(z) = z + \epsilon\,\mathrm{sign}(z)

    Args:
      epsilon: the stabiliser: a float :math:`\epsilon` or a :class:`~lrpjax.core.stabilizers.Stabilizer`
        (e.g. the tutorial's :math:`z + 10^{-9} + 0.25\,\mathrm{RMS}(z)`, see :func:`epsilon_rms`).
      zero_params: parameters set to zero in :math:`z` (e.g. ``("bias",)``).
    """

    multiplies_input: ClassVar[bool] = True
    epsilon: StabilizerLike = 1e-6
    zero_params: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "epsilon", as_stabilizer(self.epsilon, "epsilon"))
        object.__setattr__(self, "zero_params", _zero_params(self.zero_params))

    def __call__(self, layer, x, z, relevance):
        params = modify(layer.params, _identity, self.zero_params)
        if self.zero_params:
            z = layer.apply(x, params)
        s = safe_divide(relevance, self.epsilon(z))
        return x * transpose(layer, params, x, s)


@dataclasses.dataclass(frozen=True)
class Norm(Epsilon):
    r"""Relevance split in proportion to contributions, for parameter-free layers (sum/average pooling).

    .. math:: R_j = x_j \sum_k \frac{a_{jk} R_k}{\mathrm{stab}(z_k)},\qquad z_k = \sum_j a_{jk} x_j

    the same formula as :class:`Epsilon` with :math:`\epsilon` only a stabiliser (Zennit's ``Norm``).
    """

    def __init__(self, stabilizer: StabilizerLike = 1e-6):
        super().__init__(epsilon=stabilizer)


def epsilon_rms(scale: float = 0.25, epsilon: float = 1e-9) -> Epsilon:
    r"""The LRP tutorial's :math:`\epsilon`-rule (Montavon et al.): :math:`\mathrm{stab}(z) = z + \epsilon
    + \mathrm{scale}\cdot\mathrm{RMS}(z)`, the root mean square taken over the layer's output for one image."""
    return Epsilon(Stabilizer(epsilon=epsilon, rms_scale=_check_positive("scale", scale), signed=False))


@dataclasses.dataclass(frozen=True)
class Gamma(Rule):
    r"""Generalised LRP-:math:`\gamma` as Zennit defines it (Montavon et al. 2019; Andéol et al. 2021).

    Positive and negative contributions are kept apart, and each output uses the side of its own sign.
    With :math:`w^{\uparrow} = w + \gamma w^+` and :math:`w^{\downarrow} = w + \gamma w^-` (bias alike):

    .. math::
        z^{\uparrow}_k &= \textstyle\sum_j x^+_j w^{\uparrow}_{jk} + x^-_j w^{\downarrow}_{jk} + b^{\uparrow}_k,
        \qquad z^{\downarrow}_k = \textstyle\sum_j x^+_j w^{\downarrow}_{jk} + x^-_j w^{\uparrow}_{jk}
        + b^{\downarrow}_k \\
        s^{\uparrow}_k &= [z_k > 0]\,R_k / \mathrm{stab}(z^{\uparrow}_k), \qquad
        s^{\downarrow}_k = [z_k < 0]\,R_k / \mathrm{stab}(z^{\downarrow}_k) \\
        R_j &= x^+_j\,(W^{\uparrow\top} s^{\uparrow} + W^{\downarrow\top} s^{\downarrow})_j
             + x^-_j\,(W^{\downarrow\top} s^{\uparrow} + W^{\uparrow\top} s^{\downarrow})_j

    Where :math:`z_k = 0` nothing propagates. On non-negative inputs this needs one extra
    convolution (with :math:`w^+`; both denominators follow from it and the stored :math:`z`)
    and two transposed ones; where the relevance is also known to vanish on non-positive outputs
    (a ReLU follows), one convolution with :math:`w^{\uparrow}` and one transposed.

    Args:
      gamma: weight of the added positive (resp. negative) parts, :math:`\gamma \ge 0`.
      stabilizer: float or :class:`~lrpjax.core.stabilizers.Stabilizer`.
      zero_params: parameters set to zero in the modified views.
    """

    multiplies_input: ClassVar[bool] = True
    gamma: float = 0.25
    stabilizer: StabilizerLike = 1e-6
    zero_params: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "gamma", _check_positive("gamma", self.gamma))
        object.__setattr__(self, "stabilizer", as_stabilizer(self.stabilizer))
        object.__setattr__(self, "zero_params", _zero_params(self.zero_params))

    def __call__(self, layer, x, z, relevance):
        g, stab, params = self.gamma, self.stabilizer, layer.params
        up = modify(params, lambda p: p + g * positive(p), self.zero_params)
        down = modify(params, lambda p: p + g * negative(p), self.zero_params)
        if layer.nonnegative_input and layer.relevance_only_where_positive:
            # x = x+ and R = 0 wherever z <= 0, so only the up view carries relevance
            s_up = safe_divide(relevance * (z > 0), stab(layer.apply(x, up)))
            return x * transpose(layer, up, x, s_up)
        if layer.nonnegative_input:
            # x = x+, so z_up = (z - b) + g*(W+ x) + b_up and z_down = (z - b) + g*(W x - W+ x) + b_down: one extra
            # convolution. Each output uses one side, so s = s_up + s_down is formed once (s_up and s_down are
            # never both non-zero, hence a s_up + c s_down below is exactly where(z < 0, c s, a s)).
            w_pos = {"kernel": positive(params["kernel"])}
            linear_z = z - params["bias"]
            p = layer.apply(x, w_pos)
            below = z < 0
            z_side = jnp.where(below, linear_z + g * (linear_z - p) + down["bias"], linear_z + g * p + up["bias"])
            s = safe_divide(relevance * (z != 0), stab(z_side))
            # W_up^T s_up + W_down^T s_down = W^T (s_up + (1+g) s_down) + g W+^T (s_up - s_down)
            back = transpose(layer, {"kernel": params["kernel"]}, x, jnp.where(below, (1 + g) * s, s))
            return x * (back + g * transpose(layer, w_pos, x, jnp.where(below, -s, s)))
        x_pos, x_neg = positive(x), negative(x)
        z_up = layer.apply(x_pos, up) + layer.apply(x_neg, without_bias(down))
        z_down = layer.apply(x_pos, down) + layer.apply(x_neg, without_bias(up))
        s_up = safe_divide(relevance * (z > 0), stab(z_up))
        s_down = safe_divide(relevance * (z < 0), stab(z_down))
        from_up = transpose(layer, up, x, s_up) + transpose(layer, down, x, s_down)
        from_down = transpose(layer, down, x, s_up) + transpose(layer, up, x, s_down)
        return x_pos * from_up + x_neg * from_down


@dataclasses.dataclass(frozen=True)
class SimpleGamma(Rule):
    r"""The LRP tutorial's :math:`\gamma`-rule (Montavon et al. 2019): :math:`\rho(w) = w + \gamma w^+`.

    .. math:: R_j = x_j \sum_k \frac{\rho(w_{jk}) R_k}{\mathrm{stab}(\sum_j x_j \rho(w_{jk}) + \rho(b_k))}

    Meant for non-negative inputs; on a parameter-free layer :math:`\rho` changes nothing and it is
    :class:`Norm`. The tutorial uses ``stabilizer=Stabilizer(1e-9, signed=False)``.
    """

    multiplies_input: ClassVar[bool] = True
    gamma: float = 0.25
    stabilizer: StabilizerLike = 1e-6

    def __post_init__(self):
        object.__setattr__(self, "gamma", _check_positive("gamma", self.gamma))
        object.__setattr__(self, "stabilizer", as_stabilizer(self.stabilizer))

    def __call__(self, layer, x, z, relevance):
        rho = modify(layer.params, lambda p: p + self.gamma * positive(p))
        s = safe_divide(relevance, self.stabilizer(layer.apply(x, rho)))
        return x * transpose(layer, rho, x, s)


@dataclasses.dataclass(frozen=True)
class ZPlus(Rule):
    r"""LRP-:math:`z^+` (Bach et al. 2015; Montavon et al. 2017), i.e. :class:`AlphaBeta` with α=1, β=0.

    .. math:: R_j = \sum_k \frac{x^+_j w^+_{jk} + x^-_j w^-_{jk}}
              {\mathrm{stab}(\sum_i x^+_i w^+_{ik} + x^-_i w^-_{ik} + b^+_k)} R_k

    Non-negative relevance at the output gives non-negative relevance at the input, whatever the input signs.
    """

    multiplies_input: ClassVar[bool] = True
    stabilizer: StabilizerLike = 1e-6
    zero_params: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "stabilizer", as_stabilizer(self.stabilizer))
        object.__setattr__(self, "zero_params", _zero_params(self.zero_params))

    def __call__(self, layer, x, z, relevance):
        plus = modify(layer.params, positive, self.zero_params)
        minus = without_bias(modify(layer.params, negative, self.zero_params))
        if layer.nonnegative_input:
            s = safe_divide(relevance, self.stabilizer(layer.apply(x, plus)))
            return x * transpose(layer, plus, x, s)
        x_pos, x_neg = positive(x), negative(x)
        s = safe_divide(relevance, self.stabilizer(layer.apply(x_pos, plus) + layer.apply(x_neg, minus)))
        return x_pos * transpose(layer, plus, x, s) + x_neg * transpose(layer, minus, x, s)


@dataclasses.dataclass(frozen=True)
class AlphaBeta(Rule):
    r"""LRP-:math:`\alpha\beta` (Bach et al. 2015), :math:`\alpha - \beta = 1`.

    With :math:`z^{+}_{jk} = x^+_j w^+_{jk} + x^-_j w^-_{jk}` (positive contributions, bias :math:`b^+`) and
    :math:`z^{-}_{jk} = x^+_j w^-_{jk} + x^-_j w^+_{jk}` (negative ones, bias :math:`b^-`):

    .. math:: R_j = \sum_k \Bigl(\alpha \frac{z^+_{jk}}{\mathrm{stab}(\sum_i z^+_{ik} + b^+_k)}
              - \beta \frac{z^-_{jk}}{\mathrm{stab}(\sum_i z^-_{ik} + b^-_k)}\Bigr) R_k

    Raises:
      ValueError: ``alpha`` or ``beta`` negative, or ``alpha - beta != 1``.
    """

    multiplies_input: ClassVar[bool] = True
    alpha: float = 2.0
    beta: float = 1.0
    stabilizer: StabilizerLike = 1e-6
    zero_params: tuple[str, ...] = ()

    def __post_init__(self):
        alpha, beta = _check_positive("alpha", self.alpha), _check_positive("beta", self.beta)
        if alpha - beta != 1:
            raise ValueError(f"AlphaBeta needs alpha - beta = 1, got alpha={alpha!r}, beta={beta!r}")
        object.__setattr__(self, "alpha", alpha)
        object.__setattr__(self, "beta", beta)
        object.__setattr__(self, "stabilizer", as_stabilizer(self.stabilizer))
        object.__setattr__(self, "zero_params", _zero_params(self.zero_params))

    def __call__(self, layer, x, z, relevance):
        plus = modify(layer.params, positive, self.zero_params)
        minus = modify(layer.params, negative, self.zero_params)
        stab = self.stabilizer
        if layer.nonnegative_input:
            # x = x+: both parts from their own kernels. Forming z- = (z - b) - W+ x by subtraction would leave
            # round-off where z- is exactly 0 (no negative contribution), flip stab's sign there and turn
            # R / stab into +-R / 1e-6, whose cancellation in W+^T s- - W^T s- costs ~1e-10 of max|R|
            w_pos, w_neg = {"kernel": plus["kernel"]}, {"kernel": minus["kernel"]}
            s_pos = safe_divide(relevance, stab(layer.apply(x, w_pos) + plus["bias"]))
            s_neg = safe_divide(relevance, stab(layer.apply(x, w_neg) + minus["bias"]))
            return x * (self.alpha * transpose(layer, w_pos, x, s_pos) - self.beta * transpose(layer, w_neg, x, s_neg))
        x_pos, x_neg = positive(x), negative(x)
        z_pos = layer.apply(x_pos, plus) + layer.apply(x_neg, without_bias(minus))
        z_neg = layer.apply(x_pos, minus) + layer.apply(x_neg, without_bias(plus))
        s_pos, s_neg = safe_divide(relevance, stab(z_pos)), safe_divide(relevance, stab(z_neg))
        from_pos = x_pos * transpose(layer, plus, x, s_pos) + x_neg * transpose(layer, minus, x, s_pos)
        from_neg = x_pos * transpose(layer, minus, x, s_neg) + x_neg * transpose(layer, plus, x, s_neg)
        return self.alpha * from_pos - self.beta * from_neg


def _bound(value: Any, name: str) -> float | tuple[float, ...]:
    """A ZBox bound as a float or a per-channel tuple (hashable, so composites stay cache keys)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    try:
        flat = [float(v) for v in jnp.ravel(jnp.asarray(value))]
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name}={value!r} must be a float or a per-channel sequence of floats") from error
    return flat[0] if len(flat) == 1 else tuple(flat)


@dataclasses.dataclass(frozen=True)
class ZBox(Rule):
    r"""LRP-:math:`z^\mathcal{B}` for inputs bounded by :math:`l \le x \le h` (Montavon et al. 2017).

    .. math:: R_j = \sum_k \frac{x_j w_{jk} - l_j w^+_{jk} - h_j w^-_{jk}}
              {\mathrm{stab}(\sum_i x_i w_{ik} - l_i w^+_{ik} - h_i w^-_{ik})} R_k

    The bias cancels (as in Zennit, where it is clamped with the weights). ``low`` and ``high`` are
    scalars or per-channel sequences; at the image border they see the same zero padding as ``x``.
    With :math:`w^- = w - w^+` the input side is
    :math:`R = (x - h) \odot W^\top s - (l - h) \odot W^{+\top} s`, :math:`s_k = R_k / \mathrm{stab}(\cdot)`:
    two transposed maps (not three), computed as one whose kernel stacks :math:`w` and :math:`w^+`.
    """

    low: float | tuple[float, ...] = 0.0
    high: float | tuple[float, ...] = 1.0
    stabilizer: StabilizerLike = 1e-6
    zero_params: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "low", _bound(self.low, "low"))
        object.__setattr__(self, "high", _bound(self.high, "high"))
        object.__setattr__(self, "stabilizer", as_stabilizer(self.stabilizer))
        object.__setattr__(self, "zero_params", _zero_params(self.zero_params))

    def __call__(self, layer, x, z, relevance):
        low = jnp.broadcast_to(jnp.asarray(self.low, x.dtype), x.shape)
        high = jnp.broadcast_to(jnp.asarray(self.high, x.dtype), x.shape)
        unmodified = modify(layer.params, _identity, self.zero_params)
        plus = modify(layer.params, positive, self.zero_params)
        minus = modify(layer.params, negative, self.zero_params)
        z_x = layer.apply(x, unmodified) if self.zero_params else z
        z_box = z_x - layer.apply(low, plus) - layer.apply(high, minus)
        s = safe_divide(relevance, self.stabilizer(z_box))
        # x W^T s - l W+^T s - h W-^T s with W- = W - W+: two transposed maps, in one pass over s
        back, back_pos = transposes(layer, [unmodified["kernel"], plus["kernel"]], x, s)
        return (x - high) * back - (low - high) * back_pos


@dataclasses.dataclass(frozen=True)
class WSquare(Rule):
    r"""LRP-:math:`w^2` (Montavon et al. 2017): relevance by squared weights, independent of the input.

    .. math:: R_j = \sum_k \frac{w_{jk}^2}{\mathrm{stab}(\sum_i w_{ik}^2 + b_k^2)} R_k

    The sum runs over the inputs the output sees (at a conv's border, fewer). As in Zennit, the bias is
    squared too unless ``zero_params=("bias",)``.
    """

    stabilizer: StabilizerLike = 1e-6
    zero_params: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "stabilizer", as_stabilizer(self.stabilizer))
        object.__setattr__(self, "zero_params", _zero_params(self.zero_params))

    def __call__(self, layer, x, z, relevance):
        square = modify(layer.params, jnp.square, self.zero_params)
        ones = jnp.ones_like(x)
        s = safe_divide(relevance, self.stabilizer(layer.apply(ones, square)))
        return transpose(layer, square, x, s)


@dataclasses.dataclass(frozen=True)
class Flat(Rule):
    r"""LRP-flat (Lapuschkin et al. 2019): relevance spread uniformly over each output's receptive field.

    .. math:: R_j = \sum_k \frac{[j \to k]}{\mathrm{stab}(\sum_i [i \to k])} R_k

    :math:`[j \to k]` is 1 where input :math:`j` reaches output :math:`k` (all weights one, no bias).
    """

    stabilizer: StabilizerLike = 1e-6

    def __post_init__(self):
        object.__setattr__(self, "stabilizer", as_stabilizer(self.stabilizer))

    def __call__(self, layer, x, z, relevance):
        ones_params = modify(layer.params, jnp.ones_like, ("bias",))
        ones = jnp.ones_like(x)
        s = safe_divide(relevance, self.stabilizer(layer.apply(ones, ones_params)))
        return transpose(layer, ones_params, x, s)


@dataclasses.dataclass(frozen=True)
class Pass(Rule):
    r"""Relevance passes unchanged: :math:`R_j = R_j` (for ReLU and other element-wise layers)."""

    def __call__(self, layer, x, z, relevance):
        return relevance


@dataclasses.dataclass(frozen=True)
class Gradient(Rule):
    r"""The plain gradient, what any layer without a rule does (as in Zennit).

    .. math:: R_j = \sum_k \frac{\partial z_k}{\partial x_j} R_k

    Linear layers: :math:`W^\top R`; ReLU: :math:`R\,[x > 0]`; max pooling: winner-take-all (each window's
    relevance goes to its first maximum).
    """

    def __call__(self, layer, x, z, relevance):
        if layer.kind == "relu":
            return relevance * (x > 0)
        if layer.kind == "maxpool":
            return L.max_pool_backward_winner(x, relevance, layer.pool)
        return transpose(layer, layer.params, x, relevance)


@dataclasses.dataclass(frozen=True)
class DeconvNet(Rule):
    r"""DeconvNet's ReLU (Zeiler & Fergus 2014): :math:`R_j = \max(R_j, 0)`, ignoring the input's sign."""

    def __call__(self, layer, x, z, relevance):
        return positive(relevance)


@dataclasses.dataclass(frozen=True)
class GuidedBackprop(Rule):
    r"""Guided backpropagation's ReLU (Springenberg et al. 2015): :math:`R_j = R_j\,[x_j > 0]\,[R_j > 0]`."""

    def __call__(self, layer, x, z, relevance):
        return relevance * (x > 0) * (relevance > 0)


@dataclasses.dataclass(frozen=True)
class BetaSmooth(Rule):
    r"""The softplus surrogate of a ReLU's gradient (Dombrowski et al. 2019): :math:`R_j\,\sigma(\beta x_j)`."""

    beta: float = 10.0

    def __call__(self, layer, x, z, relevance):
        return relevance * jax.nn.sigmoid(self.beta * x)


class View(NamedTuple):
    """One modified forward of a :class:`BasicRule`: what the input becomes, what each parameter becomes."""

    inputs: Callable[[Array], Array] = _identity
    params: Callable[[Array], Array] = _identity
    zero_params: tuple[str, ...] = ()


def _divide_each(relevance: Array, outputs: Sequence[Array]) -> list[Array]:
    return [safe_divide(relevance, Stabilizer()(z)) for z in outputs]


def _sum_of_products(inputs: Sequence[Array], gradients: Sequence[Array]) -> Array:
    return sum(i * g for i, g in zip(inputs, gradients))


@dataclasses.dataclass(frozen=True, eq=False)
class BasicRule(Rule):
    r"""A rule written as views, as Zennit's ``BasicHook``: the way to add a new rule without touching the engine.

    .. math::
        z^{(m)} = \mathrm{layer}(\mathrm{in}_m(x);\ \mathrm{param}_m(w, b)), \quad
        s^{(m)} = \mathrm{normalize}(R, z^{(1)} \ldots z^{(M)})_m, \quad
        R_\mathrm{in} = \mathrm{reduce}igl(\mathrm{in}_m(x),\ W_m^	op s^{(m)}igr)

    Args:
      views: the modified forwards (:class:`View`).
      normalize: ``(relevance, outputs) -> [s_1 … s_M]``; default ``relevance / stab(z_m)`` for each view.
      reduce: ``(inputs, gradients) -> relevance``; default :math:`\sum_m \mathrm{in}_m(x) \odot g_m`.

    Example (the :math:`\epsilon`-rule again)::

        eps = lambda z: z + 0.1 * jnp.where(z >= 0, 1, -1)
        my_epsilon = BasicRule(
            views=(View(),),
            normalize=lambda relevance, outputs: [safe_divide(relevance, eps(outputs[0]))],
        )
    """

    views: tuple[View, ...] = (View(),)
    normalize: Callable[[Array, Sequence[Array]], Sequence[Array]] = _divide_each
    reduce: Callable[[Sequence[Array], Sequence[Array]], Array] = _sum_of_products

    def __call__(self, layer, x, z, relevance):
        inputs = [view.inputs(x) for view in self.views]
        params = [modify(layer.params, view.params, view.zero_params) for view in self.views]
        outputs = [layer.apply(i, p) for i, p in zip(inputs, params)]
        scaled = self.normalize(relevance, outputs)
        gradients = [transpose(layer, p, x, s) for p, s in zip(params, scaled)]
        return self.reduce(inputs, gradients)


PARAMETRIC_RULES = (Gamma, ZPlus, AlphaBeta, ZBox, WSquare)
"""Rules that modify a kernel, so a layer without parameters cannot take them."""
RELU_RULES = (Pass, Gradient, DeconvNet, GuidedBackprop, BetaSmooth)
"""Rules that make sense on a ReLU."""
