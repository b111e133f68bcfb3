"""The study's figures as PNG files, drawn with matplotlib's Agg canvas (no display, no pyplot state).

Every function takes plain numbers (means with their interval bounds, matrices, labels), writes one PNG and
returns its path, so the figures can be redrawn from a study's cached results without any model:

- :func:`masking_curves_figure`: MoRF, LeRF and random curves with shaded intervals, one panel per model;
- :func:`matrix_figure`: a matrix (e.g. cross-model generalization, map similarity) as an annotated heatmap;
- :func:`interval_bars_figure`: grouped bars with interval whiskers (relation groups, RSA, anything);
- :func:`asymmetry_figure`: asymmetry indices with intervals and p-values against zero;
- :func:`region_shares_figure`: relevance share of each face region per group, against the regions' areas;
- :func:`rsa_figure`: model-human RSA per model with a noise-ceiling band;
- :func:`mprt_figure`: map similarity under cascading parameter randomisation, per composite.

An interval ``(mean, low, high)`` may hold NaN bounds (drawn without whiskers); a NaN mean is drawn as a gap.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

Interval = tuple[float, float, float]
ORDER_STYLES = {"morf": ("MoRF", "#c0392b"), "lerf": ("LeRF", "#2471a3"), "random": ("random", "#7f8c8d")}
PALETTE = ("#2471a3", "#c0392b", "#27ae60", "#8e44ad", "#d68910", "#17a589", "#7f8c8d", "#a04000")


def _save(figure: Figure, path: str | os.PathLike[str], *, dpi: int = 110) -> str:
    """Write ``figure`` to ``path`` (parent folders created) through the Agg canvas; returns the path."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def p_stars(p_value: float) -> str:
    """``***`` (p < 0.001), ``**`` (< 0.01), ``*`` (< 0.05) or ``""`` (also for NaN).

    >>> [p_stars(p) for p in (0.0004, 0.004, 0.04, 0.4, float("nan"))]
    ['***', '**', '*', '', '']
    """
    if not np.isfinite(p_value):
        return ""
    return "***" if p_value < 0.001 else "**" if p_value < 0.01 else "*" if p_value < 0.05 else ""


def masking_curves_figure(path: str | os.PathLike[str], fractions: Sequence[float],
                          curves: Mapping[str, Mapping[str, Interval | tuple[np.ndarray, ...]]], *,
                          ylabel: str = "target probability", columns: int = 4, title: str | None = None) -> str:
    """One panel per model: each order's mean curve over the masked fraction, its interval shaded.

    Args:
      path: the PNG to write.
      fractions: ``[F]`` masked fractions (the x axis).
      curves: panel title (a model) -> order (``morf``, ``lerf``, ``random``, or any label) -> ``(mean, low,
        high)``, each ``[F]``.
      ylabel, columns, title: the y label, panels per row, an overall title.
    """
    if not curves:
        raise ValueError("masking_curves_figure needs at least one panel of curves")
    fractions = np.asarray(fractions, np.float64)
    columns = max(1, min(columns, len(curves)))
    rows = math.ceil(len(curves) / columns)
    figure = Figure(figsize=(3.2 * columns, 2.6 * rows + (0.4 if title else 0)))
    axes = figure.subplots(rows, columns, squeeze=False, sharex=True, sharey=True)
    for index, (panel, orders) in enumerate(curves.items()):
        ax = axes[index // columns][index % columns]
        for k, (order, (mean, low, high)) in enumerate(orders.items()):
            label, colour = ORDER_STYLES.get(order, (order, PALETTE[k % len(PALETTE)]))
            ax.plot(fractions, mean, color=colour, label=label, lw=1.6)
            ax.fill_between(fractions, low, high, color=colour, alpha=0.2, lw=0)
        ax.set_title(panel, fontsize=9)
        ax.grid(alpha=0.3)
        if index % columns == 0:
            ax.set_ylabel(ylabel, fontsize=8)
        if index // columns == rows - 1:
            ax.set_xlabel("fraction masked", fontsize=8)
    for index in range(len(curves), rows * columns):
        axes[index // columns][index % columns].set_visible(False)
    axes[0][0].legend(fontsize=7, loc="best")
    if title:
        figure.suptitle(title, fontsize=11)
    return _save(figure, path)


def matrix_figure(path: str | os.PathLike[str], matrix: np.ndarray, *, rows: Sequence[str],
                  columns: Sequence[str] | None = None, title: str = "", colorbar_label: str = "",
                  vmin: float | None = None, vmax: float | None = None, cmap: str = "viridis",
                  number_format: str = "{:.2f}", xlabel: str = "", ylabel: str = "") -> str:
    """A ``[R, C]`` matrix as a heatmap, every cell annotated with its value (``—`` for NaN).

    Raises:
      ValueError: labels that do not match the matrix's shape.
    """
    matrix = np.asarray(matrix, np.float64)
    columns = rows if columns is None else columns
    if matrix.ndim != 2 or matrix.shape != (len(rows), len(columns)):
        raise ValueError(f"matrix of shape {matrix.shape} does not match {len(rows)} row and {len(columns)} column "
                         "labels")
    side = 0.55 * max(len(rows), len(columns)) + 2.5
    figure = Figure(figsize=(side + 1.2, side))
    ax = figure.subplots()
    finite = matrix[np.isfinite(matrix)]
    low = vmin if vmin is not None else (float(finite.min()) if finite.size else 0.0)
    high = vmax if vmax is not None else (float(finite.max()) if finite.size else 1.0)
    image = ax.imshow(np.ma.masked_invalid(matrix), cmap=cmap, vmin=low, vmax=high)
    ax.set_xticks(range(len(columns)), [str(c) for c in columns], rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(rows)), [str(r) for r in rows], fontsize=7)
    for (i, j), value in np.ndenumerate(matrix):
        text = number_format.format(value) if np.isfinite(value) else "—"
        red, green, blue, _ = image.cmap(image.norm(value)) if np.isfinite(value) else (1, 1, 1, 1)
        dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5  # white text on dark cells
        ax.text(j, i, text, ha="center", va="center", fontsize=6, color="white" if dark else "black")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label=colorbar_label)
    return _save(figure, path)


