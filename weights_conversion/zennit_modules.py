"""Import Zennit without torchvision.

Zennit imports ``torchvision.models.resnet`` at import time (for its ResNet canonizer only). Where
torchvision is not installed (or does not import beside this torch), placeholder modules with dummy
``Bottleneck`` and ``BasicBlock`` classes are put into ``sys.modules`` first; nothing of lrpjax's use
of Zennit touches them. torch is imported here, lazily: ``import lrpjax`` never imports torch.
"""

from __future__ import annotations

import sys
import types
from typing import NamedTuple


class ZennitModules(NamedTuple):
    """The Zennit modules lrpjax's cross-checks use."""

    attribution: types.ModuleType
    composites: types.ModuleType
    rules: types.ModuleType
    types: types.ModuleType
    canonizers: types.ModuleType


def _install_torchvision_placeholder() -> None:
    """Put ``torchvision``, ``torchvision.models``, ``torchvision.models.resnet`` stand-ins into ``sys.modules``."""
    import torch

    class Bottleneck(torch.nn.Module):
        """Placeholder for ``torchvision.models.resnet.Bottleneck`` (never instantiated)."""

    class BasicBlock(torch.nn.Module):
        """Placeholder for ``torchvision.models.resnet.BasicBlock`` (never instantiated)."""

    torchvision = types.ModuleType("torchvision")
    models = types.ModuleType("torchvision.models")
    resnet = types.ModuleType("torchvision.models.resnet")
    resnet.Bottleneck, resnet.BasicBlock = Bottleneck, BasicBlock
    torchvision.models, models.resnet = models, resnet
    torchvision.__lrpjax_placeholder__ = True
    sys.modules.update({"torchvision": torchvision, "torchvision.models": models,
                        "torchvision.models.resnet": resnet})


def import_zennit() -> ZennitModules:
    """Import Zennit (installing the torchvision placeholder when the real torchvision fails to import).

    Raises:
      ImportError: torch or zennit is not installed (``pip install torch`` and ``pip install --no-deps zennit``).
    """
    try:
        import torch  # noqa: F401
    except ImportError as error:
        raise ImportError("Zennit cross-checks need torch: pip install 'lrpjax[test]'") from error
    try:
        import torchvision.models.resnet  # noqa: F401
    except Exception:  # absent, or broken beside this torch (it raises more than ImportError then)
        for name in ("torchvision.models.resnet", "torchvision.models", "torchvision"):
            sys.modules.pop(name, None)
        _install_torchvision_placeholder()
    try:
        import zennit.attribution
        import zennit.canonizers
        import zennit.composites
        import zennit.rules
        import zennit.types
    except ImportError as error:
        raise ImportError(f"cannot import zennit ({error}); install it with: pip install --no-deps zennit") from error
    return ZennitModules(zennit.attribution, zennit.composites, zennit.rules, zennit.types, zennit.canonizers)
