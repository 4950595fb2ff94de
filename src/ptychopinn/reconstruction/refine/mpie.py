"""The PIE-style object step with momentum (optimizer ``mpie``).

step = gradient / (batch illumination Σ|P|², floored at its average, + r · its maximum), with
heavy-ball momentum: the amplitude loss's Gauss-Newton step, scaled as ePIE scales its update for
one position.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from ptychopinn.reconstruction.refine.problem import RefinementProblem

# The relaxation of the illumination in the mpie step's denominator, as a fraction of its maximum:
# 0.03 and 0.01 let weakly lit pixels move faster but were unstable with momentum (star / disk: 11
# to 25 passes to phase SSIM 0.9 instead of 3 to 4); 0.3 was slower on most scans (docs/lab-notes/2026-11-25-network-quality.md)
PIE_REGULARISATION = 0.1


class PieSteps:
    """The mpie steps of one problem's canvas; holds the momentum."""

    def __init__(self, problem: RefinementProblem):
        self.problem = problem
        self.velocity = torch.zeros_like(problem.canvas)

    def step(self, batch: torch.Tensor, fraction: float) -> None:
        """v ← momentum · v + step · g / (D + r · max D), then canvas -= v. ``g`` is the gradient
        of the batch's mean squared amplitude error back in units of the exit-wave misfit
        (× B N² / 2); D is the batch's illumination, floored (:meth:`illumination`)."""
        problem, options = self.problem, self.problem.options
        illumination = self.illumination(batch)
        with torch.no_grad():
            denominator = illumination + PIE_REGULARISATION * illumination.max()
            to_misfit = len(batch) * problem.n**2 / 2
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