def interval_bars_figure(path: str | os.PathLike[str], series: Mapping[str, Mapping[str, Interval]], *,
                         title: str = "", ylabel: str = "", reference: Mapping[str, float] | None = None,
                         reference_label: str = "reference", band: tuple[float, float] | None = None,
                         band_label: str = "", annotations: Mapping[tuple[str, str], str] | None = None,
                         horizontal_line: float | None = 0.0) -> str:
    """Grouped bars: one group per category, one bar per series, whiskers from each interval.

    Args:
      series: series label -> category -> ``(mean, low, high)``; categories in order of first appearance.
      reference: category -> a value drawn as a black tick across the group (e.g. a region's area).
      band: ``(low, high)`` drawn as a grey band across the plot (e.g. a noise ceiling).
      annotations: ``(series, category)`` -> text above that bar (e.g. significance stars).
      horizontal_line: y of a thin line (None: none).
    """
    if not series:
        raise ValueError("interval_bars_figure needs at least one series")
    categories = list(dict.fromkeys(c for values in series.values() for c in values))
    width = 0.8 / len(series)
    figure = Figure(figsize=(max(4.5, 0.55 * len(categories) * max(1, len(series)) ** 0.5 + 2), 3.6))
    ax = figure.subplots()
    positions = np.arange(len(categories))
    for k, (label, values) in enumerate(series.items()):
        x = positions - 0.4 + width * (k + 0.5)
        triples = np.array([values.get(c, (np.nan, np.nan, np.nan)) for c in categories], np.float64)
        mean, low, high = triples.T
        errors = np.nan_to_num(np.abs(np.stack([mean - low, high - mean])))  # no whisker where a bound is NaN
        ax.bar(x, np.nan_to_num(mean), width * 0.92, yerr=errors, capsize=2, label=label,
               color=PALETTE[k % len(PALETTE)], error_kw={"lw": 0.8})
        for i, category in enumerate(categories):
            text = (annotations or {}).get((label, category), "")
            if text and np.isfinite(mean[i]):
                top = np.nanmax([mean[i], high[i]]) if np.isfinite(high[i]) else mean[i]
                ax.text(x[i], top, text, ha="center", va="bottom", fontsize=7)
    if reference:
        for i, category in enumerate(categories):
            if category in reference:
                ax.hlines(reference[category], i - 0.45, i + 0.45, color="black", lw=1.4,
                          label=reference_label if i == 0 else None)
    if band is not None and all(np.isfinite(band)):
        ax.axhspan(band[0], band[1], color="grey", alpha=0.25, lw=0, label=band_label or None)
    if horizontal_line is not None:
        ax.axhline(horizontal_line, color="black", lw=0.6)
    ax.set_xticks(positions, categories, rotation=30 if len(categories) > 4 else 0, ha="right" if
                  len(categories) > 4 else "center", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    if len(series) > 1 or reference or band is not None:
        ax.legend(fontsize=7, loc="best")
    return _save(figure, path)


def asymmetry_figure(path: str | os.PathLike[str], rows: Sequence[tuple[str, float, float, float, float]], *,
                     title: str = "", xlabel: str = "asymmetry index  s(A→B) − s(B→A)") -> str:
    """Each row ``(label, index, low, high, p_value)`` as a point with its interval, against 0; significant rows
    (p < 0.05) filled, the others hollow, with stars beside them."""
    if not rows:
        raise ValueError("asymmetry_figure needs at least one row")
    figure = Figure(figsize=(6.5, 0.4 * len(rows) + 1.4))
    ax = figure.subplots()
    for y, (_, index, low, high, p_value) in enumerate(rows):
        significant = np.isfinite(p_value) and p_value < 0.05
        if np.isfinite(low) and np.isfinite(high):
            ax.hlines(y, low, high, color=PALETTE[0], lw=1.5)
        ax.plot([index], [y], "o", color=PALETTE[0], mfc=PALETTE[0] if significant else "white")
        ax.text(high if np.isfinite(high) else index, y, f"  {p_stars(p_value)}", va="center", fontsize=8)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return _save(figure, path)


def region_shares_figure(path: str | os.PathLike[str], regions: Sequence[str],
                         shares: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]], *,
                         areas: np.ndarray | None = None, title: str = "") -> str:
    """Relevance share per face region (groups of bars), one bar per group of models (``shares``: group ->
    ``(mean [R], low [R], high [R])``), the regions' mean areas as black ticks (a map spread evenly)."""
    series = {group: {region: (float(m), float(lo), float(hi)) for region, m, lo, hi in zip(regions, *values)}
              for group, values in shares.items()}
    reference = None if areas is None else {r: float(a) for r, a in zip(regions, areas)}
    return interval_bars_figure(path, series, title=title, ylabel="share of positive relevance",
                                reference=reference, reference_label="area (even spread)", horizontal_line=None)


