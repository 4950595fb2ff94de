"""The ``ptychopinn`` command line: parse, build settings, call the library, report.

Each sub-command lives in one ``_cmd_*`` function; all the work happens in the library.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from ptychopinn.cli.diagnostics import (
    DIAGNOSTIC_COMMANDS,
    InferDiagnostics,
    add_infer_diagnostic_flags,
    add_train_diagnostic_flags,
    train_observers,
)
from ptychopinn.cli.refine import (
    POOR_FIT_EXCESS,
    add_infer_options,
    add_refine_command,
    maybe_finetune,
    report_data_fit,
    run_refinement,
)
from ptychopinn.cli.tensorflow import add_backend_flag, add_parity_command
from ptychopinn.config import GroupEncoding, HeadKind, InputMode

log = logging.getLogger("ptychopinn")


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps descriptions as written; defaults are stated in each help text."""


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings only")
    return common


def _add_simulate(commands) -> None:
    p = commands.add_parser(
        "simulate",
        parents=[_common_options()],
        help="simulate a scan with its ground-truth object",
        description="Simulate a ptychographic scan (Poisson counts stored as amplitudes) and save "
        "it as a PtychoPINN .npz file including objectGuess.",
        formatter_class=_HelpFormatter,
    )
    p.add_argument("output", type=Path, help="output .npz file")
    p.add_argument("--object", default="lines",
                   help="lines | grf | dots | star | image | PATH to an image file (amplitude) [%(default)s]")
    p.add_argument("--phase", default=None, help="image file for the phase (with --object PATH) [%(default)s]")
    p.add_argument("--size", type=int, default=256, help="object side in pixels [%(default)s]")
    p.add_argument("--n", type=int, default=64, help="patch (diffraction pattern) size N [%(default)s]")
    p.add_argument("--probe", default="disk", help="disk | defocused [%(default)s]")
    p.add_argument("--scan", default="raster", help="raster | fermat | random [%(default)s]")
    p.add_argument("--step", type=float, default=6.0, help="mean scan step in pixels [%(default)s]")
    p.add_argument("--jitter", type=float, default=1.0, help="position jitter σ in pixels [%(default)s]")
    p.add_argument("--photons", type=float, default=1e6, help="mean photons per pattern [%(default)s]")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=_cmd_simulate)


def _cmd_simulate(args: argparse.Namespace) -> int:
    from ptychopinn.data import save_scan
    from ptychopinn.simulation.simulate import simulate

    scan = simulate(
        args.object, size=args.size, n=args.n, probe=args.probe, scan=args.scan, step=args.step,
        jitter=args.jitter, photons=args.photons, seed=args.seed, phase_image=args.phase,
        show_progress=not args.quiet,
    )
    save_scan(scan, args.output)
    print(f"wrote {args.output}: {scan.n_patterns} patterns of {scan.patch_size}×{scan.patch_size}, "
          f"object {scan.object.shape[0]}×{scan.object.shape[1]}")
    return 0


def _add_inspect(commands) -> None:
    p = commands.add_parser(
        "inspect",
        parents=[_common_options()],
        help="summarise a scan file",
        description="Print pattern count and size, value kind, photons, scan extent, step, "
        "probe size and overlap; optionally draw an overview figure.",
        formatter_class=_HelpFormatter,
    )
    p.add_argument("scan", type=Path, help="scan .npz file")
    p.add_argument("--plot", type=Path, default=None,
                   help="write positions, probe and mean pattern to this PNG")
    p.add_argument("--intensity", action="store_true", help="the file holds intensities (counts)")
    p.set_defaults(handler=_cmd_inspect)


def _cmd_inspect(args: argparse.Namespace) -> int:
    from ptychopinn.data import load_scan
    from ptychopinn.data.summary import summarize_scan

    scan = load_scan(args.scan, intensity=args.intensity)
    print(summarize_scan(scan).format())
    if args.plot:
        from ptychopinn.plots import plot_scan_overview

        plot_scan_overview(scan, args.plot)
        print(f"overview figure: {args.plot}")
    return 0


