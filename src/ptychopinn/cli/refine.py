"""CLI pieces for refinement and self-supervised fine-tuning (``refine``; ``infer`` options)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_refine_options(parser: argparse.ArgumentParser, steps_flag: str) -> None:
    from ptychopinn.reconstruction.refine import (
        ADAM_FLAT_CHECK_PASSES,
        MPIE_MIN_COUNTS,
        RefineOptimizer,
        RefineOptions,
    )

    group = parser.add_argument_group("refinement (physics-based polishing, docs/design/spec.md#stitching-and-refinement)")
    flag = group.add_argument
    flag(steps_flag, dest="refine_steps", type=int, default=0 if steps_flag != "--steps" else 20,
         help="passes over all scan positions, 0: no refinement [%(default)s]")
    flag("--refine-batch-size", dest="refine_batch_size", type=int, default=None,
         help="scan positions per step [32 for mpie, 16 for adam]")
    flag("--refine-optimizer", dest="refine_optimizer", choices=[o.value for o in RefineOptimizer],
         default=RefineOptions.optimizer.value,
         help="adam: per-pixel normalised steps (works with either loss, fewer passes at low dose); "
         "mpie: PIE-style steps (gradient over the batch's illumination) with momentum, fewer passes "
         "and a higher end at moderate and high dose, and keeps a good start's lead; auto: mpie from "
         f"{MPIE_MIN_COUNTS:g} mean counts per pattern with the amplitude loss, adam otherwise [%(default)s]")
    flag("--refine-lr", dest="refine_lr", type=float, default=None,
         help="initial step, cosine-decayed to 5 %% of it; needs --refine-optimizer adam or mpie "
         "[1.0 for mpie (the full PIE step), 0.03 for adam]")
    flag("--refine-loss", dest="refine_loss", choices=["amplitude", "poisson"], default="amplitude",
         help="amplitude least squares (well conditioned) or Poisson NLL [%(default)s]")
    flag("--refine-probe", dest="refine_probe", action="store_true",
         help="refine the probe too (from the third pass)")
    flag("--flat-check", dest="flat_check", type=int, default=None, metavar="K",
         help="refine a flat object alongside the given start for the first K passes and go on from "
         "whichever fits the data better (a network start can be worse than none for adam, e.g. with "
         "a real, centro-symmetric probe); 0: trust the start "
         f"[{ADAM_FLAT_CHECK_PASSES} with adam, 0 with mpie]")


def add_infer_options(parser: argparse.ArgumentParser) -> None:
    add_refine_options(parser, "--refine-steps")
    group = parser.add_argument_group("self-supervised fine-tuning on the scan being reconstructed")
    group.add_argument("--finetune-epochs", dest="finetune_epochs", type=int, default=0,
                       help="continue training on this scan's own diffraction first, 0: off [%(default)s]")
    group.add_argument("--save-model", dest="save_model", action="store_true",
                       help="save the fine-tuned model to OUT/model_finetuned.pinn")


def refine_options(args: argparse.Namespace):
    from ptychopinn.reconstruction.refine import RefineOptions

    return RefineOptions(  # the optimiser's and the loss's names become their enums there
        passes=args.refine_steps, batch_size=args.refine_batch_size, learning_rate=args.refine_lr,
        optimizer=args.refine_optimizer, loss=args.refine_loss, refine_probe=args.refine_probe,
        flat_check_passes=args.flat_check,
        accelerator=getattr(args, "accelerator", None) or "auto",
    )


def maybe_finetune(model, scan, output_dir: Path, args: argparse.Namespace):
    if not getattr(args, "finetune_epochs", 0):
        return model
    from ptychopinn.api import finetune

    tuned = finetune(model, scan, args.finetune_epochs, output_dir / "finetune", quiet=args.quiet)
    if args.save_model:
        path = tuned.save(output_dir / "model_finetuned.pinn")
        print(f"fine-tuned model: {path}")
    return tuned


def run_refinement(scan, init, output_dir: Path, args: argparse.Namespace):
    """Refine ``init`` (a Reconstruction or None for flat), write it and its loss curve; returns
    the refinement and the refined object's data fit (printed)."""
    from ptychopinn.plots import plot_reconstruction_channel
    from ptychopinn.reconstruction.refine import plot_refinement, refine

    result = refine(scan, init, refine_options(args), show_progress=not args.quiet)
    output_dir.mkdir(parents=True, exist_ok=True)
    result.reconstruction.save(output_dir / "reconstruction.npz")
    plot_reconstruction_channel(result.reconstruction, "amplitude", output_dir / "amplitude.png")
    plot_reconstruction_channel(result.reconstruction, "phase", output_dir / "phase.png")
    plot_refinement(result, output_dir / "refinement_loss.png")
    print(f"refined {len(result.loss_per_pass)} passes with {result.optimizer} in {result.seconds:.1f} s "
          f"(loss {result.loss_per_pass[0]:.4g} → {result.loss_per_pass[-1]:.4g}): "
          f"{output_dir / 'reconstruction.npz'}")
    if result.flat_check_loss:
        checked = len(result.flat_check_loss)
        print(f"start check: after {checked} passes the {result.start} start fitted the data better "
              f"(flat start's loss {result.flat_check_loss[-1]:.4g}); the result is refined from it")
    return result, report_data_fit(scan, result.reconstruction, "refined object", args)


