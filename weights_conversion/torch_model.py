"""The torch reference VGG beside the converter: a plain ``torch.nn`` twin of an lrpjax VGG, its state dict
from lrpjax variables (the conversion run backwards), and exact batch-norm folding for Zennit.

:func:`build_torch_model` lays the modules out as the converter reads them (torchvision's ``features.N`` /
``classifier.N`` for models with an adaptive pool, VGG-Face's layer names otherwise), so the original weights
file loads into it unchanged. torch is imported only inside these functions.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lrpjax.core.models.vgg import VGG
from weights_conversion.convert import Entry, layout, torchvision_names, vggface_names


def torch_layer_names(model: VGG) -> dict[str, str]:
    """Layer name -> module path of the torch model: torchvision's layout (``features.N``, ``avgpool``,
    ``classifier.N``) for models with an adaptive pool, VGG-Face's (the layer names) otherwise."""
    if model.pool_to is None:
        return vggface_names(model)
    return {"avgpool": "avgpool", "flatten": "flatten", **torchvision_names(model)}


def build_torch_model(model: VGG) -> Any:
    """A plain ``torch.nn`` VGG with the layers of ``model`` (eval mode, float32, uninitialised weights).

    Its module paths, hence its state-dict keys, are those of :func:`torch_layer_names`; ReLUs are
    modules (so Zennit's rules reach them); the flatten is ``torch.flatten`` (C, H, W order).
    """
    import torch
    from torch import nn

    class ChainVGG(nn.Module):
        """Runs its modules in the chain's order; ``layer_paths`` are their dotted paths."""

        def __init__(self, paths: Sequence[str]) -> None:
            super().__init__()
            self.layer_paths = tuple(paths)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for path in self.layer_paths:
                x = self.get_submodule(path)(x)
            return x

    names = torch_layer_names(model)
    root = ChainVGG([names[spec.name] for spec in model.layers])
    channels = 3
    with torch.device("meta"):  # no (slow) default initialisation; weights are loaded afterwards
        for spec in model.layers:
            module, channels = _torch_layer(spec, channels, model)
            _add_submodule(root, names[spec.name], module)
    return root.to_empty(device="cpu").eval()


def _torch_layer(spec: Any, channels: int, model: VGG) -> tuple[Any, int]:
    """The torch module of one chain layer and the channel/feature count after it."""
    from torch import nn

    if spec.kind == "conv":
        return nn.Conv2d(channels, spec.size, kernel_size=3, padding=1), spec.size
    if spec.kind == "batchnorm":
        return nn.BatchNorm2d(spec.size, eps=1e-5), channels
    if spec.kind == "relu":
        return nn.ReLU(), channels
    if spec.kind == "maxpool":
        return nn.MaxPool2d(kernel_size=2, stride=2), channels
    if spec.kind == "avgpool":
        return nn.AdaptiveAvgPool2d((spec.size, spec.size)), channels
    if spec.kind == "flatten":
        side = model.pool_to if model.pool_to is not None else model.input_size // 32
        return nn.Flatten(), channels * side * side
    if spec.kind == "dense":
        return nn.Linear(channels, spec.size), spec.size
    if spec.kind == "dropout":
        return nn.Dropout(model.dropout_rate), channels
    raise ValueError(f"layer {spec.name!r} has unknown kind {spec.kind!r}")


def _add_submodule(root: Any, path: str, module: Any) -> None:
    """Put ``module`` at the dotted ``path`` under ``root``, creating ``nn.Sequential`` containers on the way."""
    from torch import nn

    *parents, name = path.split(".")
    parent = root
    for part in parents:
        if not hasattr(parent, part):
            parent.add_module(part, nn.Sequential())
        parent = getattr(parent, part)
    parent.add_module(name, module)


def state_dict_from_variables(model: VGG, variables: Mapping[str, Any]) -> dict[str, Any]:
    """lrpjax variables -> the state dict of :func:`build_torch_model` (the conversion run backwards)."""
    return state_dict_of(layout(model, torch_layer_names(model)), variables)


def state_dict_of(entries: Sequence[Entry], variables: Mapping[str, Any]) -> dict[str, Any]:
    """The torch tensors that the conversion ``entries`` read, rebuilt from lrpjax ``variables``."""
    import torch

    state_dict = {}
    for entry in entries:
        if entry.target is None:
            continue
        array = np.asarray(variables[entry.target[0]][entry.target[1]][entry.target[2]])
        if entry.transform == "conv":
            array = array.transpose(3, 2, 0, 1)
        elif entry.transform == "dense":
            array = array.T
        elif entry.transform == "fc6":
            channels, height, width = entry.fc6_input
            array = array.reshape(height, width, channels, -1).transpose(3, 2, 0, 1).reshape(array.shape[1], -1)
        state_dict[entry.key] = torch.from_numpy(np.array(array, order="C"))
    return state_dict


def torch_model_for(model: VGG, variables: Mapping[str, Any], state_dict: Mapping[str, Any] | None) -> Any:
    """The torch twin of ``model``, loaded from the original ``state_dict`` (so the conversion is checked
    too) or, for a checkpoint directory, from ``variables``."""
    net = build_torch_model(model)
    source = state_dict if state_dict is not None else state_dict_from_variables(model, variables)
    missing, unexpected = net.load_state_dict(dict(source), strict=False)
    missing = [key for key in missing if not key.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(f"the torch model does not take the weights: missing {missing}, unexpected {unexpected}")
    return net.float()


def fold_batch_norm(net: Any) -> Any:
    """A copy of a :func:`build_torch_model` network with each batch norm merged exactly into the conv before
    it (``w * c``, ``(b - mean) * c + beta``, ``c = scale / sqrt(var + eps)``) and replaced by the identity."""
    import torch
    from torch import nn

    folded = copy.deepcopy(net)
    paths = folded.layer_paths
    with torch.no_grad():
        for previous, path in zip(paths, paths[1:]):
            bn = folded.get_submodule(path)
            if not isinstance(bn, nn.BatchNorm2d):
                continue
            conv = folded.get_submodule(previous)
            if not isinstance(conv, nn.Conv2d):
                raise ValueError(f"batch norm {path!r} does not follow a conv")
            factor = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            conv.weight.mul_(factor[:, None, None, None])
            conv.bias.copy_((conv.bias - bn.running_mean) * factor + bn.bias)
            folded.set_submodule(path, nn.Identity())
    return folded