def _add_train(commands) -> None:
    p = commands.add_parser(
        "train",
        parents=[_common_options()],
        help="train the PINN on a scan (no ground truth needed)",
        description="Train the physics-informed network on a scan's diffraction alone. Writes "
        "DIR/model.pinn, DIR/config.yaml (resolved settings), DIR/metrics.csv, "
        "DIR/training_curves.png and checkpoints under DIR/checkpoints/. Settings come from the "
        "defaults, then --config FILE, then the flags given. Predecessor spellings are accepted "
        "as aliases (--train_data_file, --output_dir, --n_images, --nepochs, ...).",
        formatter_class=_HelpFormatter,
        allow_abbrev=False,
    )
    p.add_argument("--train-data", "--train_data_file", dest="train_data", type=Path, required=True,
                   help="training scan .npz")
    p.add_argument("--test-data", "--test_data_file", dest="test_data", type=Path, default=None,
                   help="scan to reconstruct (and evaluate, if it has objectGuess) after training")
    p.add_argument("--output-dir", "--output_dir", dest="output_dir", type=Path, required=True)
    p.add_argument("--config", type=Path, default=None, help="YAML/JSON settings file")
    p.add_argument("--resume", type=Path, default=None, help="continue from a Lightning checkpoint")
    _add_setting_flags(p)
    add_backend_flag(p)
    add_train_diagnostic_flags(p)
    p.set_defaults(handler=_cmd_train)


def _add_setting_flags(p: argparse.ArgumentParser) -> None:
    """Flags that override settings; None (not given) leaves the file/default value."""
    group = p.add_argument_group("settings (override --config)")
    flag = group.add_argument
    flag("--gridsize", type=int, default=None, help="C = gridsize² patches per group [2]")
    flag("--neighbor-count", "--neighbor_count", dest="neighbor_count", type=int, default=None,
         help="K nearest neighbours a group is drawn from [4]")
    flag("--n-groups", "--n_groups", "--n_images", dest="n_groups", type=int, default=None,
         help="number of groups to train on [one per scan position]")
    flag("--epochs", "--nepochs", "--max_epochs", dest="epochs", type=int, default=None,
         help="maximum epochs [50]")
    flag("--curriculum", dest="curriculum_fraction", type=float, default=None,
         help="when gridsize > 1 (per-pattern encoding), first train this fraction of --epochs "
         "at gridsize 1, in addition to the --epochs; 0 = none [0.5]")
    flag("--batch-size", "--batch_size", dest="batch_size", type=int, default=None,
         help="groups per batch [auto: 16, or 8 or 4 where 16 leaves an epoch fewer than 64 steps]")
    flag("--lr", type=float, default=None, help="Adam learning rate [1e-3]")
    flag("--loss", "--torch-loss-mode", dest="loss", default=None,
         help="poisson | mae | mse, or a weighted sum such as poisson=1,mae=0.1 [poisson]")
    flag("--n-filters-scale", dest="n_filters_scale", type=int, default=None,
         help="filter multiplier s of the cnn [2]")
    flag("--head", choices=[h.value for h in HeadKind], default=None,
         help="object head: full field, central N/2 (predecessor) or central + border branch [full]")
    flag("--input-mode", dest="input_mode", choices=[m.value for m in InputMode], default=None,
         help="generator input: amplitude + back-projected object estimate, or the amplitude alone "
         "(predecessor) [backprojection]")
    flag("--group-encoding", dest="group_encoding", choices=[g.value for g in GroupEncoding], default=None,
         help="one shared network per pattern, or a group's patterns as channels (predecessor) [per_pattern]")
    flag("--object-big", dest="object_big", action=argparse.BooleanOptionalAction, default=None,
         help="merge each group's patches into one canvas [on for gridsize > 1]")
    flag("--probe-mask", dest="probe_mask", action=argparse.BooleanOptionalAction, default=None,
         help="multiply exit waves by a disk of radius N/4 [off]")
    flag("--nphotons", type=float, default=None,
         help="mean counts per pattern, only for data that are not in counts")
    flag("--intensity", action="store_true", default=None, help="input files hold intensities")
    flag("--accelerator", default=None, help="auto | cpu | gpu | cuda | mps [auto: GPU when present]")
    flag("--devices", default=None, help="devices for the Lightning Trainer [1]")
    flag("--precision", default=None, help="Lightning precision, e.g. 32-true, bf16-mixed [32-true]")
    flag("--deterministic", action="store_true", default=None, help="deterministic algorithms")
    flag("--seed", type=int, default=None, help="seed for grouping, split and initialisation [0]")


def _setting_overrides(args: argparse.Namespace) -> dict:
    devices = args.devices
    if isinstance(devices, str) and devices.isdigit():
        devices = int(devices)
    return {
        "data": {"gridsize": args.gridsize, "neighbor_count": args.neighbor_count,
                 "n_groups": args.n_groups, "intensity": args.intensity, "seed": args.seed},
        "physics": {"probe_mask": args.probe_mask, "nphotons": args.nphotons},
        "model": {"n_filters_scale": args.n_filters_scale, "head": args.head,
                  "object_big": args.object_big, "input_mode": args.input_mode,
                  "group_encoding": args.group_encoding},
        "training": {"epochs": args.epochs, "curriculum_fraction": args.curriculum_fraction,
                     "batch_size": args.batch_size,
                     "learning_rate": args.lr, "loss": args.loss, "seed": args.seed,
                     "accelerator": args.accelerator, "devices": devices,
                     "precision": args.precision, "deterministic": args.deterministic},
    }


