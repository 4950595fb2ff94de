"""CLI pieces of the forward-parity toolkit: ``train``/``infer`` diagnostic flags and the
``compare-stats``, ``compare-recon`` and ``compare-stages`` commands.

The comparison commands exit 0 when the two inputs agree within the tolerance, 1 when anything
diverged (so they can gate scripts) and 2 on errors (unreadable or malformed inputs).
"""

from __future__ import annotations

import argparse
from pathlib import Path

EXIT_DIVERGED = 1


# ---------------------------------------------------------------------------------------------
# flags of train and infer
# ---------------------------------------------------------------------------------------------


def _patch_stats_flags(group, where: str) -> None:
    group.add_argument("--log-patch-stats", dest="log_patch_stats", action="store_true",
                       help=f"record statistics of the predicted amplitude patches |object patches| of "
                       f"the first K {where} batches to analysis/patch_stats.json, draw "
                       f"analysis/patch_grid.png and log one line per batch [off: no cost]")
    group.add_argument("--patch-stats-limit", dest="patch_stats_limit", type=int, default=2, metavar="K",
                       help="batches recorded by --log-patch-stats [%(default)s]")


def add_train_diagnostic_flags(parser: argparse.ArgumentParser) -> None:
    _patch_stats_flags(parser.add_argument_group("diagnostics (docs/design/spec.md#diagnostics)"), "training")


def add_infer_diagnostic_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("diagnostics (docs/design/spec.md#diagnostics)")
    _patch_stats_flags(group, "inference")
    group.add_argument("--debug-dump", dest="debug_dump", nargs="?", const="", default=None, type=str,
                       metavar="DIR",
                       help="write stats.json, offsets.json, canvas.json, patch_grid_amp.png, "
                       "patch_grid_phase.png and canvas.png of this inference to DIR [OUT/debug_dump]")
    group.add_argument("--capture-stages", dest="capture_stages", type=Path, default=None, metavar="FILE.npz",
                       help="save the named intermediate tensors of one forward pass of the first "
                       "--capture-groups groups (for compare-stages)")
    group.add_argument("--capture-groups", dest="capture_groups", type=int, default=8, metavar="K",
                       help="groups captured by --capture-stages [%(default)s]")


def train_observers(args: argparse.Namespace) -> list:
    """Batch observers for ``train_with_summary`` (empty unless a diagnostic flag is given)."""
    if not getattr(args, "log_patch_stats", False):
        return []
    from ptychopinn.diagnostics import PatchStatsRecorder

    return [PatchStatsRecorder(args.output_dir / "analysis", "train", args.patch_stats_limit)]


class InferDiagnostics:
    """The inference diagnostics asked for on the command line: :attr:`observers` go to
    ``reconstruct``; :meth:`finish` writes the debug dump and the stage capture."""

    def __init__(self, args: argparse.Namespace, output_dir: Path):
        self.args = args
        self.output_dir = Path(output_dir)
        self.observers: list = []
        self.dump = None
        if getattr(args, "log_patch_stats", False):
            from ptychopinn.diagnostics import PatchStatsRecorder

            self.patch_stats = PatchStatsRecorder(self.output_dir / "analysis", "infer", args.patch_stats_limit)
            self.observers.append(self.patch_stats)
        dump_dir = getattr(args, "debug_dump", None)
        if dump_dir is not None:
            from ptychopinn.diagnostics import DebugDump

            self.dump = DebugDump(Path(dump_dir) if dump_dir else self.output_dir / "debug_dump")
            self.observers.append(self.dump)
        self.capture_path = getattr(args, "capture_stages", None)
        if self.capture_path is not None and args.capture_groups < 1:
            raise ValueError(f"--capture-groups must be at least 1, got {args.capture_groups}")

    def finish(self, model, scan, result) -> None:
        if self.dump is not None:
            self.dump.write(result, model.patch_size)
            stats = self.dump.statistics(result)
            print(f"debug dump: {self.dump.directory} (patch var_zero_mean "
                  f"{stats['patch_amplitude']['var_zero_mean']:.4g}, canvas var_zero_mean "
                  f"{stats['canvas_amplitude']['var_zero_mean']:.4g})")
        if self.capture_path is not None:
            from ptychopinn.config import Backend
            from ptychopinn.diagnostics import capture_stages, save_stages, stage_meta

            accelerator = getattr(self.args, "accelerator", None)
            backend = Backend(getattr(self.args, "backend", None) or model.settings.backend).value
            n = self.args.capture_groups
            stages = capture_stages(model, scan, n, backend=backend, accelerator=accelerator)
            save_stages(self.capture_path, stages, stage_meta(model, scan, n, backend=backend))
            print(f"stages of {len(next(iter(stages.values())))} groups "
                  f"({', '.join(stages)}): {self.capture_path}")
        if getattr(self.args, "log_patch_stats", False):
            print(f"patch statistics: {self.patch_stats.path}")


