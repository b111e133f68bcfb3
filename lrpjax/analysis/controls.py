r"""Model-free control maps: what a map that knows nothing of the model scores in masking and similarity.

Faces are centred and their edges concentrate at the eyes and mouth, so a centred blob or an edge map may
"generalize" across models as well as a model's relevance map. Each control is a heatmap ``[N, H, W]`` of the
same images, scored exactly like a model's map:

- :func:`centre_prior`: an isotropic Gaussian at the image centre,
  :math:`h(y, x) = \exp(-((y - y_0)^2 + (x - x_0)^2) / (2 \sigma^2))`, :math:`\sigma` a fraction of the side;
- :func:`gradient_magnitude`: the Sobel magnitude of the grey image,
  :math:`h = \sqrt{(S_x * g)^2 + (S_y * g)^2}`, :math:`g` the channel mean (an edge detector);
- :func:`mean_map`: the models' consensus map (each map normalised to sum 1) averaged over the images, the same
  map for every image: what the maps share whatever the image.

References: Adebayo et al. 2018, *Sanity Checks for Saliency Maps*, NeurIPS, https://arxiv.org/abs/1810.03292;
Rong et al. 2022, *A Consistent and Efficient Evaluation Strategy for Attribution Methods*, ICML.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from lrpjax.analysis.regions import consensus_map

MODEL_FREE = ("centre prior", "image gradient", "mean map")


def centre_prior(shape: tuple[int, int, int], *, sigma: float = 0.25) -> np.ndarray:
    r"""``[N, H, W]`` Gaussian centre prior, :math:`\sigma = ` ``sigma`` times the image side (mean of H, W).

    >>> prior = centre_prior((1, 5, 5), sigma=0.2)
    >>> float(prior[0, 2, 2]), bool(prior[0, 0, 0] < prior[0, 1, 1] < prior[0, 2, 2])
    (1.0, True)

    Raises:
      ValueError: a non-positive ``sigma`` or a shape that is not ``(N, H, W)``.
    """
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape={shape!r} must be (N, H, W) with positive sizes")
    if not sigma > 0:
        raise ValueError(f"sigma={sigma!r} must be a positive fraction of the image side")
    n, height, width = shape
    y = np.arange(height) - (height - 1) / 2
    x = np.arange(width) - (width - 1) / 2
    scale = sigma * (height + width) / 2
    prior = np.exp(-(y[:, None] ** 2 + x[None, :] ** 2) / (2 * scale ** 2))
    return np.broadcast_to(prior, (n, height, width)).copy()


def gradient_magnitude(images: Any) -> np.ndarray:
    r"""``[N, H, W]`` Sobel gradient magnitude of the channel-mean image (edges replicated at the border).

    >>> step = np.zeros((1, 4, 6, 1)); step[..., 3:, :] = 1.0
    >>> gradient_magnitude(step)[0, 1].tolist()
    [0.0, 0.0, 4.0, 4.0, 0.0, 0.0]

    Raises:
      ValueError: images that are not ``[N, H, W, C]``.
    """
    images = np.asarray(images, np.float64)
    if images.ndim != 4:
        raise ValueError(f"images must be [N, H, W, C], got shape {images.shape}")
    grey = np.pad(images.mean(axis=-1), ((0, 0), (1, 1), (1, 1)), mode="edge")

    def at(dy: int, dx: int) -> np.ndarray:
        return grey[:, 1 + dy: grey.shape[1] - 1 + dy, 1 + dx: grey.shape[2] - 1 + dx]

    gx = (at(-1, 1) + 2 * at(0, 1) + at(1, 1)) - (at(-1, -1) + 2 * at(0, -1) + at(1, -1))
    gy = (at(1, -1) + 2 * at(1, 0) + at(1, 1)) - (at(-1, -1) + 2 * at(-1, 0) + at(-1, 1))
    return np.sqrt(gx ** 2 + gy ** 2)


def mean_map(maps: Mapping[str, Any], *, relevance_mode: str = "positive") -> np.ndarray:
    """``[N, H, W]``: the consensus of the models' maps (:func:`~lrpjax.analysis.regions.consensus_map`)
    averaged over the images and repeated for each image.

    Raises:
      ValueError: see :func:`~lrpjax.analysis.regions.consensus_map`.
    """
    consensus = consensus_map(maps, relevance_mode=relevance_mode)
    return np.broadcast_to(consensus.mean(axis=0), consensus.shape).copy()


def model_free_maps(images: Any, maps: Mapping[str, Any], *, sigma: float = 0.25) -> dict[str, np.ndarray]:
    """The three model-free controls of :data:`MODEL_FREE` for ``images`` ``[N, H, W, C]`` and the models'
    ``maps`` of them (for the mean map)."""
    shape = tuple(np.shape(images)[:3])
    return {"centre prior": centre_prior(shape, sigma=sigma), "image gradient": gradient_magnitude(images),
            "mean map": mean_map(maps)}
