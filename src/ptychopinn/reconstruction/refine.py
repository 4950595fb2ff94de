"""Refinement: physics-based polishing of a stitched object (docs/design/spec.md#stitching-and-refinement).

The object canvas (in object pixel coordinates) becomes a learnable complex tensor; the forward
model (sub-pixel extraction at every scan position, probe, far-field amplitude) and a data loss
are minimised over minibatches of positions, with a cosine-decaying step so the result settles
instead of fitting noise. Two optimisers: Adam, and a PIE-style step (each batch's gradient divided
by the batch's illumination, as ePIE does for one position, with heavy-ball momentum, the idea of
mPIE), which needs fewer passes and ends higher at moderate and high dose but needs more passes at
low dose; the default picks between them by the scan's counts per pattern.
Started from a flat object it is an iterative reconstruction in its own right (the baseline);
started from the network's output it needs fewer passes where the network is good, and under
Adam a flat rival for the first passes guards against a start that is worse than none
(``RefineOptions.flat_check_passes``).
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path

import numpy as np

from ptychopinn.data.scan import Scan
from ptychopinn.physics.noise import AmplitudeNoise
from ptychopinn.physics.probe import normalize_probe
from ptychopinn.physics.scaling import input_scale, mean_total_counts
from ptychopinn.progress import progress
from ptychopinn.reconstruction.result import Reconstruction

log = logging.getLogger(__name__)


class RefineOptimizer(str, Enum):
    # per-pixel normalised steps of about lr, whatever the gradient: robust, and the faster at low
    # dose; but from a good start its small gradients are amplified into noise, which costs a
    # network start its lead (README, quality)
    adam = "adam"
    # step = gradient / (batch illumination Σ|P|², floored at its average, + 0.1 · its maximum),
    # with momentum: the amplitude loss's Gauss-Newton step, scaled as ePIE scales its update; it
    # moves every pixel in proportion to the misfit it explains, so a good start is not scrambled
    mpie = "mpie"
    # mpie from MPIE_MIN_COUNTS counts per pattern up with the amplitude loss, Adam otherwise
    auto = "auto"


# Mean counts per pattern from which ``auto`` refines with mpie. Over eight scans (N = 64, step 5,
# flat start) mpie needed more passes to phase SSIM 0.9 than Adam on 4 of 8 at 1e4 and 3e4 counts,
# and fewer on 4, 5, 6 of 8 at 1e5, 3e5, 1e6, ending as high or higher (benchmarks/refine_dose.py);
# at N = 128 (four scans, `--n 128`) the crossover lay at the same counts per pattern, not per pixel
MPIE_MIN_COUNTS = 5e4

# Passes of the flat rival that checks a given start under Adam (RefineOptions.flat_check_passes)
ADAM_FLAT_CHECK_PASSES = 2


# The relaxation of the illumination in the mpie step's denominator, as a fraction of its maximum:
# 0.03 and 0.01 let weakly lit pixels move faster but were unstable with momentum (star / disk: 11
# to 25 passes to phase SSIM 0.9 instead of 3 to 4); 0.3 was slower on most scans (README, quality)
PIE_REGULARISATION = 0.1


class RefineLoss(str, Enum):
    amplitude = "amplitude"  # least squares on |Ψ| against the measured amplitudes
    poisson = "poisson"  # Poisson NLL of the counts


@dataclass(frozen=True)
class RefineOptions:
    passes: int = 20
    optimizer: RefineOptimizer = RefineOptimizer.auto
    # None: the optimiser's own. mpie: 32 positions per step (16 stalled below phase SSIM 0.96 on
    # the defocused-probe lines scan, 64 slowed the network start on the star) and the full PIE
    # step 1.0; Adam: 16 and 0.03 (0.1 and 0.01 needed more passes on most scans); README, quality
    batch_size: int | None = None
    learning_rate: float | None = None
    momentum: float = 0.8  # mpie only; 0.5 needed more passes, 0.9 did not converge (README, quality)
    final_lr_fraction: float = 0.05
    loss: RefineLoss = RefineLoss.amplitude
    refine_probe: bool = False
    probe_learning_rate: float = 0.01
    probe_start_pass: int = 2
    seed: int = 0
    accelerator: str = "auto"
    margin: int = 2
    # A given start is refined alongside a flat one for this many passes and the start that
    # then fits the data better goes on (0: trust the given start; None: ADAM_FLAT_CHECK_PASSES
    # with Adam, 0 with mpie). A network start can be worse than none: with a real,
    # centro-symmetric probe a pattern and its twin give the same diffraction, and patches that
    # mix the two set Adam back (README, quality); mpie refines such a start about as fast as a
    # flat one, so there the flat rival's passes cost more than they save.
    flat_check_passes: int | None = None

    def __post_init__(self) -> None:
        counts = {"passes": self.passes, "flat_check_passes": self.flat_check_passes,
                  "probe_start_pass": self.probe_start_pass, "margin": self.margin}
        for name, value in counts.items():
            if value is not None and value < 0:
                raise ValueError(f"refinement {name} must be 0 or more, got {value}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"refinement batch size must be at least 1, got {self.batch_size}")
        object.__setattr__(self, "optimizer", RefineOptimizer(self.optimizer))
        object.__setattr__(self, "loss", RefineLoss(self.loss))
        if self.optimizer is RefineOptimizer.auto and self.learning_rate is not None:
            raise ValueError("a refinement step size is in its optimiser's units (mpie: 1 is the full "
                             "PIE step; adam: object amplitude units); choose --refine-optimizer adam or mpie")
        if not ((self.learning_rate is None or self.learning_rate > 0) and self.probe_learning_rate > 0):
            raise ValueError("refinement step sizes must be positive, got "
                             f"{self.learning_rate} (object) and {self.probe_learning_rate} (probe)")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"refinement momentum must be in [0, 1), got {self.momentum}")
        if self.optimizer is RefineOptimizer.mpie and self.loss is not RefineLoss.amplitude:
            raise ValueError("the mpie step is scaled for the amplitude loss; use --refine-optimizer adam "
                             "with the Poisson loss")
        if not 0 < self.final_lr_fraction <= 1:
            raise ValueError(f"final_lr_fraction must be in (0, 1], got {self.final_lr_fraction}")

    def for_scan(self, scan: Scan) -> RefineOptions:
        """These options with the defaults that depend on the scan resolved: ``auto`` becomes
        mpie from MPIE_MIN_COUNTS mean counts per pattern with the amplitude loss and Adam
        otherwise, and an unset ``flat_check_passes`` follows the optimiser."""
        optimizer = self.optimizer
        if optimizer is RefineOptimizer.auto:
            counts = mean_total_counts(scan.diffraction)
            mpie = counts >= MPIE_MIN_COUNTS and self.loss is RefineLoss.amplitude
            optimizer = RefineOptimizer.mpie if mpie else RefineOptimizer.adam
            log.info("refinement: %s steps (%.3g mean counts per pattern, %s loss)",
                     optimizer.value, counts, self.loss.value)
        check = self.flat_check_passes
        if check is None:
            check = ADAM_FLAT_CHECK_PASSES if optimizer is RefineOptimizer.adam else 0
        return replace(self, optimizer=optimizer, flat_check_passes=check)

    @property
    def step_size(self) -> float:
        """The object's initial step: ``learning_rate``, or the optimiser's default."""
        if self.learning_rate is not None:
            return self.learning_rate
        return 1.0 if self._resolved() is RefineOptimizer.mpie else 0.03

    @property
    def positions_per_step(self) -> int:
        """``batch_size``, or the optimiser's default."""
        if self.batch_size is not None:
            return self.batch_size
        return 32 if self._resolved() is RefineOptimizer.mpie else 16

    def _resolved(self) -> RefineOptimizer:
        if self.optimizer is RefineOptimizer.auto:
            raise ValueError("the auto optimiser depends on the scan: resolve it with for_scan(scan) first")
        return self.optimizer


