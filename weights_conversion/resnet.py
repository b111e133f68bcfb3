"""Convert PyTorch ResNet weights to ``lrpjax`` ResNet variables: torchvision's and the VGGFace2 port's.

Both use torchvision's key names: ``conv1.weight``, ``bn1.{weight,bias,running_mean,running_var}``,
``layerI.J.convK.weight``, ``layerI.J.bnK.*``, ``layerI.J.downsample.{0,1}.*``, ``fc.{weight,bias}``
(``num_batches_tracked`` is accepted and dropped). The architecture (18 … 152), the width multiplier
and the class count are read from the keys: the blocks per stage from ``layerI.J.conv1.weight``,
bottleneck blocks from ``layer1.0.conv3.weight``, the width from ``conv1.weight``'s output channels
and the classes from ``fc.weight``. Keys cannot tell torchvision's layout from the VGGFace2 port's
(the same tensors, strides in other places), so the format names it.

The VGGFace2 port (cydonia999/VGGFace2-pytorch) ships its Caffe-converted weights as a pickle of a
dict of numpy arrays; :func:`read_numpy_pickle` reads such a file with an unpickler that can rebuild
only numpy arrays, numpy dtypes and dicts, so a pickle that would call anything else is refused
before it runs.
"""

from __future__ import annotations

import io
import os
import pickle
import re
from collections.abc import Mapping
from typing import Any

from lrpjax.core.models import ResNet
from lrpjax.core.models.resnet import BLOCKS, BOTTLENECK_DEPTHS
from weights_conversion.state_dicts import Entry, _check_keys, _shape_of, mismatches, variables_from

RESNET_ARCHITECTURES = {f"resnet{depth}": depth for depth in BLOCKS}

_BLOCK_KEY = re.compile(r"^layer([1-4])\.(\d+)\.conv1\.weight$")


def resnet_entries(model: ResNet) -> list[Entry]:
    """The torch tensors of ``model`` (torchvision's names), with their shapes and Flax targets."""
    entries: list[Entry] = []
    channels = {"input": 3}
    previous = "input"
    for spec in model.layers:
        source = spec.inputs[0] if spec.inputs else previous
        if spec.kind == "conv":
            shape = (spec.size, channels[source], spec.kernel, spec.kernel)
            entries.append(Entry(f"{spec.name}.weight", shape, ("params", spec.name, "kernel"), "conv"))
            if spec.bias:
                entries.append(Entry(f"{spec.name}.bias", (spec.size,), ("params", spec.name, "bias")))
        elif spec.kind == "batchnorm":
            size = (spec.size,)
            entries += [
                Entry(f"{spec.name}.weight", size, ("params", spec.name, "scale")),
                Entry(f"{spec.name}.bias", size, ("params", spec.name, "bias")),
                Entry(f"{spec.name}.running_mean", size, ("batch_stats", spec.name, "mean")),
                Entry(f"{spec.name}.running_var", size, ("batch_stats", spec.name, "var")),
                Entry(f"{spec.name}.num_batches_tracked", (), None, required=False),
            ]
        elif spec.kind == "dense":
            entries += [
                Entry(f"{spec.name}.weight", (spec.size, channels[source]), ("params", spec.name, "kernel"), "dense"),
                Entry(f"{spec.name}.bias", (spec.size,), ("params", spec.name, "bias")),
            ]
        channels[spec.name] = spec.size if spec.kind in ("conv", "dense", "batchnorm") else channels[source]
        previous = spec.name
    return entries


def infer_resnet(state_dict: Mapping[str, Any], layout: str = "torchvision", arch: str | None = None) -> ResNet:
    """The ResNet whose keys ``state_dict`` has (see the module docstring); ``arch`` fixes the depth."""
    if arch is not None and arch not in RESNET_ARCHITECTURES:
        raise ValueError(f"arch={arch!r} is not one of {sorted(RESNET_ARCHITECTURES)}")
    blocks = [0, 0, 0, 0]
    for key in state_dict:
        match = _BLOCK_KEY.match(key) if isinstance(key, str) else None
        if match:
            stage, index = int(match[1]) - 1, int(match[2])
            blocks[stage] = max(blocks[stage], index + 1)
    bottleneck = "layer1.0.conv3.weight" in state_dict
    found = [d for d, b in BLOCKS.items() if b == tuple(blocks) and (d in BOTTLENECK_DEPTHS) == bottleneck]
    depth = RESNET_ARCHITECTURES[arch] if arch is not None else (found[0] if found else 50)
    stem = (_shape_of(state_dict.get("conv1.weight")) or (64,))[0]
    num_classes = (_shape_of(state_dict.get("fc.weight")) or (1000,))[0]
    return ResNet(depth=depth, num_classes=num_classes, width=stem / 64, layout=layout)


def resnet_to_variables(state_dict: Mapping[str, Any], *, layout: str = "torchvision",
                        arch: str | None = None) -> tuple[ResNet, dict[str, Any]]:
    """A ResNet state dict with torchvision's keys -> ``(ResNet, variables)`` (numpy float32 leaves).

    Raises:
      ValueError: one error listing every missing, unexpected or mis-shaped key against the inferred (or
        given) architecture.
    """
    _check_keys(state_dict)
    model = infer_resnet(state_dict, layout, arch)
    entries = resnet_entries(model)
    problems = mismatches(state_dict, entries)
    if problems:
        raise ValueError(f"state dict does not match resnet{model.depth} (width={model.width}, "
                         f"num_classes={model.num_classes}, layout={layout!r}): {len(problems)} problem(s): "
                         + "; ".join(problems))
    return model, variables_from(state_dict, entries)


class NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds only numpy arrays, dtypes and scalars (and dicts of them; bytes by
    ``_codecs.encode``, which only encodes a string).

    Every global a pickle names goes through :meth:`find_class`; anything outside :data:`ALLOWED` (``os.system``,
    ``builtins.eval``, ``subprocess.Popen``, …) raises ``pickle.UnpicklingError`` before it can be called.
    """

    ALLOWED = frozenset({
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("collections", "OrderedDict"),
        ("_codecs", "encode"),  # protocol-2 pickles written by Python 3 store bytes as encode(str, "latin1")
    })

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays and dicts are allowed")
        return super().find_class(module, name)


def read_numpy_pickle(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A pickle of ``{name: numpy array}`` (the VGGFace2 port's weights; Python 2 pickles read as latin-1).

    Raises:
      FileNotFoundError: ``path`` does not exist.
      ValueError: not such a pickle, or one that names anything but numpy arrays and dicts (it is not run).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weights file {path!r} does not exist")
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        obj = NumpyOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()
    except Exception as error:  # UnpicklingError, EOFError, ... for refused or broken files
        raise ValueError(f"cannot read weights file {path!r} as a pickle of numpy arrays: {error}") from error
    if not isinstance(obj, Mapping):
        raise ValueError(f"weights file {path!r} holds a {type(obj).__name__}, not a dict of numpy arrays")
    return dict(obj)
