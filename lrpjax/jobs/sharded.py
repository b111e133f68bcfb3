"""The device side of the explain job: padded batches sharded over a 1-D mesh of the local devices.

:meth:`Explainer.submit` starts a batch and returns at once (an :class:`InFlight`), so the host loads and
writes other batches while the devices compute; :meth:`InFlight.fetch` waits and copies the results back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from lrpjax.core import composites, engine


class Explainer:
    """Relevance for padded batches sharded over a 1-D mesh of the local devices (axis ``data``)."""

    def __init__(self, model: Any, variables: Any, chosen: Sequence[composites.Composite], *, batch_size: int,
                 keep_channels: bool = False):
        devices = jax.local_devices()
        mesh = Mesh(np.asarray(devices), ("data",))
        self.model, self.composites, self.keep_channels = model, tuple(chosen), keep_channels
        self.num_devices = len(devices)
        self.batch_size = -(-batch_size // self.num_devices) * self.num_devices
        self._data = NamedSharding(mesh, P("data"))
        as_float32 = jax.tree.map(lambda a: np.asarray(a, np.float32), variables)
        self._variables = jax.device_put(as_float32, NamedSharding(mesh, P()))

    def submit(self, images: np.ndarray, targets: np.ndarray | None) -> InFlight:
        """Start explaining ``images [b, H, W, C]`` (b <= batch_size) for ``targets [b]`` or None (the
        predicted class) and return at once: the devices work while the host loads and writes other batches."""
        count = len(images)
        padded = np.zeros((self.batch_size, *images.shape[1:]), np.float32)
        padded[:count] = images
        x = jax.device_put(padded, self._data)
        if targets is None:
            out = engine.explain_full(self.model, self._variables, x, "predicted", self.composites)
        else:
            chosen = np.zeros(self.batch_size, np.int64)
            chosen[:count] = targets
            out = engine.explain_full(self.model, self._variables, x, chosen, self.composites)
        relevance = [r if self.keep_channels else jnp.sum(r, axis=-1) for r in out.relevance]
        return InFlight(count, relevance, out.logits, out.targets)


@dataclass(frozen=True)
class InFlight:
    """A batch the devices are working on; :meth:`fetch` waits for it and copies the results to the host."""

    count: int
    relevance: list[jax.Array]
    logits: jax.Array
    targets: jax.Array | np.ndarray

    def fetch(self) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        """(relevance per composite [b, H, W] or [b, H, W, C], logits [b, K], targets [b]), padding dropped."""
        relevance = [np.asarray(r)[:self.count] for r in self.relevance]
        return relevance, np.asarray(self.logits)[:self.count], np.asarray(self.targets)[:self.count].astype(np.int64)