@dataclass
class RefinementResult:
    reconstruction: Reconstruction
    loss_per_pass: list[float]
    probe: np.ndarray
    seconds: float
    pass_metrics: list[dict] = field(default_factory=list)
    start: str = "given"  # "given" or "flat": the start the result was refined from
    flat_check_loss: list[float] = field(default_factory=list)  # the flat rival's loss per checked pass
    optimizer: str = RefineOptimizer.adam.value  # the one that ran (``auto`` resolved)


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
    from ptychopinn.backends.torch.device import resolve_device

    options = RefineOptions(accelerator=accelerator)
    return _RefinementProblem(scan, reconstruction, options, resolve_device(accelerator)).data_fit()


def refine(
    scan: Scan,
    init: Reconstruction | str | None = None,
    options: RefineOptions | None = None,
    *,
    show_progress: bool = False,
    on_pass: Callable[[int, Reconstruction], dict | None] | None = None,
) -> RefinementResult:
    """Refine ``init`` (a reconstruction, or None / "flat" for a flat start) against ``scan``.

    ``on_pass(pass_index, reconstruction)`` is called after every pass (e.g. to track quality);
    whatever dict it returns is kept in ``pass_metrics``. With a given start and
    ``options.flat_check_passes`` K > 0, a flat start runs the first K passes on the same batches
    and step sizes; the one with the lower loss in pass K goes on (``RefinementResult.start``).
    """
    import time

    import torch

    from ptychopinn.backends.torch.device import resolve_device

    options = (options or RefineOptions()).for_scan(scan)
    device = resolve_device(options.accelerator)
    init = init if isinstance(init, Reconstruction) else None
    problem = _RefinementProblem(scan, init, options, device)
    rival = problem.flat_rival(scan) if init is not None and options.flat_check_passes > 0 else None
    start = time.perf_counter()
    losses, rival_losses, pass_metrics, start_name = [], [], [], "given" if init is not None else "flat"
    steps_per_pass = math.ceil(scan.n_patterns / options.positions_per_step)
    total_steps = max(options.passes * steps_per_pass, 1)
    rng = np.random.default_rng(options.seed)
    for pass_index in progress(range(options.passes), "refining", enabled=show_progress):
        batches = [torch.from_numpy(b).to(device)
                   for b in np.array_split(rng.permutation(scan.n_patterns), steps_per_pass)]
        rates = [_schedule(pass_index * steps_per_pass + k, total_steps, options, steps_per_pass)
                 for k in range(len(batches))]
        losses.append(problem.run_pass(batches, rates, pass_index))
        if rival is not None:
            rival_losses.append(rival.run_pass(batches, rates, pass_index))
            if len(rival_losses) == options.flat_check_passes or pass_index + 1 == options.passes:
                if _flat_fits_better(losses[-1], rival_losses[-1], len(rival_losses)):
                    problem, losses, start_name = rival, list(rival_losses), "flat"
                rival = None
        if on_pass is not None:
            extra = on_pass(pass_index, problem.reconstruction())
            if extra:
                pass_metrics.append({"pass": pass_index + 1, **extra})
    seconds = time.perf_counter() - start
    log.info("refinement: %d passes in %.1f s, final loss %.4g", options.passes, seconds,
             losses[-1] if losses else float("nan"))
    return RefinementResult(problem.reconstruction(), losses, problem.probe_numpy(), seconds, pass_metrics,
                            start_name, rival_losses, options.optimizer.value)


