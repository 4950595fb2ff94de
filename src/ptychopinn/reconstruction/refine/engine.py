"""The refinement's pass loop: batches of scan positions, the step schedule, and the start check
that refines a flat rival alongside a given start (docs/design/spec.md#stitching-and-refinement)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ptychopinn.backends.torch.device import resolve_device
from ptychopinn.config import RefineOptimizer, RefineOptions
from ptychopinn.data.scan import Scan
from ptychopinn.evaluation.data_fit import data_fit
from ptychopinn.plots import plot_loss_curve
from ptychopinn.progress import progress
from ptychopinn.reconstruction.refine.problem import RefinementProblem
from ptychopinn.reconstruction.result import Reconstruction

log = logging.getLogger(__name__)


@dataclass
class RefinementResult:
    reconstruction: Reconstruction
    loss_per_pass: list[float]
    probe: np.ndarray  # (N, N) the refined probe's strongest mode, in the scan's probe units
    seconds: float
    pass_metrics: list[dict] = field(default_factory=list)
    start: str = "given"  # "given" or "flat": the start the result was refined from
    flat_check_loss: list[float] = field(default_factory=list)  # the flat rival's loss per checked pass
    optimizer: str = RefineOptimizer.adam.value  # the one that ran (``auto`` resolved)
    # passes auto: the data misfit after every pass, in units of the Poisson floor, and why it stopped
    excess_per_pass: list[float] = field(default_factory=list)
    stop_reason: str = ""
    # (K, N, N) every refined incoherent probe mode, strongest first (probe_modes[0] is ``probe``)
    probe_modes: np.ndarray | None = None
    # (M, 2) float64 the final positions [x, y] in the scan's pixel convention: the corrected ones with
    # ``refine_positions``, else the scan's own
    positions_xy: np.ndarray | None = None


def refine(
    scan: Scan,
    init: Reconstruction | str | None = None,
    options: RefineOptions | None = None,
    *,
    accelerator: str = "auto",
    show_progress: bool = False,
    on_pass: Callable[[int, Reconstruction], dict | None] | None = None,
) -> RefinementResult:
    """Refine ``init`` (a reconstruction, or None / "flat" for a flat start) against ``scan`` on
    ``accelerator`` (auto | cpu | gpu | cuda | mps).

    ``options`` is the ``refinement`` section of the settings (default: its defaults).
    ``on_pass(pass_index, reconstruction)`` is called after every pass (e.g. to track quality);
    whatever dict it returns is kept in ``pass_metrics``. With a given start and
    ``options.flat_check_passes`` K > 0, a flat start runs the first K passes on the same batches
    and step sizes; the one with the lower loss in pass K goes on (``RefinementResult.start``).
    With ``options.refine_positions`` the positions are corrected too (:mod:`.positions`);
    ``RefinementResult.positions_xy`` holds them.
    """
    options = options or RefineOptions()
    # resolved once: resolving reads the counts of every pattern and warns about dropped modes
    options = options if options.resolved else options.for_scan(scan)
    device = resolve_device(accelerator)
    init = init if isinstance(init, Reconstruction) else None
    problem = RefinementProblem(scan, init, options, device)
    rival = problem.flat_rival(scan) if init is not None and options.flat_check_passes > 0 else None
    start = time.perf_counter()
    losses, rival_losses, pass_metrics, start_name = [], [], [], "given" if init is not None else "flat"
    steps_per_pass = math.ceil(scan.n_patterns / options.positions_per_step)
    total_steps = max(options.pass_budget * steps_per_pass, 1)
    rng = np.random.default_rng(options.seed)
    excess_per_pass, stop_reason = [], ""
    for pass_index in progress(range(options.pass_budget), "refining", enabled=show_progress):
        batches = [torch.from_numpy(b).to(device)
                   for b in np.array_split(rng.permutation(scan.n_patterns), steps_per_pass)]
        rates = [step_fraction(pass_index * steps_per_pass + k, total_steps, options, steps_per_pass)
                 for k in range(len(batches))]
        losses.append(problem.run_pass(batches, rates, pass_index))
        if rival is not None:
            rival_losses.append(rival.run_pass(batches, rates, pass_index))
            if len(rival_losses) == options.flat_check_passes or pass_index + 1 == options.pass_budget:
                if _flat_fits_better(losses[-1], rival_losses[-1], len(rival_losses)):
                    problem, losses, start_name = rival, list(rival_losses), "flat"
                rival = None
        if on_pass is not None:
            extra = on_pass(pass_index, problem.reconstruction())
            if extra:
                pass_metrics.append({"pass": pass_index + 1, **extra})
        if options.until_fitted and rival is None:
            # the fit of the object as it is saved (weakly lit pixels dropped), the one reported
            excess_per_pass.append(data_fit(_scan_now(problem, scan), problem.reconstruction(), device=device,
                                            probes=_probes_found(problem, scan)).excess)
            stop_reason = fitted_enough(excess_per_pass, options.auto_target_excess)
            if stop_reason:
                break
    seconds = time.perf_counter() - start
    log.info("refinement: %d passes in %.1f s, final loss %.4g%s", len(losses), seconds,
             losses[-1] if losses else float("nan"), f" ({stop_reason})" if stop_reason else "")
    probes = _probes_found(problem, scan)
    probes = scan.probes if probes is None else probes
    return RefinementResult(problem.reconstruction(), losses, probes[0], seconds, pass_metrics,
                            start_name, rival_losses, options.optimizer.value, excess_per_pass,
                            stop_reason or ("the pass budget ran out" if options.until_fitted else ""),
                            probes, problem.positions_xy() if options.refine_positions else scan.positions_xy)


def with_positions(scan: Scan, positions_xy: np.ndarray | None) -> Scan:
    """``scan`` with its positions replaced by ``positions_xy`` (M, 2) [x, y] (None: ``scan`` itself),
    e.g. the refined ones for the data fit of the refined object."""
    if positions_xy is None:
        return scan
    return replace(scan, xcoords=np.asarray(positions_xy[:, 0], dtype=np.float64).copy(),
                   ycoords=np.asarray(positions_xy[:, 1], dtype=np.float64).copy())


def _scan_now(problem: RefinementProblem, scan: Scan) -> Scan:
    """``scan`` at the problem's current positions (its own where they are not refined)."""
    return with_positions(scan, problem.positions_xy()) if problem.options.refine_positions else scan


