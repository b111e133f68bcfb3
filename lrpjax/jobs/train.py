"""Finetuning a VGG or ResNet with optax: a converted or randomly initialised network, a new head, resumable runs.

:func:`fit` trains on a :class:`~lrpjax.data.Split`: the base's layers (or a random initialisation) with a
new head (``fc8``; a ResNet's ``fc``) for the task's classes, drawn from the seed, which also fixes the data order, the
augmentation and dropout. What trains is chosen by name (``TRAINABLE``, ``RESNET_TRAINABLE``; the rest is frozen with
``optax.multi_transform``, batch-norm statistics included). The step is one jit-compiled function; every
``checkpoint_every`` steps an Orbax ``CheckpointManager`` saves the whole state and the data stream's
position, and a run started again in the same work directory resumes from the latest checkpoint and ends
with exactly the parameters an uninterrupted run ends with. Ctrl-C saves before it stops. Evaluation on the
validation split keeps the best checkpoint. Metrics go to ``metrics.jsonl``, a progress line to stderr.
:func:`run` resolves named data splits, fits, tests, and exports the chosen variables with
:func:`lrpjax.io.checkpoints.save` (metadata: preprocessing, class names, base, task, seed, results).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import json
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp

from lrpjax.core.models import VGG, ResNet
from lrpjax.core.models.graph import draw_kernel
from lrpjax.data.pipeline import eval_batches, hide_accelerators_from_tensorflow, prefetch_to_device, train_batches
from lrpjax.data.sources import Split
from lrpjax.io import checkpoints
from lrpjax.jobs.progress import Progress, stream_for, to_stderr
from lrpjax.jobs.workdir import exclusive

TRAINABLE = {
    "head": ("fc8",),
    "fc": ("fc6", "fc7", "fc8"),
    "conv5": ("conv5_*", "bn5_*", "fc6", "fc7", "fc8"),
    "all": ("*",),
}
"""What trains in a VGG: the new head, fc6-fc8, the last conv block and up, or everything."""

RESNET_TRAINABLE = {
    "head": ("fc",),
    "fc": ("fc",),
    "layer4": ("layer4.*", "fc"),
    "conv5": ("layer4.*", "fc"),
    "all": ("*",),
}
"""What trains in a ResNet: ``head`` and ``fc`` are its one dense layer, ``fc``; ``layer4`` (He et al.'s conv5_x
stage, hence also ``conv5``) is the last stage with its batch norms and shortcut, and ``fc``; or everything."""

OPTIMIZERS = ("sgd", "adamw")
OPTIMIZER_FIELDS = ("trainable", "optimizer", "learning_rate", "momentum", "weight_decay", "schedule",
                    "warmup_steps", "clip_norm", "steps")
SCHEDULES = ("cosine", "constant")
_NOT_COMPARED = ("log_every", "workers")  # fields a resumed run may change


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One finetuning run. ``base`` is a checkpoint directory, or ``None`` for a random initialisation of
    ``model`` (VGG fields: depth, width, batch_norm, pool_to, input_size, dropout_rate; a ResNet's:
    ``{"family": "resnet", "depth": 18, "width": ..., "layout": ..., "input_size": ...}``). ``preprocessing``
    defaults to the base's (required without a base). ``steps`` counts optimizer steps of ``batch_size``."""

    base: str | None = None
    model: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    preprocessing: Mapping[str, Any] | None = None
    task: str = ""
    trainable: str = "all"
    optimizer: str = "sgd"
    learning_rate: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    warmup_steps: int = 0
    clip_norm: float | None = None
    steps: int = 1000
    batch_size: int = 32
    augment: bool = True
    colour_jitter: float = 0.0
    seed: int = 0
    eval_every: int = 100
    checkpoint_every: int = 100
    log_every: int = 10
    workers: int = 4

    def __post_init__(self):
        choices = (("trainable", {**TRAINABLE, **RESNET_TRAINABLE}), ("optimizer", OPTIMIZERS),
                   ("schedule", SCHEDULES))
        for field, allowed in choices:
            if getattr(self, field) not in allowed:
                raise ValueError(f"{field}={getattr(self, field)!r}; choose one of {list(allowed)}")
        for field in ("steps", "batch_size", "eval_every", "checkpoint_every", "log_every", "workers"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{field}={value!r} must be a positive int")
        if not self.learning_rate > 0 or self.weight_decay < 0 or self.warmup_steps < 0:
            raise ValueError(f"learning_rate={self.learning_rate!r} must be > 0, weight_decay="
                             f"{self.weight_decay!r} and warmup_steps={self.warmup_steps!r} >= 0")
        if self.base is None and self.preprocessing is None:
            raise ValueError("preprocessing is required when there is no base checkpoint")
        if self.base is None:
            scratch_model(self.model, 1)  # a bad depth, width or layout is named now, not after the data are built

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))


