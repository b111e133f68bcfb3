r"""Stabilisers: how a rule keeps its denominator away from zero.

.. math::
    \mathrm{stab}(z) = z + \sigma(z)\,\bigl(\epsilon + c\cdot\mathrm{RMS}(z)\bigr),
    \qquad \sigma(z) = \mathrm{sign}(z)\ (\mathrm{sign}(0) = 1)\ \text{if signed, else } 1

:math:`\mathrm{RMS}(z)` is the root mean square over one image's output of the layer.
``Stabilizer(eps)`` is Zennit's default (``z + eps * sign(z)``);
``Stabilizer(0, rms_scale=eps)`` is Zennit's ``norm_scale=True``;
``Stabilizer(1e-9, rms_scale=0.25, signed=False)`` is the LRP tutorial's increment.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class Stabilizer:
    """A denominator stabiliser (see the module docstring for the formula)."""

    epsilon: float = 1e-6
    rms_scale: float = 0.0
    signed: bool = True

    def __post_init__(self):
        for name in ("epsilon", "rms_scale"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"Stabilizer {name}={value!r} must be a non-negative number")
            object.__setattr__(self, name, float(value))

    def __call__(self, z: jax.Array) -> jax.Array:
        shift = jnp.asarray(self.epsilon, z.dtype)
        if self.rms_scale:
            shift = shift + self.rms_scale * jnp.sqrt(jnp.mean(z**2))
        if self.signed:
            return z + jnp.where(z >= 0, 1, -1).astype(z.dtype) * shift
        return z + shift


StabilizerLike = float | Stabilizer | Callable[[jax.Array], jax.Array]


def as_stabilizer(value: StabilizerLike, name: str = "stabilizer") -> Callable[[jax.Array], jax.Array]:
    """A float becomes ``Stabilizer(value)``; a Stabilizer or callable is used as given.

    Raises:
      TypeError: ``value`` is neither a number nor callable.
    """
    if isinstance(value, bool):
        raise TypeError(f"{name}={value!r} is not a valid stabilizer (a float or a callable z -> stab(z))")
    if isinstance(value, (int, float)):
        return Stabilizer(float(value))
    if callable(value):
        return value
    raise TypeError(f"{name}={value!r} is not a valid stabilizer (a float or a callable z -> stab(z))")
