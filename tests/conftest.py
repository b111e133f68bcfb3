"""Shared test helpers: float64 everywhere (exact cross-checks), random VGGs with non-zero biases."""

import jax
import jax.numpy as jnp
import numpy as np

import lrpjax

jax.config.update("jax_enable_x64", True)

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])
IMAGENET_LOW = tuple((0 - IMAGENET_MEAN) / IMAGENET_STD)
IMAGENET_HIGH = tuple((1 - IMAGENET_MEAN) / IMAGENET_STD)


def random_variables(model, *, seed=0, bias_scale=0.05, dtype=np.float64):
    """He-normal weights and N(0, bias_scale) biases drawn in numpy, with the tree ``model.init`` gives
    (``model.init`` of a VGG takes seconds to trace; tests build many)."""
    rng = np.random.default_rng(seed)
    params, stats, channels = {}, {}, 3
    side = model.pool_to or model.input_size // 32
    for spec in model.layers:
        if spec.kind == "flatten":
            channels *= side * side
        if spec.kind in ("conv", "dense"):
            shape = (3, 3, channels, spec.size) if spec.kind == "conv" else (channels, spec.size)
            std = np.sqrt(2.0 / (9 * spec.size)) if spec.kind == "conv" else 0.01  # as model.init
            params[spec.name] = {"kernel": rng.normal(0, std, shape), "bias": rng.normal(0, bias_scale, spec.size)}
            channels = spec.size
        elif spec.kind == "batchnorm":
            params[spec.name] = {"scale": np.ones(spec.size), "bias": np.zeros(spec.size)}
            stats[spec.name] = {"mean": np.zeros(spec.size), "var": np.ones(spec.size)}
    variables = {"params": params, **({"batch_stats": stats} if stats else {})}
    return jax.tree.map(lambda a: jnp.asarray(a, dtype), variables)


def random_vgg(*, width=1.0, size=224, num_classes=10, pool_to=7, batch_norm=False, seed=0, bias_scale=0.05,
               dtype=jnp.float64):
    """A VGG-16 with He-initialised weights and N(0, bias_scale) biases (zero biases for bias_scale=0)."""
    model = lrpjax.vgg16(num_classes=num_classes, width=width, pool_to=pool_to, input_size=size,
                         batch_norm=batch_norm, param_dtype=dtype)
    return model, random_variables(model, seed=seed, bias_scale=bias_scale, dtype=dtype)


def logits_of(model):
    """``model.apply`` compiled as one program. Called eagerly, flax dispatches and compiles every operation on its
    own: seconds per call for a small VGG, where the compiled program takes a fraction of one."""
    return jax.jit(model.apply)


def input_gradients_of(model):
    """``(variables, images [B, H, W, C], targets [B]) -> d logit_target / d image``, compiled once (the
    reference of the gradient identities; variables are an argument, not constants in the program)."""

    def target_logit(variables, image, target):
        return model.apply(variables, image[None])[0, target]

    return jax.jit(jax.vmap(jax.grad(target_logit, argnums=1), in_axes=(None, 0, 0)))


def normalized_images(batch, size, seed=0, dtype=jnp.float64):
    """Uniform [0, 1] RGB pixels normalised with ImageNet's mean and std, NHWC."""
    pixels = jax.random.uniform(jax.random.key(seed), (batch, size, size, 3), dtype)
    return ((pixels - IMAGENET_MEAN) / IMAGENET_STD).astype(dtype)


def relative_error(got, want):
    """max|got - want| / max|want|."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.abs(got - want).max() / np.abs(want).max())

