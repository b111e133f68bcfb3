"""Convert PyTorch VGG and ResNet state dicts to ``lrpjax`` variables.

ResNets (torchvision's ``resnet18`` … ``resnet152`` under the ``torchvision`` format, and the
VGGFace2 port's ResNet-50 under ``vggface2``) are handled in :mod:`weights_conversion.resnet`.
Three VGG layouts are understood:

``torchvision``
    ``features.N.weight/bias`` (plus ``running_mean/running_var/num_batches_tracked`` of the
    ``_bn`` variants) and ``classifier.{0,3,6}.weight/bias``; VGG-11/13/16/19, with or without
    batch norm, an adaptive 7x7 average pool before ``classifier.0``.
``vggface``
    the VGG-Face port (``vgg_face_dag``): ``conv1_1`` … ``conv5_3``, ``fc6``, ``fc7``, ``fc8``
    (2622 identities), ``pool5`` flattened directly (224x224 inputs).
``finetuned``
    a torchvision-layout VGG-16 with a new head of any size, possibly wrapped as
    ``{'state_dict': ..., 'class_names': [...]}`` and/or with DataParallel's ``module.`` prefix.

Weights are laid out for Flax: conv ``[out, in, kh, kw]`` -> ``[kh, kw, in, out]``; linear
``[out, in]`` -> ``[in, out]``; ``fc6``'s input rows are permuted from torch's C, H, W flatten
order to the H, W, C order of NHWC; batch-norm ``weight/bias`` -> ``params`` ``scale/bias`` and
``running_mean/running_var`` -> ``batch_stats`` ``mean/var`` (eps 1e-5 in both frameworks).

Every function here works on a mapping of arrays (torch tensors or numpy arrays) and never
imports torch; :func:`read_torch_file` and :func:`convert_file` do the file I/O.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterable, Mapping
from typing import Any

from lrpjax.core.models import VGG
from lrpjax.core.models.vgg import BLOCK_CHANNELS, BLOCKS, HIDDEN
from lrpjax.io import checkpoints
from lrpjax.io.preprocess import preset
from weights_conversion.resnet import RESNET_ARCHITECTURES, read_numpy_pickle, resnet_to_variables
from weights_conversion.state_dicts import Entry, _check_keys, _shape_of, mismatches, variables_from

FORMATS = ("torchvision", "vggface", "finetuned", "vggface2")
ARCHITECTURES = {f"vgg{depth}{'_bn' if bn else ''}": (depth, bn) for depth in BLOCKS for bn in (False, True)}
VGGFACE_CLASSES = 2622
VGGFACE_INPUT_SIZE = 224


# ----------------------------------------------------------------------------- layouts


def layout(model: VGG, torch_names: Mapping[str, str]) -> list[Entry]:
    """The torch tensors of ``model`` whose layers are called ``torch_names[layer]`` in torch."""
    entries: list[Entry] = []
    channels, side, fc6_input = 3, model.input_size, None
    for spec in model.layers:
        prefix = torch_names.get(spec.name)
        if spec.kind == "conv":
            entries += [
                Entry(f"{prefix}.weight", (spec.size, channels, 3, 3), ("params", spec.name, "kernel"),
                      "conv"),
                Entry(f"{prefix}.bias", (spec.size,), ("params", spec.name, "bias")),
            ]
            channels = spec.size
        elif spec.kind == "batchnorm":
            entries += [
                Entry(f"{prefix}.weight", (spec.size,), ("params", spec.name, "scale")),
                Entry(f"{prefix}.bias", (spec.size,), ("params", spec.name, "bias")),
                Entry(f"{prefix}.running_mean", (spec.size,), ("batch_stats", spec.name, "mean")),
                Entry(f"{prefix}.running_var", (spec.size,), ("batch_stats", spec.name, "var")),
                Entry(f"{prefix}.num_batches_tracked", (), None, required=False),
            ]
        elif spec.kind == "maxpool":
            side //= 2
        elif spec.kind == "avgpool":
            side = spec.size
        elif spec.kind == "flatten":
            fc6_input = (channels, side, side)
            channels = channels * side * side
        elif spec.kind == "dense":
            transform = "fc6" if fc6_input is not None else "dense"
            entries += [
                Entry(f"{prefix}.weight", (spec.size, channels), ("params", spec.name, "kernel"), transform,
                      fc6_input),
                Entry(f"{prefix}.bias", (spec.size,), ("params", spec.name, "bias")),
            ]
            channels, fc6_input = spec.size, None
    return entries


def torchvision_names(model: VGG) -> dict[str, str]:
    """Layer name -> torchvision module path (``conv1_1`` -> ``features.0``, ``fc6`` -> ``classifier.0``)."""
    names: dict[str, str] = {}
    features = [spec for spec in model.layers if spec.kind in ("conv", "batchnorm", "relu", "maxpool")]
    in_features = features[: max(i for i, spec in enumerate(features) if spec.kind == "maxpool") + 1]
    for index, spec in enumerate(in_features):
        names[spec.name] = f"features.{index}"
    head = [spec for spec in model.layers
            if spec.kind in ("dense", "relu", "dropout") and spec.name not in names]
    for index, spec in enumerate(head):
        names[spec.name] = f"classifier.{index}"
    return names


def vggface_names(model: VGG) -> dict[str, str]:
    """VGG-Face's torch modules carry the VGG layer names themselves."""
    return {spec.name: spec.name for spec in model.layers}


