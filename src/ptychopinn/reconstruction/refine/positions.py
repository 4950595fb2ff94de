"""Position correction (``refine_positions``): a Gauss-Newton step per scan position, once per pass
(docs/design/spec.md#stitching-and-refinement).

Each position's predicted amplitudes A(x, y) = sqrt(Σ_k |F(P_k · O_xy)|²) are linearised in its
position: ∂A/∂x = Σ_k Re(conj(F(P_k O)) · F(P_k ∂O/∂x)) / A, with ∂O/∂x the central difference
(O(x + 1) − O(x − 1)) / 2 of the object patch, extracted (bilinear) a pixel wider on every side.
With J = (∂A/∂x, ∂A/∂y) and the residual r = A − X over the valid detector pixels, the step solves
the damped 2 × 2 normal equations (JᵀJ + λ) Δ = −Jᵀ r, whatever the loss, is clipped to
``max_position_step`` pixels, and the mean step over all positions is removed: moving every
position alike is the same as moving the object, which the data cannot see.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ptychopinn.backends.torch.extract import extract_patches

if TYPE_CHECKING:
    from ptychopinn.reconstruction.refine.problem import RefinementProblem

# Levenberg damping λ as a fraction of the mean diagonal of JᵀJ: it keeps the step finite where the
# object is featureless in one direction (a stripe of the lines object pins only the position across it).
# Not critical: 0.02 and 0.5 left errors within 0.02 px of 0.1's on the N = 32 grf test scan
POSITION_DAMPING = 0.1
# Extra canvas pixels on every side when positions move, so a corrected position's footprint stays
# on the canvas: position errors of 1-3 px are what stage drift and jitter leave
POSITION_MARGIN = 4
# positions evaluated at once: the memory of a chunk is a few (chunk, K, N, N) complex arrays
CHUNK = 128


class PositionSteps:
    """The position corrections of one problem (it moves them: :meth:`RefinementProblem.move_positions`)."""

    def __init__(self, problem: RefinementProblem):
        self.problem = problem
        height, width = problem.shape
        # the wider patch's bilinear reads stay on the canvas: top-left from 1 to size − n − 2
        self.lower = 1.0
        self.upper = torch.tensor([height - problem.n - 2, width - problem.n - 2],
                                  dtype=torch.float64, device=problem.device)

    def step(self) -> torch.Tensor:
        """Move every position by its clipped Gauss-Newton step, less the mean step; returns the
        (M, 2) (row, col) steps taken, float64."""
        problem = self.problem
        before = problem.top_left
        positions = torch.arange(len(before), device=problem.device)
        with torch.no_grad():
            steps = torch.cat([self.gauss_newton_steps(chunk) for chunk in positions.split(CHUNK)])
            length = steps.norm(dim=1, keepdim=True)
            limit = problem.options.max_position_step
            steps = steps * torch.clamp(limit / length.clamp_min(1e-12), max=1.0)
            steps = steps - steps.mean(dim=0)
            moved = torch.minimum(torch.clamp(before + steps, min=self.lower), self.upper)
        problem.move_positions(moved)
        return moved - before

    def gauss_newton_steps(self, batch: torch.Tensor) -> torch.Tensor:
        """(B, 2) (row, col) steps Δ = −(JᵀJ + λ)⁻¹ Jᵀ r of the positions ``batch``, float64."""
        problem = self.problem
        canvas = problem.complex_canvas().detach()
        n = problem.n
        # one extraction a pixel wider on every side gives the patch and its central differences
        wide = extract_patches(canvas, problem.top_left[batch] - 1, n + 2)
        patches = wide[:, 1:-1, 1:-1]
        d_row = (wide[:, 2:, 1:-1] - wide[:, :-2, 1:-1]) / 2
        d_col = (wide[:, 1:-1, 2:] - wide[:, 1:-1, :-2]) / 2
        probe = problem.probe.detach()[None]  # (1, K, N, N)
        field = torch.fft.fft2(patches[:, None] * probe, norm="ortho")
        amplitude = field.abs().square().sum(dim=1).sqrt().clamp_min(1e-6)
        jacobians = []
        for derivative in (d_row, d_col):
            change = torch.fft.fft2(derivative[:, None] * probe, norm="ortho")
            jacobians.append((field.conj() * change).real.sum(dim=1) / amplitude)
        valid = torch.fft.ifftshift(problem.valid, dim=(-2, -1))  # the data's DC at N/2, the FFT's at 0
        measured = torch.fft.ifftshift(problem.measured[batch].to(amplitude.dtype), dim=(-2, -1))
        residual = (amplitude - measured) * valid
        j_row, j_col = (j * valid for j in jacobians)
        h_rr = _pixel_sum(j_row * j_row)
        h_rc = _pixel_sum(j_row * j_col)
        h_cc = _pixel_sum(j_col * j_col)
        g_r, g_c = _pixel_sum(residual * j_row), _pixel_sum(residual * j_col)
        damping = POSITION_DAMPING * 0.5 * (h_rr + h_cc) + 1e-20
        h_rr, h_cc = h_rr + damping, h_cc + damping
        determinant = h_rr * h_cc - h_rc * h_rc
        step_r = -(h_cc * g_r - h_rc * g_c) / determinant
        step_c = -(h_rr * g_c - h_rc * g_r) / determinant
        return torch.stack([step_r, step_c], dim=1)


def _pixel_sum(values: torch.Tensor) -> torch.Tensor:
    """Σ over the detector pixels, float64 (sums of ~N² products of similar size)."""
    return values.to(torch.float64).sum(dim=(-2, -1))
