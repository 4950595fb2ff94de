"""Neighbour grouping of scan positions (docs/design/spec.md#grouping).

A group is C = gridsize² scan positions whose patches the model reconstructs together. For C > 1
each seed position contributes C of its K nearest neighbours (excluding itself), drawn without
replacement by a seeded generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy.spatial import cKDTree

from ptychopinn.data.scan import ScanFormatError


class GroupingError(ScanFormatError):
    """The scan cannot provide the requested groups."""


@dataclass(frozen=True)
class Groups:
    """Grouped scan positions.

    ``indices`` (B, C): scan indices of the members in draw order (the channel order).
    ``centers_xy`` (B, 2): mean member position. ``offsets_xy`` (B, C, 2): member − centre, [x, y].
    """

    indices: np.ndarray
    centers_xy: np.ndarray
    offsets_xy: np.ndarray

    @property
    def n_groups(self) -> int:
        return int(self.indices.shape[0])

    @property
    def channels(self) -> int:
        return int(self.indices.shape[1])

    def subset(self, selection: np.ndarray | slice) -> Groups:
        return Groups(self.indices[selection], self.centers_xy[selection], self.offsets_xy[selection])


def group_positions(
    positions_xy: np.ndarray,
    gridsize: int = 1,
    neighbor_count: int = 4,
    n_groups: int | None = None,
    seed: int = 0,
    source: str | None = None,
) -> Groups:
    """Group (M, 2) positions into (B, C) groups, C = gridsize²; see the module docstring.

    ``n_groups`` None means one group per scan position.
    """
    positions_xy = np.asarray(positions_xy, dtype=np.float64)
    channels = gridsize**2
    n_positions = len(positions_xy)
    rng = np.random.default_rng(seed)
    if channels == 1:
        indices = _single_groups(n_positions, n_groups, rng, source)
    else:
        indices = _neighbour_groups(positions_xy, channels, neighbor_count, n_groups, rng, source)
    members = positions_xy[indices]
    centers = members.mean(axis=1)
    return Groups(indices=indices, centers_xy=centers, offsets_xy=members - centers[:, None, :])


def _single_groups(
    n_positions: int, n_groups: int | None, rng: np.random.Generator, source: str | None
) -> np.ndarray:
    if n_positions == 0:
        raise GroupingError(source, "xcoords", "the scan has no positions to group")
    if n_groups is None or n_groups == n_positions:
        return np.arange(n_positions)[:, None]
    if n_groups > n_positions:
        raise GroupingError(
            source, "n_groups",
            f"{n_groups} groups requested but gridsize 1 allows at most {n_positions} "
            f"(one per scan position)",
        )
    return np.sort(rng.choice(n_positions, size=n_groups, replace=False))[:, None]


def _neighbour_groups(
    positions_xy: np.ndarray,
    channels: int,
    neighbor_count: int,
    n_groups: int | None,
    rng: np.random.Generator,
    source: str | None,
) -> np.ndarray:
    n_positions = len(positions_xy)
    if neighbor_count < channels:
        raise GroupingError(
            source, "neighbor_count",
            f"neighbour count K={neighbor_count} must be at least C={channels} (gridsize²)",
        )
    if n_positions < neighbor_count + 1:
        raise GroupingError(
            source, "xcoords",
            f"{n_positions} positions, but a group of {channels} drawn from K={neighbor_count} "
            f"neighbours needs at least {neighbor_count + 1}",
        )
    neighbours = _nearest_neighbours(positions_xy, neighbor_count)
    n_groups = n_positions if n_groups is None else n_groups
    if n_groups <= n_positions:
        seeds = np.sort(rng.choice(n_positions, size=n_groups, replace=False))
        return np.stack([rng.choice(neighbours[s], size=channels, replace=False) for s in seeds])
    return _oversampled_groups(neighbours, channels, n_groups, rng, source)


def _nearest_neighbours(positions_xy: np.ndarray, k: int) -> np.ndarray:
    """(M, K) indices of each position's K nearest others, nearest first."""
    _, found = cKDTree(positions_xy).query(positions_xy, k=k + 1)
    own = np.arange(len(positions_xy))[:, None]
    # Drop each position itself (normally column 0, but coincident points may reorder ties).
    keep = found != own
    trimmed = [row[mask][:k] for row, mask in zip(found, keep, strict=True)]
    return np.stack(trimmed)


def _oversampled_groups(
    neighbours: np.ndarray,
    channels: int,
    n_groups: int,
    rng: np.random.Generator,
    source: str | None,
) -> np.ndarray:
    """Distinct C-combinations of each seed's neighbours, drawn without repetition."""
    unique: dict[tuple[int, ...], tuple[int, ...]] = {}
    for row in neighbours:
        for combo in combinations(row.tolist(), channels):
            unique.setdefault(tuple(sorted(combo)), combo)
    available = len(unique)
    if n_groups > available:
        per_seed = math.comb(neighbours.shape[1], channels)
        raise GroupingError(
            source, "n_groups",
            f"{n_groups} groups requested but only {available} distinct groups are possible "
            f"({len(neighbours)} seeds × at most {per_seed} combinations of K={neighbours.shape[1]} "
            f"neighbours); ask for at most {available} or raise the neighbour count",
        )
    pool = np.array(list(unique.values()))
    chosen = pool[np.sort(rng.choice(available, size=n_groups, replace=False))]
    return np.stack([rng.permutation(group) for group in chosen])
