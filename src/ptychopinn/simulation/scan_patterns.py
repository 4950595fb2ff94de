"""Scan trajectories in object pixel coordinates (x = column, y = row)."""

from __future__ import annotations

import numpy as np

SCAN_KINDS = ("raster", "fermat", "random")
GOLDEN_ANGLE = np.pi * (3 - np.sqrt(5))


def scan_region(object_size: int, patch_size: int, margin: float = 1.0) -> tuple[float, float]:
    """The closed interval of centres whose patch (plus bilinear margin) stays inside the object."""
    low, high = patch_size / 2 + margin, object_size - patch_size / 2 - margin
    if high <= low:
        raise ValueError(
            f"object size {object_size} is too small for patch size {patch_size}: "
            f"it must exceed {patch_size + 2 * margin:g}"
        )
    return low, high


def make_positions(
    kind: str,
    object_size: int,
    patch_size: int,
    step: float,
    jitter: float = 0.0,
    seed: int = 0,
) -> np.ndarray:
    """(M, 2) scan positions in [x, y] with mean spacing ``step`` pixels, inside the object."""
    if step <= 0:
        raise ValueError(f"scan step must be positive, got {step}")
    low, high = scan_region(object_size, patch_size)
    rng = np.random.default_rng(seed)
    if kind == "raster":
        positions = _raster(low, high, step)
    elif kind == "fermat":
        positions = _fermat(low, high, step)
    elif kind == "random":
        count = max(int(((high - low) / step + 1) ** 2), 1)
        positions = rng.uniform(low, high, size=(count, 2))
    else:
        raise ValueError(f"unknown scan kind {kind!r}: choose one of {SCAN_KINDS}")
    if jitter > 0:
        positions = positions + rng.normal(0.0, jitter, size=positions.shape)
    return np.clip(positions, low, high)


def _raster(low: float, high: float, step: float) -> np.ndarray:
    axis = np.arange(low, high + 1e-9, step)
    axis = axis + (high - axis[-1]) / 2  # centre the grid in the region
    xs, ys = np.meshgrid(axis, axis)
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


def _fermat(low: float, high: float, step: float) -> np.ndarray:
    # Each point of r_k = c·sqrt(k) covers an area π·c²; matching a square lattice of pitch
    # `step` (area step²) gives c = step / sqrt(π).
    centre, half = (low + high) / 2, (high - low) / 2
    c = step / np.sqrt(np.pi)
    count = int(np.ceil(2 * half**2 / c**2)) + 1
    k = np.arange(count)
    radius, angle = c * np.sqrt(k), k * GOLDEN_ANGLE
    positions = np.stack([centre + radius * np.cos(angle), centre + radius * np.sin(angle)], axis=1)
    inside = np.all(np.abs(positions - centre) <= half, axis=1)
    return positions[inside]
