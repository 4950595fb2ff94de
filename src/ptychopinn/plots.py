"""Every figure the tool writes. Figures are built with the object API (no pyplot state) and
saved atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ptychopinn._atomic import save_figure_atomic
from ptychopinn.data.scan import Scan


def new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _image(axis, data, title, cmap="gray", **kwargs):
    handle = axis.imshow(data, cmap=cmap, **kwargs)
    axis.set_title(title, fontsize=9)
    axis.set_xticks([])
    axis.set_yticks([])
    axis.figure.colorbar(handle, ax=axis, shrink=0.8)
    return handle


def plot_scan_overview(scan: Scan, path: str | Path) -> Path:
    """Scan positions (over the reference amplitude when known), probe amplitude and phase,
    and the mean diffraction pattern on a log scale."""
    figure = new_figure(13, 3.6)
    axes = figure.subplots(1, 4)
    if scan.object is not None:
        axes[0].imshow(np.abs(scan.object), cmap="gray")
    axes[0].plot(scan.xcoords, scan.ycoords, ".", ms=2, color="tab:orange")
    axes[0].set_title(f"{scan.n_patterns} scan positions (px)", fontsize=9)
    axes[0].set_aspect("equal")
    if scan.object is None:
        axes[0].invert_yaxis()
    _image(axes[1], np.abs(scan.probe), "probe amplitude", cmap="viridis")
    _image(axes[2], np.angle(scan.probe), "probe phase (rad)", cmap="twilight")
    mean_pattern = np.mean(scan.diffraction.astype(np.float64) ** 2, axis=0)
    _image(axes[3], np.log10(mean_pattern + 1e-3), "mean pattern log10(counts)", cmap="magma")
    figure.suptitle(Path(str(scan.source)).name, fontsize=10)
    return save_figure_atomic(figure, path, dpi=110)
