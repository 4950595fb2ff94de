"""Data fit: how well an object explains the measured patterns, without a reference object
(docs/design/spec.md#evaluation)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ptychopinn.atomic import atomic_path
from ptychopinn.config import RefineOptions
from ptychopinn.data.scan import Scan
from ptychopinn.physics.noise import AmplitudeNoise
from ptychopinn.reconstruction.result import Reconstruction

# A pattern missed by more than this many times its Poisson floor is visibly unexplained: network
# objects that score phase SSIM 0.94 leave 2-3x over the whole scan (docs/lab-notes/2026-11-25-network-quality.md)
POOR_FIT_EXCESS = 3.0


@dataclass(frozen=True)
class DataFit:
    """How well an object explains the measured patterns, without a reference object.

    ``misfit``: ‖s·|F(P · O)| − X‖ / ‖X‖ over all positions at the best global scale s (object and
    probe scale are not separately identifiable); ``noise_floor``: the same ratio for the true
    object, i.e. what Poisson noise alone leaves (patterns in photon counts, docs/design/spec.md#data-contract).
    """

    misfit: float
    noise_floor: float
    # per scan position, ‖s·|F(P · O)| − X‖ over its pattern in units of what Poisson noise alone
    # leaves there: the trust map (about 1 where the object explains that pattern)
    position_excess: np.ndarray = field(default_factory=lambda: np.empty(0), compare=False, repr=False)

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

    def untrusted_fraction(self, threshold: float = POOR_FIT_EXCESS) -> float:
        """The fraction of scan positions whose pattern the object misses by more than
        ``threshold`` times the Poisson floor."""
        return float(np.mean(self.position_excess > threshold)) if self.position_excess.size else 0.0

    def format_trust(self) -> str:
        return (f"trust map: {100 * self.untrusted_fraction():.0f} % of the positions beyond "
                f"{POOR_FIT_EXCESS:g}× the noise (median {np.median(self.position_excess):.1f}×, "
                f"worst {np.max(self.position_excess):.1f}×)")

    def save_trust_map(self, positions_xy: np.ndarray, path: str | Path) -> Path:
        """The trust map as ``path`` (.npz: ``positions_xy`` (M, 2) [x, y], ``excess`` (M,)),
        written atomically."""
        with atomic_path(path) as temporary, open(temporary, "wb") as handle:
            np.savez(handle, positions_xy=np.asarray(positions_xy, dtype=np.float64),
                     excess=self.position_excess.astype(np.float64))
        return Path(path)


def data_fit(scan: Scan, reconstruction: Reconstruction, accelerator: str = "auto", *, device=None,
             probes: np.ndarray | None = None) -> DataFit:
    """The misfit of ``reconstruction`` to ``scan``'s patterns through the refinement's forward
    model (intensities summed over the probe's incoherent modes), over the detector's valid pixels;
    where the reconstruction does not cover a probe footprint, its mean value stands in.
    ``probes`` ((K, N, N) or (N, N), e.g. a refined probe) replaces the scan's probe modes.
    ``device`` (a torch device) replaces ``accelerator`` where the caller has one already."""
    # torch only where a fit is computed: importing this module (evaluation) stays light
    from ptychopinn.backends.torch.device import resolve_device
    from ptychopinn.reconstruction.refine.problem import RefinementProblem

    device = device if device is not None else resolve_device(accelerator)
    modes = scan.probes if probes is None else np.asarray(probes)
    count = 1 if modes.ndim == 2 else len(modes)
    # exactly these modes, none added: the fit of the object with the probe it was found with
    options = RefineOptions(refine_probe=False, probe_modes=count)
    return problem_fit(RefinementProblem(scan, reconstruction, options, device, probes=probes))


def problem_fit(problem, batch_size: int = 256) -> DataFit:
    """The :class:`DataFit` of a refinement problem's current object and probe."""
    import torch

    batches = torch.arange(len(problem.measured), device=problem.device).split(batch_size)
    cross, model_energy, measured_energy = 0.0, 0.0, 0.0
    with torch.no_grad():
        for batch in batches:
            # bad detector pixels hold garbage: out of every sum
            valid = problem.valid.double()
            predicted = problem.predicted(batch).double() * valid
            measured = problem.measured[batch].double() * valid
            cross += float(torch.sum(predicted * measured))
            model_energy += float(torch.sum(predicted**2))
            measured_energy += float(torch.sum(measured**2))
        scale = cross / model_energy if model_energy > 0 else 0.0
        # a second pass, as the floor needs the rates at the best scale: holding every
        # predicted pattern until the scale is known would cost a copy of the data
        noise, floor = AmplitudeNoise(), 0.0
        # filled in place: small per-batch arrays kept in a list between the batches' large
        # temporaries fragment the heap, and the process grew by ~28 kB per position (20 000
        # positions: 1.06 GB peak against 0.52 GB in place)
        position_residual = np.empty(len(problem.measured))
        position_floor = np.empty(len(problem.measured))
        for batch in batches:
            rows = batch.cpu().numpy()
            scaled = scale * problem.predicted(batch).double() * valid
            expected = noise.expected_square_residual((scaled**2).cpu().numpy())
            floor += float(np.sum(expected))
            position_floor[rows] = np.sum(expected, axis=(-2, -1))
            misses = torch.sum((scaled - problem.measured[batch].double() * valid) ** 2, dim=(-2, -1))
            position_residual[rows] = misses.cpu().numpy()
    residual = max(measured_energy - scale * cross, 0.0)  # Σ(sA − X)² at s = ΣAX / ΣA²
    position_excess = np.sqrt(position_residual / np.maximum(position_floor, 1e-300))
    # measured_energy > 0: the problem's probe scaling rejects patterns without counts
    return DataFit(math.sqrt(residual / measured_energy), math.sqrt(floor / measured_energy), position_excess)