class TrainState(NamedTuple):
    """Everything a training run carries from step to step."""

    params: Any
    batch_stats: Any
    opt_state: Any
    step: jax.Array

    @property
    def variables(self) -> dict[str, Any]:
        return {"params": self.params, **({"batch_stats": self.batch_stats} if self.batch_stats else {})}


def trainable_groups(model: VGG | ResNet) -> Mapping[str, tuple[str, ...]]:
    """The ``trainable`` choices of ``model``'s family: :data:`TRAINABLE` or :data:`RESNET_TRAINABLE`."""
    return RESNET_TRAINABLE if isinstance(model, ResNet) else TRAINABLE


def trainable_layers(params: Mapping[str, Any], trainable: str,
                     groups: Mapping[str, tuple[str, ...]] = TRAINABLE) -> frozenset[str]:
    """Names of the layers (top-level keys of ``params``) that ``trainable`` selects among ``groups``.

    Raises:
      ValueError: ``trainable`` is not one of ``groups`` (e.g. ``layer4`` for a VGG).
    """
    if trainable not in groups:
        family = "ResNet" if groups is RESNET_TRAINABLE else "VGG"
        raise ValueError(f"trainable={trainable!r} is not a {family} group; choose one of {list(groups)}")
    patterns = groups[trainable]
    return frozenset(name for name in params if any(fnmatch.fnmatchcase(name, p) for p in patterns))


def learning_rate_schedule(config: TrainConfig) -> optax.Schedule:
    r"""Linear warm-up over ``warmup_steps`` :math:`w`, then cosine decay to 0 at ``steps`` or a constant rate.

    The warm-up starts above 0, so the first step already learns (Goyal et al. 2017, gradual warm-up):

    .. math:: \eta_s = \eta\,\frac{s + 1}{w + 1} \quad (0 \le s < w), \qquad \eta_w = \eta.
    """
    if config.warmup_steps == 0:
        if config.schedule == "cosine":
            return optax.cosine_decay_schedule(config.learning_rate, config.steps)
        return optax.constant_schedule(config.learning_rate)
    start = config.learning_rate / (config.warmup_steps + 1)
    if config.schedule == "cosine":
        return optax.warmup_cosine_decay_schedule(start, config.learning_rate, config.warmup_steps,
                                                  max(config.steps, config.warmup_steps + 1))
    warmup = optax.linear_schedule(start, config.learning_rate, config.warmup_steps)
    return optax.join_schedules([warmup, optax.constant_schedule(config.learning_rate)], [config.warmup_steps])


def build_optimizer(config: TrainConfig, params: Mapping[str, Any],
                    groups: Mapping[str, tuple[str, ...]] = TRAINABLE) -> optax.GradientTransformation:
    """SGD with momentum or AdamW on the trainable layers (weight decay on kernels only); others frozen."""
    schedule = learning_rate_schedule(config)
    kernels = jax.tree_util.tree_map_with_path(lambda path, _: path[-1].key == "kernel", dict(params))
    if config.optimizer == "sgd":
        inner = optax.chain(optax.add_decayed_weights(config.weight_decay, kernels),
                            optax.sgd(schedule, momentum=config.momentum or None))
    else:
        inner = optax.adamw(schedule, weight_decay=config.weight_decay, mask=kernels)
    if config.clip_norm is not None:
        inner = optax.chain(optax.clip_by_global_norm(config.clip_norm), inner)
    chosen = trainable_layers(params, config.trainable, groups)
    labels = {name: jax.tree.map(lambda _, n=name: "train" if n in chosen else "frozen", layer)
              for name, layer in params.items()}
    return optax.multi_transform({"train": inner, "frozen": optax.set_to_zero()}, labels)