# ---------------------------------------------------------------------------------------------
# comparison commands
# ---------------------------------------------------------------------------------------------


def _parser(commands, name: str, help_text: str, description: str) -> argparse.ArgumentParser:
    from ptychopinn.cli.main import _common_options, _HelpFormatter

    return commands.add_parser(name, parents=[_common_options()], help=help_text, description=description,
                               formatter_class=_HelpFormatter, allow_abbrev=False)


def _add_compare_stats(commands) -> None:
    p = _parser(
        commands, "compare-stats", "compare two debug-dump stats.json files (exit 1 if they diverge)",
        "Ratios and differences of mean, std and var_zero_mean of the patch and canvas amplitude "
        "blocks of two stats.json files (from infer --debug-dump). A metric diverges when "
        "|candidate − baseline| > tolerance·|baseline|; 'baseline_zero' marks an undefined ratio "
        "(baseline exactly 0) and does not fail by itself; a missing or non-finite value fails. "
        "Exit status: 0 all ok, 1 something diverged, 2 error.",
    )
    p.add_argument("baseline", type=Path, help="baseline stats.json (or its debug-dump directory)")
    p.add_argument("candidate", type=Path, help="candidate stats.json (or its debug-dump directory)")
    p.add_argument("--label-baseline", default="baseline", metavar="NAME", help="name of the baseline [%(default)s]")
    p.add_argument("--label-candidate", default="candidate", metavar="NAME", help="name of the candidate [%(default)s]")
    p.add_argument("--tolerance", type=float, default=0.05, metavar="REL", help="relative tolerance [%(default)s]")
    p.add_argument("--out", type=Path, default=None, metavar="FILE.json", help="write the report to this JSON file")
    p.set_defaults(handler=_cmd_compare_stats)


def _cmd_compare_stats(args: argparse.Namespace) -> int:
    from ptychopinn.diagnostics import (
        compare_stats,
        format_stats_report,
        load_stats,
        write_strict_json,
    )

    report = compare_stats(load_stats(args.baseline), load_stats(args.candidate), args.tolerance,
                           labels=(args.label_baseline, args.label_candidate))
    report["files"] = {"baseline": str(args.baseline), "candidate": str(args.candidate)}
    print(format_stats_report(report))
    if args.out:
        write_strict_json(args.out, report)
        print(f"report: {args.out}")
    return 0 if report["status"] == "ok" else EXIT_DIVERGED


def _add_compare_recon(commands) -> None:
    p = _parser(
        commands, "compare-recon", "compare two reconstructions (exit 1 if they diverge)",
        "Register reconstruction A to reconstruction B (the reference) over the overlap of their "
        "covered regions as in docs/design/spec.md#evaluation (origins from both files, sub-pixel registration, global "
        "phase and phase plane removed, amplitude scaled by the ratio of means), then report MAE, "
        "SSIM and FRC of amplitude and phase. Diverged when amplitude or phase SSIM < 1 − "
        "tolerance, or when the amplitude scale the registration applied differs from 1 by more "
        "than the tolerance. Exit status: 0 ok, 1 diverged, 2 error.",
    )
    p.add_argument("a", type=Path, help="reconstruction.npz to test")
    p.add_argument("b", type=Path, help="reference reconstruction.npz")
    p.add_argument("--label-a", default=None, metavar="NAME", help="name of A [its directory name]")
    p.add_argument("--label-b", default=None, metavar="NAME", help="name of B [its directory name]")
    p.add_argument("--tolerance", type=float, default=0.05, metavar="TOL",
                   help="SSIM must reach 1 − tolerance; amplitude scale within ±tolerance [%(default)s]")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="write DIR/compare_recon.json and DIR/compare_recon.png (side by side, "
                   "difference maps, FRC)")
    p.set_defaults(handler=_cmd_compare_recon)


