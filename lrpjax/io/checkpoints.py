"""Save and load a VGG or ResNet with its variables and metadata, atomically.

A checkpoint is a directory::

    DEST/
      metadata.json   # the metadata below, plus "model": the VGG constructor fields
      variables/      # an orbax-checkpoint (PyTreeCheckpointer, OCDBT) of {'params', 'batch_stats'?}

Metadata keys written by :func:`save`: ``format_version``; ``model`` (the constructor fields: for a
VGG depth, num_classes, batch_norm, width, pool_to, input_size, dropout_rate, param_dtype; for a
ResNet ``"family": "resnet"`` and depth, num_classes, width, layout, input_size, dropout_rate,
param_dtype); ``architecture`` (e.g. ``"vgg16"``, ``"resnet50"``); ``num_classes``; ``class_names``
(a list or ``None``); ``preprocessing`` (see :mod:`lrpjax.io.preprocess`, or ``None``); ``source`` and
``source_sha256`` (the file converted from, or ``None``); plus any extra JSON-serialisable keys given.

:func:`save` writes into a hidden temporary sibling of ``DEST`` and renames it into place
only once everything is written, so ``DEST`` is either absent or a complete checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from flax.core import unfreeze

from lrpjax.core.finite import nonfinite_parameters
from lrpjax.core.models import VGG, ResNet
from lrpjax.io.preprocess import validate_preprocessing

FORMAT_VERSION = 1
METADATA_FILE = "metadata.json"
VARIABLES_DIR = "variables"
MODEL_FIELDS = ("depth", "num_classes", "batch_norm", "width", "pool_to", "input_size", "dropout_rate",
                "param_dtype")
_REQUIRED_MODEL_FIELDS = MODEL_FIELDS[:6]
RESNET_FIELDS = ("family", "depth", "num_classes", "width", "layout", "input_size", "dropout_rate", "param_dtype")
"""A ResNet's constructor fields; ``family`` is ``"resnet"`` (a config without it is a VGG's)."""
FAMILIES = {"vgg": (VGG, MODEL_FIELDS, _REQUIRED_MODEL_FIELDS), "resnet": (ResNet, RESNET_FIELDS, ("depth",))}
Model = VGG | ResNet


def model_config(model: Model) -> dict[str, Any]:
    """The constructor fields of ``model`` as a JSON-ready dict (``param_dtype`` as its name)."""
    if not isinstance(model, (VGG, ResNet)):
        raise TypeError(f"model must be an lrpjax.core.models.VGG or ResNet, got {type(model).__name__}")
    if isinstance(model, ResNet):
        config = {"family": "resnet", **{field: getattr(model, field) for field in RESNET_FIELDS[1:]}}
    else:
        config = {field: getattr(model, field) for field in MODEL_FIELDS}
    config["param_dtype"] = np.dtype(model.param_dtype).name
    config["width"] = float(model.width)
    return config


def model_from_config(config: Mapping[str, Any]) -> Model:
    """Rebuild a :class:`VGG` or :class:`ResNet` from :func:`model_config`'s dict; ``ValueError`` names a bad
    field."""
    family = config.get("family", "vgg")
    if family not in FAMILIES:
        raise ValueError(f"model config family={family!r}; choose one of {sorted(FAMILIES)}")
    cls, fields, required = FAMILIES[family]
    missing = [field for field in required if field not in config]
    unknown = sorted(set(config) - set(fields) - {"family"})
    if missing or unknown:
        raise ValueError(f"model config has missing field(s) {missing} and unknown field(s) {unknown}")
    kwargs = {key: value for key, value in config.items() if key != "family"}
    if "param_dtype" in kwargs:
        kwargs["param_dtype"] = jnp.dtype(kwargs["param_dtype"])
    return cls(**kwargs)


def architecture_name(model: Model) -> str:
    """``vgg16``, ``vgg16_bn``, ``resnet50``, ``vggface2_resnet50``, ..."""
    if isinstance(model, ResNet):
        return f"{'vggface2_' if model.layout == 'vggface2' else ''}resnet{model.depth}"
    return f"vgg{model.depth}{'_bn' if model.batch_norm else ''}"


def abstract_variables(model: Model) -> dict[str, Any]:
    """Shapes and dtypes (``jax.ShapeDtypeStruct``) of ``model``'s variables, without allocating them."""
    dummy = jax.ShapeDtypeStruct((1, model.input_size, model.input_size, 3), jnp.float32)
    return unfreeze(jax.eval_shape(model.init, jax.random.key(0), dummy))


