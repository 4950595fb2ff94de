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

    @property
    def n_patterns(self) -> int:
        return int(self.diffraction.shape[0])

    @property
    def patch_size(self) -> int:
        return int(self.diffraction.shape[-1])

    @property
    def positions_xy(self) -> np.ndarray:
        """(M, 2) positions in [x, y] order, float64."""
        return np.stack([self.xcoords, self.ycoords], axis=1).astype(np.float64)
