"""Network input features in PyTorch (see :mod:`ptychopinn.physics.backprojection`)."""

from __future__ import annotations

import torch

from ptychopinn.physics import backprojection


def backprojection_filters(probe: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's fixed filters, computed once by the NumPy reference (shared by both backends)."""
    phase, inverse = backprojection.backprojection_filters(probe.detach().cpu().numpy())
    return torch.from_numpy(phase).to(probe.device), torch.from_numpy(inverse).to(probe.device)


def per_sample_filters(probes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The same two filters for a batch of probes (B, 1, N, N), each from its own probe: what a
    model trained on many probes computes from every sample's probe (the NumPy reference,
    applied probe by probe, is what this is tested against)."""
    field = torch.fft.fftshift(torch.fft.fft2(probes, norm="ortho"), dim=(-2, -1))
    magnitude = field.abs()
    floor = backprojection.PHASE_FLOOR * magnitude.amax(dim=(-2, -1), keepdim=True)
    phase = field / torch.maximum(magnitude, floor)
    power = probes.abs() ** 2
    inverse = probes.conj() / (power + backprojection.REGULARIZATION * power.amax(dim=(-2, -1), keepdim=True))
    return phase, inverse


def input_features(amplitudes: torch.Tensor, phase: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
    """(B, C, N, N) amplitudes → (B, C, 3, N, N): amplitude, Re Ô, Im Ô."""
    field = torch.fft.ifft2(torch.fft.ifftshift(amplitudes * phase, dim=(-2, -1)), norm="ortho")
    estimate = field * inverse
    return torch.stack([amplitudes, estimate.real, estimate.imag], dim=-3)
