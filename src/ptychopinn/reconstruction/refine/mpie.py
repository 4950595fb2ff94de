"""The PIE-style object step with momentum (optimizer ``mpie``), and the probe's ePIE-like step.

step = gradient / (batch illumination Σ|P|², floored at its average, + r · its maximum), with
heavy-ball momentum: the amplitude loss's Gauss-Newton step, scaled as ePIE scales its update for
one position.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ptychopinn.config import RefineLoss

if TYPE_CHECKING:
    from ptychopinn.reconstruction.refine.problem import RefinementProblem

# The relaxation of the illumination in the mpie step's denominator, as a fraction of its maximum:
# 0.03 and 0.01 let weakly lit pixels move faster but were unstable with momentum (star / disk: 11
# to 25 passes to phase SSIM 0.9 instead of 3 to 4); 0.3 was slower on most scans (docs/lab-notes/2026-11-25-network-quality.md)
PIE_REGULARISATION = 0.1
# The canvas pixels lit by at least this fraction of the largest illumination: those the probe's step
# normalises by (the rest hold the flat start's value, not the object's); the saved object's cover
LIT_FRACTION = 0.05
# Heavy-ball momentum of the probe's step: on a zone-plate scan with 3 modes from a rough guess (lines,
# 20 passes, step 4) 0.5 reached phase SSIM 0.944, none 0.911, 0.8 overshot (benchmarks/partial_coherence.py)
PROBE_MOMENTUM = 0.5


class PieSteps:
    """The mpie steps of one problem's canvas; holds the momentum."""

    def __init__(self, problem: RefinementProblem):
        self.problem = problem
        self.velocity = torch.zeros_like(problem.canvas)

    def step(self, batch: torch.Tensor, fraction: float) -> None:
        """v ← momentum · v + step · g / (D + r · max D), then canvas -= v. ``g`` is the gradient
        of the batch's mean squared amplitude error back in units of the exit-wave misfit
        (× B N_valid / 2, N_valid the valid detector pixels); D is the batch's illumination, floored (:meth:`illumination`)."""
        problem, options = self.problem, self.problem.options
        illumination = self.illumination(batch)
        with torch.no_grad():
            denominator = illumination + PIE_REGULARISATION * illumination.max()
            to_misfit = len(batch) * problem.valid_pixel_count / 2
            step_scale = fraction * options.step_size * to_misfit
            update = step_scale * problem.canvas.grad / denominator[..., None]
            self.velocity.mul_(options.momentum).add_(update)
            problem.canvas.sub_(self.velocity)

    def illumination(self, batch: torch.Tensor) -> torch.Tensor:
        """max(I_batch, B · I_all / n_positions): the batch's illumination Σ|P|², floored at what
        a batch of B positions lights on average.

        I_batch alone is ePIE's scaling and the fastest start, but a denominator that varies with
        the batch drawn weights each batch's gradient differently, and where noise leaves a
        residual the steps settle away from the least-squares object (lines / defocused, 3e5
        photons: phase SSIM 0.887 after 30 passes instead of 0.964). The average alone
        overshoots where a batch bunches up (it diverged). A refined probe carries the floor
        with its energy (a fixed one's ratio is exactly 1)."""
        problem = self.problem
        energy_ratio = problem.probe_energy() / problem.start_probe_energy
        floor = len(batch) * problem.illumination_per_position * energy_ratio
        return torch.maximum(problem.batch_illumination(batch), floor)


class ProbeSteps:
    """The probe's ePIE-like step (``refine_probe``), whatever steps the object.

    P_k -= v_k, v_k ← PROBE_MOMENTUM · v_k + β · g_k · (B N_valid / 2) / (B · max |O|²): the batch's mean
    exit-wave correction
    conj(O)(ψ_k − ψ'_k) over the largest object intensity on the lit canvas, ePIE's probe step
    averaged over the batch (the object's steps are the probe's illumination's mirror image). Then the
    probe power constraint (:meth:`RefinementProblem.keep_probe_power`): with the power free, probe
    and object trade scale and the probe's steps grew without bound (issue 27: loss 6e24)."""

    def __init__(self, problem: RefinementProblem):
        self.problem = problem
        self.lit = None  # the lit canvas pixels, once the problem knows its illumination
        self.velocity = torch.zeros_like(problem.probe)

    def step(self, batch: torch.Tensor, fraction: float) -> None:
        problem, options = self.problem, self.problem.options
        if self.lit is None:
            lit = problem.illumination >= LIT_FRACTION * problem.illumination.max()
            self.lit = torch.tensor(lit, device=problem.device)
        with torch.no_grad():
            canvas = torch.view_as_complex(problem.canvas) if not problem.canvas.is_complex() else problem.canvas
            largest = canvas.abs().square()[self.lit].max()
            to_misfit = len(batch) * problem.valid_pixel_count / 2
            # the Poisson loss's gradient is about twice the amplitude loss's near the fit
            loss_scale = 1.0 if options.loss is RefineLoss.amplitude else 0.5
            scale = fraction * options.probe_learning_rate * loss_scale * to_misfit / (len(batch) * largest)
            self.velocity.mul_(PROBE_MOMENTUM).add_(scale * problem.probe.grad)
            problem.probe.sub_(self.velocity)
        problem.keep_probe_power()