def new_head(params: Mapping[str, Any], num_classes: int, seed: int, head: str = "fc8") -> dict[str, Any]:
    """``params`` with ``head`` (a VGG's ``fc8``, a ResNet's ``fc``) replaced by ``num_classes`` outputs:
    N(0, 0.01) kernel (as VGG's init; drawn on the host from ``seed``, :func:`lrpjax.core.models.graph.draw_kernel`),
    zero bias."""
    hidden, dtype = params[head]["kernel"].shape[0], params[head]["kernel"].dtype
    kernel = draw_kernel(np.random.default_rng(seed), "dense", (hidden, num_classes))
    return {**params, head: {"kernel": jnp.asarray(kernel, dtype), "bias": jnp.zeros((num_classes,), dtype)}}


def random_variables(model: VGG, seed: int) -> dict[str, Any]:
    """Variables drawn as ``model.init`` draws them, with numpy in milliseconds (tracing ``model.init`` takes
    seconds): conv kernels He fan-out truncated normal (flax's ``variance_scaling(2, "fan_out", "normal")``),
    dense kernels N(0, 0.01), zero biases, batch norm scale 1, shift 0, mean 0, variance 1."""
    rng = np.random.default_rng(seed)
    abstract = checkpoints.abstract_variables(model)

    def draw(path, spec):
        kind, shape = path[-1].key, spec.shape
        if kind == "kernel":
            value = draw_kernel(rng, "conv" if len(shape) == 4 else "dense", shape)
        else:
            value = np.ones(shape) if kind in ("scale", "var") else np.zeros(shape)
        return jnp.asarray(value, spec.dtype)

    return jax.tree_util.tree_map_with_path(draw, abstract)


def scratch_model(fields: Mapping[str, Any], num_classes: int) -> VGG | ResNet:
    """The network a run without a base initialises: ``fields`` (a ``TrainConfig.model``; ``family`` ``"vgg"``
    unless given, depth the family's default: VGG-16, ResNet-50) with ``num_classes`` outputs.

    Raises:
      ValueError: an unknown family or field, a missing one, or a depth, width or layout the family has not.
    """
    family = checkpoints.FAMILIES.get(fields.get("family", "vgg"), (VGG,))[0]
    model = checkpoints.model_from_config({"depth": family.depth, **fields, "num_classes": num_classes})
    _ = model.layers  # builds the graph description: where depth, width and layout are checked
    return model


def initial_variables(config: TrainConfig, num_classes: int) -> tuple[VGG | ResNet, dict[str, Any], dict[str, Any]]:
    """``(model, variables, base metadata)``: the base's layers with a new head, or a random initialisation,
    both drawn from ``config.seed``."""
    if config.base is None:
        model = scratch_model(config.model, num_classes)
        return model, random_variables(model, config.seed), {}
    base_model, base_variables, metadata = checkpoints.load(config.base)
    fields = {**checkpoints.model_config(base_model), **config.model, "num_classes": num_classes}
    model = checkpoints.model_from_config(fields)
    head = new_head(base_variables["params"], num_classes, config.seed, model.layers[-1].name)
    return model, {**base_variables, "params": head}, metadata