def _cmd_train(args: argparse.Namespace) -> int:
    from ptychopinn.api import train_with_summary
    from ptychopinn.config import resolve_settings

    settings = resolve_settings(args.config, {**_setting_overrides(args), "backend": args.backend})
    summary = train_with_summary(args.train_data, args.output_dir, settings, resume=args.resume,
                                 quiet=args.quiet, batch_observers=train_observers(args))
    stages = f" ({summary.curriculum_epochs_run} at gridsize 1)" if summary.curriculum_epochs_run else ""
    print(f"trained {summary.epochs_run} epochs{stages} on {summary.device}; model: {summary.model_path}")
    if args.test_data:
        _reconstruct_and_report(summary.model, args.test_data, args.output_dir / "test", args)
    return 0


def _add_infer(commands) -> None:
    p = commands.add_parser(
        "infer",
        parents=[_common_options()],
        help="reconstruct a scan with a trained model",
        description="Group the scan with the model's settings, normalise it with the scale "
        "contract's function, stream it through the model and stitch the object in object pixel "
        "coordinates. Writes OUT/reconstruction.npz (object, amplitude, phase, coverage, "
        "origin_xy), OUT/amplitude.png and OUT/phase.png.",
        formatter_class=_HelpFormatter,
        allow_abbrev=False,
    )
    p.add_argument("--model", "--model_path", dest="model", type=Path, required=True,
                   help="model.pinn, or the training output directory holding it")
    p.add_argument("--data", "--test_data", dest="data", type=Path, required=True, help="scan .npz")
    p.add_argument("--output-dir", "--output_dir", dest="output_dir", type=Path, required=True)
    p.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int, default=None,
                   help="groups per forward pass [64]")
    p.add_argument("--n-groups", "--n_groups", "--n_images", dest="n_groups", type=int, default=None,
                   help="groups to reconstruct [one per scan position]")
    p.add_argument("--accelerator", default=None, help="auto | cpu | gpu | cuda | mps [auto]")
    p.add_argument("--stitch-crop", dest="stitch_crop", type=int, default=None,
                   help="side M of the central crop each patch contributes [20]")
    p.add_argument("--stitch-weighting", dest="stitch_weighting", choices=["crop", "probe"],
                   default=None, help="hard central crop, or |probe|² weights [crop]")
    add_infer_options(p)
    add_backend_flag(p, infer=True)
    add_infer_diagnostic_flags(p)
    p.set_defaults(handler=_cmd_infer)


def _cmd_infer(args: argparse.Namespace) -> int:
    from ptychopinn.model.trained import load_model

    _reconstruct_and_report(load_model(args.model), args.data, args.output_dir, args)
    return 0


def _reconstruct_and_report(model, data: Path, output_dir: Path, args: argparse.Namespace):
    from ptychopinn.api import reconstruct
    from ptychopinn.data import load_scan
    from ptychopinn.plots import plot_reconstruction_channel

    scan = load_scan(data, intensity=model.settings.data.intensity)
    model = maybe_finetune(model, scan, output_dir, args)
    diagnostics = InferDiagnostics(args, output_dir)
    result = reconstruct(
        model, scan, batch_size=getattr(args, "batch_size", None), n_groups=getattr(args, "n_groups", None),
        accelerator=getattr(args, "accelerator", None), stitch_crop=getattr(args, "stitch_crop", None),
        stitch_weighting=getattr(args, "stitch_weighting", None), show_progress=not args.quiet,
        batch_observers=diagnostics.observers, backend=getattr(args, "backend", None),
    )
    output_dir.mkdir(parents=True, exist_ok=True)
    result.save(output_dir / "reconstruction.npz")
    plot_reconstruction_channel(result, "amplitude", output_dir / "amplitude.png")
    plot_reconstruction_channel(result, "phase", output_dir / "phase.png")
    print(f"reconstruction {result.object.shape[0]}×{result.object.shape[1]} "
          f"(origin x={result.origin_xy[0]:g}, y={result.origin_xy[1]:g}): "
          f"{output_dir / 'reconstruction.npz'}")
    diagnostics.finish(model, scan, result)
    network_result = result
    fit = report_data_fit(scan, result, "network object", args)
    if fit.excess > POOR_FIT_EXCESS and not getattr(args, "refine_steps", 0):
        print(f"the network's object does not explain these patterns ({fit.excess:.0f}× the noise); refine it: "
              f"ptychopinn refine --data {data} --init {output_dir / 'reconstruction.npz'} --steps 20 "
              f"--output-dir {output_dir / 'refined'}  (or infer with --refine-steps 20)")
    if getattr(args, "refine_steps", 0):
        result.save(output_dir / "network_reconstruction.npz")
        refinement, fit = run_refinement(scan, result, output_dir, args)
        result = refinement.reconstruction
    if scan.object is not None:
        from ptychopinn.evaluation.truth import evaluate_and_plot

        others = {"network": network_result} if result is not network_result else None
        metrics = evaluate_and_plot(result, scan, output_dir, others=others, fit=fit)  # fit: of ``result``
        print(_headline(metrics))
    return result


