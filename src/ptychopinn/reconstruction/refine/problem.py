"""One refinement problem: the object canvas and the probe, the measured amplitudes, the forward
model |F(P · O)| at every scan position and the data loss (docs/design/spec.md#stitching-and-refinement)."""

from __future__ import annotations

import copy
import math

import numpy as np
import torch

from ptychopinn.backends.torch.extract import extract_patches
from ptychopinn.backends.torch.ops import far_field_amplitude
from ptychopinn.config import RefineLoss, RefineOptimizer, RefineOptions
from ptychopinn.data.scan import Scan
from ptychopinn.physics.forward import extract_patches as extract_reference
from ptychopinn.physics.probe import normalize_probe
from ptychopinn.physics.scaling import input_scale, mean_total_counts
from ptychopinn.reconstruction.refine.adam import AdamSteps
from ptychopinn.reconstruction.refine.mpie import PieSteps
from ptychopinn.reconstruction.result import Reconstruction


class RefinementProblem:
    """Canvas, probe, data and optimiser steps of one refinement run."""

    def __init__(self, scan: Scan, init: Reconstruction | None, options: RefineOptions, device):
        self.options = options
        self.device = device
        n = scan.patch_size
        self.n = n
        positions = scan.positions_xy
        self.origin_xy = (math.floor(positions[:, 0].min() - n / 2) - options.margin,
                          math.floor(positions[:, 1].min() - n / 2) - options.margin)
        width = math.ceil(positions[:, 0].max() + n / 2) + options.margin + 1 - self.origin_xy[0]
        height = math.ceil(positions[:, 1].max() + n / 2) + options.margin + 1 - self.origin_xy[1]
        self.shape = (height, width)
        # The probe scaled to the counts: |F(P_c · O)| ≈ X for the object the network predicts.
        self.scaled_probe = normalize_probe(scan.probe) / input_scale(scan.diffraction)
        self.measured = torch.tensor(scan.diffraction, dtype=torch.float32, device=device)
        top_left = np.stack([positions[:, 1] - n / 2 - self.origin_xy[1],
                             positions[:, 0] - n / 2 - self.origin_xy[0]], axis=1)
        self.top_left = torch.tensor(top_left, dtype=torch.float64, device=device)
        self._start(scan, init)
        all_positions = torch.arange(scan.n_patterns, device=device)
        footprint = sum(self.batch_illumination(chunk) for chunk in all_positions.split(256))
        self.illumination = footprint.cpu().numpy()
        # Σ|P|² that a batch of B random positions lights on average is B × this, at the
        # starting probe's energy
        self.illumination_per_position = footprint / scan.n_patterns
        self.start_probe_energy = self.probe_energy()

    def _start(self, scan: Scan, init: Reconstruction | None) -> None:
        """The learnable canvas (and probe) from ``init`` or flat, with fresh optimiser steps."""
        start = self._initial_object(init, self.shape, mean_total_counts(scan.diffraction), self.scaled_probe)
        start = start * self._energy_match(start, scan, self.scaled_probe)
        self.canvas = torch.nn.Parameter(
            torch.view_as_real(torch.tensor(start, dtype=torch.complex64)).to(self.device))
        self.probe = torch.tensor(self.scaled_probe, dtype=torch.complex64, device=self.device)
        mpie = self.options.optimizer is RefineOptimizer.mpie
        self.pie_steps = PieSteps(self) if mpie else None
        if self.options.refine_probe:
            self.probe = torch.nn.Parameter(torch.view_as_real(self.probe).clone())
        self.adam_steps = AdamSteps(self.canvas, self.probe, self.options)

    def flat_rival(self, scan: Scan) -> RefinementProblem:
        """The same problem from a flat start: it shares the measured patterns, the positions and
        the illumination footprint on the device (not a second copy of the data)."""
        rival = copy.copy(self)
        rival._start(scan, None)
        return rival

    def _initial_object(self, init, shape, mean_counts, probe) -> np.ndarray:
        if init is None:
            # a flat object whose patterns carry the measured mean energy
            value = math.sqrt(mean_counts / float(np.sum(np.abs(probe.astype(np.complex128)) ** 2)))
            return np.full(shape, value, dtype=np.complex64)
        canvas = np.zeros(shape, dtype=np.complex64)
        covered = init.mask
        canvas[:] = _background(init.object[covered])
        dx = int(round(init.origin_xy[0] - self.origin_xy[0]))
        dy = int(round(init.origin_xy[1] - self.origin_xy[1]))
        rows, cols = np.nonzero(covered)
        target_r, target_c = rows + dy, cols + dx
        keep = (target_r >= 0) & (target_r < shape[0]) & (target_c >= 0) & (target_c < shape[1])
        canvas[target_r[keep], target_c[keep]] = init.object[rows[keep], cols[keep]]
        return canvas

    def _energy_match(self, start: np.ndarray, scan: Scan, probe: np.ndarray, sample: int = 64) -> float:
        """Factor that gives the starting object's patterns the measured mean energy: object and
        probe scale are not separately identifiable, so any initial object is brought to the
        scale of this probe."""
        picks = np.linspace(0, scan.n_patterns - 1, min(sample, scan.n_patterns)).astype(int)
        centres = scan.positions_xy[picks] - np.array(self.origin_xy)
        patches = extract_reference(start, centres, self.n) * probe
        predicted = np.mean(np.sum(np.abs(patches) ** 2, axis=(1, 2)))
        measured = mean_total_counts(scan.diffraction[picks])
        return float(np.sqrt(measured / predicted)) if predicted > 0 else 1.0

    def run_pass(self, batches: list, fractions: list[float], pass_index: int) -> float:
        """One pass over the positions, batch by batch at the given step fractions: the mean loss."""
        total = 0.0
        for batch, fraction in zip(batches, fractions, strict=True):
            self.adam_steps.set_step_fraction(fraction, pass_index)
            total += self.step(batch, fraction) * len(batch)
        return total / sum(len(batch) for batch in batches)

    def predicted(self, batch: torch.Tensor) -> torch.Tensor:
        """|F(P · O)| at the positions ``batch`` for the current object and probe."""
        patches = extract_patches(_complex(self.canvas), self.top_left[batch], self.n)
        return far_field_amplitude(patches * _complex(self.probe))

    def step(self, batch: torch.Tensor, fraction: float) -> float:
        self.canvas.grad = None
        self.adam_steps.zero_grad()
        predicted = self.predicted(batch)
        measured = self.measured[batch]
        if self.options.loss is RefineLoss.amplitude:
            loss = torch.mean((predicted - measured) ** 2)
        else:
            rate = predicted**2
            loss = torch.mean(rate - measured**2 * torch.log(rate + 1e-12))
        loss.backward()
        if self.pie_steps is not None:
            self.pie_steps.step(batch, fraction)
        self.adam_steps.step()
        return float(loss.detach())

    def probe_energy(self) -> torch.Tensor:
        """Σ|P|² of the current probe, a 0-d tensor on the device (no host sync per step)."""
        return _complex(self.probe).detach().abs().square().sum()

    def batch_illumination(self, batch: torch.Tensor) -> torch.Tensor:
        """Σ|P|² of the batch's footprints on the canvas: the adjoint of the patch extraction
        applied to |P|², exact for sub-pixel positions."""
        # complex, as the canvas: the real-valued scatter of the extraction's adjoint sums in a
        # thread-dependent order on CPU, which made refinement differ between identical runs
        intensity = _complex(self.probe).detach().abs() ** 2
        weights = intensity.to(torch.complex64).expand(len(batch), self.n, self.n)
        footprint = torch.zeros(self.shape, dtype=torch.complex64, device=self.device, requires_grad=True)
        with torch.enable_grad():
            patches = extract_patches(footprint, self.top_left[batch], self.n)
            (illumination,) = torch.autograd.grad(patches, footprint, grad_outputs=weights)
        return illumination.real

    def probe_numpy(self) -> np.ndarray:
        return _complex(self.probe).detach().cpu().numpy().astype(np.complex64)

    def reconstruction(self) -> Reconstruction:
        obj = _complex(self.canvas).detach().cpu().numpy().astype(np.complex64)
        covered = self.illumination >= 0.05 * self.illumination.max()
        return Reconstruction(np.where(covered, obj, 0).astype(np.complex64),
                              np.where(covered, self.illumination, 0).astype(np.float32),
                              (float(self.origin_xy[0]), float(self.origin_xy[1])))


def _complex(tensor: torch.Tensor) -> torch.Tensor:
    return torch.view_as_complex(tensor) if not tensor.is_complex() else tensor


def _background(covered_values: np.ndarray) -> complex:
    """Value for the canvas the start does not cover: its mean amplitude at its mean phase. A
    fill at phase 0 around a start whose phase sits elsewhere (the object's phase is defined only
    up to a constant, and a network may settle anywhere) puts a phase step at the coverage edge
    that the first passes must undo."""
    if covered_values.size == 0:
        return 1.0
    mean_phase = np.angle(np.mean(covered_values.astype(np.complex128)))  # 0 for a zero mean
    return complex(np.mean(np.abs(covered_values)) * np.exp(1j * mean_phase))
