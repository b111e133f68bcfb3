"""Study configs: plain Python files with ``get_config(arg)``, checked when loaded.

A study config (see ``configs/study_smoke.py``) returns a dict with the keys below (``description`` optional):

``profile``
    a label for the report (``smoke``, ``full``).
``workdir``, ``grid``
    where the study writes (``--workdir`` overrides it) and the model grid's work directory (``--grid``).
``data``
    :class:`lrpjax.data.DataPaths` fields for named splits: ``data_dir`` (``None``: ``GRID/tfds``), ``faces``,
    ``manual_dir``.
``geometry``
    ``{"resize": R, "crop": C}`` shown to every model (each keeps its own pixel range, mean and std), or ``None``
    for the models' own, which must then agree (maps of one model mask another's input pixel by pixel).
``image_sets``
    name -> set (see :mod:`experiments.study.images`): ``splits`` (named splits) or ``folder``, ``condition``,
    ``limit``, ``models`` (``"all"`` or a task), ``labels`` (``"true"`` or ``"predicted"``), ``masking``,
    ``generalization``, ``landmarks``, ``maps`` (an ``.npz`` of maps given with the images, each a source of maps
    that masks every model: :func:`experiments.study.images.given_maps`).
``relevance``
    ``composites`` (the first is analysed; every one is drawn), ``batch_size``, ``target`` (``"predicted"``,
    the default: the predicted logit; ``"contrast"``: the predicted class against the others' mean).
``masking``
    :func:`lrpjax.analysis.masking.masking_curves` options (``fractions``, ``fill``, ``patch_size``,
    ``relevance_mode``, ``batch_size``, ``seed``) and ``metric``, the curve integrated.
``statistics``
    ``n_boot``, ``n_perm``, ``confidence``, ``seed``.
``asymmetry``
    families of ordered pairs: ``[{"name", "a": {key: value}, "b": {key: value}, "same": [keys]}]``.
``similarity``, ``regions``, ``human``, ``heatmaps``
    options of those analyses (their ``image_set`` names the set they run on).
``controls`` (optional)
    control maps on every generalization set and the similarity set: ``centre_sigma`` (the centre prior's std
    as a fraction of the side), ``smoothgrad_samples``, ``smoothgrad_noise``, ``ig_steps``, ``occlusion_window``,
    ``occlusion_stride``, ``occlusion_output`` (``contrast`` or ``logit``), ``seed``; ``methods`` (the controls
    computed, default all but occlusion) and ``cross`` (model controls, computed too, whose maps of each model
    also mask every other model, as sources ``"CONTROL of MODEL"``).
``mprt`` (optional)
    the model parameter randomisation test: ``image_set``, ``images`` (the first N), ``threshold`` (Spearman
    above which a composite is flagged), ``seed``.

``masking.fill="road"`` needs ``masking.noise_std_pixels`` (ROAD's 0.01): a std in [0, 1] pixel units, mapped
through each model's preprocessing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from experiments.configfile import call_get_config

KEYS = ("profile", "workdir", "grid", "data", "geometry", "image_sets", "relevance", "masking", "statistics",
        "asymmetry", "similarity", "regions", "human", "heatmaps")
OPTIONAL = ("description", "controls", "mprt")
CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
PROFILES = ("smoke", "full", "planted")


def profile_path(profile: str) -> str:
    """``experiments/configs/study_<profile>.py``; ``ValueError`` for an unknown profile."""
    if profile not in PROFILES:
        raise ValueError(f"profile={profile!r} is unknown; choose one of {PROFILES}")
    return os.path.join(CONFIG_DIR, f"study_{profile}.py")


def load_config(spec: str) -> dict[str, Any]:
    """``get_config(arg)`` of the Python file ``spec`` (``PATH`` or ``PATH:ARG``), checked by :func:`check_config`.

    Raises:
      ValueError: a missing file, no ``get_config``, or a config that :func:`check_config` refuses.
    """
    return check_config(call_get_config(spec), where=spec)


def check_config(config: Mapping[str, Any], *, where: str = "config") -> dict[str, Any]:
    """A plain copy of ``config`` after checking its keys and the cross-references between its sections.

    Raises:
      ValueError: missing or unknown keys, an analysis naming an image set that does not exist, a set without
        exactly one of ``splits`` and ``folder``, or bad ``labels``.
    """
    missing = [k for k in KEYS if k not in config]
    unknown = sorted(set(config) - set(KEYS) - set(OPTIONAL))
    if missing or unknown:
        raise ValueError(f"{where}: missing keys {missing}, unknown keys {unknown}")
    sets = config["image_sets"]
    if not sets:
        raise ValueError(f"{where}: image_sets is empty")
    for name, spec in sets.items():
        if ("splits" in spec) == ("folder" in spec):
            raise ValueError(f"{where}: image set {name!r} needs exactly one of 'splits' and 'folder'")
        if spec.get("maps") is not None and not isinstance(spec["maps"], str):
            raise ValueError(f"{where}: image set {name!r} has maps={spec['maps']!r}; give the path of an .npz")
        if spec.get("labels", "predicted") not in ("true", "predicted"):
            raise ValueError(f"{where}: image set {name!r} has labels={spec['labels']!r}; choose 'true' or "
                             "'predicted'")
    for section in ("similarity", "regions", "human", "heatmaps", "mprt"):
        chosen = (config.get(section) or {}).get("image_set")
        if chosen is not None and chosen not in sets:
            raise ValueError(f"{where}: {section}.image_set={chosen!r} is not among the image sets {sorted(sets)}")
    if config["human"].get("image_set") is not None and config["human"].get("mode") not in ("synthetic", "csv"):
        raise ValueError(f"{where}: human.mode={config['human'].get('mode')!r}; choose 'synthetic' or 'csv'")
    masking = config["masking"]
    if masking.get("fill") == "road" and masking.get("noise_std_pixels") is None and "noise_std" not in masking:
        raise ValueError(f"{where}: masking.fill='road' needs masking.noise_std_pixels (ROAD's 0.01, in [0, 1] "
                         "pixel units)")
    if not config["relevance"].get("composites"):
        raise ValueError(f"{where}: relevance.composites is empty; name at least one composite")
    return dict(config)