def _labels(a: Path, b: Path, label_a: str | None, label_b: str | None) -> tuple[str, str]:
    default_a, default_b = a.resolve().parent.name or "A", b.resolve().parent.name or "B"
    if default_a == default_b:
        default_a, default_b = "A", "B"
    return label_a or default_a, label_b or default_b


def _cmd_compare_recon(args: argparse.Namespace) -> int:
    from ptychopinn.diagnostics import (
        compare_reconstructions,
        format_recon_report,
        write_strict_json,
    )
    from ptychopinn.reconstruction.result import Reconstruction

    labels = _labels(args.a, args.b, args.label_a, args.label_b)
    report, aligned, reference = compare_reconstructions(
        Reconstruction.load(args.a), Reconstruction.load(args.b), args.tolerance)
    report["labels"] = {"a": labels[0], "b": labels[1]}
    report["files"] = {"a": str(args.a), "b": str(args.b)}
    print(format_recon_report(report, labels))
    if args.out:
        from ptychopinn.plots import plot_comparison

        write_strict_json(args.out / "compare_recon.json", report)
        metrics = {**report["scores"], **report["frc"]}
        plot_comparison({labels[1]: reference, labels[0]: aligned}, metrics, args.out / "compare_recon.png")
        print(f"report: {args.out / 'compare_recon.json'}; figure: {args.out / 'compare_recon.png'}")
    return 0 if report["status"] == "ok" else EXIT_DIVERGED


def _add_compare_stages(commands) -> None:
    p = _parser(
        commands, "compare-stages", "compare two stage captures (exit 1 at the first divergent stage)",
        "Per stage (in forward order) the max |a − b| and the relative difference max|a − b| / "
        "max|a| of two captures written by infer --capture-stages (or the parity tooling); a "
        "stage diverges beyond --rtol, when present in one capture only, or on a shape mismatch "
        "or non-finite values. Prints the first divergent stage. Exit status: 0 ok, 1 diverged, "
        "2 error.",
    )
    p.add_argument("a", type=Path, help="reference capture .npz")
    p.add_argument("b", type=Path, help="capture .npz to test")
    p.add_argument("--rtol", type=float, default=1e-4, metavar="REL", help="relative tolerance per stage [%(default)s]")
    p.add_argument("--out", type=Path, default=None, metavar="FILE.json", help="write the report to this JSON file")
    p.set_defaults(handler=_cmd_compare_stages)


def _cmd_compare_stages(args: argparse.Namespace) -> int:
    from ptychopinn.diagnostics import (
        compare_stages,
        format_stages_report,
        load_stages,
        write_strict_json,
    )

    (stages_a, meta_a), (stages_b, meta_b) = load_stages(args.a), load_stages(args.b)
    report = compare_stages(stages_a, stages_b, args.rtol)
    report["meta"] = {"a": meta_a, "b": meta_b}
    report["same_groups"] = meta_a.get("group_indices") == meta_b.get("group_indices")
    names = (args.a.name, args.b.name)
    if names[0] == names[1]:
        names = (f"{args.a.parent.name}/{names[0]}", f"{args.b.parent.name}/{names[1]}")
    print(format_stages_report(report, names))
    if not report["same_groups"]:
        print("note: the two captures hold different groups (see meta.group_indices)")
    if args.out:
        write_strict_json(args.out, report)
        print(f"report: {args.out}")
    return 0 if report["status"] == "ok" else EXIT_DIVERGED


DIAGNOSTIC_COMMANDS = [_add_compare_stats, _add_compare_recon, _add_compare_stages]