def _flat_fits_better(given_loss: float, flat_loss: float, passes: int) -> bool:
    better = flat_loss < given_loss
    log.info("refinement: after %d passes the %s start fits the data better (loss %.4g given, %.4g flat); "
             "refining on from it", passes, "flat" if better else "given", given_loss, flat_loss)
    return better


def _background(covered_values: np.ndarray) -> complex:
    """Value for the canvas the start does not cover: its mean amplitude at its mean phase. A
    fill at phase 0 around a start whose phase sits elsewhere (the object's phase is defined only
    up to a constant, and a network may settle anywhere) puts a phase step at the coverage edge
    that the first passes must undo."""
    if covered_values.size == 0:
        return 1.0
    mean_phase = np.angle(np.mean(covered_values.astype(np.complex128)))  # 0 for a zero mean
    return complex(np.mean(np.abs(covered_values)) * np.exp(1j * mean_phase))


def _schedule(step: int, total: int, options: RefineOptions, warmup: int) -> float:
    """The fraction of the full step at ``step``: a linear warm-up (Adam's first steps move every
    pixel by ~lr whatever the gradient, which would scramble a good starting object), then cosine
    decay to ``final_lr_fraction``."""
    floor = options.final_lr_fraction
    decay = floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * step / total))
    return decay * min(1.0, (step + 1) / max(warmup, 1))