# ----------------------------------------------------------------------------- matching


def _best_fit(state_dict: Mapping[str, Any], candidates: Iterable[tuple[VGG, dict[str, str]]]) -> VGG:
    """The candidate model whose layout has the fewest problems; raises listing them if any remain."""
    scored = []
    for model, names in candidates:
        scored.append((len(mismatches(state_dict, layout(model, names))), len(scored), model, names))
    _, _, model, names = min(scored, key=lambda item: item[:2])
    entries = layout(model, names)
    problems = mismatches(state_dict, entries)
    if problems:
        found = any(entry.key in state_dict for entry in entries)
        hint = "" if found else " (none of its keys is present: wrong format?)"
        raise ValueError(
            f"state dict does not match {architecture_name(model)} (width={model.width}, "
            f"num_classes={model.num_classes}){hint}: {len(problems)} problem(s): " + "; ".join(problems)
        )
    return model


def architecture_name(model: VGG) -> str:
    """``vgg16``, ``vgg16_bn``, ... (``resnet50`` etc. for ResNets)."""
    return checkpoints.architecture_name(model)


def _is_resnet(obj: Any, arch: str | None) -> bool:
    """A state dict with torchvision ResNet keys (or an ``arch`` that names a ResNet)."""
    if arch is not None:
        return arch in RESNET_ARCHITECTURES
    return isinstance(obj, Mapping) and "conv1.weight" in obj and "fc.weight" in obj


def _widths(*pairs: tuple[Any, int]) -> list[float]:
    """Width multipliers suggested by tensors' leading sizes (``(tensor, full size)`` pairs), then 1.0."""
    widths = []
    for value, full in pairs:
        shape = _shape_of(value)
        if shape:
            widths.append(shape[0] / full)
    return list(dict.fromkeys([*widths, 1.0]))


def _leading(state_dict: Mapping[str, Any], *keys: str, default: int) -> int:
    for key in keys:
        shape = _shape_of(state_dict.get(key))
        if shape:
            return shape[0]
    return default


# ----------------------------------------------------------------------------- formats