def _add_evaluate(commands) -> None:
    p = commands.add_parser(
        "evaluate",
        parents=[_common_options()],
        help="score a reconstruction against the reference object",
        description="Register the reconstruction to the scan's objectGuess over the scanned "
        "region, remove phase offset and plane, and report MAE, PSNR, SSIM, NRMSE and FRC. "
        "Writes metrics.json and comparison.png.",
        formatter_class=_HelpFormatter,
        allow_abbrev=False,
    )
    p.add_argument("--recon", type=Path, required=True, help="reconstruction.npz")
    p.add_argument("--truth", type=Path, required=True, help="scan .npz with objectGuess")
    p.add_argument("--output-dir", "--output_dir", dest="output_dir", type=Path, default=None,
                   help="where to write metrics.json and comparison.png [next to --recon]")
    p.set_defaults(handler=_cmd_evaluate)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from ptychopinn.data import load_scan
    from ptychopinn.evaluation.truth import evaluate_and_plot
    from ptychopinn.reconstruction.refine import data_fit
    from ptychopinn.reconstruction.result import Reconstruction

    output_dir = args.output_dir or args.recon.parent
    reconstruction, scan = Reconstruction.load(args.recon), load_scan(args.truth)
    fit = data_fit(scan, reconstruction, getattr(args, "accelerator", None) or "auto")
    print(_headline(evaluate_and_plot(reconstruction, scan, output_dir, fit=fit)))
    print(f"reconstruction: {fit.format()}")
    print(f"metrics: {output_dir / 'metrics.json'}; figure: {output_dir / 'comparison.png'}")
    return 0


def _headline(metrics: dict) -> str:
    return (f"phase SSIM {metrics['phase_ssim']:.3f}, amplitude SSIM {metrics['amplitude_ssim']:.3f}, "
            f"phase PSNR {metrics['phase_psnr']:.1f} dB, amplitude PSNR {metrics['amplitude_psnr']:.1f} dB, "
            f"FRC 1/2-bit {metrics['frc_half_bit']:.2f}")


def _add_demo(commands) -> None:
    p = commands.add_parser(
        "demo",
        parents=[_common_options()],
        help="simulate, train, reconstruct and evaluate in one go (about 3 minutes on a laptop)",
        description="The main job end to end on built-in simulated data.",
        formatter_class=_HelpFormatter,
        allow_abbrev=False,
    )
    p.add_argument("--output-dir", "--output_dir", dest="output_dir", type=Path, default=Path("demo_output"))
    p.add_argument("--epochs", type=int, default=None, help="training epochs [demo default]")
    p.add_argument("--gridsize", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    from ptychopinn.demo import run_demo

    report = run_demo(args.output_dir, gridsize=args.gridsize, epochs=args.epochs, seed=args.seed,
                      quiet=args.quiet)
    print(report.format())
    return 0


def _add_refine(commands) -> None:
    add_refine_command(commands, _common_options(), _HelpFormatter)


def _add_parity(commands) -> None:
    add_parity_command(commands, _common_options(), _HelpFormatter)


COMMANDS = [_add_simulate, _add_inspect, _add_train, _add_infer, _add_evaluate, _add_refine, _add_demo,
            _add_parity, *DIAGNOSTIC_COMMANDS]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ptychopinn",
        description="Physics-informed neural-network reconstruction for ptychography.",
        formatter_class=_HelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(commands)
    return parser


def _lightning_prints_its_own_info(record: logging.LogRecord) -> bool:
    """Lightning attaches its own console handler; without this every one of its lines (device,
    tips) would be printed a second time through ours."""
    return record.levelno >= logging.WARNING or not record.name.startswith("lightning")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    logging.getLogger("ptychopinn").setLevel(level)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_lightning_prints_its_own_info)
    try:
        return int(args.handler(args) or 0)
    except (ValueError, FileNotFoundError, IsADirectoryError) as error:
        log.error("%s", error)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
