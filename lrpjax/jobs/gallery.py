"""A page to browse an ``lrpjax explain`` run: images x composites, a comparison grid and a colour legend.

    lrpjax explain CHECKPOINT --images DIR --out OUT --gallery     # then open OUT/index.html

:func:`write_gallery` reads ``OUT/relevance.h5`` and writes ``OUT/index.html`` (no server needed: every
image path is relative) with its PNGs under ``OUT/gallery/``: per image the preprocessed input and one
heatmap per composite, with the id, label, prediction and the logit explained; ``comparison.png`` (the first
images x composites, via :func:`lrpjax.io.viz.grid`) and ``legend.png`` (the colour map, symmetric scale).
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np

from lrpjax.io import viz
from lrpjax.io.preprocess import load_image, preprocess
from lrpjax.jobs.store import STORE_FILE, attribute, done_rows

GALLERY_DIR = "gallery"
_STYLE = """body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:4px;text-align:center;vertical-align:top;font-size:12px}
td.meta{text-align:left;white-space:nowrap}img.tile{width:128px;height:128px;image-rendering:pixelated}"""


@dataclass(frozen=True)
class _Row:
    """One image of the page: where it is in the store and what to print beside it."""

    index: int
    image_id: str
    label: str
    prediction: str
    target: str
    logit: float


def write_gallery(out_dir: str, *, max_images: int = 48, compare_images: int = 8, cmap: str = "coldnhot",
                  mode: str = "symmetric", images_dir: str | None = None) -> str:
    """Write ``out_dir/index.html`` for the store ``out_dir/relevance.h5``; returns the page's path.

    Args:
      out_dir: the run's output folder (holding ``relevance.h5``).
      max_images: images on the page (the first explained ones, in id order).
      compare_images: rows of ``gallery/comparison.png``.
      cmap: a :data:`lrpjax.io.viz.COLORMAPS` name (``coldnhot``, ``bwr``, ``seismic``, ...).
      mode: heatmap normalisation (:data:`lrpjax.io.viz.NORMALIZATIONS`).
      images_dir: where the original images are now (default: the folder recorded in the store).

    Raises:
      FileNotFoundError: no ``relevance.h5`` in ``out_dir``.
      ValueError: an unknown colour map or normalisation.
    """
    path = os.path.join(out_dir, STORE_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no {STORE_FILE} in {out_dir!r}; run lrpjax explain first")
    viz.colormap(cmap)
    if mode not in viz.NORMALIZATIONS:
        raise ValueError(f"mode={mode!r}; choose one of {viz.NORMALIZATIONS}")
    folder = os.path.join(out_dir, GALLERY_DIR)
    with h5py.File(path, "r") as store:
        names = attribute(store.attrs["composites"])
        rows = _select_rows(store, max_images)
        tiles = [_write_tiles(store, row, names, folder, cmap, mode, images_dir) for row in rows]
        info = {key: attribute(store.attrs[key]) for key in ("checkpoint", "dtype", "target", "num_images")}
    viz.save_png(viz.colorbar(cmap), os.path.join(folder, "legend.png"))
    if tiles:
        grid = viz.grid([[_enlarge(t) for t in row] for row in tiles[:compare_images]],
                        column_labels=["input", *names],
                        row_labels=[r.image_id[-16:] for r in rows[:compare_images]])
        viz.save_png(grid, os.path.join(folder, "comparison.png"))
    page = _page(rows, names, info, cmap, has_comparison=bool(tiles))
    index = os.path.join(out_dir, "index.html")
    with open(index, "w", encoding="utf-8") as handle:
        handle.write(page)
    return index


def _enlarge(tile: np.ndarray, side: int = 112) -> np.ndarray:
    """Repeat pixels so a small tile is at least ``side`` pixels wide (labels fit above it, pixels stay sharp)."""
    factor = max(1, -(-side // tile.shape[1]))
    return np.repeat(np.repeat(tile, factor, axis=0), factor, axis=1)


def _class_name(index: int, names: Sequence[str]) -> str:
    if index < 0:
        return "unknown"
    return f"{index} ({names[index]})" if index < len(names) else str(index)


def _select_rows(store: h5py.File, max_images: int) -> list[_Row]:
    """The first ``max_images`` rows that are done and valid, with their captions."""
    usable = np.flatnonzero(store["valid"][:] & done_rows(store))[:max_images]
    class_names = attribute(store.attrs.get("class_names", [])) or []
    label_names = attribute(store.attrs.get("label_names", [])) or class_names
    ids, labels = store["ids"].asstr(), store["labels"][:]
    predictions, targets, logits = store["predictions"][:], store["targets"][:], store["logits"]
    return [_Row(int(i), ids[i], _class_name(int(labels[i]), label_names),
                 _class_name(int(predictions[i]), class_names), _class_name(int(targets[i]), class_names),
                 float(logits[i][targets[i]])) for i in usable]


def _input_image(image_id: str, root: str, preprocessing: dict[str, Any], shape: Sequence[int]) -> np.ndarray:
    """The preprocessed input as the network saw it (grey when the original cannot be read any more)."""
    try:
        pixels = np.asarray(preprocess(load_image(os.path.join(root, *image_id.split("/"))), preprocessing)[0])
    except (OSError, ValueError):
        return np.full((*shape[:2], 3), 128, np.uint8)
    return viz.denormalize(pixels, preprocessing["mean"], preprocessing["std"], preprocessing["pixel_range"])


def _write_tiles(store: h5py.File, row: _Row, names: Sequence[str], folder: str, cmap: str, mode: str,
                 images_dir: str | None) -> list[np.ndarray]:
    """Write ``gallery/input/<row>.png`` and ``gallery/<composite>/<row>.png``; return the tiles."""
    preprocessing = json.loads(attribute(store.attrs["preprocessing"]))
    root = images_dir or attribute(store.attrs["images_dir"])
    tiles = [_input_image(row.image_id, root, preprocessing, attribute(store.attrs["image_shape"]))]
    tiles += [viz.heatmap_image(store["relevance"][name][row.index], cmap, mode) for name in names]
    for name, tile in zip(["input", *names], tiles):
        viz.save_png(tile, os.path.join(folder, name, f"{row.index}.png"))
    return tiles


def _page(rows: Sequence[_Row], names: Sequence[str], info: dict[str, Any], cmap: str, *,
          has_comparison: bool) -> str:
    """The HTML of the page (every text escaped, every image path relative to the page)."""
    e = html.escape
    head = "".join(f"<th>{e(name)}</th>" for name in ["image", "input", *names])
    body = []
    for row in rows:
        cells = "".join(
            f'<td><img class="tile" src="{GALLERY_DIR}/{e(name)}/{row.index}.png" alt="{e(name)} {e(row.image_id)}">'
            "</td>" for name in ["input", *names])
        meta = (f"{e(row.image_id)}<br>label: {e(row.label)}<br>prediction: {e(row.prediction)}<br>"
                f"explained: {e(row.target)}, logit {row.logit:.4g}")
        body.append(f'<tr><td class="meta">{meta}</td>{cells}</tr>')
    comparison = (f'<h2>Composites side by side</h2><p><img src="{GALLERY_DIR}/comparison.png" '
                  'alt="comparison grid of the first images"></p>') if has_comparison else ""
    return f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>lrpjax explain: {e(os.path.basename(str(info['checkpoint'])))}</title>
<style>{_STYLE}</style></head>
<body>
<h1>Relevance: {e(str(info['checkpoint']))}</h1>
<p>{len(rows)} of {info['num_images']} images shown; composites {e(', '.join(names))}; target {e(str(info['target']))};
stored as {e(str(info['dtype']))}. Colour map {e(cmap)}, each heatmap scaled to its own max |R|:</p>
<p><img src="{GALLERY_DIR}/legend.png" alt="colour legend {e(cmap)}"></p>
{comparison}
<h2>Images</h2>
<table><thead><tr>{head}</tr></thead>
<tbody>
{chr(10).join(body)}
</tbody></table>
</body>
</html>
"""