def parse_architecture(arch: str) -> tuple[int, bool]:
    """``'vgg16_bn'`` -> ``(16, True)``; ``ValueError`` naming ``arch`` otherwise."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"arch={arch!r} is not one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[arch]


def torchvision_to_variables(
    state_dict: Mapping[str, Any], arch: str | None = None
) -> tuple[VGG, dict[str, Any]]:
    """A torchvision-layout VGG state dict -> ``(VGG, variables)`` (numpy float32 leaves).

    ``arch`` (``vgg11`` … ``vgg19_bn``) is inferred from the keys when ``None``: the architecture,
    width multiplier and class count whose layout fits the keys best. Raises one ``ValueError``
    listing every missing, unexpected or mis-shaped key.
    """
    _check_keys(state_dict)
    archs = [parse_architecture(arch)] if arch is not None else list(ARCHITECTURES.values())
    num_classes = _leading(state_dict, "classifier.6.weight", "classifier.6.bias", default=1000)
    widths = _widths((state_dict.get("classifier.0.weight"), HIDDEN),
                     (state_dict.get("features.0.weight"), BLOCK_CHANNELS[0]))
    candidates = []
    for depth, batch_norm in archs:
        for width in widths:
            model = VGG(depth=depth, num_classes=num_classes, batch_norm=batch_norm, width=width, pool_to=7)
            candidates.append((model, torchvision_names(model)))
    model = _best_fit(state_dict, candidates)
    return model, variables_from(state_dict, layout(model, torchvision_names(model)))


def vggface_to_variables(
    state_dict: Mapping[str, Any], input_size: int = VGGFACE_INPUT_SIZE
) -> tuple[VGG, dict[str, Any]]:
    """A VGG-Face (``vgg_face_dag``) state dict -> ``(VGG, variables)``: a VGG-16 with ``pool_to=None``.

    The class count (2622 for VGG-Face) and width multiplier are read from ``fc8``/``fc6``/``conv1_1``;
    ``fc6`` must fit ``input_size`` (pool5 is ``input_size // 32`` square). Raises one ``ValueError``
    listing every missing, unexpected or mis-shaped key.
    """
    _check_keys(state_dict)
    num_classes = _leading(state_dict, "fc8.weight", "fc8.bias", default=VGGFACE_CLASSES)
    widths = _widths((state_dict.get("fc7.weight"), HIDDEN),
                     (state_dict.get("conv1_1.weight"), BLOCK_CHANNELS[0]))
    candidates = []
    for width in widths:
        model = VGG(depth=16, num_classes=num_classes, width=width, pool_to=None, input_size=input_size)
        candidates.append((model, vggface_names(model)))
    model = _best_fit(state_dict, candidates)
    return model, variables_from(state_dict, layout(model, vggface_names(model)))


def unwrap_state_dict(obj: Any) -> tuple[dict[str, Any], list[str] | None]:
    """``{'state_dict': sd, 'class_names': [...]}`` or ``sd`` -> ``(sd without 'module.' prefixes, names)``.

    Other top-level keys of a wrapper (``epoch``, ``optimizer``, ...) are ignored.
    """
    class_names = None
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        class_names = obj.get("class_names")
        if class_names is not None:
            if isinstance(class_names, str) or not all(isinstance(name, str) for name in class_names):
                raise ValueError(f"'class_names' must be a list of strings, got {class_names!r}")
            class_names = list(class_names)
        obj = obj["state_dict"]
    _check_keys(obj)
    state_dict: dict[str, Any] = {}
    for key, value in obj.items():
        name = key.removeprefix("module.")
        if name in state_dict:
            raise ValueError(f"key {key!r} clashes with {name!r} once the 'module.' prefix is removed")
        state_dict[name] = value
    return state_dict, class_names


def finetuned_to_variables(obj: Any, arch: str = "vgg16") -> tuple[VGG, dict[str, Any], list[str] | None]:
    """A fine-tuned torchvision-layout VGG (VGG-16 by default, any head) -> ``(VGG, variables, class_names)``.

    ``obj`` is a state dict or ``{'state_dict': ..., 'class_names': [...]}``; ``module.`` prefixes are
    stripped. ``class_names`` is ``None`` when the file has none.
    """
    state_dict, class_names = unwrap_state_dict(obj)
    model, variables = torchvision_to_variables(state_dict, arch)
    if class_names is not None and len(class_names) != model.num_classes:
        raise ValueError(
            f"'class_names' has {len(class_names)} names but the head has {model.num_classes} outputs"
        )
    return model, variables, class_names


# ----------------------------------------------------------------------------- files


def read_torch_file(path: str | os.PathLike[str]) -> Any:
    """``torch.load(path, map_location='cpu', weights_only=True)`` with errors that name the file."""
    import torch  # only here: lrpjax itself never imports torch

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"weights file {path!r} does not exist")
    if not os.path.isfile(path):
        raise ValueError(f"weights file {path!r} is not a file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "weights only load failed" not in str(error).lower():
            raise ValueError(f"cannot read weights file {path!r}: {type(error).__name__}: "
                             f"{str(error).strip().splitlines()[0] if str(error).strip() else ''}") from error
        raise ValueError(
            f"weights file {path!r} holds objects other than tensors (pickled Python objects or code); "
            "lrpjax reads only tensors and will not load it"
        ) from None
    except Exception as error:  # torch raises RuntimeError, EOFError, ... for bad files
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(
            f"cannot read weights file {path!r} ({os.path.getsize(path)} bytes): not a complete PyTorch "
            f"file loadable with weights_only=True ({type(error).__name__}: {message})"
        ) from error


def read_class_names(path: str | os.PathLike[str]) -> list[str]:
    """One class name per line (surrounding whitespace and blank lines dropped)."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as handle:
            names = [line.strip() for line in handle]
    except FileNotFoundError:
        raise FileNotFoundError(f"class names file {path!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read class names file {path!r}: {error}") from error
    names = [name for name in names if name]
    if not names:
        raise ValueError(f"class names file {path!r} holds no names")
    return names


def convert(
    fmt: str, obj: Any, arch: str | None = None, class_names: list[str] | None = None
) -> tuple[VGG, dict[str, Any], dict[str, Any]]:
    """A loaded torch object in format ``fmt`` -> ``(model, variables, metadata)`` (without source info)."""
    if fmt == "vggface2":
        model, variables = resnet_to_variables(obj, layout="vggface2", arch=arch or "resnet50")
        found_names, preprocessing = None, preset("vggface2")
    elif fmt == "torchvision" and _is_resnet(obj, arch):
        model, variables = resnet_to_variables(obj, arch=arch)
        found_names, preprocessing = None, preset("torchvision")
    elif fmt == "torchvision":
        model, variables = torchvision_to_variables(obj, arch)
        found_names, preprocessing = None, preset("torchvision")
    elif fmt == "vggface":
        if arch not in (None, "vgg16"):
            raise ValueError(f"arch={arch!r}: the vggface format is always vgg16")
        model, variables = vggface_to_variables(obj)
        found_names, preprocessing = None, preset("vggface")
    elif fmt == "finetuned":
        model, variables, found_names = finetuned_to_variables(obj, arch or "vgg16")
        preprocessing = preset("torchvision")
    else:
        raise ValueError(f"format={fmt!r} is not one of {list(FORMATS)}")
    if class_names is not None and found_names is not None and list(class_names) != found_names:
        raise ValueError("the --class-names file disagrees with the 'class_names' stored in the weights file")
    names = class_names if class_names is not None else found_names
    if names is not None and len(names) != model.num_classes:
        raise ValueError(f"{len(names)} class names given but the model has {model.num_classes} classes")
    metadata = {
        "architecture": checkpoints.architecture_name(model),
        "num_classes": model.num_classes,
        "class_names": None if names is None else list(names),
        "preprocessing": preprocessing,
        "source_format": fmt,
    }
    return model, variables, metadata


def convert_file(
    fmt: str,
    source: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    arch: str | None = None,
    class_names_file: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
) -> tuple[VGG, dict[str, Any]]:
    """Convert the torch file ``source`` to an ``lrpjax`` checkpoint ``dest``; returns ``(model, metadata)``.

    ``dest`` is written atomically by :func:`lrpjax.io.checkpoints.save`: after any error it is left as it
    was (absent, or the previous checkpoint). Errors about the file's contents name ``source``.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format={fmt!r} is not one of {list(FORMATS)}")
    if arch is not None and arch not in RESNET_ARCHITECTURES:
        parse_architecture(arch)
    dest = os.path.abspath(os.fspath(dest))
    checkpoints.check_destination(dest, overwrite)  # fail before the (slow) conversion
    class_names = None if class_names_file is None else read_class_names(class_names_file)
    if fmt == "vggface2" and os.fspath(source).endswith((".pkl", ".pickle")):
        obj = read_numpy_pickle(source)
    else:
        obj = read_torch_file(source)
    try:
        model, variables, metadata = convert(fmt, obj, arch, class_names)
    except ValueError as error:
        raise ValueError(f"{os.fspath(source)!r}: {error}") from error
    metadata["source"] = os.path.abspath(os.fspath(source))
    metadata["source_sha256"] = checkpoints.sha256_file(source)
    checkpoints.save(dest, model, variables, metadata, overwrite=overwrite)
    return model, checkpoints.load_metadata(dest)
