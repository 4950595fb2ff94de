"""Simulated scans (docs/design/spec.md#forward-model): counts ~ Poisson(λ·Σ_k |F(P_k · O)|²) with mean
total counts = nphotons, summed over the incoherent probe modes P_k (one for a coherent probe)."""

from __future__ import annotations

import numpy as np

from ptychopinn.data.scan import Scan
from ptychopinn.physics.forward import extract_patches, far_field, illuminate
from ptychopinn.physics.probe import PROBE_KINDS, make_probe
from ptychopinn.progress import progress
from ptychopinn.simulation.families import PupilDraw, render_pupil
from ptychopinn.simulation.objects import make_object
from ptychopinn.simulation.scan_patterns import make_positions

SIMULATION_CHUNK = 256
SIMULATED_PROBE_KINDS = (*PROBE_KINDS, "zone_plate")
# Power of incoherent mode k relative to mode 0 is MODE_POWER_RATIO**k: 1 : 0.3 : 0.09, the decay
# of the mode powers of a moderately coherent undulator beam
MODE_POWER_RATIO = 0.3
# A hot pixel reads this many times the brightest measured count of its pattern
HOT_PIXEL_FACTOR = 4.0


def simulate_diffraction(
    obj: np.ndarray,
    probe: np.ndarray,
    positions_xy: np.ndarray,
    nphotons: float,
    seed: int = 0,
    show_progress: bool = False,
) -> np.ndarray:
    """Noisy measured amplitudes sqrt(counts), (M, N, N) float32.

    ``probe`` is one (N, N) probe or (K, N, N) incoherent modes, whose intensities add. λ is
    chosen so that the mean over patterns of the expected total counts equals ``nphotons``.
    """
    modes = np.asarray(probe)
    modes = modes[np.newaxis] if modes.ndim == 2 else modes
    n = modes.shape[-1]
    intensities = np.zeros((len(positions_xy), n, n), dtype=np.float64)
    starts = range(0, len(positions_xy), SIMULATION_CHUNK)
    for start in progress(starts, "simulating", enabled=show_progress):
        chunk = positions_xy[start : start + SIMULATION_CHUNK]
        patches = extract_patches(obj, chunk, n)
        for mode in modes:
            intensities[start : start + len(chunk)] += np.abs(far_field(illuminate(patches, mode))) ** 2
    scale = nphotons / np.mean(intensities.sum(axis=(-2, -1)))
    counts = np.random.default_rng(seed).poisson(scale * intensities)
    return np.sqrt(counts).astype(np.float32)


def zone_plate_probe(n: int, beam_radius: float | None = None, stop_fraction: float = 0.35) -> np.ndarray:
    """A defocused zone plate's probe with a central stop, complex64, peak amplitude 1: a ring
    (dark centre where the stop shades the pupil) of radius about ``beam_radius`` (default N/5)
    with mild astigmatism and coma, the shape of a real hard X-ray zone-plate beam out of focus."""
    beam_radius = n / 5 if beam_radius is None else float(beam_radius)
    pupil_radius = n / 4
    draw = PupilDraw(
        pupil_radius=pupil_radius,
        edge_width=1.0,
        stop_fraction=stop_fraction,
        # the pupil phase whose edge rays land beam_radius px out (physics.probe._defocused_probe)
        defocus=np.pi * pupil_radius * beam_radius / n,
        astigmatism=0.4,
        astigmatism_angle=0.5,
        coma=0.3,
        coma_angle=1.0,
        spherical=0.2,
    )
    return render_pupil(draw, n).astype(np.complex64)


def simulation_probe(n: int, kind: str) -> np.ndarray:
    """A probe of ``kind``: one of physics.probe's kinds or ``zone_plate``."""
    if kind == "zone_plate":
        return zone_plate_probe(n)
    if kind not in PROBE_KINDS:
        raise ValueError(f"unknown probe kind {kind!r}; choose one of {SIMULATED_PROBE_KINDS}")
    return make_probe(n, kind)


def make_probe_modes(probe: np.ndarray, count: int, power_ratio: float = MODE_POWER_RATIO) -> np.ndarray:
    """(count, N, N) complex64 mutually orthogonal incoherent modes, mode 0 = ``probe`` exactly.

    Mode k is the probe times a low-order Hermite-Gauss-like pattern (x, y, xy, x² − y², ...,
    in units of the beam's rms radius), orthogonalised against the modes before it
    (Gram-Schmidt) and scaled to power_ratio**k of mode 0's power: the first modes of a
    partially coherent beam look like the coherent one with nodal lines across it.
    """
    probe = np.asarray(probe, dtype=np.complex64)
    if count < 1:
        raise ValueError(f"probe modes: need at least 1 mode, got {count}")
    if not 0 < power_ratio < 1:
        raise ValueError(f"probe mode power ratio must be in (0, 1), got {power_ratio}")
    n = probe.shape[-1]
    intensity = np.abs(probe.astype(np.complex128)) ** 2
    power = intensity.sum()
    coords = np.arange(n) - n / 2
    y, x = coords[:, None], coords[None, :]
    cx, cy = (intensity * x).sum() / power, (intensity * y).sum() / power
    rms = np.sqrt((intensity * ((x - cx) ** 2 + (y - cy) ** 2)).sum() / power)
    u, v = (x - cx) / rms, (y - cy) / rms
    patterns = [u + 0 * v, v + 0 * u, u * v, u**2 - v**2, u**2 + v**2 - 1, u * (u**2 - 3 * v**2)]
    if count - 1 > len(patterns):
        raise ValueError(f"probe modes: at most {len(patterns) + 1} simulated modes, got {count}")
    modes = [probe.astype(np.complex128)]
    for k, pattern in enumerate(patterns[: count - 1], start=1):
        mode = probe * pattern
        for previous in modes:
            mode = mode - np.vdot(previous, mode) / np.vdot(previous, previous) * previous
        modes.append(mode * np.sqrt(power * power_ratio**k / np.sum(np.abs(mode) ** 2)))
    stack = np.stack(modes).astype(np.complex64)
    stack[0] = probe  # bit-exact, as the data contract requires of mode 0
    return stack


