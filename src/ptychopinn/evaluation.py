"""Evaluation against a reference object with its figure (SPEC §8)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ptychopinn._atomic import write_json_atomic
from ptychopinn.data.scan import Scan
from ptychopinn.reconstruction import Reconstruction

DEFAULT_CROP = 20


def scan_region(scan: Scan, margin: float) -> tuple[float, float, float, float]:
    """The scanned bounding box ± margin, (x_min, x_max, y_min, y_max)."""
    return (scan.xcoords.min() - margin, scan.xcoords.max() + margin,
            scan.ycoords.min() - margin, scan.ycoords.max() + margin)


def align_to_truth(reconstruction: Reconstruction, scan: Scan, crop: int = DEFAULT_CROP):
    """(aligned recon, reference crop, registration info) over the scanned region ± crop/2."""
    from ptychopinn.metrics import align_for_comparison

    if scan.object is None:
        raise ValueError(f"{scan.source}: no objectGuess to evaluate against")
    return align_for_comparison(
        reconstruction.object, scan.object,
        recon_origin_xy=reconstruction.origin_xy, region_xy=scan_region(scan, crop / 2),
    )


def evaluate_against_truth(
    reconstruction: Reconstruction, scan: Scan, crop: int = DEFAULT_CROP
) -> dict[str, Any]:
    from ptychopinn.metrics import compare_images

    aligned, reference, info = align_to_truth(reconstruction, scan, crop)
    return {**compare_images(aligned, reference), **info}


def evaluate_and_plot(
    reconstruction: Reconstruction,
    scan: Scan,
    output_dir: str | Path,
    crop: int = DEFAULT_CROP,
    others: dict[str, Reconstruction] | None = None,
) -> dict[str, Any]:
    """Metrics to ``metrics.json`` and the side-by-side ``comparison.png`` in ``output_dir``.

    ``others`` adds more labelled reconstructions to the figure (e.g. network vs refined); the
    metrics and the difference maps are those of ``reconstruction``.
    """
    from ptychopinn.metrics import compare_images
    from ptychopinn.plots import plot_comparison

    output_dir = Path(output_dir)
    aligned, reference, info = align_to_truth(reconstruction, scan, crop)
    metrics = {**compare_images(aligned, reference), **info}
    panels = {"reference": reference}
    for label, other in (others or {}).items():
        panels[label] = align_to_truth(other, scan, crop)[0] if other.object.size else None
    panels["reconstruction"] = aligned
    write_json_atomic(output_dir / "metrics.json", metrics)
    plot_comparison({k: v for k, v in panels.items() if v is not None}, metrics, output_dir / "comparison.png")
    return metrics
