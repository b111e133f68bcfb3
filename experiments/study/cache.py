"""Resumable stages: each stage's arrays in ``WORKDIR/stages/NAME.npz``, its summary in ``NAME.json``.

The JSON file is written last (atomically, by rename) and records the stage's *fingerprint*, a hash of
everything the stage depends on (its config section, the models, the images, the fingerprints of the stages it
reads, the source of the code computing it). A rerun loads a stage whose JSON exists with the same fingerprint
and computes it otherwise, so a killed run continues with the first unfinished stage and a changed setting (or
code) recomputes what depends on it.
Stages that evaluate many models also keep one file per model (:meth:`Stages.part`), so they resume mid-stage.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np


class StageResult(NamedTuple):
    """A stage's ``summary`` (JSON-ready), ``arrays`` (name -> array), ``fingerprint`` and whether it was
    ``computed`` by this run (False: loaded)."""

    summary: dict[str, Any]
    arrays: dict[str, np.ndarray]
    fingerprint: str
    computed: bool


def fingerprint(*parts: Any) -> str:
    """A short SHA-256 of ``parts`` as sorted JSON (non-JSON values by ``str``)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def source_hash(*modules: Any) -> str:
    """A short SHA-256 of the modules' source files: part of a stage's inputs, so editing the code that computes
    it recomputes the stage."""
    digest = hashlib.sha256()
    for module in modules:
        with open(module.__file__, "rb") as handle:
            digest.update(handle.read())
    return digest.hexdigest()[:16]


def package_hash(package: Any) -> str:
    """A short SHA-256 of a package's ``__version__`` and every ``.py`` file under it (relative paths and
    bytes, sorted): part of the stages' inputs, so a change to lrpjax (a rule, a composite, the engine, an
    analysis) recomputes what depends on it, not only a change to the study's own modules."""
    root = os.path.dirname(os.path.abspath(package.__file__))
    digest = hashlib.sha256(str(getattr(package, "__version__", "")).encode())
    files = sorted(os.path.relpath(os.path.join(folder, name), root) for folder, _, names in os.walk(root)
                   for name in names if name.endswith(".py"))
    for relative in files:
        digest.update(relative.replace(os.sep, "/").encode() + b"\0")
        with open(os.path.join(root, relative), "rb") as handle:
            digest.update(handle.read() + b"\0")
    return digest.hexdigest()[:16]


def _atomic_json(path: str, value: Mapping[str, Any]) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as handle:
        json.dump(value, handle, indent=1, default=_json_default)
    os.replace(tmp, path)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def save_arrays(path: str, arrays: Mapping[str, np.ndarray]) -> None:
    """``arrays`` into the ``.npz`` ``path`` (atomically; no pickled objects)."""
    tmp = f"{path}.tmp.npz"
    np.savez(tmp, **{key: np.asarray(value) for key, value in arrays.items()})
    os.replace(tmp, path)


def load_arrays(path: str) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` written by :func:`save_arrays`."""
    with np.load(path, allow_pickle=False) as handle:
        return {key: handle[key] for key in handle.files}


class Stages:
    """The stages of one study work directory, with a log line for each stage started, loaded or finished."""

    def __init__(self, workdir: str, log: Callable[[str], None]):
        self.directory = os.path.join(workdir, "stages")
        os.makedirs(self.directory, exist_ok=True)
        self.log = log
        self.computed: list[str] = []
        self.loaded: list[str] = []

    def run(self, name: str, depends: Any, compute: Callable[[str], tuple[dict[str, Any], dict[str, np.ndarray]]]
            ) -> StageResult:
        """The stage ``name``: loaded if finished with the same ``depends``, else ``compute(fingerprint)`` (which
        returns ``(summary, arrays)``), saved and returned."""
        key = fingerprint(name, depends)
        json_path = os.path.join(self.directory, f"{name}.json")
        npz_path = os.path.join(self.directory, f"{name}.npz")
        if os.path.isfile(json_path):
            with open(json_path) as handle:
                stored = json.load(handle)
            if stored.get("fingerprint") == key and os.path.isfile(npz_path):
                self.log(f"stage {name}: finished earlier, loaded ({stored.get('seconds', 0):.1f} s then)")
                self.loaded.append(name)
                return StageResult(stored["summary"], load_arrays(npz_path), key, False)
            self.log(f"stage {name}: inputs changed since it ran, recomputing")
        self.log(f"stage {name}: running")
        started = time.time()
        summary, arrays = compute(key)
        save_arrays(npz_path, arrays)
        seconds = time.time() - started
        _atomic_json(json_path, {"fingerprint": key, "seconds": seconds, "summary": summary})
        self.log(f"stage {name}: done in {seconds:.1f} s")
        self.computed.append(name)
        return StageResult(json.loads(json.dumps(summary, default=_json_default)), arrays, key, True)

    def part(self, stage: str, part: str, key: str, compute: Callable[[], dict[str, np.ndarray]]
             ) -> dict[str, np.ndarray]:
        """One model's arrays within ``stage``: ``stages/STAGE/PART.npz`` if written with fingerprint ``key``,
        else computed and written (so an interrupted stage resumes with its first unfinished model)."""
        directory = os.path.join(self.directory, stage)
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, f"{part}.npz")
        if os.path.isfile(path):
            arrays = load_arrays(path)
            if str(arrays.pop("_fingerprint", "")) == key:
                return arrays
        arrays = compute()
        save_arrays(path, {**arrays, "_fingerprint": np.asarray(key)})
        return arrays

    def seconds(self) -> dict[str, float]:
        """Seconds each finished stage took when it was computed (this run or an earlier one)."""
        out = {}
        for file in sorted(os.listdir(self.directory)):
            if file.endswith(".json"):
                with open(os.path.join(self.directory, file)) as handle:
                    out[file[:-5]] = float(json.load(handle).get("seconds", 0.0))
        return out