def corrupt_bad_pixels(
    diffraction: np.ndarray, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray | None]:
    """``diffraction`` with garbage in a random ``fraction`` of the detector's pixels plus one
    dead column, and the (N, N) bad-pixel mask (True = bad); (diffraction, None) for fraction 0.

    Half the random bad pixels are dead (read 0), half hot (HOT_PIXEL_FACTOR times the brightest
    count of each pattern), and the dead column reads 0, so a fit that does not exclude them is
    visibly pulled away from the object."""
    if not 0 <= fraction < 1:
        raise ValueError(f"bad pixel fraction must be in [0, 1), got {fraction}")
    if fraction == 0:
        return diffraction, None
    n = diffraction.shape[-1]
    bad = rng.random((n, n)) < fraction
    hot = bad & (rng.random((n, n)) < 0.5)
    # a dead column away from the centre, where a detector module's edge would be
    dead_column = int(rng.integers(n // 8, 3 * n // 8)) * int(rng.choice((-1, 1))) + n // 2
    bad[:, dead_column] = True
    hot[:, dead_column] = False
    corrupted = diffraction.copy()
    corrupted[:, bad] = 0.0
    brightest = diffraction.reshape(len(diffraction), -1).max(axis=1)
    corrupted[:, hot] = (np.sqrt(HOT_PIXEL_FACTOR) * brightest)[:, None]
    return corrupted.astype(np.float32), bad


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
    probe_modes: int = 1,
    mode_power_ratio: float = MODE_POWER_RATIO,
    bad_pixel_fraction: float = 0.0,
) -> Scan:
    """Simulate a complete scan with its ground-truth object.

    ``object`` is a generator name (lines, grf, dots, star, image), an image path, or a complex
    array; ``probe`` is a probe kind (disk, defocused, zone_plate) or a complex (n, n) array, or
    (K, n, n) incoherent modes. ``probe_modes`` K > 1 makes a partially coherent beam from a
    single probe (:func:`make_probe_modes`; the scan carries them in ``probe_modes``);
    ``bad_pixel_fraction`` f > 0 puts garbage in a fraction f of the detector pixels plus a dead
    column (:func:`corrupt_bad_pixels`; the scan carries the mask in ``bad_pixels``).
    """
    seeds = np.random.SeedSequence(seed).spawn(4)
    obj = (
        np.asarray(object, dtype=np.complex64)
        if isinstance(object, np.ndarray)
        else make_object(object, size, int(seeds[0].generate_state(1)[0]), phase_image)
    )
    modes = _probe_modes(probe, n, probe_modes, mode_power_ratio)
    positions = make_positions(
        scan, min(obj.shape), n, step, jitter, int(seeds[1].generate_state(1)[0])
    )
    diffraction = simulate_diffraction(
        obj, modes, positions, photons, int(seeds[2].generate_state(1)[0]), show_progress
    )
    diffraction, bad_pixels = corrupt_bad_pixels(
        diffraction, bad_pixel_fraction, np.random.default_rng(seeds[3])
    )
    return Scan(
        diffraction=diffraction,
        xcoords=positions[:, 0].copy(),
        ycoords=positions[:, 1].copy(),
        probe=modes[0].copy(),
        object=obj,
        xcoords_start=positions[:, 0].copy(),
        ycoords_start=positions[:, 1].copy(),
        scan_index=np.zeros(len(positions), dtype=np.int64),
        source="<simulated>",
        probe_modes=modes if len(modes) > 1 else None,
        bad_pixels=bad_pixels,
    )


def _probe_modes(probe: str | np.ndarray, n: int, count: int, power_ratio: float) -> np.ndarray:
    """(K, n, n) complex64 modes of the simulated beam from a kind, a probe or given modes."""
    if isinstance(probe, str):
        return make_probe_modes(simulation_probe(n, probe), count, power_ratio)
    array = np.asarray(probe, dtype=np.complex64)
    if array.ndim == 3 and array.shape[1:] == (n, n):
        if count not in (1, len(array)):
            raise ValueError(f"{len(array)} probe modes given, but probe_modes={count} asked for")
        return array
    if array.shape != (n, n):
        raise ValueError(f"probe shape {array.shape} does not match patch size {n}")
    return make_probe_modes(array, count, power_ratio)