class _RefinementProblem:
    """Canvas, probe, data and optimiser of one refinement run."""

    def __init__(self, scan: Scan, init: Reconstruction | None, options: RefineOptions, device):
        import torch

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
        footprint = sum(self._batch_illumination(chunk) for chunk in all_positions.split(256))
        self.illumination = footprint.cpu().numpy()
        # Σ|P|² that a batch of B random positions lights on average is B × this, at the
        # starting probe's energy
        self.illumination_per_position = footprint / scan.n_patterns
        self.start_probe_energy = self._probe_energy()

    def _start(self, scan: Scan, init: Reconstruction | None) -> None:
        """The learnable canvas (and probe) from ``init`` or flat, with a fresh optimiser."""
        import torch

        start = self._initial_object(init, self.shape, mean_total_counts(scan.diffraction), self.scaled_probe)
        start = start * self._energy_match(start, scan, self.scaled_probe)
        self.canvas = torch.nn.Parameter(
            torch.view_as_real(torch.tensor(start, dtype=torch.complex64)).to(self.device))
        self.probe = torch.tensor(self.scaled_probe, dtype=torch.complex64, device=self.device)
        self.velocity = torch.zeros_like(self.canvas)
        groups = []  # Adam's: the canvas's unless mpie steps it, and the probe's
        if self.options.optimizer is RefineOptimizer.adam:
            groups.append({"params": [self.canvas], "lr": self.options.step_size, "role": "object"})
        if self.options.refine_probe:
            self.probe = torch.nn.Parameter(torch.view_as_real(self.probe).clone())
            groups.append({"params": [self.probe], "lr": 0.0, "role": "probe"})
        self.optimizer = torch.optim.Adam(groups) if groups else None

    def flat_rival(self, scan: Scan) -> _RefinementProblem:
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
        from ptychopinn.physics.forward import extract_patches as extract_reference

        picks = np.linspace(0, scan.n_patterns - 1, min(sample, scan.n_patterns)).astype(int)
        centres = scan.positions_xy[picks] - np.array(self.origin_xy)
        patches = extract_reference(start, centres, self.n) * probe
        predicted = np.mean(np.sum(np.abs(patches) ** 2, axis=(1, 2)))
        measured = mean_total_counts(scan.diffraction[picks])
        return float(np.sqrt(measured / predicted)) if predicted > 0 else 1.0

    def _complex(self, tensor):
        import torch

        return torch.view_as_complex(tensor) if not tensor.is_complex() else tensor

    def set_step_fraction(self, fraction: float, pass_index: int) -> None:
        """Scale Adam's steps to ``fraction`` of their full size (the schedule); the probe's steps
        start at ``probe_start_pass``."""
        probe_active = pass_index >= self.options.probe_start_pass
        for group in self.optimizer.param_groups if self.optimizer is not None else ():
            if group["role"] == "object":
                group["lr"] = fraction * self.options.step_size
            else:
                group["lr"] = fraction * self.options.probe_learning_rate if probe_active else 0.0

    def run_pass(self, batches: list, fractions: list[float], pass_index: int) -> float:
        """One pass over the positions, batch by batch at the given step fractions: the mean loss."""
        total = 0.0
        for batch, fraction in zip(batches, fractions, strict=True):
            self.set_step_fraction(fraction, pass_index)
            total += self.step(batch, fraction) * len(batch)
        return total / sum(len(batch) for batch in batches)

    def predicted(self, batch):
        """|F(P · O)| at the positions ``batch`` for the current object and probe."""
        from ptychopinn.backends.torch.extract import extract_patches
        from ptychopinn.backends.torch.ops import far_field_amplitude

        patches = extract_patches(self._complex(self.canvas), self.top_left[batch], self.n)
        return far_field_amplitude(patches * self._complex(self.probe))

    def data_fit(self, batch_size: int = 256) -> DataFit:
        import torch

        batches = torch.arange(len(self.measured), device=self.device).split(batch_size)
        cross, model_energy, measured_energy = 0.0, 0.0, 0.0
        with torch.no_grad():
            for batch in batches:
                predicted, measured = self.predicted(batch).double(), self.measured[batch].double()
                cross += float(torch.sum(predicted * measured))
                model_energy += float(torch.sum(predicted**2))
                measured_energy += float(torch.sum(measured**2))
            scale = cross / model_energy if model_energy > 0 else 0.0
            # a second pass, as the floor needs the rates at the best scale: holding every
            # predicted pattern until the scale is known would cost a copy of the data
            noise, floor = AmplitudeNoise(), 0.0
            for batch in batches:
                expected_counts = (scale * self.predicted(batch).double()) ** 2
                floor += float(np.sum(noise.expected_square_residual(expected_counts.cpu().numpy())))
        residual = max(measured_energy - scale * cross, 0.0)  # Σ(sA − X)² at s = ΣAX / ΣA²
        # measured_energy > 0: the problem's probe scaling rejects patterns without counts
        return DataFit(math.sqrt(residual / measured_energy), math.sqrt(floor / measured_energy))

    def step(self, batch, fraction: float) -> float:
        import torch

        self.canvas.grad = None
        if self.optimizer is not None:
            self.optimizer.zero_grad(set_to_none=True)
        predicted = self.predicted(batch)
        measured = self.measured[batch]
        if self.options.loss is RefineLoss.amplitude:
            loss = torch.mean((predicted - measured) ** 2)
        else:
            rate = predicted**2
            loss = torch.mean(rate - measured**2 * torch.log(rate + 1e-12))
        loss.backward()
        if self.options.optimizer is RefineOptimizer.mpie:
            self._pie_step(batch, fraction)
        if self.optimizer is not None:
            self.optimizer.step()
        return float(loss.detach())

    def _pie_step(self, batch, fraction: float) -> None:
        """v ← momentum · v + step · g / (D + r · max D), then canvas -= v. ``g`` is the gradient
        of the batch's mean squared amplitude error back in units of the exit-wave misfit
        (× B N² / 2); D is the batch's illumination, floored (``_pie_illumination``)."""
        import torch

        illumination = self._pie_illumination(batch)
        with torch.no_grad():
            denominator = illumination + PIE_REGULARISATION * illumination.max()
            to_misfit = len(batch) * self.n**2 / 2
            step_scale = fraction * self.options.step_size * to_misfit
            update = step_scale * self.canvas.grad / denominator[..., None]
            self.velocity.mul_(self.options.momentum).add_(update)
            self.canvas.sub_(self.velocity)

    def _pie_illumination(self, batch):
        """max(I_batch, B · I_all / n_positions): the batch's illumination Σ|P|², floored at what
        a batch of B positions lights on average.

        I_batch alone is ePIE's scaling and the fastest start, but a denominator that varies with
        the batch drawn weights each batch's gradient differently, and where noise leaves a
        residual the steps settle away from the least-squares object (lines / defocused, 3e5
        photons: phase SSIM 0.887 after 30 passes instead of 0.964). The average alone
        overshoots where a batch bunches up (it diverged). A refined probe carries the floor
        with its energy (a fixed one's ratio is exactly 1)."""
        import torch

        floor = len(batch) * self.illumination_per_position * (self._probe_energy() / self.start_probe_energy)
        return torch.maximum(self._batch_illumination(batch), floor)

    def _probe_energy(self):
        """Σ|P|² of the current probe, a 0-d tensor on the device (no host sync per step)."""
        return self._complex(self.probe).detach().abs().square().sum()

    def _batch_illumination(self, batch):
        """Σ|P|² of the batch's footprints on the canvas: the adjoint of the patch extraction
        applied to |P|², exact for sub-pixel positions."""
        import torch

        from ptychopinn.backends.torch.extract import extract_patches

        # complex, as the canvas: the real-valued scatter of the extraction's adjoint sums in a
        # thread-dependent order on CPU, which made refinement differ between identical runs
        intensity = self._complex(self.probe).detach().abs() ** 2
        weights = intensity.to(torch.complex64).expand(len(batch), self.n, self.n)
        footprint = torch.zeros(self.shape, dtype=torch.complex64, device=self.device, requires_grad=True)
        with torch.enable_grad():
            patches = extract_patches(footprint, self.top_left[batch], self.n)
            (illumination,) = torch.autograd.grad(patches, footprint, grad_outputs=weights)
        return illumination.real

    def probe_numpy(self) -> np.ndarray:
        return self._complex(self.probe).detach().cpu().numpy().astype(np.complex64)

    def reconstruction(self) -> Reconstruction:
        obj = self._complex(self.canvas).detach().cpu().numpy().astype(np.complex64)
        covered = self.illumination >= 0.05 * self.illumination.max()
        return Reconstruction(np.where(covered, obj, 0).astype(np.complex64),
                              np.where(covered, self.illumination, 0).astype(np.float32),
                              (float(self.origin_xy[0]), float(self.origin_xy[1])))


def plot_refinement(result: RefinementResult, path: str | Path) -> Path:
    from ptychopinn.plots import plot_loss_curve

    return plot_loss_curve(result.loss_per_pass, path, title="refinement loss per pass")
