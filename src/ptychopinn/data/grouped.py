"""Grouped, normalised diffraction: the backend-neutral input of training and inference.

Patterns are normalised lazily, batch by batch, with the scale contract's function, so memory
stays bounded by one batch however large the scan.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ptychopinn.config import DataConfig
from ptychopinn.data.grouping import Groups, group_positions
from ptychopinn.data.scan import Scan
from ptychopinn.physics.scaling import input_scale, normalize_diffraction


@dataclass(frozen=True)
class GroupedScan:
    """A scan, its groups and the input scale a of its own data (docs/design/spec.md#scaling)."""

    scan: Scan
    groups: Groups
    input_scale: float

    @classmethod
    def build(cls, scan: Scan, data: DataConfig, n_groups: int | None = None) -> GroupedScan:
        groups = group_positions(
            scan.positions_xy,
            gridsize=data.gridsize,
            neighbor_count=data.neighbor_count,
            n_groups=data.n_groups if n_groups is None else n_groups,
            seed=data.seed,
            source=scan.source,
        )
        return cls(scan=scan, groups=groups, input_scale=input_scale(scan.diffraction, scan.valid_pixels))

    def __len__(self) -> int:
        return self.groups.n_groups

    def diffraction(self, selection: np.ndarray | slice) -> np.ndarray:
        """Normalised amplitudes X_n of the selected groups, (B, C, N, N) float32; bad detector
        pixels read 0 (their values are garbage), in training and inference alike."""
        patterns = self.scan.diffraction[self.members(selection)]
        if self.scan.bad_pixels is not None:
            patterns = np.where(self.scan.bad_pixels, np.float32(0), patterns)
        return normalize_diffraction(patterns, self.input_scale)

    def members(self, selection: np.ndarray | slice) -> np.ndarray:
        """Scan indices of the selected groups' members, (B, C)."""
        return self.groups.indices[selection]

    def offsets(self, selection: np.ndarray | slice) -> np.ndarray:
        return self.groups.offsets_xy[selection].astype(np.float32)

    def centers(self, selection: np.ndarray | slice) -> np.ndarray:
        return self.groups.centers_xy[selection]

    def batches(self, batch_size: int):
        """(start, stop) slices covering all groups in order."""
        for start in range(0, len(self), batch_size):
            yield slice(start, min(start + batch_size, len(self)))

    @property
    def max_offset(self) -> float:
        return float(np.abs(self.groups.offsets_xy).max(initial=0.0))


def split_groups(n_groups: int, validation_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, validation) index split; validation is empty when it would round to 0.

    Backend-neutral: both backends train and validate on exactly these groups.
    """
    order = np.random.default_rng(seed).permutation(n_groups)
    n_val = int(round(validation_fraction * n_groups))
    if n_val >= n_groups:
        n_val = n_groups - 1
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def epoch_order(n_items: int, epoch: int, seed: int, shuffle: bool = True) -> np.ndarray:
    """The order in which an epoch visits ``n_items`` (positions into a selection).

    A seeded permutation per (seed, epoch), or ``arange`` without shuffling. Both backends draw
    their batches from this, so the same seed gives both the same batches in the same order
    (and a resumed run continues with the order of the epoch it resumes at).
    """
    if not shuffle:
        return np.arange(n_items)
    return np.random.default_rng([int(seed), int(epoch)]).permutation(n_items)