def make_train_step(model: VGG, optimizer: optax.GradientTransformation,
                    frozen: frozenset[str]) -> Callable[..., tuple[TrainState, dict[str, jax.Array]]]:
    """A jit-compiled ``step(state, image, label, key) -> (state, {"loss", "accuracy"})``; batch-norm
    statistics of ``frozen`` layers are kept as they were."""

    def loss_fn(params, batch_stats, image, label, key):
        logits, updates = model.apply({"params": params, "batch_stats": batch_stats}, image, train=True,
                                      rngs={"dropout": key}, mutable=["batch_stats"])
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, label).mean()
        return loss, (logits, updates.get("batch_stats", {}))

    def step(state, image, label, key):
        (loss, (logits, stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, state.batch_stats, image, label, key)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        stats = {name: state.batch_stats[name] if name in frozen else value for name, value in stats.items()}
        accuracy = jnp.mean(jnp.argmax(logits, -1) == label)
        return TrainState(params, stats, opt_state, state.step + 1), {"loss": loss, "accuracy": accuracy}

    donate = () if jax.default_backend() == "cpu" else (0,)
    return jax.jit(step, donate_argnums=donate)


@functools.lru_cache(maxsize=16)
def make_eval_step(model: VGG) -> Callable[..., tuple[jax.Array, jax.Array]]:
    """A jit-compiled ``step(variables, image, label) -> (per-example loss, prediction)``."""

    def step(variables, image, label):
        logits = model.apply(variables, image)
        return optax.softmax_cross_entropy_with_integer_labels(logits, label), jnp.argmax(logits, -1)

    return jax.jit(step)


def evaluate(model: VGG, variables: Any, split: Split, preprocessing: Mapping[str, Any], *, batch_size: int = 64,
             workers: int = 4, eval_step: Callable | None = None) -> dict[str, Any]:
    """Accuracy, mean loss and per-class accuracy over every readable image of ``split`` (each counted once;
    ``skipped`` counts the unreadable). Raises ``ValueError`` if no image could be read."""
    eval_step = eval_step or make_eval_step(model)
    losses, predictions, labels, skipped = [], [], [], 0
    for batch in prefetch_to_device(eval_batches(split, preprocessing, batch_size=batch_size, workers=workers)):
        loss, predicted = eval_step(variables, batch.image, batch.label)
        mask = np.asarray(batch.mask)
        losses.append(np.asarray(loss)[mask])
        predictions.append(np.asarray(predicted)[mask])
        labels.append(np.asarray(batch.label)[mask])
        skipped = batch.skipped
    if not labels:
        raise ValueError(f"split {split.name!r}: no readable image to evaluate")
    predictions, labels = np.concatenate(predictions), np.concatenate(labels)
    per_class = {split.class_names[c]: float(np.mean(predictions[labels == c] == c)) for c in np.unique(labels)}
    return {"split": split.name, "accuracy": float(np.mean(predictions == labels)),
            "loss": float(np.concatenate(losses).mean()), "per_class_accuracy": per_class,
            "count": int(len(labels)), "skipped": int(skipped)}


def _manager(directory: str, *, best: bool, keep: int = 1) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, create=True, enable_async_checkpointing=False,
        best_fn=(lambda m: m["accuracy"] - 1e-4 * min(m["loss"], 100.0)) if best else None, best_mode="max")
    return ocp.CheckpointManager(os.path.abspath(directory), options=options)


def _save(manager: ocp.CheckpointManager, state: TrainState, stream: Mapping[str, int],
          metrics: Mapping[str, float] | None = None) -> None:
    step = int(state.step)
    if step in manager.all_steps():
        return
    manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state._asdict()),
                                               data=ocp.args.JsonSave(dict(stream))), metrics=metrics)


def _restore(manager: ocp.CheckpointManager, state: TrainState, step: int) -> tuple[TrainState, dict[str, int]]:
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state._asdict())
    restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract),
                                                             data=ocp.args.JsonRestore()))
    return TrainState(**restored["state"]), dict(restored["data"])


_COMPILED: dict[tuple, tuple] = {}


