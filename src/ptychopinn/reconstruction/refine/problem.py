"""One refinement problem: the object canvas and the probe modes, the measured amplitudes, the forward
model sqrt(Σ_k |F(P_k · O)|²) at every scan position and the data loss over the detector's valid
pixels (docs/design/spec.md#stitching-and-refinement)."""

from __future__ import annotations

import copy
import math

import numpy as np
import torch

from ptychopinn.backends.torch.extract import extract_patches
from ptychopinn.backends.torch.ops import far_field_amplitude
from ptychopinn.config import RefineLoss, RefineOptimizer, RefineOptions
from ptychopinn.data.lazy import patterns_on_device
from ptychopinn.data.scan import Scan
from ptychopinn.physics.forward import extract_patches as extract_reference
from ptychopinn.physics.probe import normalize_probe
from ptychopinn.physics.scaling import mean_total_counts
from ptychopinn.reconstruction.refine.adam import AdamSteps
from ptychopinn.reconstruction.refine.modes import orthogonalized, starting_modes, with_total_power
from ptychopinn.reconstruction.refine.mpie import LIT_FRACTION, PieSteps, ProbeSteps
from ptychopinn.reconstruction.refine.positions import POSITION_MARGIN, PositionSteps
from ptychopinn.reconstruction.result import Reconstruction


