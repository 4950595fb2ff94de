"""Probe utilities: synthetic probes, the probe mask and probe normalisation (docs/design/spec.md#forward-model to #scaling)."""

from __future__ import annotations

import numpy as np

PROBE_KINDS = ("disk", "defocused")


def _radius_grid(n: int) -> np.ndarray:
    """Distance of every pixel from the patch centre (N/2, N/2), in pixels."""
    coords = np.arange(n) - n / 2
    return np.hypot(coords[:, None], coords[None, :])


def probe_mask(n: int) -> np.ndarray:
    """The probe mask M: a disk of radius N/4 centred at (N/2, N/2), float32 in {0, 1}."""
    return (_radius_grid(n) <= n / 4).astype(np.float32)


def make_probe(
    n: int,
    kind: str = "disk",
    radius: float | None = None,
    defocus: float = 0.0,
) -> np.ndarray:
    """A synthetic probe on the object pixel grid, complex64, peak amplitude 1.

    ``disk``: a smooth-edged disk of ``radius`` (default N/6) with an optional quadratic
    (defocus) phase of ``defocus`` radians at the disk edge.

    ``defocused``: a focusing optic's field out of focus — a circular pupil (in-focus spot about
    ``radius``/3) with a quadratic pupil phase that spreads the beam to a geometric radius of about
    ``radius``; ``defocus`` (radians at the pupil edge) overrides that phase. This gives the ring
    structure and phase curvature of a real defocused zone-plate probe.
    """
    radius = n / 6 if radius is None else float(radius)
    if kind == "disk":
        return _smooth_disk_probe(n, radius, defocus)
    if kind == "defocused":
        return _defocused_probe(n, radius, defocus or None)
    raise ValueError(f"unknown probe kind {kind!r}; choose one of {PROBE_KINDS}")


def _smooth_disk_probe(n: int, radius: float, defocus: float) -> np.ndarray:
    r = _radius_grid(n)
    edge_width = max(radius / 6, 0.75)
    amplitude = 0.5 * (1 - np.tanh((r - radius) / edge_width))
    phase = defocus * (r / radius) ** 2
    return (amplitude * np.exp(1j * phase)).astype(np.complex64)


def _defocused_probe(n: int, radius: float, defocus: float | None) -> np.ndarray:
    # An Airy spot of first-zero radius ρ comes from a pupil of radius 0.61·N/ρ frequency pixels.
    pupil_radius = min(0.61 * n / max(radius / 3, 1.0), n / 2 - 2)
    # A pupil phase D·(k/k_p)² tilts edge rays by 2D/k_p rad per frequency pixel, i.e. moves
    # them D·N/(π·k_p) pixels: choose D so that this geometric radius equals `radius`.
    defocus = np.pi * pupil_radius * radius / n if defocus is None else defocus
    r = _radius_grid(n)
    pupil = 0.5 * (1 - np.tanh((r - pupil_radius) / 1.0))
    pupil = pupil * np.exp(1j * defocus * (r / pupil_radius) ** 2)
    field = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(pupil), norm="ortho"))
    return (field / np.abs(field).max()).astype(np.complex64)


TWIN_SYMMETRIC_BELOW = 0.01


def twin_asymmetry(probe: np.ndarray) -> float:
    """min over a global phase θ of ‖e^{iθ}P − twin(e^{iθ}P)‖ / ‖P‖, twin(P)(r) = conj P(−r)
    (r = 0 at pixel N/2); = √(2 − 2 |⟨twin(P), P⟩| / ‖P‖²).

    Where it is ~0 (a real, centro-symmetric probe such as a flat-phase disk, at any global phase:
    a probe from a file carries an arbitrary one, and the intensities do not see it) an object
    patch O and its twin conj O(−r) give exactly the same diffraction, up to the global phase the
    object absorbs: a single pattern cannot tell them apart, only the overlap between positions can."""
    probe = np.asarray(probe).astype(np.complex128)
    energy = float(np.vdot(probe, probe).real)
    if energy == 0:
        raise ValueError("the probe is zero everywhere")
    overlap = abs(np.vdot(twin(probe), probe)) / energy
    return float(np.sqrt(max(0.0, 2.0 - 2.0 * overlap)))


def twin(field: np.ndarray) -> np.ndarray:
    """conj F(−r) of an (N, N) field whose r = 0 is pixel N/2 (−r of pixel i is pixel N − i)."""
    return np.conj(np.roll(np.asarray(field)[::-1, ::-1], 1, axis=(0, 1)))


def probe_similarity(probe: np.ndarray, other: np.ndarray) -> float:
    """|⟨P, Q⟩| / (‖P‖ ‖Q‖) of two probes on the same grid: 1 for the same probe up to a global
    phase and scale (which the normalisation and the object absorb), towards 0 for probes that
    light different pixels or carry different phase structure."""
    probe, other = (np.asarray(p).astype(np.complex128) for p in (probe, other))
    if probe.shape != other.shape:
        raise ValueError(f"probes of different sizes: {probe.shape} and {other.shape}")
    norms = np.linalg.norm(probe) * np.linalg.norm(other)
    if norms == 0:
        raise ValueError("the probe is zero everywhere")
    return float(abs(np.vdot(probe, other)) / norms)


PROBE_NORMALIZATIONS = ("mean_amplitude", "energy")


def normalize_probe(
    probe: np.ndarray, probe_scale: float = 4.0, use_mask: bool = False, mode: str = "mean_amplitude"
) -> np.ndarray:
    """The normalised probe P_n (docs/design/spec.md#scaling), complex64.

    ``mean_amplitude`` (per-scan models): P_n = P / (probe_scale · mean over all N² pixels of |M · P|);
    without the mask, M is all ones. The object amplitude the network must produce then depends
    on how much of the window the probe fills.

    ``energy`` (general models): P_n = P · (N/2) / ‖P‖, so Σ|P_n|² = (N/2)², the energy of a
    normalised pattern: an object of unit transmission reproduces a normalised pattern whatever
    the probe's size or shape, which is what lets one network serve many probes.
    """
    probe = np.asarray(probe)
    if mode == "energy":
        norm = np.linalg.norm(probe.astype(np.complex128))
        if not np.isfinite(norm) or norm <= 0:
            raise ValueError("cannot normalise a probe that is zero everywhere")
        return (probe * (probe.shape[-1] / 2 / norm)).astype(np.complex64)
    if mode != "mean_amplitude":
        raise ValueError(f"unknown probe normalisation {mode!r}; choose one of {PROBE_NORMALIZATIONS}")
    weights = probe_mask(probe.shape[-1]) if use_mask else 1.0
    denominator = probe_scale * np.mean(np.abs(weights * probe.astype(np.complex128)))
    if not np.isfinite(denominator) or denominator <= 0:
        raise ValueError("cannot normalise a probe whose (masked) amplitude is zero everywhere")
    return (probe / denominator).astype(np.complex64)
