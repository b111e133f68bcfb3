"""Configs as plain Python: a file whose ``get_config(arg)`` returns a dict (big_vision style)."""

from __future__ import annotations

import importlib.util
import os
from typing import Any


def call_get_config(spec: str) -> Any:
    """``get_config(arg)`` of the Python file in ``spec`` (``PATH`` or ``PATH:ARG``; ``arg`` is None without one).

    Raises:
      ValueError: the file does not exist or has no ``get_config``.
    """
    path, _, arg = spec.partition(":")
    if not os.path.isfile(path):
        raise ValueError(f"config file {path!r} does not exist")
    module_spec = importlib.util.spec_from_file_location(f"config_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ValueError(f"config file {path!r} has no get_config()")
    return module.get_config(arg or None)
