r"""Gradient-based attributions of the target logit, as Zennit 0.5.1's attributors compute them.

For a model :math:`f`, image :math:`x` and target class :math:`t`, with :math:`g(x) = \nabla_x f_t(x)`:

- gradient x input: :math:`x \odot g(x)` (on a ReLU network with winner-take-all max pools, equal to LRP-0, the
  epsilon rule at :math:`\epsilon = 0`; Ancona et al. 2018, https://arxiv.org/abs/1711.06104);
- SmoothGrad (``zennit.attribution.SmoothGrad``): the mean gradient over :math:`n` noisy copies,
  :math:`\frac{1}{n} \sum_{k=1}^{n} g(x + \epsilon_k)`, :math:`\epsilon_k \sim \mathcal{N}(0, \sigma^2)` with
  :math:`\sigma = \lambda (\max x - \min x)` per image (over all pixels and channels) for ``noise_level``
  :math:`\lambda`, and :math:`\epsilon_n = 0` (Zennit's last copy is the image itself, so ``samples=1`` is the
  gradient). Like Zennit, the result is the mean gradient, not multiplied by the input;
- Integrated Gradients (``zennit.attribution.IntegratedGradients``): Zennit's right Riemann sum
  :math:`(x - \bar x) \odot \frac{1}{n} \sum_{k=1}^{n} g(\bar x + \tfrac{k}{n} (x - \bar x))` from the
  baseline :math:`\bar x` (0 by default);
- occlusion (``zennit.attribution.Occlusion``; Zeiler & Fergus 2014): the target logit with a window of the image
  occluded, accumulated over every window covering each pixel, :math:`R_p = \sum_{w \ni p} s_w`; no gradient
  (:func:`occlusion`).

Each is one jit-compiled function per (model, method, options), batched over the images like
:func:`lrpjax.explain` (jax compiles once per shape and dtype); the model runs in inference mode (batch norm
uses its running statistics), and variables are cast to the images' dtype.

References: Simonyan et al. 2014, https://arxiv.org/abs/1312.6034 (gradients); Shrikumar et al. 2016,
https://arxiv.org/abs/1605.01713 (gradient x input); Smilkov et al. 2017, *SmoothGrad: removing noise by adding
noise*, https://arxiv.org/abs/1706.03825; Sundararajan et al. 2017, *Axiomatic Attribution for Deep Networks*,
ICML, https://arxiv.org/abs/1703.01365; Zeiler & Fergus 2014, *Visualizing and Understanding Convolutional
Networks*, ECCV, https://arxiv.org/abs/1311.2901 (occlusion); Anders et al. 2021, Zennit, https://arxiv.org/abs/2106.13200.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lrpjax.core.engine import _start_relevance, check_images
from lrpjax.core.models.vgg import VGG

Array = jax.Array
Targets = Array | Sequence[int] | np.ndarray


def _gradient_fn(model: VGG):
    """``(variables, images, one_hot) -> d sum_b <logits_b, one_hot_b> / d images``: per-image gradients of the
    target logit in one batched pass (images do not interact in inference mode)."""

    def target_logit_sum(images, variables, one_hot):
        return jnp.sum(model.apply(variables, images) * one_hot)

    return jax.grad(target_logit_sum)


def _prepare(model: VGG, variables: Any, images: Any, targets: Targets):
    images = check_images(model, images)
    if isinstance(targets, str) or callable(targets):
        raise ValueError(f"targets={targets!r}: attributors take class indices, one per image")
    indices, _ = _start_relevance(model, images, targets, None)
    one_hot = jax.nn.one_hot(indices, model.num_classes, dtype=images.dtype)
    return jax.tree.map(lambda a: jnp.asarray(a, images.dtype), variables), images, one_hot


@functools.lru_cache(maxsize=16)
def _compiled_gradient_x_input(model: VGG):
    gradient = _gradient_fn(model)
    return jax.jit(lambda variables, images, one_hot: images * gradient(images, variables, one_hot))


def gradient_x_input(model: VGG, variables: Any, images: Array, targets: Targets) -> Array:
    r""":math:`x \odot \nabla_x f_t(x)` per image, ``[B, H, W, C]``.

    Raises:
      ValueError: images or targets as :func:`lrpjax.explain` refuses them (``"predicted"`` is refused too).
    """
    variables, images, one_hot = _prepare(model, variables, images, targets)
    return _compiled_gradient_x_input(model)(variables, images, one_hot)


def _standard_noise(key: Array, samples: int, shape: tuple[int, ...], dtype: Any) -> Array:
    """SmoothGrad's ``samples - 1`` standard normal draws ``[samples - 1, *shape]``; the last copy has none."""
    return jax.random.normal(key, (samples - 1, *shape), dtype)


