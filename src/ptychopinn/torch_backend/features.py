"""Network input features in PyTorch (see :mod:`ptychopinn.physics.backprojection`)."""

from __future__ import annotations

import torch

from ptychopinn.physics.backprojection import PHASE_FLOOR, REGULARIZATION


def backprojection_filters(probe: torch.Tensor, regularization: float = REGULARIZATION):
    """(far-field phase of the probe, conj(P)/(|P|² + δ max|P|²)): fixed per model."""
    field = torch.fft.fftshift(torch.fft.fft2(probe, norm="ortho"), dim=(-2, -1))
    magnitude = field.abs()
    phase = field / torch.maximum(magnitude, PHASE_FLOOR * magnitude.max())
    power = probe.abs() ** 2
    inverse = probe.conj() / (power + regularization * power.max())
    return phase, inverse


def input_features(amplitudes: torch.Tensor, phase: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
    """(B, C, N, N) amplitudes → (B, C, 3, N, N): amplitude, Re Ô, Im Ô."""
    field = torch.fft.ifft2(torch.fft.ifftshift(amplitudes * phase, dim=(-2, -1)), norm="ortho")
    estimate = field * inverse
    return torch.stack([amplitudes, estimate.real, estimate.imag], dim=-3)
