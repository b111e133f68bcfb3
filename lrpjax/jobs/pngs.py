"""PNG output of the explain job: a heatmap and an overlay per image and composite under ``OUT/png``."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import h5py
import numpy as np

from lrpjax.io import viz
from lrpjax.io.preprocess import validate_preprocessing
from lrpjax.jobs.store import attribute, done_rows


def write_pngs(store: h5py.File, start: int, pixels: np.ndarray, relevance: Sequence[np.ndarray],
               errors: Sequence[str], out_dir: str, cmap: str, metadata: dict[str, Any]) -> None:
    """Heatmap and overlay PNGs: ``png/<composite>/<id>.heatmap.png`` and ``.overlay.png``."""
    spec = validate_preprocessing(metadata)
    ids = store["ids"].asstr()[start:start + len(errors)]
    for k, (image_id, error) in enumerate(zip(ids, errors)):
        if error:
            continue
        rgb = viz.denormalize(pixels[k], spec["mean"], spec["std"], spec["pixel_range"])
        for name, values in zip(attribute(store.attrs["composites"]), relevance):
            heat = viz.heatmap_image(values[k], cmap)
            heatmap_file, overlay_file = png_stems(out_dir, name, image_id)
            viz.save_png(heat, heatmap_file)
            viz.save_png(viz.overlay(rgb, heat), overlay_file)


def png_stems(out_dir: str, composite: str, image_id: str) -> tuple[str, str]:
    """The heatmap and overlay files of one image and composite."""
    stem = os.path.join(out_dir, "png", composite, *image_id.split("/"))
    return f"{stem}.heatmap.png", f"{stem}.overlay.png"


def write_missing_pngs(store: h5py.File, paths: Sequence[str], load: Callable[[str], tuple[np.ndarray | None, str]],
                       out_dir: str, cmap: str, metadata: dict[str, Any]) -> int:
    """Write the PNGs of every explained row of ``store`` that has none yet (``--png`` added when re-running a
    finished store): the relevance comes from the store, the image is read again. Returns how many rows."""
    names = attribute(store.attrs["composites"])
    ids, explained = store["ids"].asstr()[:], np.flatnonzero(store["valid"][:] & done_rows(store))
    missing = [int(r) for r in explained
               if not all(os.path.exists(f) for n in names for f in png_stems(out_dir, n, ids[r]))]
    for row in missing:
        image, error = load(paths[row])
        if image is None:
            continue
        relevance = [store["relevance"][n][row:row + 1] for n in names]
        write_pngs(store, row, image[None], relevance, [""], out_dir, cmap, metadata)
    return len(missing)
