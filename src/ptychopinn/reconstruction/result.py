"""A stitched reconstruction and its ``reconstruction.npz`` file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ptychopinn.atomic import atomic_path


@dataclass(frozen=True)
class Reconstruction:
    """A complex object on a canvas whose pixel (i, j) is object pixel (i + origin_y, j + origin_x)."""

    object: np.ndarray
    coverage: np.ndarray
    origin_xy: tuple[float, float]

    @property
    def amplitude(self) -> np.ndarray:
        return np.abs(self.object)

    @property
    def phase(self) -> np.ndarray:
        return np.angle(self.object)

    @property
    def mask(self) -> np.ndarray:
        """Pixels the reconstruction covers (elsewhere the object is 0)."""
        return self.coverage > 0

    @property
    def shape(self) -> tuple[int, int]:
        return self.object.shape

    def save(self, path: str | Path) -> Path:
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(
                handle,
                object=self.object.astype(np.complex64),
                amplitude=self.amplitude.astype(np.float32),
                phase=self.phase.astype(np.float32),
                coverage=self.coverage.astype(np.float32),
                origin_xy=np.asarray(self.origin_xy, dtype=np.float64),
            )
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> Reconstruction:
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls(
                    object=data["object"].astype(np.complex64),
                    coverage=data["coverage"].astype(np.float32),
                    origin_xy=tuple(float(v) for v in data["origin_xy"]),
                )
        except KeyError as missing:
            raise ValueError(f"{path}: not a reconstruction file (missing key {missing})") from None
