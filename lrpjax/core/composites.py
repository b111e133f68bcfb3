"""Composites: which rule each layer of a network gets.

A :class:`Composite` is data: rules by layer name (glob patterns), by index range
in the graph's node order (batch norms merged away), for the first linear layer,
and by layer kind; the first match wins in that order. Layers it leaves open get
Zennit's defaults: ReLU and dropout pass relevance through, an average pool and a
residual sum (``add``) split it in proportion (:class:`~lrpjax.core.rules.Norm`, as
Zennit's ``ResNetCanonizer`` with its ``Sum``), a
max pool sends it to each window's winner (or splits it in proportion with
``maxpool="proportional"``), and a conv or dense layer without a rule takes the
plain gradient. The presets are Zennit's composites, an all-epsilon one, and the
VGG-16 scheme of the LRP tutorial (Montavon et al.); ``get(name, **kwargs)``
builds one by name.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import inspect
from collections.abc import Callable, Sequence
from typing import Any

from lrpjax.core import rules as R
from lrpjax.core.models.graph import LINEAR_KINDS, LayerSpec
from lrpjax.core.stabilizers import Stabilizer

KINDS = ("conv", "dense", "linear", "relu", "maxpool", "avgpool", "dropout", "add")
MAXPOOL_MODES = ("winner", "proportional")


@dataclasses.dataclass(frozen=True)
class Composite:
    """A layer -> rule map.

    Attributes:
      name: a label.
      by_name: ``((pattern, ...), rule)`` pairs; patterns are globs over layer names (``"conv[123]_*"``).
      by_index: ``((start, stop), rule)`` pairs over node indices, ``stop`` excluded; a range's rule applies
        to the layers in it that it fits (a conv rule to convs and pools, a ReLU rule to ReLUs).
      first: the rule of the first conv/dense layer, or None.
      by_kind: ``(kind, rule)`` pairs; kinds are ``conv``, ``dense``, ``linear`` (either), ``relu``,
        ``maxpool``, ``avgpool``, ``dropout``, ``add``.
      maxpool: ``"winner"`` (winner-take-all, as Zennit) or ``"proportional"`` (as an average pool).
      stabilizer: the stabiliser of the default :class:`~lrpjax.core.rules.Norm` on pooling layers.
    """

    name: str = "custom"
    by_name: tuple[tuple[tuple[str, ...], R.Rule], ...] = ()
    by_index: tuple[tuple[tuple[int, int], R.Rule], ...] = ()
    first: R.Rule | None = None
    by_kind: tuple[tuple[str, R.Rule], ...] = ()
    maxpool: str = "winner"
    stabilizer: float = 1e-6

    def __post_init__(self):
        if self.maxpool not in MAXPOOL_MODES:
            raise ValueError(f"maxpool={self.maxpool!r}; choose one of {MAXPOOL_MODES}")
        for kind, _ in self.by_kind:
            if kind not in KINDS:
                raise ValueError(f"by_kind has unknown kind {kind!r}; choose from {KINDS}")
        names = tuple(((p,) if isinstance(p, str) else tuple(p), rule) for p, rule in self.by_name)
        object.__setattr__(self, "by_name", names)
        for _, rule in (*names, *self.by_index, *self.by_kind, (None, self.first)):
            if rule is not None and not isinstance(rule, R.Rule):
                raise TypeError(f"composite {self.name!r}: {rule!r} is not a lrpjax rule")

    def rule_for(self, index: int, spec: LayerSpec, first_linear: int) -> R.Rule:
        """The rule of layer ``spec`` at chain position ``index``."""
        for patterns, rule in self.by_name:
            if any(fnmatch.fnmatchcase(spec.name, p) for p in patterns):
                return rule
        for (start, stop), rule in self.by_index:
            if start <= index < stop and fits(rule, spec.kind):
                return rule
        if self.first is not None and index == first_linear:
            return self.first
        for kind, rule in self.by_kind:
            if kind == spec.kind or (kind == "linear" and spec.kind in LINEAR_KINDS):
                return rule
        return self._default(spec.kind)

    def _default(self, kind: str) -> R.Rule:
        if kind in ("relu", "dropout"):
            return R.Pass()
        if kind in ("avgpool", "add") or (kind == "maxpool" and self.maxpool == "proportional"):
            return R.Norm(self.stabilizer)
        return R.Gradient()

    def resolve(self, chain: Sequence[LayerSpec]) -> tuple[R.Rule | None, ...]:
        """Rules for every layer of ``chain`` (None for flatten), checked against each layer's kind.

        Raises:
          ValueError: a rule that modifies a kernel is given to a layer without parameters, or a
            relevance-splitting rule to a ReLU.
        """
        first_linear = next((i for i, s in enumerate(chain) if s.kind in LINEAR_KINDS), -1)
        resolved = []
        for index, spec in enumerate(chain):
            if spec.kind == "flatten":
                resolved.append(None)
                continue
            rule = self.rule_for(index, spec, first_linear)
            if not fits(rule, spec.kind):
                raise ValueError(f"composite {self.name!r} gives {type(rule).__name__} to layer {spec.name!r} "
                                 f"({spec.kind}): {_FIT_HELP[_family(spec.kind)]}")
            resolved.append(rule)
        return tuple(resolved)


_FIT_HELP = {
    "elementwise": f"element-wise layers take one of {[r.__name__ for r in R.RELU_RULES]}",
    "pool": f"layers without parameters cannot take {[r.__name__ for r in R.PARAMETRIC_RULES]} or ReLU rules",
    "linear": "conv and dense layers take relevance rules, not Pass or the ReLU variants",
}


def _family(kind: str) -> str:
    if kind in ("relu", "dropout"):
        return "elementwise"
    return "linear" if kind in LINEAR_KINDS else "pool"


def fits(rule: R.Rule, kind: str) -> bool:
    """Whether ``rule`` makes sense on a layer of ``kind`` (used to refuse mismatches and to let index
    ranges cover whole stretches of a network: a range's rule applies to the layers it fits)."""
    family = _family(kind)
    if family == "elementwise":
        return isinstance(rule, R.RELU_RULES)
    relu_only = isinstance(rule, R.RELU_RULES) and not isinstance(rule, R.Gradient)
    if family == "pool":
        return not relu_only and not isinstance(rule, R.PARAMETRIC_RULES)
    return not relu_only


def _pool_rule(stabilizer: float) -> tuple[str, R.Rule]:
    return ("avgpool", R.Norm(stabilizer))


def epsilon(*, epsilon: float = 1e-6, stabilizer: float = 1e-6, maxpool: str = "winner") -> Composite:
    """LRP-epsilon on every conv and dense layer; ``epsilon=0`` gives LRP-0 (gradient x input)."""
    return Composite("epsilon", by_kind=(("linear", R.Epsilon(epsilon)), _pool_rule(stabilizer)),
                     maxpool=maxpool, stabilizer=stabilizer)


def epsilon_gamma_box(*, low: Any, high: Any, epsilon: float = 1e-6, gamma: float = 0.25,
                      stabilizer: float = 1e-6, maxpool: str = "winner") -> Composite:
    """ZBox on the first layer, Gamma on the other convs, Epsilon on dense layers (Zennit's EpsilonGammaBox).

    ``low``/``high`` are the lowest/highest possible input values after preprocessing, scalars or
    per channel (see :func:`lrpjax.core.preprocessing.zbox_bounds`).
    """
    return Composite(
        "epsilon_gamma_box",
        first=R.ZBox(low, high, stabilizer),
        by_kind=(("conv", R.Gamma(gamma, stabilizer)), ("dense", R.Epsilon(epsilon)), _pool_rule(stabilizer)),
        maxpool=maxpool, stabilizer=stabilizer,
    )


def _conv_dense(name: str, conv_rule: R.Rule, first: R.Rule | None, epsilon: float, stabilizer: float,
                maxpool: str) -> Composite:
    return Composite(name, first=first,
                     by_kind=(("conv", conv_rule), ("dense", R.Epsilon(epsilon)), _pool_rule(stabilizer)),
                     maxpool=maxpool, stabilizer=stabilizer)


def epsilon_plus(*, epsilon: float = 1e-6, stabilizer: float = 1e-6, maxpool: str = "winner") -> Composite:
    """ZPlus on convs, Epsilon on dense layers (Zennit's EpsilonPlus)."""
    return _conv_dense("epsilon_plus", R.ZPlus(stabilizer), None, epsilon, stabilizer, maxpool)


def epsilon_plus_flat(*, epsilon: float = 1e-6, stabilizer: float = 1e-6, maxpool: str = "winner") -> Composite:
    """Flat on the first layer, ZPlus on the other convs, Epsilon on dense layers (Zennit's EpsilonPlusFlat)."""
    return _conv_dense("epsilon_plus_flat", R.ZPlus(stabilizer), R.Flat(stabilizer), epsilon, stabilizer, maxpool)


def epsilon_alpha2_beta1(*, epsilon: float = 1e-6, stabilizer: float = 1e-6,
                         maxpool: str = "winner") -> Composite:
    """AlphaBeta(2, 1) on convs, Epsilon on dense layers (Zennit's EpsilonAlpha2Beta1)."""
    return _conv_dense("epsilon_alpha2_beta1", R.AlphaBeta(2, 1, stabilizer), None, epsilon, stabilizer, maxpool)


def epsilon_alpha2_beta1_flat(*, epsilon: float = 1e-6, stabilizer: float = 1e-6,
                              maxpool: str = "winner") -> Composite:
    """Flat on the first layer, AlphaBeta(2, 1) on other convs, Epsilon on dense (Zennit's EpsilonAlpha2Beta1Flat)."""
    return _conv_dense("epsilon_alpha2_beta1_flat", R.AlphaBeta(2, 1, stabilizer), R.Flat(stabilizer),
                       epsilon, stabilizer, maxpool)


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGENET_LOW = tuple((0 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD))
IMAGENET_HIGH = tuple((1 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD))


def tutorial(*, low: Any = IMAGENET_LOW, high: Any = IMAGENET_HIGH, gamma: float = 0.25,
             rms_scale: float = 0.25, epsilon: float = 1e-9) -> Composite:
    r"""The VGG-16 scheme of the LRP tutorial (Montavon et al., "Layer-wise relevance propagation: an overview").

    zB on ``conv1_1``; :math:`\gamma=0.25` (:class:`~lrpjax.core.rules.SimpleGamma`) on blocks 1–3;
    :math:`\epsilon = 0.25\,\mathrm{RMS}(z)` on blocks 4–5; LRP-0 on ``fc6``–``fc8``; max pools read as
    average pools with the rule of their block; the tutorial's unsigned increment :math:`z + 10^{-9}`.
    torchvision's adaptive pool, absent from the tutorial, takes the gradient: the identity at 224x224,
    elsewhere each bin's relevance spread evenly over it (still conserving).
    Default bounds are ImageNet's normalised [0, 1] pixels.
    """
    tiny = Stabilizer(epsilon, signed=False)
    return Composite(
        "tutorial",
        by_name=(
            (("conv1_1",), R.ZBox(low, high, tiny)),
            (("conv[123]_*", "pool[123]"), R.SimpleGamma(gamma, tiny)),
            (("conv[45]_*", "pool[45]"), R.Epsilon(Stabilizer(epsilon, rms_scale, signed=False))),
            (("fc*",), R.Epsilon(tiny)),
            (("avgpool",), R.Gradient()),
        ),
        maxpool="proportional",
    )


def _modified_gradient(name: str, relu_rule: R.Rule) -> Composite:
    """The gradient everywhere but at ReLUs (Zennit's DeconvNet and GuidedBackprop composites)."""
    return Composite(name, by_kind=(("relu", relu_rule), ("avgpool", R.Gradient()), ("add", R.Gradient())))


PRESETS: dict[str, Callable[..., Composite]] = {
    "epsilon": epsilon,
    "epsilon_gamma_box": epsilon_gamma_box,
    "epsilon_plus": epsilon_plus,
    "epsilon_plus_flat": epsilon_plus_flat,
    "epsilon_alpha2_beta1": epsilon_alpha2_beta1,
    "epsilon_alpha2_beta1_flat": epsilon_alpha2_beta1_flat,
    "tutorial": tutorial,
    "excitation_backprop": lambda *, stabilizer=1e-6: Composite(
        "excitation_backprop", by_kind=(("linear", R.ZPlus(stabilizer)), ("relu", R.Gradient()),
                                        _pool_rule(stabilizer))),
    "deconvnet": lambda: _modified_gradient("deconvnet", R.DeconvNet()),
    "guided_backprop": lambda: _modified_gradient("guided_backprop", R.GuidedBackprop()),
    "gradient": lambda: _modified_gradient("gradient", R.Gradient()),
}


def names() -> list[str]:
    """The preset names ``get`` accepts."""
    return sorted(PRESETS)


def get(name: str, *, preprocessing: dict[str, Any] | None = None, **kwargs: Any) -> Composite:
    """Build a preset composite by name, e.g. ``get("epsilon_gamma_box", low=-3.0, high=3.0)``.

    ``preprocessing`` (a checkpoint's metadata or its preprocessing dict) fills the zB bounds ``low``/``high`` of
    every preset that takes them (:func:`lrpjax.core.preprocessing.zbox_bounds`: black and white after normalisation)
    unless they are given; presets without bounds ignore it. This is the one place that decides which
    composites need bounds: ``get(name, preprocessing=metadata)`` works for every name.

    Raises:
      ValueError: unknown ``name`` (the message lists the valid ones), or a bad ``preprocessing``.
      TypeError: a keyword the preset does not take, or a missing required one (named in the message).
    """
    if name not in PRESETS:
        raise ValueError(f"unknown composite {name!r}; choose one of {names()}")
    factory = PRESETS[name]
    accepted = list(inspect.signature(factory).parameters)
    if preprocessing is not None and {"low", "high"} <= set(accepted):
        from lrpjax.core.preprocessing import zbox_bounds

        low, high = zbox_bounds(preprocessing)
        kwargs = {"low": low, "high": high, **kwargs}
    try:
        inspect.signature(factory).bind(**kwargs)
    except TypeError as error:
        raise TypeError(f"composite {name!r}: {error}; it takes {accepted}") from None
    return factory(**kwargs)
