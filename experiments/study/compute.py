"""The stages that run models: relevance maps, masking curves (own and cross-model) and embeddings.

Each function handles one model on one image set and returns plain arrays, which the study caches per model
(:meth:`experiments.study.cache.Stages.part`).

- :func:`explain_model`: channel-summed relevance ``[C, N, H, W]`` for every composite (one forward pass,
  ``targets="predicted"``: the evidence for the class each model chose) and the logits.
- :func:`mask_model`: the model as the *target* of masking: MoRF, LeRF and random curves under its own maps,
  and the MoRF AUC under every source's maps (other models, consensus maps), the random-order AUC beside them.
- :func:`embed_model`: ``fc7`` embeddings of the images as they are and with only their most relevant pixels
  left (:func:`lrpjax.analysis.relevance_masked_features`), for RDMs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np

from experiments.study import models as grid_models
from experiments.study.images import ImageSet
from lrpjax import analysis
from lrpjax.analysis import randomization
from lrpjax.core import attribution, engine
from lrpjax.core.targets import MODES
from lrpjax.io import preprocess

METRICS = ("accuracy", "logit", "probability")
MODEL_CONTROLS = ("randomised model", "gradient × input", "SmoothGrad", "Integrated Gradients", "occlusion")
CONTROLS = analysis.MODEL_FREE + MODEL_CONTROLS  # every control source of maps, in report order
DEFAULT_CONTROLS = CONTROLS[:-1]  # occlusion (a forward pass per window) only where a config names it


def _batches(count: int, batch_size: int) -> list[slice]:
    return [slice(s, min(s + batch_size, count)) for s in range(0, count, batch_size)]


def _padded(x: np.ndarray, size: int) -> np.ndarray:
    """``x`` padded with zeros to ``size`` rows (one compiled shape for every batch)."""
    if len(x) == size:
        return x
    return np.concatenate([x, np.zeros((size - len(x),) + x.shape[1:], x.dtype)])


TARGETS = MODES


def explain_model(model: grid_models.GridModel, image_set: ImageSet, composite_names: Sequence[str], *,
                  batch_size: int, target: str = "predicted") -> dict[str, np.ndarray]:
    """``{"heat": float32 [C, N, H, W], "logits": [N, K]}``: each composite's relevance summed over channels, of
    the predicted logit (``target="predicted"``) or of the predicted class against the others
    (``"contrast"``, :func:`lrpjax.core.targets.contrast_relevance`), both computed inside the compiled pass."""
    if target not in TARGETS:
        raise ValueError(f"relevance target={target!r} is unknown; choose one of {TARGETS}")
    net, variables, _ = grid_models.load(model.path)
    chosen = grid_models.composites_for(model, composite_names)
    x = grid_models.preprocessed(model, image_set.pixels)
    size = min(batch_size, len(x))
    heats, logits = [], []
    for part in _batches(len(x), size):
        count = part.stop - part.start
        batch = _padded(x[part], size)
        out = engine.explain_full(net, variables, batch, target, chosen)
        heats.append(np.stack([np.asarray(r, np.float32).sum(axis=-1)[:count] for r in out.relevance]))
        logits.append(np.asarray(out.logits, np.float32)[:count])
    return {"heat": np.concatenate(heats, axis=1), "logits": np.concatenate(logits)}


def masking_options(model: grid_models.GridModel, masking: Mapping[str, Any]) -> dict[str, Any]:
    """The masking options for ``model``: ``noise_std_pixels`` (a std in [0, 1] pixel units, e.g. ROAD's 0.01)
    becomes ``noise_std`` in the model's input units (:func:`lrpjax.io.preprocess.pixel_std_to_input`)."""
    options = dict(masking)
    pixels = options.pop("noise_std_pixels", None)
    if pixels is not None:
        options["noise_std"] = preprocess.pixel_std_to_input(pixels, model.metadata["preprocessing"])
    return options


def _heat_batches(x: np.ndarray, targets: np.ndarray, batch_size: int, explain: Any) -> np.ndarray:
    """``explain(batch, targets) -> [B, H, W, C]`` over padded batches, channel-summed to ``[N, H, W]``."""
    size = min(batch_size, len(x))
    heats = []
    for k, part in enumerate(_batches(len(x), size)):
        count = part.stop - part.start
        relevance = explain(_padded(x[part], size), _padded(targets[part], size), k)
        heats.append(np.asarray(relevance, np.float32).sum(axis=-1)[:count])
    return np.concatenate(heats)


def control_maps(model: grid_models.GridModel, image_set: ImageSet, composite: str, *, predictions: np.ndarray,
                 batch_size: int, options: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The model-based controls of :data:`MODEL_CONTROLS` that :func:`control_methods` chooses,
    ``[N, H, W]`` each, for the class each model predicted (``predictions``): ``composite``'s LRP maps of a copy of
    the model with every layer re-initialised (cascading from fc8 to conv1_1), gradient x input, SmoothGrad and
    Integrated Gradients of the model (:mod:`lrpjax.core.attribution`; Zennit's defaults unless ``options`` say
    otherwise: ``smoothgrad_samples`` 20, ``smoothgrad_noise`` 0.1 of the input range, ``ig_steps`` 20, zero
    baseline), and occlusion (:func:`lrpjax.occlusion`, ``mode="drop"``: the drop of the predicted class's
    contrast to the others, the log-odds of two classes, which decide the probability masking tracks
    (``occlusion_output="logit"``: of the predicted logit), when an ``occlusion_window`` square, default 8, is set
    to 0, the training mean after the models' normalisation, at offsets ``occlusion_stride`` apart, default the
    window; each pixel sums the drops of the windows on it)."""
    net, variables, _ = grid_models.load(model.path)
    seed = int(options.get("seed", 0))
    methods = control_methods(options, MODEL_CONTROLS)
    chosen = grid_models.composites_for(model, [composite])
    x = grid_models.preprocessed(model, image_set.pixels)
    targets = np.asarray(predictions, np.int32)
    key = jax.random.key(seed)
    window = int(options.get("occlusion_window", 8))
    stride = int(options.get("occlusion_stride", window))
    output = str(options.get("occlusion_output", "contrast"))

    randomised = (randomization.randomize_layers(net, variables, len(randomization.layer_order(net)),
                                                 key=jax.random.key(seed)) if "randomised model" in methods else None)
    explain = {
        "randomised model": lambda b, t, k: engine.explain_full(net, randomised, b, t, chosen).relevance[0],
        "gradient × input": lambda b, t, k: attribution.gradient_x_input(net, variables, b, t),
        "SmoothGrad": lambda b, t, k: attribution.smoothgrad(
            net, variables, b, t, key=jax.random.fold_in(key, k), samples=int(options.get("smoothgrad_samples", 20)),
            noise_level=float(options.get("smoothgrad_noise", 0.1))),
        "Integrated Gradients": lambda b, t, k: attribution.integrated_gradients(
            net, variables, b, t, steps=int(options.get("ig_steps", 20))),
        "occlusion": lambda b, t, k: attribution.occlusion(net, variables, b, t, window=window, stride=stride,
                                                           mode="drop", output=output),
    }
    return {name: _heat_batches(x, targets, batch_size, explain[name]) for name in methods}


def control_methods(options: Mapping[str, Any], among: Sequence[str] = CONTROLS) -> list[str]:
    """The controls of ``among`` that ``options["methods"]`` (default :data:`DEFAULT_CONTROLS`, all but occlusion)
    or ``options["cross"]`` name, in :data:`CONTROLS` order.

    Raises:
      ValueError: a name that is not a control.
    """
    wanted = [*options.get("methods", DEFAULT_CONTROLS), *options.get("cross", ())]
    unknown = [m for m in wanted if m not in CONTROLS]
    if unknown:
        raise ValueError(f"controls.methods names {unknown}; the controls are {list(CONTROLS)}")
    return [c for c in among if c in wanted]


def mprt_model(model: grid_models.GridModel, image_set: ImageSet, composite_names: Sequence[str], *,
               predictions: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """The model parameter randomisation test of every composite (:func:`lrpjax.analysis.randomization.mprt`:
    the top 1..L layers re-initialised cascading from fc8, the maps of the same images and predicted classes
    compared with the trained model's by Spearman of |maps| and SSIM), on all of ``image_set`` in one batch.

    Returns:
      ``{"spearman": [C, L, N], "ssim": [C, L, N], "layers": [L]}`` (the layer randomised last at each step).
    """
    net, variables, _ = grid_models.load(model.path)
    chosen = grid_models.composites_for(model, composite_names)
    x = grid_models.preprocessed(model, image_set.pixels)
    targets = np.asarray(predictions, np.int32)
    results = [randomization.mprt(lambda m, v, b, t, c=c: engine.explain_full(m, v, b, t, [c]).relevance[0],
                                  net, variables, x, targets, key=jax.random.key(seed)) for c in chosen]
    return {"spearman": np.stack([r.spearman for r in results]), "ssim": np.stack([r.ssim for r in results]),
            "layers": np.asarray(results[0].layers)}


def masking_labels(model: grid_models.GridModel, image_set: ImageSet, predictions: np.ndarray, mode: str
                   ) -> np.ndarray:
    """The labels accuracy is scored against: the set's (``true``; the model's classes must be the set's) or the
    model's own predictions on the unmasked images (``predicted``: accuracy = predictions kept).

    Raises:
      ValueError: ``true`` labels for a model with other class names, or images without a label.
    """
    if mode == "predicted":
        return predictions
    names = list(model.metadata.get("class_names") or [])
    if names != [str(c) for c in image_set.class_names]:
        raise ValueError(f"model {model.name} has classes {names[:5]}..., the image set "
                         f"{list(image_set.class_names)[:5]}...; use labels='predicted' for this set")
    if np.any(image_set.labels < 0):
        raise ValueError("labels='true' for an image set with unlabelled images; use labels='predicted'")
    return image_set.labels


def mask_model(model: grid_models.GridModel, image_set: ImageSet, heats: Mapping[str, np.ndarray],
               sources: Sequence[str], *, labels: np.ndarray, targets: np.ndarray, masking: Mapping[str, Any],
               metric: str) -> dict[str, np.ndarray]:
    """``model`` masked by its own maps in every order and by each source's maps MoRF.

    Args:
      heats: source name -> ``[N, H, W]`` maps (the model's own under its name).
      sources: the sources whose MoRF AUC is wanted (may be empty: own curves only).
      labels, targets: ``[N]`` classes scored for accuracy, and whose logit and probability are tracked.
      masking: options of :func:`lrpjax.analysis.masking_curves`; ``metric``: the curve integrated.

    Returns:
      ``{"curves": [orders, metrics, F, N], "cross": [S, N], "random": [N]}`` (orders as
      :data:`lrpjax.analysis.ORDERS`, metrics as :data:`METRICS`).
    """
    fn = grid_models.logits_fn(model.path)
    x = grid_models.preprocessed(model, image_set.pixels)
    masking = masking_options(model, masking)
    curves = {}
    for order in analysis.ORDERS:
        maps = None if order == "random" else heats[model.name]
        curves[order] = analysis.masking_curves(fn, x, maps, labels, targets=targets, order=order, **masking)
    cross = [curves["morf"].auc(metric) if source == model.name else
             analysis.masking_curves(fn, x, heats[source], labels, targets=targets, order="morf",
                                     **masking).auc(metric)
             for source in sources]
    stacked = np.stack([np.stack([getattr(curves[o], m) for m in METRICS]) for o in analysis.ORDERS])
    return {"curves": stacked.astype(np.float32), "cross": np.asarray(cross, np.float64).reshape(len(sources), -1),
            "random": curves["random"].auc(metric)}


def consensus_sources(heats: Mapping[str, np.ndarray], names: Sequence[str]) -> dict[str, Any]:
    """Extra sources of maps for cross-model masking: ``consensus`` (the mean of every model's normalised map,
    :func:`lrpjax.analysis.consensus_map`) and, per target, ``consensus of others`` (without the target's map:
    a transfer the target's own map cannot inflate). Values: ``[N, H, W]``, or a dict target -> ``[N, H, W]``."""
    if len(names) < 2:
        return {}
    everyone = analysis.consensus_map({n: heats[n] for n in names})
    others = {t: analysis.consensus_map({n: heats[n] for n in names if n != t}) for t in names}
    return {"consensus": everyone, "consensus of others": others}


def embed_model(model: grid_models.GridModel, image_set: ImageSet, heat: np.ndarray | None, *, layer: str,
                keep: float, masking: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """``{"plain": [N, D], "masked": [N, D]}``: ``layer`` activations (after ReLU) of the images, and of the images
    with only their ``keep`` most relevant pixels (by ``heat``) left, the rest filled as in masking (``heat`` None:
    ``plain`` only). ``layer="fc7"`` is each model's face embedding (:func:`lrpjax.analysis.fc7_features`: a
    ResNet's global-average-pooled features)."""
    net, variables, _ = grid_models.load(model.path)
    x = grid_models.preprocessed(model, image_set.pixels)

    def features(images: Any) -> np.ndarray:
        if layer == "fc7":
            return analysis.fc7_features(net, variables, images)
        return analysis.layer_features(net, variables, images, layer=layer)

    if heat is None:
        return {"plain": features(x)}
    options = {k: v for k, v in masking_options(model, masking).items()
               if k in ("fill", "patch_size", "relevance_mode", "mean", "blur_sigma", "noise_std", "seed")}
    masked = analysis.relevance_masked_features(features, x, heat, keep=keep, **options)
    return {"plain": features(x), "masked": masked}
