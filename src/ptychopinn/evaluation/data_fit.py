"""Data fit: how well an object explains the measured patterns, without a reference object
(docs/design/spec.md#evaluation)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ptychopinn.config import RefineOptions
from ptychopinn.data.scan import Scan
from ptychopinn.physics.noise import AmplitudeNoise
from ptychopinn.reconstruction.result import Reconstruction


@dataclass(frozen=True)
class DataFit:
    """How well an object explains the measured patterns, without a reference object.

    ``misfit``: ‖s·|F(P · O)| − X‖ / ‖X‖ over all positions at the best global scale s (object and
    probe scale are not separately identifiable); ``noise_floor``: the same ratio for the true
    object, i.e. what Poisson noise alone leaves (patterns in photon counts, docs/design/spec.md#data-contract).
    """

    misfit: float
    noise_floor: float

    @property
    def excess(self) -> float:
        """Misfit in units of the noise floor: about 1 for an object that explains the data."""
        return self.misfit / self.noise_floor if self.noise_floor > 0 else math.inf

    def as_metrics(self) -> dict[str, float]:
        return {"data_misfit": self.misfit, "data_misfit_noise_floor": self.noise_floor,
                "data_misfit_excess": self.excess}

    def format(self) -> str:
        return (f"data misfit {100 * self.misfit:.1f} % of the measured amplitudes, "
                f"{self.excess:.1f}× what Poisson noise alone leaves ({100 * self.noise_floor:.1f} %)")


def data_fit(scan: Scan, reconstruction: Reconstruction, accelerator: str = "auto") -> DataFit:
    """The misfit of ``reconstruction`` to ``scan``'s patterns through the refinement's forward
    model; where the reconstruction does not cover a probe footprint, its mean value stands in."""
    # torch only where a fit is computed: importing this module (evaluation) stays light
    from ptychopinn.backends.torch.device import resolve_device
    from ptychopinn.reconstruction.refine.problem import RefinementProblem

    problem = RefinementProblem(scan, reconstruction, RefineOptions(), resolve_device(accelerator))
    return _fit(problem)


def _fit(problem, batch_size: int = 256) -> DataFit:
    import torch

    batches = torch.arange(len(problem.measured), device=problem.device).split(batch_size)
    cross, model_energy, measured_energy = 0.0, 0.0, 0.0
    with torch.no_grad():
        for batch in batches:
            predicted, measured = problem.predicted(batch).double(), problem.measured[batch].double()
            cross += float(torch.sum(predicted * measured))
            model_energy += float(torch.sum(predicted**2))
            measured_energy += float(torch.sum(measured**2))
        scale = cross / model_energy if model_energy > 0 else 0.0
        # a second pass, as the floor needs the rates at the best scale: holding every
        # predicted pattern until the scale is known would cost a copy of the data
        noise, floor = AmplitudeNoise(), 0.0
        for batch in batches:
            expected_counts = (scale * problem.predicted(batch).double()) ** 2
            floor += float(np.sum(noise.expected_square_residual(expected_counts.cpu().numpy())))
    residual = max(measured_energy - scale * cross, 0.0)  # Σ(sA − X)² at s = ΣAX / ΣA²
    # measured_energy > 0: the problem's probe scaling rejects patterns without counts
    return DataFit(math.sqrt(residual / measured_energy), math.sqrt(floor / measured_energy))
