"""Cost of ROAD's noisy linear imputation per masked image against one forward pass of the CPU-scale model.

    python benchmarks/masking.py                          # 64x64, 1/8-width VGG-16 with batch norm, 8 images
    python benchmarks/masking.py --images 16 --patch-size 8 --repeats 5

The model is experiments/configs/grid_cpu.py's (VGG-16, width 1/8, batch norm, 64x64, ``pool_to=None``), with
random weights. The items are the whole (fraction, image) grid of the smoke study (9 fractions 0 ... 1, 4x4
patches) for ``--images`` random images, one batch, in MoRF order of a smooth centred map and in random order.
Side by side in one run, each jitted and timed on the same batch of items (best of the repeats, compilation
excluded; the repeats are interleaved, one call of each method per round, so that all see the same load):

- ``forward``: the model on the masked images;
- ``road fill``: the masking step alone with ``fill="road"`` (conjugate gradients, 8 items at a time), and
  ``zero fill``;
- ``curves step``: masking + forward + metrics, as ``masking_curves`` runs it, for both fills.

"x forward" divides each time by the forward pass's; ROAD's goal is at most 1x.
"""

from __future__ import annotations

import argparse
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

import lrpjax
from lrpjax.analysis import imputation, masking

FRACTIONS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)


def best_times(fns: dict, repeats: int) -> dict[str, float]:
    """Best wall time of each function; the repeats are interleaved (one call of each per round), so that on a
    shared machine every method sees the same changes of load."""
    for fn in fns.values():
        jax.block_until_ready(fn())  # compile
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            jax.block_until_ready(fn())
            times[name].append(time.perf_counter() - start)
    return {name: min(t) for name, t in times.items()}


def items(images, relevance, order: str, patch_size: int):
    """Every (fraction, image) item of an order, fraction-major as ``masking_curves`` builds them."""
    ranks, unit_of_pixel = masking.masking_ranks(relevance, shape=images.shape[:3], order=order,
                                                 patch_size=patch_size)
    counts = jnp.asarray(np.rint(np.asarray(FRACTIONS) * ranks.shape[1]).astype(np.int32))
    n = images.shape[0]
    image_index = jnp.asarray(np.tile(np.arange(n), len(FRACTIONS)))
    count_index = jnp.asarray(np.repeat(np.arange(len(FRACTIONS)), n))
    return ranks, jnp.asarray(unit_of_pixel), counts, image_index, count_index


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=8, help="images; the batch is 9 fractions x images")
    parser.add_argument("--patch-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    size = 64
    model = lrpjax.vgg16(num_classes=2, width=0.125, batch_norm=True, pool_to=None, input_size=size)
    variables = model.init(jax.random.key(0), jnp.zeros((1, size, size, 3)))
    n = args.images
    batch = n * len(FRACTIONS)
    images = jax.random.normal(jax.random.key(1), (n, size, size, 3))
    rows = jnp.arange(size) - size / 2
    blob = jnp.exp(-(rows[:, None] ** 2 + rows[None] ** 2) / (2 * 12.0**2))
    relevance = blob + 0.1 * jax.random.uniform(jax.random.key(2), (n, size, size))
    labels = jnp.zeros(n, jnp.int32)
    noise = imputation.road_noise(images, 0.04)  # ROAD's 0.01 pixel std in ImageNet-normalised units
    logits_fn = jax.jit(lambda x: model.apply(variables, x))
    print(f"jax {jax.__version__}, {jax.devices()[0].platform}, batch {batch}, {size}x{size}, "
          f"patch {args.patch_size}, best of {args.repeats}")
    print("| order | method | ms per masked image | x forward |\n|---|---|---|---|")
    for order in ("morf", "random"):
        grid = items(images, relevance, order, args.patch_size)
        seconds = timings(logits_fn, images, noise, labels, grid, args.repeats)
        for name, value in seconds.items():
            print(f"| {order} | {name} | {1e3 * value / batch:.3f} | {value / seconds['forward']:.2f} |")


def timings(logits_fn, images, noise, labels, grid, repeats: int) -> dict[str, float]:
    zeros = jnp.zeros_like(images)
    masked_road = jax.jit(functools.partial(masking._masked_items, road=True))
    masked_zero = jax.jit(functools.partial(masking._masked_items, road=False))
    x = masked_zero(images, zeros, *grid)
    fns = {"forward": lambda: logits_fn(x), "road fill": lambda: masked_road(images, noise, *grid),
           "zero fill": lambda: masked_zero(images, zeros, *grid)}
    ranks, unit_of_pixel, counts, image_index, count_index = grid
    for name, road, fills in (("curves step, road", True, noise), ("curves step, zero", False, zeros)):
        step = masking._evaluator(logits_fn, road)
        fns[name] = lambda step=step, fills=fills: step(images, fills, ranks, unit_of_pixel, counts, labels, labels,
                                                        image_index, count_index)
    return best_times(fns, repeats)

if __name__ == "__main__":
    main()
