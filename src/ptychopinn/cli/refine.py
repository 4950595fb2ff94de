"""``ptychopinn refine``: physics-based refinement of an object, or an iterative reconstruction
from a flat start; and the refinement and data-fit report that ``infer`` shares.

Minimise the data loss over the object canvas on minibatches of scan positions (PIE-style steps with
momentum, or Adam at low dose), with a cosine-decaying step. --init flat is an iterative solver in
its own right; --init RECON.npz polishes a network reconstruction. Writes R/reconstruction.npz,
R/amplitude.png, R/phase.png, R/refinement_loss.png (and metrics.json, comparison.png when the scan
has objectGuess) and R/probe.npz (the probe modes refined, or used); with --refine-positions also
R/positions.npz (the corrected scan positions and the starting ones). Settings: the defaults, then
the refinement section of --config FILE, then the flags given.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ptychopinn.atomic import atomic_path
from ptychopinn.cli.common import (
    ACCELERATORS,
    EXIT_OK,
    UserError,
    add_command,
    add_legacy,
    check_accelerator,
    metrics_headline,
    new_outputs,
    read_input,
)
from ptychopinn.cli.flags import REFINE_FLAGS, add_setting_flags, flags_for, overrides_from, resolve
from ptychopinn.config import RefineOptions
from ptychopinn.data import load_scan
from ptychopinn.data.product import write_reconstruction_product
from ptychopinn.evaluation.data_fit import data_fit
from ptychopinn.plots import plot_reconstruction_channel, plot_trust_map
from ptychopinn.reconstruction.result import Reconstruction

FLAGS = flags_for(names=("--passes", "--seed", "--intensity", *REFINE_FLAGS))



@dataclass(frozen=True)
class RefineCommandOptions:
    data: Path
    init: Path | None  # None: a flat start
    output_dir: Path
    accelerator: str
    config: Path | None
    overrides: dict[str, Any]
    quiet: bool

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RefineCommandOptions:
        init = None if args.init == "flat" else Path(args.init)
        return cls(args.data, init, args.output_dir, args.accelerator or "auto", args.config,
                   overrides_from(args, FLAGS), args.quiet)


def add_parser(commands) -> None:
    p = add_command(
        commands, "refine", run,
        help="physics-based refinement of an object (or an iterative reconstruction from flat)", doc=__doc__,
    )
    p.add_argument("--data", type=Path, required=True,
                        help="scan: this project's .npz, a ptychodus export .npz or workflow directory (diffraction.h5 + product.h5), or a CXI file (docs/guides/own-data.md)")
    p.add_argument("--init", default="flat", help="'flat' or a reconstruction.npz [%(default)s]")
    p.add_argument("--output-dir", dest="output_dir", type=Path, required=True, help="output directory")
    add_legacy(p, "--output_dir", "--output-dir")
    p.add_argument("--accelerator", default=None, help=f"{' | '.join(ACCELERATORS)} [auto]")
    p.add_argument("--config", type=Path, default=None,
                   help="YAML/JSON settings file (its refinement and data sections)")
    add_setting_flags(p, FLAGS, "refinement (physics-based polishing, docs/design/spec.md#stitching-and-refinement)")
    add_legacy(p, "--probe-modes", "--refine-probe-modes")


def run(args: argparse.Namespace) -> int:
    options = RefineCommandOptions.from_args(args)
    from ptychopinn.evaluation.truth import evaluate_and_plot

    settings = resolve(options.overrides, FLAGS, config=options.config, config_sections=("refinement", "data"))
    if settings.refinement.passes != "auto" and settings.refinement.passes < 1:
        raise UserError(f"--passes: refine needs at least 1 pass, got {settings.refinement.passes}")
    check_accelerator(options.accelerator)
    scan = read_input(options.data, "scan file", lambda p: load_scan(p, intensity=settings.data.intensity))
    init = None if options.init is None else read_input(options.init, "reconstruction.npz", Reconstruction.load)
    with new_outputs(options.output_dir):
        result, fit = run_refinement(scan, init, options.output_dir, settings.refinement, options.accelerator,
                                     quiet=options.quiet)
        if scan.object is not None:
            others = {"initial": init} if init is not None else None
            metrics = evaluate_and_plot(result.reconstruction, scan, options.output_dir, others=others, fit=fit)
            print(metrics_headline(metrics))
    return EXIT_OK


def run_refinement(scan, init, output_dir: Path, refinement: RefineOptions, accelerator: str, *,
                   quiet: bool = False):
    """Refine ``init`` (a Reconstruction or None for flat), write it and its loss curve; returns
    the refinement and the refined object's data fit (printed)."""
    from ptychopinn.reconstruction.refine import plot_refinement, refine
    from ptychopinn.reconstruction.refine.engine import with_positions

    resolved = refinement.for_scan(scan)
    print(describe_engine(resolved, scan))
    result = refine(scan, init, resolved, accelerator=accelerator, show_progress=not quiet)
    output_dir.mkdir(parents=True, exist_ok=True)
    result.reconstruction.save(output_dir / "reconstruction.npz")
    save_probe(result.probe_modes, output_dir / "probe.npz")
    if resolved.refine_positions:
        # the object was refined at these positions: its product, data fit and trust map use them
        save_positions(result.positions_xy, scan.positions_xy, output_dir / "positions.npz")
        moved = np.linalg.norm(result.positions_xy - scan.positions_xy, axis=1)
        print(f"positions refined: moved {np.sqrt(np.mean(moved**2)):.3g} px RMS, at most {moved.max():.3g} px: "
              f"{output_dir / 'positions.npz'}")
        scan = with_positions(scan, result.positions_xy)
    # the same result for ptychodus, with the refined probe (docs/formats.md#ptychodus-product)
    write_reconstruction_product(output_dir / "product.h5", scan, result.reconstruction,
                                 probes=result.probe_modes if result.probe_modes is not None else result.probe,
                                 losses=result.loss_per_pass)
    plot_reconstruction_channel(result.reconstruction, "amplitude", output_dir / "amplitude.png")
    plot_reconstruction_channel(result.reconstruction, "phase", output_dir / "phase.png")
    plot_refinement(result, output_dir / "refinement_loss.png")
    print(f"refined {len(result.loss_per_pass)} passes with {result.optimizer} in {result.seconds:.1f} s "
          f"(loss {result.loss_per_pass[0]:.4g} → {result.loss_per_pass[-1]:.4g}"
          f"{'; ' + result.stop_reason if result.stop_reason else ''}): {output_dir / 'reconstruction.npz'}")
    if result.flat_check_loss:
        checked = len(result.flat_check_loss)
        print(f"start check: after {checked} passes the {result.start} start fitted the data better "
              f"(flat start's loss {result.flat_check_loss[-1]:.4g}); the result is refined from it")
    # the fit of the refined object with the refined probe: the pair the refinement found
    return result, report_data_fit(scan, result.reconstruction, "refined object", accelerator, output_dir,
                                   probes=result.probe_modes)


