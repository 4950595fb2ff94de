"""The in-memory scan (docs/design/spec.md#data-contract): diffraction amplitudes, positions, probe, optional reference."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class ScanFormatError(ValueError):
    """A scan file (or array set) that breaks the data contract of docs/design/spec.md#data-contract.

    The message always names the file, the offending key and what was expected.
    """

    def __init__(self, source: str | Path | None, key: str | None, problem: str):
        self.source = str(source) if source is not None else "<in-memory scan>"
        self.key = key
        self.problem = problem
        where = f"{self.source}" + (f", key '{key}'" if key else "")
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class ScanMetadata:
    """Physical geometry a scan file may carry (docs/design/spec.md#data-contract); every field
    is optional because simulated and legacy scans have none.

    ``position_offset_m`` maps the pixel positions back to the instrument's frame:
    x_m = offset_x + x · pixel_width and y_m = offset_y + y · pixel_height, where (x, y) are this
    project's positions (probe pixel N/2, not (N − 1)/2, at the position).
    """

    photon_energy_eV: float | None = None  # noqa: N815 (the unit is part of the name)
    detector_distance_m: float | None = None
    detector_pixel_size_m: tuple[float, float] | None = None  # (width, height)
    object_pixel_size_m: tuple[float, float] | None = None  # (width, height)
    position_offset_m: tuple[float, float] | None = None  # (x, y)

    @property
    def is_empty(self) -> bool:
        return all(value is None for value in vars(self).values())


@dataclass(frozen=True, eq=False)
class Scan:
    """One ptychographic scan.

    ``diffraction`` holds measured amplitudes (sqrt of counts), DC at (N/2, N/2).
    Positions are object-pixel centres: x is the column, y is the row.
    """

    diffraction: np.ndarray  # (M, N, N) float32
    xcoords: np.ndarray  # (M,) float64
    ycoords: np.ndarray  # (M,) float64
    probe: np.ndarray  # (N, N) complex64
    object: np.ndarray | None = None  # (H, W) complex64 reference, metrics only
    xcoords_start: np.ndarray | None = None
    ycoords_start: np.ndarray | None = None
    scan_index: np.ndarray | None = None
    source: str | None = field(default=None, compare=False)
    # (K, N, N) complex64 incoherent probe modes, strongest first, K >= 2; ``probe`` is mode 0.
    # None for a single (coherent) probe.
    probe_modes: np.ndarray | None = None
    # (N, N) bool, True where a detector pixel is bad: excluded from every loss and misfit
    bad_pixels: np.ndarray | None = None
    metadata: ScanMetadata = field(default_factory=ScanMetadata)

    @property
    def n_patterns(self) -> int:
        return int(self.diffraction.shape[0])

    @property
    def patch_size(self) -> int:
        return int(self.diffraction.shape[-1])

    @property
    def probes(self) -> np.ndarray:
        """(K, N, N) all probe modes, K = 1 for a coherent probe."""
        return self.probe_modes if self.probe_modes is not None else self.probe[np.newaxis]

    @property
    def n_probe_modes(self) -> int:
        return 1 if self.probe_modes is None else int(self.probe_modes.shape[0])

    @property
    def valid_pixels(self) -> np.ndarray | None:
        """(N, N) bool, True where the detector measured; None when every pixel did."""
        return None if self.bad_pixels is None else ~self.bad_pixels

    @property
    def positions_xy(self) -> np.ndarray:
        """(M, 2) positions in [x, y] order, float64."""
        return np.stack([self.xcoords, self.ycoords], axis=1).astype(np.float64)
