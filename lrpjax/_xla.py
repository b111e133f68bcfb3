"""One process-wide choice made on import: XLA's CPU convolutions without YNNPACK fusion.

On the CPUs we measured (benchmarks/README.md), jaxlib 0.10's default YNNPACK fusion made batched VGG-16
forward passes and gradients 20-30 % slower and LRP no faster. XLA reads ``XLA_FLAGS`` once, when its first
backend starts, so this only takes effect when lrpjax is imported before any computation; it never
overrides a ``XLA_FLAGS`` that already mentions the fusion, and ``LRPJAX_KEEP_XLA_FLAGS=1`` turns it off.
"""

from __future__ import annotations

import os

YNN_OFF = "--xla_cpu_experimental_ynn_fusion_type="
_KNOWN_SINCE = (0, 10)  # older jaxlibs abort on a flag they do not know


def prefer_plain_cpu_convolutions() -> bool:
    """Add ``YNN_OFF`` to ``XLA_FLAGS`` when that is still possible and wanted; returns whether it did."""
    flags = os.environ.get("XLA_FLAGS", "")
    if os.environ.get("LRPJAX_KEEP_XLA_FLAGS") or "ynn_fusion" in flags:
        return False
    try:
        import jaxlib
        from jax._src import xla_bridge
    except ImportError:
        return False
    version = tuple(int(part) for part in jaxlib.__version__.split(".")[:2] if part.isdigit())
    if version < _KNOWN_SINCE or xla_bridge.backends_are_initialized():
        return False
    os.environ["XLA_FLAGS"] = f"{flags} {YNN_OFF}".strip()
    return True