def compiled_step(model: VGG, config: TrainConfig, params: Mapping[str, Any]) -> tuple[optax.GradientTransformation,
                                                                                        Callable]:
    """The optimizer and jit-compiled train step for ``model`` and ``config``'s optimizer fields, reused by
    later runs that share them (seeds of one grid cell compile once); the 8 most recent are kept."""
    key = (model, tuple((field, getattr(config, field)) for field in OPTIMIZER_FIELDS))
    if key not in _COMPILED:
        groups = trainable_groups(model)
        optimizer = build_optimizer(config, params, groups)
        frozen = frozenset(params) - trainable_layers(params, config.trainable, groups)
        _COMPILED[key] = (optimizer, make_train_step(model, optimizer, frozen))
        while len(_COMPILED) > 8:
            _COMPILED.pop(next(iter(_COMPILED)))
    return _COMPILED[key]


class FitResult(NamedTuple):
    """What :func:`fit` returns: the model, the chosen variables (best on validation, else last), which
    step they are from, the last validation metrics and the data stream's skip count."""

    model: VGG
    variables: dict[str, Any]
    step: int
    validation: dict[str, Any] | None
    skipped: int
    base_metadata: dict[str, Any]


def _check_workdir_config(workdir: str, config: TrainConfig) -> None:
    path = os.path.join(workdir, "config.json")
    current = {k: v for k, v in config.to_json().items() if k not in _NOT_COMPARED}
    if os.path.exists(path):
        with open(path) as handle:
            saved = {k: v for k, v in json.load(handle).items() if k not in _NOT_COMPARED}
        if saved != current:
            changed = sorted(k for k in current if saved.get(k) != current[k])
            raise ValueError(f"workdir={workdir!r} holds a run with another config (differs in {changed}); "
                             "use another workdir or delete it")
    os.makedirs(workdir, exist_ok=True)
    with open(path, "w") as handle:
        json.dump(config.to_json(), handle, indent=2)


def _logged_step(line: str) -> float:
    """The step of a metrics line; infinite for a line cut short when a run was killed."""
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        return float("inf")


class _MetricsLog:
    """``metrics.jsonl`` (lines past the resumed step dropped) and the progress line on stderr."""

    def __init__(self, workdir: str, resumed_step: int, log: Callable[[str], None]):
        self.path, self.log = os.path.join(workdir, "metrics.jsonl"), log
        kept = []
        if os.path.exists(self.path):
            with open(self.path) as handle:
                kept = [line for line in handle if _logged_step(line) <= resumed_step]
        with open(self.path, "w") as handle:
            handle.writelines(kept)

    def write(self, record: Mapping[str, Any]) -> None:
        with open(self.path, "a") as handle:
            handle.write(json.dumps(record) + "\n")


def _check_finite(step: int, loss: jax.Array) -> None:
    value = float(loss)
    if not np.isfinite(value):
        raise FloatingPointError(f"training loss became {value} at step {step}; lower the learning rate or "
                                 "check the data")


@dataclasses.dataclass
class _Run:
    """The moving parts of a run, shared by the loop and the Ctrl-C handler."""

    state: TrainState
    stream: dict[str, int]
    pending: tuple[int, jax.Array] | None = None

    def check(self) -> None:
        if self.pending is not None:
            _check_finite(*self.pending)
            self.pending = None


