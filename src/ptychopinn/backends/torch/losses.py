"""Data losses on far-field amplitudes (docs/design/spec.md#loss)."""

from __future__ import annotations

import torch

from ptychopinn.config import LossKind

POISSON_EPSILON = 1e-12


def poisson_nll(predicted: torch.Tensor, measured: torch.Tensor, photon_scale: float) -> torch.Tensor:
    """Per pixel λ̂ − k·log(λ̂ + ε) with λ̂ = (S·Â_n)², k = (S·X_n)² (counts when the data are counts)."""
    rate = (photon_scale * predicted) ** 2
    counts = (photon_scale * measured) ** 2
    return rate - counts * torch.log(rate + POISSON_EPSILON)


def amplitude_mae(predicted: torch.Tensor, measured: torch.Tensor, photon_scale: float) -> torch.Tensor:
    return torch.abs(predicted - measured)


def amplitude_mse(predicted: torch.Tensor, measured: torch.Tensor, photon_scale: float) -> torch.Tensor:
    return (predicted - measured) ** 2


def masked_mean(per_pixel: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """Mean over the measured pixels: ``valid`` (N, N) 1 where the detector measured, 0 on bad
    pixels, whose values are garbage and must not pull the prediction (None: every pixel)."""
    if valid is None:
        return torch.mean(per_pixel)
    return torch.mean(per_pixel * valid) / torch.mean(valid)


LOSSES = {LossKind.poisson: poisson_nll, LossKind.mae: amplitude_mae, LossKind.mse: amplitude_mse}


def data_loss(
    predicted: torch.Tensor,
    measured: torch.Tensor,
    photon_scale: float,
    weights: dict[LossKind, float],
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """The configured loss: one term, or the weighted sum of several, each a mean over the
    ``valid`` pixels (N, N) (all when None)."""
    terms = [w * masked_mean(LOSSES[kind](predicted, measured, photon_scale), valid)
             for kind, w in weights.items() if w]
    return torch.stack(terms).sum() if len(terms) > 1 else terms[0]
