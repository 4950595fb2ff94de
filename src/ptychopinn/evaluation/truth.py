"""Evaluation against a reference object with its figure (docs/design/spec.md#evaluation)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ptychopinn.atomic import write_json_atomic
from ptychopinn.data.scan import Scan
from ptychopinn.evaluation.data_fit import DataFit, data_fit
from ptychopinn.evaluation.metrics import align_for_comparison, compare_images
from ptychopinn.plots import plot_comparison
from ptychopinn.reconstruction.result import Reconstruction

DEFAULT_CROP = 20


def scan_region(scan: Scan, margin: float) -> tuple[float, float, float, float]:
    """The scanned bounding box ± margin, (x_min, x_max, y_min, y_max)."""
    return (scan.xcoords.min() - margin, scan.xcoords.max() + margin,
            scan.ycoords.min() - margin, scan.ycoords.max() + margin)


def covered_region(
    reconstruction: Reconstruction, region_xy: tuple[float, float, float, float], fill: float = 0.995
) -> tuple[float, float, float, float]:
    """``region_xy`` shrunk evenly, a pixel at a time, until the reconstruction covers at least
    ``fill`` of it, so uncovered corners are not scored as if they were object pixels."""
    ox, oy = reconstruction.origin_xy
    x0, x1, y0, y1 = region_xy
    mask = reconstruction.mask
    for shrink in range(int(min(x1 - x0, y1 - y0) // 2) - 8):
        c0, c1 = int(math.floor(x0 - ox)) + shrink, int(math.ceil(x1 - ox)) - shrink
        r0, r1 = int(math.floor(y0 - oy)) + shrink, int(math.ceil(y1 - oy)) - shrink
        window = mask[max(r0, 0) : max(r1, 0), max(c0, 0) : max(c1, 0)]
        inside = window.sum() / max((r1 - r0) * (c1 - c0), 1)
        if inside >= fill:
            return (x0 + shrink, x1 - shrink, y0 + shrink, y1 - shrink)
    return region_xy


def align_to_truth(reconstruction: Reconstruction, scan: Scan, crop: int = DEFAULT_CROP):
    """(aligned recon, reference crop, registration info) over the scanned region ± crop/2,
    trimmed to where the reconstruction is covered."""
    if scan.object is None:
        raise ValueError(f"{scan.source}: no objectGuess to evaluate against")
    region = covered_region(reconstruction, scan_region(scan, crop / 2))
    return align_for_comparison(
        reconstruction.object, scan.object, recon_origin_xy=reconstruction.origin_xy, region_xy=region,
    )


def evaluate_against_truth(
    reconstruction: Reconstruction, scan: Scan, crop: int = DEFAULT_CROP
) -> dict[str, Any]:
    aligned, reference, info = align_to_truth(reconstruction, scan, crop)
    return {**compare_images(aligned, reference), **info}


def evaluate_and_plot(
    reconstruction: Reconstruction,
    scan: Scan,
    output_dir: str | Path,
    crop: int = DEFAULT_CROP,
    others: dict[str, Reconstruction] | None = None,
    label: str = "reconstruction",
    fit: DataFit | None = None,
) -> dict[str, Any]:
    """Metrics to ``metrics.json`` and the side-by-side ``comparison.png`` in ``output_dir``.

    ``others`` adds more labelled reconstructions to the figure (e.g. network vs refined); the
    metrics and the difference maps are those of ``reconstruction``. The metrics include its
    data fit (``fit`` when the caller has it already), which needs no reference.
    """
    output_dir = Path(output_dir)
    aligned, reference, info = align_to_truth(reconstruction, scan, crop)
    fit = data_fit(scan, reconstruction) if fit is None else fit
    metrics = {**compare_images(aligned, reference), **info, **fit.as_metrics()}
    panels = {"reference": reference}
    for other_label, other in (others or {}).items():
        panels[other_label] = align_to_truth(other, scan, crop)[0]
    panels[label] = aligned
    write_json_atomic(output_dir / "metrics.json", metrics)
    plot_comparison(panels, metrics, output_dir / "comparison.png")
    return metrics