def describe_engine(options: RefineOptions, scan) -> str:
    """One line naming the refinement engine and the settings it resolved for ``scan``."""
    modes = options.probe_modes
    own = scan.n_probe_modes
    if modes > own:
        mode_text = f"{modes} incoherent probe modes (the scan's {own} + {modes - own} started from it)"
    elif modes < own:
        mode_text = (f"{modes} of the scan's {own} incoherent probe modes (WARNING: the others' intensity "
                     "is left out of the model)")
    else:
        mode_text = f"{modes} incoherent probe mode{'s' if modes > 1 else ''}"
    probe = (f"probe refined from pass {options.probe_start_pass + 1} (step {options.probe_learning_rate:g} "
             "of ePIE's, power held)" if options.refine_probe else "probe fixed")
    positions = (f"positions refined after pass {options.position_start_pass + 1} on (at most "
                 f"{options.max_position_step:g} px a pass)" if options.refine_positions else "positions fixed")
    masked = "" if scan.bad_pixels is None else f", {int(scan.bad_pixels.sum())} bad detector pixels masked"
    passes = (f"until fitted (at most {options.auto_max_passes} passes)" if options.until_fitted
              else f"{options.passes} passes")
    return (f"refinement engine: {options.optimizer.value} steps (step {options.step_size:g}), {options.loss.value} "
            f"loss, {options.positions_per_step} positions per step, {passes}; {probe}; {positions}; {mode_text}{masked}")


def save_probe(probes, path: Path) -> Path:
    """The refined probe modes as ``path`` (.npz: ``probes`` (K, N, N) complex64, strongest first, in
    the scan's probe units; ``mode_power_fraction`` (K,)), written atomically."""
    from ptychopinn.reconstruction.refine.modes import mode_powers

    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        np.savez(handle, probes=np.asarray(probes, dtype=np.complex64), mode_power_fraction=mode_powers(probes))
    return path


def save_positions(positions_xy: np.ndarray, start_xy: np.ndarray, path: Path) -> Path:
    """The refined scan positions as ``path`` (.npz, float64 object pixels in the scan's convention:
    ``xcoords``, ``ycoords`` refined; ``xcoords_start``, ``ycoords_start`` as given), written
    atomically (docs/formats.md#refined-positions)."""
    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        np.savez(handle, xcoords=np.asarray(positions_xy[:, 0], dtype=np.float64),
                 ycoords=np.asarray(positions_xy[:, 1], dtype=np.float64),
                 xcoords_start=np.asarray(start_xy[:, 0], dtype=np.float64),
                 ycoords_start=np.asarray(start_xy[:, 1], dtype=np.float64))
    return path


def report_data_fit(scan, reconstruction, label: str, accelerator: str, output_dir: Path | None = None,
                    probes=None):
    """Print how well ``reconstruction`` explains the scan's patterns (no reference needed), with the
    scan's probe or ``probes`` (e.g. the refined modes); with ``output_dir``, also write its trust map
    there (trust_map.npz, trust_map.png): each position's misfit against its Poisson floor, so a user
    sees where the result can be trusted."""
    fit = data_fit(scan, reconstruction, accelerator, probes=probes)
    print(f"{label}: {fit.format()}")
    if output_dir is not None:
        fit.save_trust_map(scan.positions_xy, output_dir / "trust_map.npz")
        plot_trust_map(reconstruction, scan.positions_xy, fit.position_excess, output_dir / "trust_map.png")
        print(f"{fit.format_trust()}: {output_dir / 'trust_map.png'}")
    return fit