def check_variables(model: Model, variables: Mapping[str, Any], what: str = "variables") -> None:
    """Raise one ``ValueError`` listing every missing, unexpected or mis-shaped entry of ``variables``."""
    expected = _flatten(abstract_variables(model))
    given = _flatten(unfreeze(variables))
    problems = [f"missing {key}" for key in expected if key not in given]
    problems += [f"unexpected {key}" for key in given if key not in expected]
    for key in expected.keys() & given.keys():
        shape = tuple(np.shape(given[key]))
        if shape != tuple(expected[key].shape):
            problems.append(f"{key} has shape {shape}, expected {tuple(expected[key].shape)}")
    if problems:
        raise ValueError(f"{what} do not fit {_describe(model)}: " + "; ".join(sorted(problems)))


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> ``{'params/conv1_1/kernel': leaf}``."""
    if isinstance(tree, Mapping):
        flat: dict[str, Any] = {}
        for key, value in tree.items():
            flat.update(_flatten(value, f"{prefix}{key}/"))
        return flat
    return {prefix.rstrip("/"): tree}


def _describe(model: Model) -> str:
    if isinstance(model, ResNet):
        return (f"ResNet(depth={model.depth}, num_classes={model.num_classes}, width={model.width}, "
                f"layout={model.layout!r}, input_size={model.input_size})")
    return (f"VGG(depth={model.depth}, num_classes={model.num_classes}, batch_norm={model.batch_norm}, "
            f"width={model.width}, pool_to={model.pool_to}, input_size={model.input_size})")


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build_metadata(model: Model, metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """Complete and check the metadata :func:`save` writes (see the module docstring)."""
    metadata = dict(metadata or {})
    config = model_config(model)
    if "model" in metadata and metadata["model"] != config:
        raise ValueError(f"metadata['model']={metadata['model']!r} disagrees with the model {config!r}")
    num_classes = metadata.get("num_classes", model.num_classes)
    if num_classes != model.num_classes:
        raise ValueError(f"metadata num_classes={num_classes!r} but the model has {model.num_classes}")
    class_names = metadata.get("class_names")
    if class_names is not None:
        if isinstance(class_names, str) or not all(isinstance(n, str) for n in class_names):
            raise ValueError("metadata class_names must be a list of strings or None")
        class_names = list(class_names)
        if len(class_names) != model.num_classes:
            raise ValueError(f"metadata class_names has {len(class_names)} names but the model has "
                             f"{model.num_classes} classes")
    preprocessing = metadata.get("preprocessing")
    out = {
        "format_version": None,  # first in the file; set below so a caller's value cannot override it
        **metadata,
        "architecture": metadata.get("architecture", architecture_name(model)),
        "num_classes": model.num_classes,
        "class_names": class_names,
        "preprocessing": None if preprocessing is None else validate_preprocessing(preprocessing),
        "source": None if metadata.get("source") is None else os.fspath(metadata["source"]),
        "source_sha256": metadata.get("source_sha256"),
        "model": config,
    }
    out["format_version"] = FORMAT_VERSION
    try:
        json.dumps(out, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"metadata is not JSON-serialisable: {error}") from error
    return out


def _checkpointer() -> ocp.PyTreeCheckpointer:
    """A synchronous orbax checkpointer; no compression (float weights barely compress; 2x faster)."""
    return ocp.PyTreeCheckpointer(use_compression=False)


def save(
    path: str | os.PathLike[str],
    model: Model,
    variables: Mapping[str, Any],
    metadata: Mapping[str, Any] | None = None,
    *,
    overwrite: bool = False,
) -> str:
    """Write ``model``'s ``variables`` and ``metadata`` to the checkpoint directory ``path``.

    ``variables`` must match ``model`` exactly (checked before anything is written). An existing
    ``path`` is refused unless it is an empty directory or ``overwrite=True``; even then only
    something that looks like a checkpoint (it holds ``metadata.json``) is replaced. Returns the
    absolute path written.
    """
    path = os.path.abspath(os.fspath(path))
    check_destination(path, overwrite)
    check_variables(model, variables)
    full_metadata = build_metadata(model, metadata)
    arrays = jax.tree_util.tree_map(np.asarray, unfreeze(variables))
    parent, name = os.path.split(path)
    os.makedirs(parent, exist_ok=True)
    _remove_stale_temporaries(parent, name)
    tmp = os.path.join(parent, f".{name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        os.mkdir(tmp)
        with _checkpointer() as checkpointer:
            checkpointer.save(os.path.join(tmp, VARIABLES_DIR), arrays)
        with open(os.path.join(tmp, METADATA_FILE), "w", encoding="utf-8") as handle:
            json.dump(full_metadata, handle, indent=2, allow_nan=False)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        _move_into_place(tmp, path, overwrite)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def _remove_stale_temporaries(parent: str, name: str) -> None:
    """Remove ``.<name>.tmp-<pid>-*`` folders of saves whose process is gone (killed mid-export), and the
    ``.<name>.tmp-<hex>`` of earlier versions; a live process's save is left alone."""
    pattern = re.compile(rf"\.{re.escape(name)}\.tmp-(?:(\d+)-)?[0-9a-f]{{8}}")
    for entry in os.listdir(parent):
        found = pattern.fullmatch(entry)
        if found and not (found.group(1) and _alive(int(found.group(1)))):
            shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def check_destination(path: str | os.PathLike[str], overwrite: bool = False) -> None:
    """Raise unless :func:`save` may write ``path``.

    ``path`` may be absent, an empty directory, or (with ``overwrite``) a checkpoint directory;
    otherwise ``FileExistsError`` (exists) or ``ValueError`` (not a checkpoint) naming ``path``.
    """
    path = os.path.abspath(os.fspath(path))
    if not os.path.lexists(path):
        return
    if os.path.isdir(path) and not os.listdir(path):
        return
    if not overwrite:
        raise FileExistsError(
            f"checkpoint destination {path!r} already exists; pass overwrite=True (--overwrite) to replace it"
        )
    if not os.path.isdir(path) or not os.path.exists(os.path.join(path, METADATA_FILE)):
        raise ValueError(
            f"refusing to overwrite {path!r}: it is not a checkpoint directory (no {METADATA_FILE})"
        )


