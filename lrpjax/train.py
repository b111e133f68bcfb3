"""Finetuning a VGG with optax: a jit-compiled train step, evaluation, and a thin fit loop.

The step and the evaluation are small pure functions over a :class:`TrainState`;
the loop only shuffles (from the seed), batches, augments and logs.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrpjax.models.vgg import VGG


class TrainState(NamedTuple):
    """Everything a training run carries from step to step."""

    params: Any
    batch_stats: Any
    opt_state: Any
    step: jax.Array

    @property
    def variables(self) -> dict[str, Any]:
        return {"params": self.params, "batch_stats": self.batch_stats}


def adamw(learning_rate: float = 1e-3, weight_decay: float = 1e-4, steps: int = 1000,
          warmup: int = 50) -> optax.GradientTransformation:
    """AdamW with a linear warm-up and cosine decay over ``steps``."""
    schedule = optax.warmup_cosine_decay_schedule(0.0, learning_rate, max(warmup, 1), max(steps, warmup + 1))
    return optax.adamw(schedule, weight_decay=weight_decay)


def create_state(model: VGG, optimizer: optax.GradientTransformation, seed: int) -> TrainState:
    """Variables initialised from ``seed`` at the model's input size, and the optimizer's state."""
    shape = (1, model.input_size, model.input_size, 3)
    variables = model.init(jax.random.key(seed), jnp.zeros(shape, jnp.float32))
    params = variables["params"]
    return TrainState(params, variables.get("batch_stats", {}), optimizer.init(params), jnp.zeros((), jnp.int32))


def _loss(params, batch_stats, model, images, labels, dropout_key):
    logits, updates = model.apply({"params": params, "batch_stats": batch_stats}, images, train=True,
                                  rngs={"dropout": dropout_key}, mutable=["batch_stats"])
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    return loss, (logits, updates.get("batch_stats", batch_stats))


@functools.partial(jax.jit, static_argnums=(0, 1))
def train_step(model: VGG, optimizer: optax.GradientTransformation, state: TrainState, images: jax.Array,
               labels: jax.Array, dropout_key: jax.Array) -> tuple[TrainState, dict[str, jax.Array]]:
    """One optimizer step on a batch; returns the new state and ``{"loss", "accuracy"}``."""
    grad_fn = jax.value_and_grad(_loss, has_aux=True)
    (loss, (logits, batch_stats)), grads = grad_fn(state.params, state.batch_stats, model, images, labels,
                                                   dropout_key)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    accuracy = jnp.mean(jnp.argmax(logits, -1) == labels)
    return TrainState(params, batch_stats, opt_state, state.step + 1), {"loss": loss, "accuracy": accuracy}


@functools.partial(jax.jit, static_argnums=0)
def _eval_batch(model, variables, images, labels):
    logits = model.apply(variables, images)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    return logits, loss


def evaluate(model: VGG, variables: Any, images: np.ndarray, labels: np.ndarray,
             batch_size: int = 64) -> dict[str, Any]:
    """Accuracy, mean loss and per-class accuracy over every image (the last batch included)."""
    logits, losses = [], []
    for start in range(0, len(images), batch_size):
        out, loss = _eval_batch(model, variables, jnp.asarray(images[start:start + batch_size]),
                                jnp.asarray(labels[start:start + batch_size]))
        logits.append(np.asarray(out))
        losses.append(np.asarray(loss))
    predictions = np.concatenate(logits).argmax(-1)
    per_class = {int(c): float(np.mean(predictions[labels == c] == c)) for c in np.unique(labels)}
    return {"accuracy": float(np.mean(predictions == labels)), "loss": float(np.concatenate(losses).mean()),
            "per_class_accuracy": per_class, "predictions": predictions}


def fit(model: VGG, images: np.ndarray, labels: np.ndarray, *, epochs: int, batch_size: int, seed: int,
        learning_rate: float = 1e-3, augment: Callable[[np.random.Generator, np.ndarray], np.ndarray] | None = None,
        log: Callable[[str], None] = lambda line: print(line, file=sys.stderr)) -> TrainState:
    """Train ``model`` from scratch on in-memory ``images`` (preprocessed NHWC float32); the seed fixes the
    initialisation, the data order, the augmentation and dropout."""
    steps_per_epoch = -(-len(images) // batch_size)
    optimizer = adamw(learning_rate, steps=epochs * steps_per_epoch, warmup=steps_per_epoch)
    state = create_state(model, optimizer, seed)
    rng = np.random.default_rng(seed)
    key = jax.random.key(seed + 1)
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(images))
        metrics = []
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            batch = images[index] if augment is None else augment(rng, images[index])
            key, dropout_key = jax.random.split(key)
            state, step_metrics = train_step(model, optimizer, state, jnp.asarray(batch), jnp.asarray(labels[index]),
                                             dropout_key)
            if not np.isfinite(float(step_metrics["loss"])):
                raise FloatingPointError(f"loss became {float(step_metrics['loss'])} at step {int(state.step)}")
            metrics.append({k: float(v) for k, v in step_metrics.items()})
        loss = np.mean([m["loss"] for m in metrics])
        accuracy = np.mean([m["accuracy"] for m in metrics])
        log(f"epoch {epoch:3d}/{epochs}  loss {loss:.4f}  train accuracy {accuracy:.3f}")
    return state