def rsa_figure(path: str | os.PathLike[str], values: Mapping[str, Mapping[str, tuple[float, float]]], *,
               ceiling: tuple[float, float] | None = None, title: str = "", ylabel: str = "Spearman r") -> str:
    """Model-human RSA: ``values`` holds series (e.g. ``fc7``, ``fc7, relevance-masked``) -> model ->
    ``(r, p_value)``; stars mark p < 0.05; ``ceiling`` is the noise ceiling's ``(lower, upper)`` band."""
    series = {label: {model: (r, np.nan, np.nan) for model, (r, _) in models.items()}
              for label, models in values.items()}
    stars = {(label, model): p_stars(p) for label, models in values.items() for model, (_, p) in models.items()}
    return interval_bars_figure(path, series, title=title, ylabel=ylabel, band=ceiling, band_label="noise ceiling",
                                annotations=stars)


def mprt_figure(path: str | os.PathLike[str], layers: Sequence[str],
                curves: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]]], *,
                threshold: float | None = 0.5, title: str = "") -> str:
    """The model parameter randomisation test: one panel per measure (``spearman``, ``ssim``, ...), one line per
    composite, similarity to the trained model's maps as layers are randomised cumulatively from the top.

    Args:
      layers: ``[L]`` the layer randomised last at each step (the x axis, top layer first).
      curves: composite -> measure -> ``(mean, low, high)``, each ``[L]``.
      threshold: drawn as a dashed line (the flag level; None: none).

    Raises:
      ValueError: no curves, or curves whose length differs from ``layers``.
    """
    if not curves:
        raise ValueError("mprt_figure needs the curves of at least one composite")
    measures = list(dict.fromkeys(m for per in curves.values() for m in per))
    for composite, per in curves.items():
        for measure, triple in per.items():
            if any(len(v) != len(layers) for v in triple):
                raise ValueError(f"{composite} {measure}: curves of length {[len(v) for v in triple]} for "
                                 f"{len(layers)} layers")
    figure = Figure(figsize=(max(5.0, 0.35 * len(layers) + 2) * len(measures), 3.6))
    axes = figure.subplots(1, len(measures), squeeze=False)[0]
    x = np.arange(len(layers))
    for ax, measure in zip(axes, measures):
        for k, (composite, per) in enumerate(curves.items()):
            if measure not in per:
                continue
            mean, low, high = (np.asarray(v, np.float64) for v in per[measure])
            ax.plot(x, mean, marker="o", ms=3, lw=1.4, color=PALETTE[k % len(PALETTE)], label=composite)
            ax.fill_between(x, low, high, color=PALETTE[k % len(PALETTE)], alpha=0.2, lw=0)
        if threshold is not None and measure == "spearman":
            ax.axhline(threshold, color="black", lw=0.8, ls="--")
        ax.set_xticks(x, [str(v) for v in layers], rotation=60, ha="right", fontsize=7)
        ax.set_xlabel("randomised from the top down to", fontsize=8)
        ax.set_ylabel(f"{measure} with the trained model's maps", fontsize=8)
        ax.set_ylim(min(-0.1, ax.get_ylim()[0]), 1.05)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="best")
    if title:
        figure.suptitle(title, fontsize=11)
    return _save(figure, path)