@functools.lru_cache(maxsize=16)
def _compiled_smoothgrad(model: VGG, samples: int):
    gradient = _gradient_fn(model)

    def run(variables, images, one_hot, noise, noise_level):
        axes = tuple(range(1, images.ndim))
        std = noise_level * (images.max(axes, keepdims=True) - images.min(axes, keepdims=True))

        def add(total, epsilon):
            return total + gradient(images + std * epsilon, variables, one_hot), None

        total, _ = jax.lax.scan(add, gradient(images, variables, one_hot), noise)
        return total / samples

    return jax.jit(run)


def smoothgrad(model: VGG, variables: Any, images: Array, targets: Targets, *, key: Array, samples: int = 20,
               noise_level: float = 0.1) -> Array:
    r"""SmoothGrad, Zennit's: :math:`\frac{1}{n} \sum_k \nabla_x f_t(x + \epsilon_k)`, ``[B, H, W, C]``.

    Args:
      model, variables, images, targets: as :func:`gradient_x_input`.
      key: a ``jax.random.key`` for the noise.
      samples: :math:`n`, copies averaged (the last without noise); Zennit's default 20.
      noise_level: :math:`\lambda`, noise std as a fraction of each image's value range; Zennit's default 0.1.

    Raises:
      ValueError: ``samples`` not a positive integer, a negative ``noise_level``, bad images or targets.
    """
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 1:
        raise ValueError(f"samples={samples!r} must be a positive integer")
    if not noise_level >= 0:
        raise ValueError(f"noise_level={noise_level!r} must be non-negative")
    variables, images, one_hot = _prepare(model, variables, images, targets)
    noise = _standard_noise(key, int(samples), images.shape, images.dtype)
    return _compiled_smoothgrad(model, int(samples))(variables, images, one_hot, noise,
                                                     jnp.asarray(noise_level, images.dtype))


@functools.lru_cache(maxsize=16)
def _compiled_integrated_gradients(model: VGG, steps: int):
    gradient = _gradient_fn(model)

    def run(variables, images, one_hot, baseline):
        alphas = jnp.arange(1, steps + 1, dtype=images.dtype) / steps

        def add(total, alpha):
            return total + gradient(baseline + alpha * (images - baseline), variables, one_hot), None

        total, _ = jax.lax.scan(add, jnp.zeros_like(images), alphas)
        return (images - baseline) * total / steps

    return jax.jit(run)


