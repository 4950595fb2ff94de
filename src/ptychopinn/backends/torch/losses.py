"""Data losses on far-field amplitudes (docs/design/spec.md#loss)."""

from __future__ import annotations

import torch

from ptychopinn.config import LossKind

POISSON_EPSILON = 1e-12


def poisson_nll(predicted: torch.Tensor, measured: torch.Tensor, photon_scale: float) -> torch.Tensor:
    """mean(λ̂ − k·log(λ̂ + ε)) with λ̂ = (S·Â_n)², k = (S·X_n)² (counts when the data are counts)."""
    rate = (photon_scale * predicted) ** 2
    counts = (photon_scale * measured) ** 2
    return torch.mean(rate - counts * torch.log(rate + POISSON_EPSILON))


def amplitude_mae(predicted: torch.Tensor, measured: torch.Tensor, photon_scale: float) -> torch.Tensor:
    return torch.mean(torch.abs(predicted - measured))


def amplitude_mse(predicted: torch.Tensor, measured: torch.Tensor, photon_scale: float) -> torch.Tensor:
    return torch.mean((predicted - measured) ** 2)


LOSSES = {LossKind.poisson: poisson_nll, LossKind.mae: amplitude_mae, LossKind.mse: amplitude_mse}


def data_loss(
    predicted: torch.Tensor,
    measured: torch.Tensor,
    photon_scale: float,
    weights: dict[LossKind, float],
) -> torch.Tensor:
    """The configured loss: one term, or the weighted sum of several."""
    terms = [w * LOSSES[kind](predicted, measured, photon_scale) for kind, w in weights.items() if w]
    return torch.stack(terms).sum() if len(terms) > 1 else terms[0]