def resolve_preprocessing(config: TrainConfig, base_metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The config's preprocessing, else the base checkpoint's; ``ValueError`` if neither has one."""
    preprocessing = config.preprocessing or base_metadata.get("preprocessing")
    if preprocessing is None:
        raise ValueError(f"base checkpoint {config.base!r} has no preprocessing metadata; set preprocessing")
    return dict(preprocessing)


def fit(config: TrainConfig, train: Split, *, workdir: str, validation: Split | None = None,
        hooks: Sequence[Callable[[int, TrainState], None]] = (), log: Callable[[str], None] = to_stderr) -> FitResult:
    """Train (or resume training) in ``workdir`` for ``config.steps`` steps; see the module docstring.

    ``hooks`` are called as ``hook(step, state)`` once a step is done (logged, evaluated, saved). ``workdir`` is
    held with an exclusive lock (:func:`lrpjax.jobs.workdir.exclusive`) before any file in it is touched.

    Raises:
      FloatingPointError: naming the step where the loss became NaN or infinite.
      ValueError: when ``workdir`` holds a run with another config.
      lrpjax.jobs.workdir.WorkdirBusy: another run holds ``workdir``.
    """
    with exclusive(workdir, command="train"):
        return _fit(config, train, workdir=workdir, validation=validation, hooks=hooks, log=log)


def _fit(config: TrainConfig, train: Split, *, workdir: str, validation: Split | None,
         hooks: Sequence[Callable[[int, TrainState], None]], log: Callable[[str], None]) -> FitResult:
    _check_workdir_config(workdir, config)
    hide_accelerators_from_tensorflow()
    model, variables, base_metadata = initial_variables(config, len(train.class_names))
    preprocessing = resolve_preprocessing(config, base_metadata)
    optimizer, train_step = compiled_step(model, config, variables["params"])
    state = TrainState(variables["params"], variables.get("batch_stats", {}), optimizer.init(variables["params"]),
                       jnp.zeros((), jnp.int32))
    latest = _manager(os.path.join(workdir, "checkpoints", "latest"), best=False)
    best = _manager(os.path.join(workdir, "checkpoints", "best"), best=True) if validation is not None else None
    run = _Run(state, {"cursor": 0, "skipped": 0})
    if latest.latest_step() is not None:
        run.state, run.stream = _restore(latest, state, latest.latest_step())
        log(f"resumed from step {int(run.state.step)} in {workdir}")
    metrics_log = _MetricsLog(workdir, int(run.state.step), log)
    context = (model, train_step, make_eval_step(model), preprocessing)
    try:
        _loop(config, train, validation, run, context, (latest, best), metrics_log, hooks, log)
    except KeyboardInterrupt:
        run.check()
        _save(latest, run.state, run.stream)
        log(f"interrupted: saved step {int(run.state.step)}; run again to resume")
        raise
    chosen, step, metrics = run.state, int(run.state.step), None
    if best is not None and best.best_step() is not None:
        step = best.best_step()
        chosen, _ = _restore(best, run.state, step)
        metrics = dict(best.metrics(step) or {})
    for manager in (latest, best):
        if manager is not None:
            manager.close()
    return FitResult(model, chosen.variables, step, metrics, run.stream["skipped"], base_metadata)


def _loop(config: TrainConfig, train: Split, validation: Split | None, run: _Run, context: tuple,
          managers: tuple, metrics_log: _MetricsLog, hooks: Sequence[Callable], log: Callable[[str], None]) -> None:
    model, train_step, eval_step, preprocessing = context
    latest, best = managers
    step = int(run.state.step)
    if step >= config.steps:
        return
    schedule = learning_rate_schedule(config)
    dropout_key = jax.random.fold_in(jax.random.key(config.seed), 1)
    batches = prefetch_to_device(train_batches(
        train, preprocessing, batch_size=config.batch_size, seed=config.seed, start=run.stream["cursor"],
        skipped=run.stream["skipped"], augment=config.augment, colour=config.colour_jitter, workers=config.workers))
    window, started = [], time.time()
    progress = Progress(config.steps, stream=stream_for(log), label="train",
                        unit="steps", done=step)
    for batch in batches:
        state, metrics = train_step(run.state, batch.image, batch.label, jax.random.fold_in(dropout_key, step))
        step += 1
        run.check()
        run.state, run.stream, run.pending = state, {"cursor": batch.cursor, "skipped": batch.skipped}, (
            step, metrics["loss"])
        window.append(metrics)
        last = step >= config.steps
        if step % config.log_every == 0 or last:
            run.check()
            record = {"step": step, "split": "train", "learning_rate": float(schedule(step - 1)),
                      "loss": float(np.mean([float(m["loss"]) for m in window])),
                      "accuracy": float(np.mean([float(m["accuracy"]) for m in window])),
                      "images_per_second": len(window) * config.batch_size / max(time.time() - started, 1e-9),
                      "skipped": batch.skipped}
            metrics_log.write(record)
            progress.update(0, _note(record))
            window, started = [], time.time()
        if validation is not None and (step % config.eval_every == 0 or last):
            run.check()
            result = evaluate(model, run.state.variables, validation, preprocessing, batch_size=config.batch_size,
                              workers=config.workers, eval_step=eval_step)
            metrics_log.write({"step": step, **result})
            log(f"step {step}: {validation.name} accuracy {result['accuracy']:.3f} loss {result['loss']:.4f}")
            _save(best, run.state, run.stream, {"accuracy": result["accuracy"], "loss": result["loss"]})
        if step % config.checkpoint_every == 0 or last:
            run.check()
            _save(latest, run.state, run.stream)
        progress.update(1)
        for hook in hooks:
            hook(step, run.state)
        if last:
            progress.close()
            return


def _note(record: Mapping[str, Any]) -> str:
    """What the progress line shows after its rate and ETA: loss, accuracy, learning rate, throughput."""
    skipped = f"  skipped {record['skipped']}" if record["skipped"] else ""
    return (f"loss {record['loss']:.4f}  accuracy {record['accuracy']:.3f}  lr {record['learning_rate']:.2e}  "
            f"{record['images_per_second']:.0f} img/s{skipped}")


def run(config: TrainConfig, workdir: str, *, train: Split, validation: Split | None = None,
        tests: Sequence[Split] = (), hooks: Sequence[Callable[[int, TrainState], None]] = (),
        keep_checkpoints: bool = True, log: Callable[[str], None] = to_stderr) -> dict[str, Any]:
    """Fit in ``workdir``, evaluate on ``tests``, export ``workdir/model`` (a :mod:`lrpjax.io.checkpoints`
    checkpoint) and ``workdir/results.json``; returns the results. The export is written last, so its
    presence marks a finished run; ``keep_checkpoints=False`` then deletes the training checkpoints. The whole
    run holds ``workdir``'s lock (a second run on it raises :class:`lrpjax.jobs.workdir.WorkdirBusy`)."""
    with exclusive(workdir, command="train"):
        return _run(config, workdir, train=train, validation=validation, tests=tests, hooks=hooks,
                    keep_checkpoints=keep_checkpoints, log=log)


def _run(config: TrainConfig, workdir: str, *, train: Split, validation: Split | None, tests: Sequence[Split],
         hooks: Sequence[Callable[[int, TrainState], None]], keep_checkpoints: bool,
         log: Callable[[str], None]) -> dict[str, Any]:
    result = fit(config, train, workdir=workdir, validation=validation, hooks=hooks, log=log)
    preprocessing = resolve_preprocessing(config, result.base_metadata)
    test_results = {}
    for split in tests:
        test_results[split.name] = evaluate(result.model, result.variables, preprocessing=preprocessing, split=split,
                                            batch_size=config.batch_size, workers=config.workers)
        log(f"{split.name}: accuracy {test_results[split.name]['accuracy']:.3f} "
            f"({test_results[split.name]['count']} images)")
    base = result.base_metadata
    results = {
        "task": config.task, "seed": config.seed, "train_data": train.name,
        "validation_data": None if validation is None else validation.name, "step": result.step,
        "steps": config.steps, "validation": result.validation, "test": test_results,
        "train_skipped": result.skipped,
    }
    metadata = {
        "preprocessing": preprocessing, "class_names": list(train.class_names), **results,
        "base_checkpoint": None if config.base is None else os.path.abspath(config.base),
        "base_architecture": base.get("architecture"), "base_source_sha256": base.get("source_sha256"),
        "base_class_count": base.get("num_classes"), "train_config": config.to_json(),
    }
    with open(os.path.join(workdir, "results.json"), "w") as handle:
        json.dump(results, handle, indent=2)
    checkpoints.save(os.path.join(workdir, "model"), result.model, result.variables, metadata, overwrite=True)
    if not keep_checkpoints:
        shutil.rmtree(os.path.join(workdir, "checkpoints"), ignore_errors=True)
    return results