def integrated_gradients(model: VGG, variables: Any, images: Array, targets: Targets, *, steps: int = 20,
                         baseline: Array | float | None = None) -> Array:
    r"""Integrated Gradients, Zennit's discretisation:
    :math:`(x - \bar x) \odot \frac{1}{n} \sum_{k=1}^{n} \nabla_x f_t(\bar x + \tfrac{k}{n}(x - \bar x))`.

    Args:
      model, variables, images, targets: as :func:`gradient_x_input`.
      steps: :math:`n`; Zennit's default 20.
      baseline: :math:`\bar x`, broadcastable to the images (default 0, Zennit's ``torch.zeros_like``).

    Raises:
      ValueError: ``steps`` not a positive integer, a baseline that does not broadcast, bad images or targets.
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps={steps!r} must be a positive integer")
    variables, images, one_hot = _prepare(model, variables, images, targets)
    baseline = jnp.zeros_like(images) if baseline is None else jnp.asarray(baseline, images.dtype)
    try:
        baseline = jnp.broadcast_to(baseline, images.shape)
    except ValueError:
        raise ValueError(f"baseline of shape {baseline.shape} does not broadcast to images {images.shape}") from None
    return _compiled_integrated_gradients(model, int(steps))(variables, images, one_hot, baseline)


OCCLUSION_MODES = ("keep", "remove", "drop")


def _pair(name: str, value: Any) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else value
    if (not isinstance(pair, tuple) or len(pair) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in pair)):
        raise ValueError(f"{name}={value!r} must be a positive integer or a (height, width) pair of them")
    return int(pair[0]), int(pair[1])


def occlusion_windows(height: int, width: int, window: Any = 8, stride: Any = 8) -> np.ndarray:
    """The sliding windows of :func:`occlusion` as boolean masks ``[n, height, width]``, in Zennit's order (rows
    of offsets, then columns): a ``window`` block at offsets ``0, stride, 2 stride, ...`` below each side, rolled
    cyclically as Zennit's ``torch.roll`` does (a window past the border wraps round to the other side); window
    and stride are clipped to the image side as Zennit clips an ``int``."""
    (wh, ww), (sh, sw) = _pair("window", window), _pair("stride", stride)
    wh, ww, sh, sw = min(wh, height), min(ww, width), min(sh, height), min(sw, width)
    root = np.zeros((height, width), bool)
    root[:wh, :ww] = True
    return np.stack([np.roll(root, (r, c), axis=(0, 1)) for r in range(0, height, sh) for c in range(0, width, sw)])


@functools.lru_cache(maxsize=16)
def _compiled_occlusion(model: VGG, mode: str, chunk: int):
    def target(variables, images, one_hot):
        return jnp.sum(model.apply(variables, images) * one_hot, axis=-1)

    def run(variables, images, one_hot, windows, fill):
        count, (batch, *shape) = windows.shape[0], images.shape

        def scores(masks):  # [chunk, H, W] -> [chunk, B]: one forward pass of chunk x B occluded images
            m = masks[:, None, :, :, None]
            inside = m if mode == "keep" else 1 - m
            occluded = (images * inside + (1 - inside) * fill).reshape(-1, *shape)
            return target(variables, occluded, jnp.tile(one_hot, (masks.shape[0], 1))).reshape(-1, batch)

        padded = jnp.concatenate([windows, jnp.zeros((-count % chunk, *windows.shape[1:]), windows.dtype)])
        score = jax.lax.map(scores, padded.reshape(-1, chunk, *windows.shape[1:])).reshape(-1, batch)[:count]
        if mode == "drop":
            score = target(variables, images, one_hot)[None] - score
        return jnp.broadcast_to(jnp.einsum("nb,nhw->bhw", score, windows)[..., None], images.shape)

    return jax.jit(run)


def occlusion(model: VGG, variables: Any, images: Array, targets: Targets, *, window: Any = 8, stride: Any = 8,
              mode: str = "keep", fill: Array | float = 0.0, output: str = "logit", chunk: int = 16) -> Array:
    r"""Occlusion, Zennit 0.5.1's ``Occlusion`` (Zeiler & Fergus 2014), ``[B, H, W, C]``:
    :math:`R_p = \sum_{w \ni p} s_w` over the windows :math:`w` (:func:`occlusion_windows`) that cover pixel
    :math:`p` (every channel alike), with the window's mask :math:`M_w` and fill :math:`\bar x`:

    - ``mode="keep"`` (Zennit's default ``occlusion_fn``, which occludes everything *outside* the window):
      :math:`s_w = f_t(M_w \odot x + (1 - M_w) \odot \bar x)`;
    - ``"remove"`` (Zennit's ``occlude_independent`` with ``invert=True``):
      :math:`s_w = f_t((1 - M_w) \odot x + M_w \odot \bar x)`;
    - ``"drop"`` (the drop of the target logit when the window is occluded, Zeiler & Fergus's reading; positive
      where the window supports class :math:`t`): :math:`s_w = f_t(x) - f_t((1 - M_w) \odot x + M_w \odot \bar x)`.

    :math:`f_t` is the target logit :math:`z_t` (``output="logit"``) or its contrast to the other classes,
    :math:`z_t - \frac{1}{K-1} \sum_{k \ne t} z_k` (``"contrast"``, the sum of
    :func:`lrpjax.core.targets.contrast_relevance`; for two classes the log-odds, which alone decide the
    probabilities: occluding a window may move every logit alike, which the logit's drop counts and the
    contrast's does not). With window = stride (the default) the windows tile the image and each pixel carries
    its window's score.
    The windows are evaluated ``chunk`` at a time, each chunk one forward pass of ``chunk`` x B images.

    Args:
      model, variables, images, targets: as :func:`gradient_x_input`.
      window, stride: an ``int`` (both sides) or a ``(height, width)`` pair; Zennit's defaults 8 and 8. The
        windows span every channel (Zennit's ``int`` window when it is at least the number of channels).
      mode: ``"keep"``, ``"remove"`` or ``"drop"``.
      fill: :math:`\bar x`, broadcastable to the images (Zennit's default ``torch.zeros_like``: 0).
      output: ``"logit"`` or ``"contrast"``.
      chunk: windows per forward pass (memory grows with ``chunk`` x B).

    Raises:
      ValueError: a bad window, stride, mode, output, chunk or fill, bad images or targets.
    """
    if mode not in OCCLUSION_MODES:
        raise ValueError(f"mode={mode!r} is unknown; choose one of {OCCLUSION_MODES}")
    if output not in ("logit", "contrast"):
        raise ValueError(f"output={output!r} is unknown; choose 'logit' or 'contrast'")
    if output == "contrast" and model.num_classes < 2:
        raise ValueError(f"output='contrast' needs at least 2 classes, the model has {model.num_classes}")
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise ValueError(f"chunk={chunk!r} must be a positive integer")
    variables, images, one_hot = _prepare(model, variables, images, targets)
    if output == "contrast":
        one_hot = one_hot - (1 - one_hot) / (model.num_classes - 1)
    windows = occlusion_windows(images.shape[1], images.shape[2], window, stride)
    try:
        fill = jnp.broadcast_to(jnp.asarray(fill, images.dtype), images.shape)
    except ValueError:
        raise ValueError(f"fill of shape {np.shape(fill)} does not broadcast to images {images.shape}") from None
    chunk = min(int(chunk), len(windows))
    return _compiled_occlusion(model, mode, chunk)(variables, images, one_hot, jnp.asarray(windows, images.dtype),
                                                   fill)