class RefinementProblem:
    """Canvas, probe modes, data and optimiser steps of one refinement run.

    ``probes`` (K, N, N), when given, replaces the scan's probe modes (e.g. a refined probe); the
    problem refines ``options.probe_modes`` modes (auto as :meth:`RefineOptions.mode_count` says).
    Bad detector pixels (``scan.bad_pixels``) are left out of the loss, the steps and the misfit.
    With ``options.refine_positions`` the positions move too (:mod:`.positions`): the canvas then
    has POSITION_MARGIN more pixels on every side, and :meth:`positions_xy` gives them."""

    def __init__(self, scan: Scan, init: Reconstruction | None, options: RefineOptions, device,
                 probes: np.ndarray | None = None):
        own_modes = scan.n_probe_modes if probes is None else (1 if np.ndim(probes) == 2 else len(probes))
        options = options.with_probe_resolved(scan, own_modes)
        self.options = options
        self.device = device
        n = scan.patch_size
        self.n = n
        positions = scan.positions_xy
        margin = options.margin + (POSITION_MARGIN if options.refine_positions else 0)
        self.origin_xy = (math.floor(positions[:, 0].min() - n / 2) - margin,
                          math.floor(positions[:, 1].min() - n / 2) - margin)
        width = math.ceil(positions[:, 0].max() + n / 2) + margin + 1 - self.origin_xy[0]
        height = math.ceil(positions[:, 1].max() + n / 2) + margin + 1 - self.origin_xy[1]
        self.shape = (height, width)
        valid = np.ones((n, n), dtype=bool) if scan.valid_pixels is None else scan.valid_pixels
        # bad pixels hold garbage: every use of the data multiplies by this mask
        self.valid = torch.tensor(valid, dtype=torch.float32, device=device)
        self.valid_pixel_count = int(valid.sum())
        # mean counts per pattern, the bad pixels' share estimated from the valid ones
        self.measured_counts = mean_total_counts(scan.diffraction, valid) * valid.size / self.valid_pixel_count
        if not self.measured_counts > 0:
            raise ValueError(f"{scan.source or 'the scan'}: the patterns hold no counts on the valid "
                             "detector pixels; cannot scale the probe to them")
        modes = scan.probes if probes is None else np.asarray(probes, dtype=np.complex64)
        modes = modes[np.newaxis] if modes.ndim == 2 else modes
        # The probe scaled to the counts: |F(P_c · O)| ≈ X for the object the network predicts
        # (normalize_probe / input_scale, with the counts of the valid pixels).
        self.probe_scale = float(np.sum(np.abs(normalize_probe(modes[0]))) / np.sum(np.abs(modes[0])))
        self.probe_scale *= math.sqrt(self.measured_counts) / (n / 2)
        self.scaled_probes = starting_modes(modes * self.probe_scale, options.probe_modes)
        self.scaled_probe = self.scaled_probes[0]
        # a lazily read scan streams its patterns batch by batch instead (ptychopinn.data.lazy)
        self.measured = patterns_on_device(scan.diffraction, device)
        top_left = np.stack([positions[:, 1] - n / 2 - self.origin_xy[1],
                             positions[:, 0] - n / 2 - self.origin_xy[0]], axis=1)
        self.top_left = torch.tensor(top_left, dtype=torch.float64, device=device)
        self._start(scan, init)
        self._measure_illumination()
        self.start_probe_energy = self.probe_energy()

    def _measure_illumination(self) -> None:
        """The footprint Σ|P|² of every position on the canvas, at the current positions."""
        all_positions = torch.arange(len(self.top_left), device=self.device)
        footprint = sum(self.batch_illumination(chunk) for chunk in all_positions.split(256))
        self.illumination = footprint.cpu().numpy()
        # Σ|P|² that a batch of B random positions lights on average is B × this, at the
        # starting probe's energy
        self.illumination_per_position = footprint / len(self.top_left)

    def _start(self, scan: Scan, init: Reconstruction | None) -> None:
        """The learnable canvas (and probe) from ``init`` or flat, with fresh optimiser steps."""
        start = self._initial_object(init, self.shape, self.measured_counts, self.scaled_probes)
        start = start * self._energy_match(start, scan, self.scaled_probes)
        self.canvas = torch.nn.Parameter(
            torch.view_as_real(torch.tensor(start, dtype=torch.complex64)).to(self.device))
        self.probe = torch.tensor(self.scaled_probes, dtype=torch.complex64, device=self.device)
        mpie = self.options.optimizer is RefineOptimizer.mpie
        self.pie_steps = PieSteps(self) if mpie else None
        self.probe_steps = ProbeSteps(self) if self.options.probe_refined else None
        if self.probe_steps is not None:
            self.probe.requires_grad_(True)
        self.adam_steps = AdamSteps(self.canvas, self.options)
        self.position_steps = PositionSteps(self) if self.options.refine_positions else None

    def flat_rival(self, scan: Scan) -> RefinementProblem:
        """The same problem from a flat start: it shares the measured patterns, the positions and
        the illumination footprint on the device (not a second copy of the data)."""
        rival = copy.copy(self)
        rival._start(scan, None)
        return rival

    def positions_xy(self) -> np.ndarray:
        """(M, 2) float64 the current positions [x, y] in the scan's pixel convention."""
        top_left = self.top_left.cpu().numpy()
        return np.stack([top_left[:, 1] + self.n / 2 + self.origin_xy[0],
                         top_left[:, 0] + self.n / 2 + self.origin_xy[1]], axis=1)

    def move_positions(self, top_left: torch.Tensor) -> None:
        """Put the patches' top-left corners at ``top_left`` (M, 2) (row, col): a new tensor, so that
        a flat rival sharing the old one keeps its own, and the illumination follows (the mpie
        step's floor, the probe step's and the saved object's lit pixels depend on it)."""
        self.top_left = top_left.to(torch.float64)
        self._measure_illumination()
        if self.probe_steps is not None:
            self.probe_steps.lit = None

    def complex_canvas(self) -> torch.Tensor:
        return _complex(self.canvas)

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

    def _energy_match(self, start: np.ndarray, scan: Scan, probes: np.ndarray, sample: int = 64) -> float:
        """Factor that gives the starting object's patterns the measured mean energy: object and
        probe scale are not separately identifiable, so any initial object is brought to the
        scale of this probe (all its modes)."""
        picks = np.linspace(0, scan.n_patterns - 1, min(sample, scan.n_patterns)).astype(int)
        centres = scan.positions_xy[picks] - np.array(self.origin_xy)
        patches = extract_reference(start, centres, self.n)
        # Parseval: Σ_k Σ |F(P_k · O)|² = Σ |O|² Σ_k |P_k|²
        intensity = np.sum(np.abs(probes.astype(np.complex128)) ** 2, axis=0)
        predicted = np.mean(np.sum(np.abs(patches) ** 2 * intensity, axis=(1, 2)))
        valid = self.valid.cpu().numpy()
        measured = mean_total_counts(np.asarray(scan.diffraction[picks]) * valid) * valid.size / valid.sum()
        return float(np.sqrt(measured / predicted)) if predicted > 0 else 1.0

    def run_pass(self, batches: list, fractions: list[float], pass_index: int) -> float:
        """One pass over the positions, batch by batch at the given step fractions: the mean loss."""
        total = 0.0
        probe_moves = self.probe_steps is not None and pass_index >= self.options.probe_start_pass
        for batch, fraction in zip(batches, fractions, strict=True):
            self.adam_steps.set_step_fraction(fraction)
            total += self.step(batch, fraction, probe_moves) * len(batch)
        if probe_moves and len(self.probe) > 1:
            # unitary mixing of the modes leaves the patterns unchanged: orthogonal modes ordered by
            # power are the unique representative, and keep a weak mode from copying a strong one
            with torch.no_grad():
                self.probe.copy_(orthogonalized(self.probe))
        if self.position_steps is not None and pass_index >= self.options.position_start_pass:
            # after the pass's object steps: the positions follow the object as it now stands
            self.position_steps.step()
        return total / sum(len(batch) for batch in batches)

    def predicted(self, batch: torch.Tensor) -> torch.Tensor:
        """sqrt(Σ_k |F(P_k · O)|²) at the positions ``batch`` for the current object and probe modes."""
        patches = extract_patches(_complex(self.canvas), self.top_left[batch], self.n)
        if len(self.probe) == 1:
            return far_field_amplitude(patches * self.probe[0])
        intensity = far_field_amplitude(patches[:, None] * self.probe[None]).square().sum(dim=1)
        # the floor keeps the square root's gradient finite where every mode is dark
        return torch.sqrt(intensity.clamp_min(1e-12))

    def loss(self, predicted: torch.Tensor, measured: torch.Tensor) -> torch.Tensor:
        """The data loss per valid detector pixel: bad pixels neither count nor pull."""
        if self.options.loss is RefineLoss.amplitude:
            per_pixel = (predicted - measured) ** 2
        else:
            rate = predicted**2
            per_pixel = rate - measured**2 * torch.log(rate + 1e-12)
        return torch.sum(per_pixel * self.valid) / (len(predicted) * self.valid_pixel_count)

    def step(self, batch: torch.Tensor, fraction: float, probe_moves: bool = False) -> float:
        self.canvas.grad = None
        self.probe.grad = None
        self.adam_steps.zero_grad()
        loss = self.loss(self.predicted(batch), self.measured[batch])
        loss.backward()
        if probe_moves:
            # from the gradient at the current object, before the object step moves it
            self.probe_steps.step(batch, fraction)
        if self.pie_steps is not None:
            self.pie_steps.step(batch, fraction)
        self.adam_steps.step()
        return float(loss.detach())

    def probe_energy(self) -> torch.Tensor:
        """Σ_k Σ|P_k|² of the current probe modes, a 0-d tensor on the device (no host sync per step)."""
        return self.probe.detach().abs().square().sum()

    def batch_illumination(self, batch: torch.Tensor) -> torch.Tensor:
        """Σ|P|² of the batch's footprints on the canvas: the adjoint of the patch extraction
        applied to |P|², exact for sub-pixel positions."""
        # complex, as the canvas: the real-valued scatter of the extraction's adjoint sums in a
        # thread-dependent order on CPU, which made refinement differ between identical runs
        intensity = self.probe.detach().abs().square().sum(dim=0)
        weights = intensity.to(torch.complex64).expand(len(batch), self.n, self.n)
        footprint = torch.zeros(self.shape, dtype=torch.complex64, device=self.device, requires_grad=True)
        with torch.enable_grad():
            patches = extract_patches(footprint, self.top_left[batch], self.n)
            (illumination,) = torch.autograd.grad(patches, footprint, grad_outputs=weights)
        return illumination.real

    def probe_numpy(self) -> np.ndarray:
        """The strongest mode as the problem holds it (scaled to the counts)."""
        return self.probe[0].detach().cpu().numpy().astype(np.complex64)

    def probes_numpy(self) -> np.ndarray:
        """(K, N, N) complex64 probe modes in the units of the scan's probe (the scaling to the
        counts undone), strongest first."""
        return (self.probe.detach().cpu().numpy() / self.probe_scale).astype(np.complex64)

    def keep_probe_power(self) -> None:
        """The probe power constraint (:func:`modes.with_total_power`) at the starting power."""
        with torch.no_grad():
            self.probe.copy_(with_total_power(self.probe, self.start_probe_energy))

    def reconstruction(self) -> Reconstruction:
        obj = _complex(self.canvas).detach().cpu().numpy().astype(np.complex64)
        covered = self.illumination >= LIT_FRACTION * self.illumination.max()
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
