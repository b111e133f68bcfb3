"""Heatmaps: colour maps, normalisation, overlays on the face, grids, PNG files.

Colour maps use Zennit's code format: comma-separated RGB hex colours, each optionally
prefixed by its position ``XX:`` on the 0–255 scale; colours without a position are
spaced evenly between their neighbours. ``coldnhot`` and ``bwr`` are Zennit's,
``seismic`` its dimmed blue-white-red.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

COLORMAPS = {
    "coldnhot": "0ff,00f,80:000,f00,ff0,fff",
    "bwr": "00f,80:fff,f00",
    "seismic": "0000d0,80:d0d0d0,d00000",
    "hot": "000,f00,ff0,fff",
    "cold": "000,00f,0ff",
    "gray": "000,fff",
}
NORMALIZATIONS = ("symmetric", "absolute", "minmax")


@functools.cache
def colormap(name_or_code: str) -> np.ndarray:
    """A ``[256, 3]`` uint8 lookup table from a colour-map name or code."""
    code = COLORMAPS.get(name_or_code, name_or_code)
    positions, colors = [], []
    for item in code.split(","):
        index, _, color = item.strip().rpartition(":")
        if len(color) == 3:
            color = "".join(c * 2 for c in color)
        if len(color) != 6:
            raise ValueError(f"colour map {name_or_code!r}: {item!r} is not an RGB hex colour; "
                             f"known maps are {sorted(COLORMAPS)}")
        positions.append(int(index * 2 if len(index) == 1 else index, 16) if index else None)
        colors.append([int(color[i:i + 2], 16) for i in (0, 2, 4)])
    if len(colors) < 2:
        raise ValueError(f"colour map {name_or_code!r} needs at least two colours")
    positions[0] = 0 if positions[0] is None else positions[0]
    positions[-1] = 255 if positions[-1] is None else positions[-1]
    known = [i for i, p in enumerate(positions) if p is not None]
    for left, right in zip(known, known[1:]):
        for k in range(left + 1, right):
            positions[k] = positions[left] + (positions[right] - positions[left]) * (k - left) / (right - left)
    scale = np.arange(256)
    table = [np.interp(scale, positions, [c[channel] for c in colors]) for channel in range(3)]
    return np.round(np.stack(table, axis=-1)).astype(np.uint8)


def normalize(heatmap: np.ndarray, mode: str = "symmetric") -> np.ndarray:
    """Map a heatmap to [0, 1].

    ``symmetric``: 0 -> 0.5, ±max|R| -> 0/1 (signs comparable); ``absolute``: |R| / max|R|;
    ``minmax``: min -> 0, max -> 1. A constant map gives 0.5 (symmetric) or 0.
    """
    heatmap = np.asarray(heatmap, np.float64)
    if mode == "symmetric":
        scale = np.abs(heatmap).max()
        return 0.5 + 0.5 * heatmap / scale if scale > 0 else np.full_like(heatmap, 0.5)
    if mode == "absolute":
        scale = np.abs(heatmap).max()
        return np.abs(heatmap) / scale if scale > 0 else np.zeros_like(heatmap)
    if mode == "minmax":
        low, high = heatmap.min(), heatmap.max()
        return (heatmap - low) / (high - low) if high > low else np.zeros_like(heatmap)
    raise ValueError(f"normalization {mode!r}; choose one of {NORMALIZATIONS}")


def heatmap_image(relevance: np.ndarray, cmap: str = "coldnhot", mode: str = "symmetric") -> np.ndarray:
    """Relevance ``[H, W]`` (or ``[H, W, C]``, summed over channels) -> RGB uint8 ``[H, W, 3]``."""
    relevance = np.asarray(relevance, np.float64)
    if relevance.ndim == 3:
        relevance = relevance.sum(-1)
    if relevance.ndim != 2:
        raise ValueError(f"relevance must be [H, W] or [H, W, C], got shape {relevance.shape}")
    levels = np.clip(np.round(normalize(relevance, mode) * 255), 0, 255).astype(np.uint8)
    return colormap(cmap)[levels]


def overlay(image: np.ndarray, heatmap_rgb: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """Blend a coloured heatmap over an RGB (or grayscale) uint8 image of the same size."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    if image.shape[:2] != heatmap_rgb.shape[:2]:
        image = np.asarray(Image.fromarray(image.astype(np.uint8)).resize(heatmap_rgb.shape[1::-1], Image.BILINEAR))
    mixed = (1 - alpha) * image.astype(np.float64) + alpha * heatmap_rgb.astype(np.float64)
    return np.clip(np.round(mixed), 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=4)
