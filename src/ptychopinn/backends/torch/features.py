"""Network input features in PyTorch (see :mod:`ptychopinn.physics.backprojection`)."""

from __future__ import annotations

import torch

from ptychopinn.physics import backprojection


def backprojection_filters(probe: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's fixed filters, computed once by the NumPy reference (shared by both backends)."""
    phase, inverse = backprojection.backprojection_filters(probe.detach().cpu().numpy())
    return torch.from_numpy(phase).to(probe.device), torch.from_numpy(inverse).to(probe.device)


def input_features(amplitudes: torch.Tensor, phase: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
    """(B, C, N, N) amplitudes → (B, C, 3, N, N): amplitude, Re Ô, Im Ô."""
    field = torch.fft.ifft2(torch.fft.ifftshift(amplitudes * phase, dim=(-2, -1)), norm="ortho")
    estimate = field * inverse
    return torch.stack([amplitudes, estimate.real, estimate.imag], dim=-3)
