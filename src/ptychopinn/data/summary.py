"""What a scientist checks first about a scan (``ptychopinn inspect``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.spatial import cKDTree

from ptychopinn.data.scan import Scan

ENCLOSED_ENERGY = 0.9


@dataclass(frozen=True)
class ScanSummary:
    source: str
    n_patterns: int
    patch_size: int
    dtype: str
    value_kind: str
    mean_photons: float
    max_value: float
    extent_x: tuple[float, float]
    extent_y: tuple[float, float]
    median_step: float
    probe_diameter: float
    linear_overlap: float
    probe_energy: float
    has_object: bool
    object_shape: tuple[int, int] | None

    def as_dict(self) -> dict:
        return asdict(self)

    def format(self) -> str:
        lines = [
            f"scan             {self.source}",
            f"patterns         {self.n_patterns} × {self.patch_size}×{self.patch_size} ({self.dtype})",
            f"values           {self.value_kind} (max {self.max_value:.4g})",
            f"photons/pattern  {self.mean_photons:.4g} (mean Σ amplitude²)",
            f"scan extent      x {self.extent_x[0]:.1f}…{self.extent_x[1]:.1f}, "
            f"y {self.extent_y[0]:.1f}…{self.extent_y[1]:.1f} px",
            f"median step      {self.median_step:.2f} px (nearest neighbour)",
            f"probe            diameter {self.probe_diameter:.1f} px "
            f"({ENCLOSED_ENERGY:.0%} energy), energy Σ|P|² {self.probe_energy:.4g}",
            f"linear overlap   {self.linear_overlap:.0%} (1 − step / probe diameter)",
        ]
        if self.has_object:
            lines.append(f"reference object {self.object_shape[0]}×{self.object_shape[1]}")
        else:
            lines.append("reference object none (metrics need one)")
        return "\n".join(lines)


def classify_values(diffraction: np.ndarray) -> str:
    """'amplitudes' or 'intensities?' — integers far above amplitude range suggest raw counts."""
    sample = np.asarray(diffraction[: min(len(diffraction), 64)], dtype=np.float64)
    integer_valued = np.all(np.mod(sample, 1) == 0)
    nonzero = sample[sample > 0]
    perfect_squares = np.mean(np.mod(np.sqrt(nonzero), 1) == 0) if nonzero.size else 1.0
    if integer_valued and sample.max() > 100 and perfect_squares < 0.5:
        return "intensities? (integer counts: load with --intensity)"
    return "amplitudes"


def probe_diameter(probe: np.ndarray, fraction: float = ENCLOSED_ENERGY) -> float:
    """Diameter of the centred disk (about the intensity centroid) holding ``fraction`` of Σ|P|²."""
    intensity = np.abs(probe.astype(np.complex128)) ** 2
    rows, cols = np.indices(intensity.shape)
    total = intensity.sum()
    cy, cx = (intensity * rows).sum() / total, (intensity * cols).sum() / total
    radius = np.hypot(rows - cy, cols - cx).ravel()
    order = np.argsort(radius)
    enclosed = np.cumsum(intensity.ravel()[order]) / total
    return float(2 * radius[order][np.searchsorted(enclosed, fraction)])


def median_step(positions_xy: np.ndarray) -> float:
    if len(positions_xy) < 2:
        return float("nan")
    distances, _ = cKDTree(positions_xy).query(positions_xy, k=2)
    return float(np.median(distances[:, 1]))


def summarize_scan(scan: Scan) -> ScanSummary:
    x, y = scan.xcoords, scan.ycoords
    diameter = probe_diameter(scan.probe)
    step = median_step(scan.positions_xy)
    return ScanSummary(
        source=str(scan.source),
        n_patterns=scan.n_patterns,
        patch_size=scan.patch_size,
        dtype=str(scan.diffraction.dtype),
        value_kind=classify_values(scan.diffraction),
        mean_photons=float(np.mean(np.sum(scan.diffraction.astype(np.float64) ** 2, axis=(1, 2)))),
        max_value=float(scan.diffraction.max()),
        extent_x=(float(x.min()), float(x.max())),
        extent_y=(float(y.min()), float(y.max())),
        median_step=step,
        probe_diameter=diameter,
        linear_overlap=float(max(0.0, 1 - step / diameter)) if diameter > 0 else 0.0,
        probe_energy=float(np.sum(np.abs(scan.probe.astype(np.complex128)) ** 2)),
        has_object=scan.object is not None,
        object_shape=tuple(scan.object.shape) if scan.object is not None else None,
    )