def _move_into_place(tmp: str, path: str, overwrite: bool) -> None:
    """Rename ``tmp`` to ``path``; an existing ``path`` is set aside first and removed only after."""
    check_destination(path, overwrite)
    if not os.path.lexists(path):
        os.rename(tmp, path)
        return
    parent, name = os.path.split(path)
    old = os.path.join(parent, f".{name}.old-{uuid.uuid4().hex[:8]}")
    os.rename(path, old)
    try:
        os.rename(tmp, path)
    except BaseException:
        os.rename(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


def load_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check a checkpoint's ``metadata.json`` (without touching the variables)."""
    path = os.path.abspath(os.fspath(path))
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint {path!r} does not exist")
    if not os.path.isdir(path):
        raise ValueError(f"checkpoint {path!r} is not a directory")
    metadata_path = os.path.join(path, METADATA_FILE)
    if not os.path.isfile(metadata_path):
        raise FileNotFoundError(f"checkpoint {path!r} is missing {METADATA_FILE}")
    try:
        with open(metadata_path, encoding="utf-8") as handle:
            metadata = json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"checkpoint {path!r} has an unreadable {METADATA_FILE}: {error}") from error
    if not isinstance(metadata, dict) or not isinstance(metadata.get("model"), dict):
        # the file's content is wrong, not an argument's type
        raise ValueError(f"checkpoint {path!r}: {METADATA_FILE} lacks the 'model' constructor fields")
    version = metadata.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"checkpoint {path!r} has format_version={version!r}; this code reads {FORMAT_VERSION}"
        )
    return metadata


class _DrainingLoop(asyncio.SelectorEventLoop):
    """An event loop that finishes its pending tasks before it closes."""

    def close(self) -> None:
        pending = [] if self.is_running() or self.is_closed() else list(asyncio.all_tasks(self))
        if pending:
            self.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        super().close()


class _DrainingPolicy(asyncio.DefaultEventLoopPolicy):
    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        return _DrainingLoop()


@contextlib.contextmanager
def _draining_event_loops():
    """Event loops made meanwhile wait for their tasks before closing. orbax restores every array in a fresh
    loop and closes it as soon as one read fails; the other reads' tensorstore callbacks then land on a
    closed loop and print "RuntimeError: Event loop is closed" tracebacks after the one-line error."""
    previous = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(_DrainingPolicy())
    try:
        yield
    finally:
        asyncio.set_event_loop_policy(previous)


def load(path: str | os.PathLike[str]) -> tuple[Model, dict[str, Any], dict[str, Any]]:
    """Read a checkpoint written by :func:`save`: ``(model, variables, metadata)``.

    ``variables`` hold jax arrays. Raises ``FileNotFoundError`` when ``path``, its metadata or its
    variables are absent, and ``ValueError`` naming ``path`` when they are corrupt or disagree.
    """
    path = os.path.abspath(os.fspath(path))
    metadata = load_metadata(path)
    try:
        model = model_from_config(metadata["model"])
        expected = abstract_variables(model)
    except (TypeError, ValueError) as error:
        raise ValueError(f"checkpoint {path!r}: bad model config {metadata['model']!r}: {error}") from error
    variables_path = os.path.join(path, VARIABLES_DIR)
    if not os.path.isdir(variables_path):
        raise FileNotFoundError(f"checkpoint {path!r} is missing its {VARIABLES_DIR}/ directory")
    try:
        with _checkpointer() as checkpointer, _draining_event_loops():
            restored = checkpointer.restore(variables_path)
    except Exception as error:  # orbax/tensorstore raise many types for damaged files
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        reason = reason if len(reason) <= 400 else reason[:400] + " ..."
        raise ValueError(
            f"checkpoint {path!r}: cannot restore {VARIABLES_DIR}/ (damaged?): {reason}"
        ) from error
    check_variables(model, restored, what=f"variables of checkpoint {path!r}")
    bad = nonfinite_parameters(restored)
    if bad:
        raise ValueError(f"checkpoint {path!r} holds NaN or infinite values in {', '.join(bad[:5])}"
                         + (f" and {len(bad) - 5} more" if len(bad) > 5 else "") + "; it cannot be explained")
    variables = jax.tree_util.tree_map(
        lambda leaf, spec: jnp.asarray(leaf, dtype=spec.dtype), restored, expected
    )
    return model, variables, metadata