# Misfit, in units of the Poisson floor, above which an object visibly fails to explain the data:
# network objects that score phase SSIM 0.94 leave 2–3×, failed ones 7–20× (README, data fit).
POOR_FIT_EXCESS = 3.0


def report_data_fit(scan, reconstruction, label: str, args: argparse.Namespace):
    """Print how well ``reconstruction`` explains the scan's patterns (no reference needed)."""
    from ptychopinn.reconstruction.refine import data_fit

    fit = data_fit(scan, reconstruction, getattr(args, "accelerator", None) or "auto")
    print(f"{label}: {fit.format()}")
    return fit


def add_refine_command(commands, common, formatter) -> None:
    p = commands.add_parser(
        "refine",
        parents=[common],
        help="physics-based refinement of an object (or an iterative reconstruction from flat)",
        description="Minimise the data loss over the object canvas on minibatches of scan "
        "positions (PIE-style steps with momentum, or Adam at low dose), with a cosine-decaying "
        "step. --init flat is an iterative solver in its own right; --init RECON.npz polishes a "
        "network reconstruction. Writes R/reconstruction.npz, "
        "R/amplitude.png, R/phase.png, R/refinement_loss.png (and metrics.json, comparison.png "
        "when the scan has objectGuess).",
        formatter_class=formatter,
        allow_abbrev=False,
    )
    p.add_argument("--data", type=Path, required=True, help="scan .npz")
    p.add_argument("--init", default="flat", help="'flat' or a reconstruction.npz [%(default)s]")
    p.add_argument("--output-dir", "--output_dir", dest="output_dir", type=Path, required=True)
    p.add_argument("--accelerator", default=None, help="auto | cpu | gpu | cuda | mps [auto]")
    p.add_argument("--intensity", action="store_true", help="the scan holds intensities")
    add_refine_options(p, "--steps")
    p.set_defaults(handler=_cmd_refine)


def _cmd_refine(args: argparse.Namespace) -> int:
    from ptychopinn.data import load_scan
    from ptychopinn.evaluation.truth import evaluate_and_plot
    from ptychopinn.reconstruction.result import Reconstruction

    scan = load_scan(args.data, intensity=args.intensity)
    init = None if args.init == "flat" else Reconstruction.load(args.init)
    result, fit = run_refinement(scan, init, args.output_dir, args)
    if scan.object is not None:
        others = {"initial": init} if init is not None else None
        metrics = evaluate_and_plot(result.reconstruction, scan, args.output_dir, others=others, fit=fit)
        print(f"phase SSIM {metrics['phase_ssim']:.3f}, amplitude SSIM {metrics['amplitude_ssim']:.3f}, "
              f"phase PSNR {metrics['phase_psnr']:.1f} dB")
    return 0
