"""Simulated scans (docs/design/spec.md#forward-model): counts ~ Poisson(λ·|Ψ|²) with mean total counts = nphotons."""

from __future__ import annotations

import numpy as np

from ptychopinn.data.scan import Scan
from ptychopinn.physics.forward import extract_patches, far_field, illuminate
from ptychopinn.physics.probe import make_probe
from ptychopinn.progress import progress
from ptychopinn.simulation.objects import make_object
from ptychopinn.simulation.scan_patterns import make_positions

SIMULATION_CHUNK = 256


def simulate_diffraction(
    obj: np.ndarray,
    probe: np.ndarray,
    positions_xy: np.ndarray,
    nphotons: float,
    seed: int = 0,
    show_progress: bool = False,
) -> np.ndarray:
    """Noisy measured amplitudes sqrt(counts), (M, N, N) float32.

    λ is chosen so that the mean over patterns of the expected total counts equals ``nphotons``.
    """
    n = probe.shape[-1]
    intensities = np.empty((len(positions_xy), n, n), dtype=np.float64)
    starts = range(0, len(positions_xy), SIMULATION_CHUNK)
    for start in progress(starts, "simulating", enabled=show_progress):
        chunk = positions_xy[start : start + SIMULATION_CHUNK]
        intensities[start : start + len(chunk)] = np.abs(
            far_field(illuminate(extract_patches(obj, chunk, n), probe))
        ) ** 2
    scale = nphotons / np.mean(intensities.sum(axis=(-2, -1)))
    counts = np.random.default_rng(seed).poisson(scale * intensities)
    return np.sqrt(counts).astype(np.float32)


def simulate(
    object: str | np.ndarray = "lines",  # noqa: A002 - mirrors the CLI's --object
    *,
    size: int = 256,
    n: int = 64,
    probe: str | np.ndarray = "disk",
    scan: str = "raster",
    step: float = 6.0,
    jitter: float = 1.0,
    photons: float = 1e6,
    seed: int = 0,
    phase_image: str | None = None,
    show_progress: bool = False,
) -> Scan:
    """Simulate a complete scan with its ground-truth object.

    ``object`` is a generator name (lines, grf, dots, star, image), an image path, or a complex
    array; ``probe`` is a probe kind (disk, defocused) or a complex (n, n) array.
    """
    seeds = np.random.SeedSequence(seed).spawn(3)
    obj = (
        np.asarray(object, dtype=np.complex64)
        if isinstance(object, np.ndarray)
        else make_object(object, size, int(seeds[0].generate_state(1)[0]), phase_image)
    )
    probe_array = (
        np.asarray(probe, dtype=np.complex64) if isinstance(probe, np.ndarray) else make_probe(n, probe)
    )
    if probe_array.shape != (n, n):
        raise ValueError(f"probe shape {probe_array.shape} does not match patch size {n}")
    positions = make_positions(
        scan, min(obj.shape), n, step, jitter, int(seeds[1].generate_state(1)[0])
    )
    diffraction = simulate_diffraction(
        obj, probe_array, positions, photons, int(seeds[2].generate_state(1)[0]), show_progress
    )
    return Scan(
        diffraction=diffraction,
        xcoords=positions[:, 0].copy(),
        ycoords=positions[:, 1].copy(),
        probe=probe_array,
        object=obj,
        xcoords_start=positions[:, 0].copy(),
        ycoords_start=positions[:, 1].copy(),
        scan_index=np.zeros(len(positions), dtype=np.int64),
        source="<simulated>",
    )
