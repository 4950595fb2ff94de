"""The probe learned jointly with the network (training.learn_probe, docs/design/spec.md#loss).

The probe's modes are one complex parameter (K, N, N), started from the scan's normalised probe.
Object and probe scale are not separately identifiable (|F(P·O)| is unchanged by P → cP,
O → O/c), so the probe's total power Σ_k ‖P_k‖² is held at its starting value: the scale
contract's normalisation of the probe then still fixes the scale of the object the network
produces, and the network and the probe cannot drift against each other.
"""

from __future__ import annotations

import torch
from torch import nn


class LearnedProbe(nn.Module):
    """K incoherent probe modes (K, N, N) complex64 under a total power constraint."""

    def __init__(self, modes: torch.Tensor):
        super().__init__()
        modes = modes.to(torch.complex64).reshape(-1, *modes.shape[-2:])
        self.modes = nn.Parameter(modes.clone())
        self.register_buffer("total_power", _power(modes).detach().clone())

    def forward(self) -> torch.Tensor:
        """The modes rescaled to the starting total power (the constraint is part of the graph, so
        the gradient sees only changes of shape and of the split of power between modes)."""
        return self.modes * torch.sqrt(self.total_power / _power(self.modes))

    def constrained(self) -> torch.Tensor:
        """The current modes under the constraint, detached (what the bundle stores)."""
        with torch.no_grad():
            return self().detach().clone()


def _power(modes: torch.Tensor) -> torch.Tensor:
    return (modes.real**2 + modes.imag**2).sum()