def _probes_found(problem: RefinementProblem, scan: Scan) -> np.ndarray | None:
    """The problem's probe modes in the scan's units, or None where they are the scan's own (a fixed
    probe of as many modes): the data fit then uses the scan's probe exactly, not a rescaled copy."""
    if not problem.options.refine_probe and len(problem.probe) == scan.n_probe_modes:
        return None
    return problem.probes_numpy()


# passes auto stops when the misfit falls by less than this fraction over PLATEAU_PASSES passes: at
# low dose or with a poor probe the floor may be out of reach, and the passes then fit noise
PLATEAU_GAIN, PLATEAU_PASSES = 0.01, 3


def fitted_enough(excess_per_pass: list[float], target: float) -> str:
    """Why refinement until fitted stops after these passes ("" to go on)."""
    if excess_per_pass[-1] <= target:
        return f"the misfit reached {excess_per_pass[-1]:.2f}× the noise floor"
    if len(excess_per_pass) > PLATEAU_PASSES:
        before = excess_per_pass[-1 - PLATEAU_PASSES]
        if excess_per_pass[-1] > before * (1 - PLATEAU_GAIN):
            return f"the misfit stopped falling at {excess_per_pass[-1]:.2f}× the noise floor"
    return ""


def _flat_fits_better(given_loss: float, flat_loss: float, passes: int) -> bool:
    better = flat_loss < given_loss
    log.info("refinement: after %d passes the %s start fits the data better (loss %.4g given, %.4g flat); "
             "refining on from it", passes, "flat" if better else "given", given_loss, flat_loss)
    return better


def step_fraction(step: int, total: int, options: RefineOptions, warmup: int) -> float:
    """The fraction of the full step at ``step``: a linear warm-up (Adam's first steps move every
    pixel by ~lr whatever the gradient, which would scramble a good starting object), then cosine
    decay to ``final_lr_fraction``."""
    floor = options.final_lr_fraction
    decay = floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * step / total))
    return decay * min(1.0, (step + 1) / max(warmup, 1))


def plot_refinement(result: RefinementResult, path: str | Path) -> Path:

    return plot_loss_curve(result.loss_per_pass, path, title="refinement loss per pass")
