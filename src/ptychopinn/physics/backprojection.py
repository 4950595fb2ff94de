"""The back-projected object estimate the network starts from (input_mode "backprojection").

A convolutional network learns local operations easily and a Fourier inversion hardly at all, so
it is handed, next to the amplitudes, the object estimate of one Gerchberg–Saxton-like step: the
measured amplitude combined with the phase of the probe's own far field, propagated back and
divided by the probe (Wiener-regularised):

    ψ̂ = IFFT_ortho(ifftshift(X_n · Ψ_P / |Ψ_P|)),   Ψ_P = fftshift(FFT_ortho(P_n))
    (the unit factor fades to 0 where |Ψ_P| < 1 % of its maximum),
    Ô = ψ̂ · conj(P_n) / (|P_n|² + δ · max|P_n|²)

It is a fixed function of the data and the probe (no learned parameters); both backends implement
it and are tested against this reference.
"""

from __future__ import annotations

import numpy as np

REGULARIZATION = 0.1


PHASE_FLOOR = 1e-2


def probe_far_field_phase(probe: np.ndarray) -> np.ndarray:
    """Ψ_P / max(|Ψ_P|, floor · max|Ψ_P|): the unit phase factor where the probe's far field is
    bright, fading to 0 where it is dark (there its phase is numerical noise)."""
    field = np.fft.fftshift(np.fft.fft2(probe, norm="ortho"), axes=(-2, -1))
    magnitude = np.abs(field)
    return field / np.maximum(magnitude, PHASE_FLOOR * magnitude.max())


def probe_inverse(probe: np.ndarray, regularization: float = REGULARIZATION) -> np.ndarray:
    """conj(P) / (|P|² + δ·max|P|²): division by the probe, Wiener-regularised where it is dark."""
    power = np.abs(probe) ** 2
    return np.conj(probe) / (power + regularization * power.max())


def backprojection_filters(
    probe: np.ndarray, regularization: float = REGULARIZATION
) -> tuple[np.ndarray, np.ndarray]:
    """The two fixed filters of a model, complex64: (far-field unit phase of the probe,
    conj(P)/(|P|² + δ·max|P|²)). Backends take them from here, so they agree exactly."""
    probe = np.asarray(probe, dtype=np.complex128)
    inverse = probe_inverse(probe, regularization)
    return probe_far_field_phase(probe).astype(np.complex64), inverse.astype(np.complex64)


def backproject(amplitudes: np.ndarray, probe: np.ndarray, regularization: float = REGULARIZATION) -> np.ndarray:
    """Object estimates (..., N, N) complex from normalised amplitudes (..., N, N)."""
    field = np.fft.ifft2(np.fft.ifftshift(amplitudes * probe_far_field_phase(probe), axes=(-2, -1)),
                         norm="ortho")
    return field * probe_inverse(probe, regularization)


def input_features(amplitudes: np.ndarray, probe: np.ndarray) -> np.ndarray:
    """(..., N, N) amplitudes → (..., 3, N, N): amplitude, Re Ô, Im Ô."""
    estimate = backproject(amplitudes, probe)
    return np.stack([amplitudes, estimate.real, estimate.imag], axis=-3)