def label_font(size: int = 11) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans (shipped with matplotlib, a dependency): Pillow's default font draws a box for letters such
    as ``é``; falls back to that default where matplotlib's font is missing."""
    import matplotlib

    try:
        return ImageFont.truetype(os.path.join(matplotlib.get_data_path(), "fonts", "ttf", "DejaVuSans.ttf"), size)
    except OSError:
        return ImageFont.load_default(size)


def grid(tiles: Sequence[Sequence[np.ndarray]], *, row_labels: Sequence[str] = (),
         column_labels: Sequence[str] = (), pad: int = 4, label_width: int = 110) -> np.ndarray:
    """Rows x columns of equally sized RGB tiles, with optional row and column labels."""
    rows = len(tiles)
    columns = max(len(r) for r in tiles)
    height, width = tiles[0][0].shape[:2]
    top = 16 if column_labels else 0
    left = label_width if row_labels else 0
    canvas = Image.new("RGB", (left + columns * (width + pad) + pad, top + rows * (height + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    for r, row in enumerate(tiles):
        for c, tile in enumerate(row):
            canvas.paste(Image.fromarray(np.asarray(tile, np.uint8)),
                         (left + pad + c * (width + pad), top + pad + r * (height + pad)))
        if r < len(row_labels):
            draw.text((4, top + pad + r * (height + pad) + height // 2 - 6), str(row_labels[r]), fill="black",
                      font=label_font())
    for c, label in enumerate(column_labels):
        draw.text((left + pad + c * (width + pad), 2), str(label), fill="black", font=label_font())
    return np.asarray(canvas)


def save_png(image: np.ndarray, path: str | os.PathLike[str]) -> str:
    """Write an RGB uint8 array as PNG (parent folders created); returns the path."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    Image.fromarray(np.asarray(image, np.uint8)).save(path)
    return path


def denormalize(image: np.ndarray, mean: Sequence[float], std: Sequence[float],
                pixel_range: Sequence[float] = (0.0, 1.0)) -> np.ndarray:
    """A preprocessed image ``[H, W, 3]`` (``(pixel - mean) / std``) back to RGB uint8 for display."""
    pixels = np.asarray(image, np.float64) * np.asarray(std, np.float64) + np.asarray(mean, np.float64)
    low, high = (float(v) for v in pixel_range)
    return np.clip(np.round((pixels - low) / (high - low) * 255), 0, 255).astype(np.uint8)


def colorbar(cmap: str = "coldnhot", *, width: int = 256, height: int = 14,
             labels: Sequence[str] = ("-max |R|", "0", "+max |R|")) -> np.ndarray:
    """A horizontal legend ``[height + 14, width, 3]``: the colour map from 0 to 255 with labels below
    (left, centre, right; the symmetric normalisation's meaning by default)."""
    table = colormap(cmap)[np.linspace(0, 255, width).round().astype(int)]
    canvas = Image.new("RGB", (width, height + 14), "white")
    canvas.paste(Image.fromarray(np.repeat(table[None], height, axis=0)), (0, 0))
    draw = ImageDraw.Draw(canvas)
    for label, anchor in zip(labels, ("ls", "ms", "rs")):
        x = {"ls": 0, "ms": width // 2, "rs": width - 1}[anchor]
        draw.text((x, height + 12), str(label), fill="black", anchor=anchor, font=label_font())
    return np.asarray(canvas)
