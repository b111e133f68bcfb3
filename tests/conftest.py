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


def random_vgg(*, width=1.0, size=224, num_classes=10, pool_to=7, batch_norm=False, seed=0, bias_scale=0.05,
               dtype=jnp.float64):
    """A VGG-16 with He-initialised weights and N(0, bias_scale) biases (zero biases for bias_scale=0)."""
    model = lrpjax.vgg16(num_classes=num_classes, width=width, pool_to=pool_to, input_size=size,
                         batch_norm=batch_norm, param_dtype=dtype)
    variables = model.init(jax.random.key(seed), jnp.zeros((1, size, size, 3), dtype))
    keys = iter(jax.random.split(jax.random.key(seed + 1), 100))

    def with_bias(path, leaf):
        name = jax.tree_util.keystr(path)
        if name.endswith("['bias']"):
            return bias_scale * jax.random.normal(next(keys), leaf.shape, leaf.dtype)
        return leaf

    params = jax.tree_util.tree_map_with_path(with_bias, variables["params"])
    # flax keeps batch statistics in float32 whatever param_dtype is
    return model, jax.tree.map(lambda a: a.astype(dtype), {**variables, "params": params})


def normalized_images(batch, size, seed=0, dtype=jnp.float64):
    """Uniform [0, 1] RGB pixels normalised with ImageNet's mean and std, NHWC."""
    pixels = jax.random.uniform(jax.random.key(seed), (batch, size, size, 3), dtype)
    return ((pixels - IMAGENET_MEAN) / IMAGENET_STD).astype(dtype)


def relative_error(got, want):
    """max|got - want| / max|want|."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.abs(got - want).max() / np.abs(want).max())
