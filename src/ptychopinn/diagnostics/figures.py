"""Diagnostic figures: patch grids and the stitched canvas (built on :mod:`ptychopinn.plots`)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ptychopinn.atomic import save_figure_atomic
from ptychopinn.diagnostics.stats import centred_phases, to_numpy
from ptychopinn.plots import new_figure, object_extent

CHANNELS = ("amplitude", "phase")


def normalized_amplitudes(patches: np.ndarray) -> np.ndarray:
    """|patches| scaled to [0, 1] per patch (min–max; a flat patch becomes 0)."""
    amp = np.abs(patches).astype(np.float64)
    low = amp.min(axis=(-2, -1), keepdims=True)
    span = amp.max(axis=(-2, -1), keepdims=True) - low
    return np.divide(amp - low, span, out=np.zeros_like(amp), where=span > 0)


def plot_patch_grid(patches, path: str | Path, channels: tuple[str, ...] = CHANNELS,
                    title: str = "predicted object patches", max_patches: int = 16) -> Path:
    """A grid of the first ``max_patches`` complex patches (..., N, N), one block per channel:
    amplitude normalised to [0, 1] per patch (the overall range in the title), phase relative to
    each patch's mean phase on one symmetric scale (its reach in the title: a collapsed model shows
    flat patches and a tiny reach)."""
    values = to_numpy(patches)
    values = values.reshape(-1, *values.shape[-2:])[:max_patches]
    if len(values) == 0:
        raise ValueError("no patches to draw")
    columns = math.ceil(math.sqrt(len(values)))
    rows = math.ceil(len(values) / columns)
    figure = new_figure(2.0 * columns * len(channels) + 0.6, 2.0 * rows + 0.6)
    blocks = figure.subfigures(1, len(channels), squeeze=False)[0]
    for block, channel in zip(blocks, channels, strict=True):
        axes = np.atleast_2d(block.subplots(rows, columns, squeeze=False))
        if channel == "amplitude":
            shown, kwargs = normalized_amplitudes(values), {"cmap": "gray", "vmin": 0, "vmax": 1}
            amp = np.abs(values)
            label = f"amplitude, per-patch min–max (overall {amp.min():.3g}…{amp.max():.3g})"
        else:
            shown = centred_phases(values)
            reach = max(float(np.abs(shown).max()), 1e-6)
            kwargs = {"cmap": "RdBu_r", "vmin": -reach, "vmax": reach}
            label = f"phase − patch mean phase (±{reach:.3g} rad)"
        handle = None
        for index, axis in enumerate(axes.ravel()):
            axis.set_xticks([])
            axis.set_yticks([])
            if index < len(shown):
                handle = axis.imshow(shown[index], **kwargs)
                axis.set_title(str(index), fontsize=7)
            else:
                axis.axis("off")
        block.colorbar(handle, ax=axes.ravel().tolist(), shrink=0.7)
        block.suptitle(f"{title}: {label}", fontsize=9)
    return save_figure_atomic(figure, path, dpi=100)


def plot_canvas(reconstruction, path: str | Path) -> Path:
    """Stitched amplitude, phase and coverage; axes in object pixels, uncovered pixels blank."""
    extent = object_extent(reconstruction)
    figure = new_figure(13, 4.2)
    axes = figure.subplots(1, 3)
    mask = reconstruction.mask
    panels = (
        (np.ma.masked_where(~mask, reconstruction.amplitude), "canvas amplitude", "gray"),
        (np.ma.masked_where(~mask, reconstruction.phase), "canvas phase (rad)", "twilight"),
        (reconstruction.coverage, "coverage", "viridis"),
    )
    for axis, (data, title, cmap) in zip(axes, panels, strict=True):
        handle = axis.imshow(data, cmap=cmap, extent=extent)
        figure.colorbar(handle, ax=axis, shrink=0.8)
        axis.set(title=title, xlabel="x (object px)", ylabel="y (object px)")
    return save_figure_atomic(figure, path, dpi=100)
