"""The diagnostic flags of ``train`` and ``infer`` (docs/design/spec.md#diagnostics) and what they
turn on: patch statistics, the debug dump and the stage capture."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from ptychopinn.cli.common import UserError, add_legacy
from ptychopinn.config import Backend
from ptychopinn.diagnostics import (
    DebugDump,
    PatchStatsRecorder,
    capture_stages,
    save_stages,
    stage_meta,
)


@dataclass(frozen=True)
class DiagnosticOptions:
    """What the diagnostic flags ask for; the defaults cost nothing."""

    log_patch_stats: bool = False
    patch_stats_limit: int = 2
    debug_dump: Path | None = None  # the dump's directory; None: no dump
    capture_stages: Path | None = None
    capture_groups: int = 8

    @classmethod
    def from_args(cls, args: argparse.Namespace, output_dir: Path) -> DiagnosticOptions:
        dump = getattr(args, "debug_dump", None)
        options = cls(log_patch_stats=args.log_patch_stats, patch_stats_limit=args.patch_stats_limit,
                      debug_dump=None if dump is None else Path(dump) if dump else output_dir / "debug_dump",
                      capture_stages=getattr(args, "capture_stages", None),
                      capture_groups=getattr(args, "capture_groups", 8))
        if options.patch_stats_limit < 1:
            raise UserError(f"--patch-stats-limit must be at least 1, got {options.patch_stats_limit}")
        if options.capture_stages is not None and options.capture_groups < 1:
            raise UserError(f"--capture-groups must be at least 1, got {options.capture_groups}")
        return options


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
    add_legacy(parser, "--debug_dump", "--debug-dump")
    group.add_argument("--capture-stages", dest="capture_stages", type=Path, default=None, metavar="FILE.npz",
                       help="save the named intermediate tensors of one forward pass of the first "
                       "--capture-groups groups (for compare-stages)")
    group.add_argument("--capture-groups", dest="capture_groups", type=int, default=8, metavar="K",
                       help="groups captured by --capture-stages [%(default)s]")


def train_observers(options: DiagnosticOptions, output_dir: Path) -> list:
    """Batch observers for ``train_with_summary`` (empty unless a diagnostic flag is given)."""
    if not options.log_patch_stats:
        return []

    return [PatchStatsRecorder(output_dir / "analysis", "train", options.patch_stats_limit)]


class InferDiagnostics:
    """The inference diagnostics asked for: :attr:`observers` go to ``reconstruct``;
    :meth:`finish` writes the debug dump and the stage capture."""

    def __init__(self, options: DiagnosticOptions, output_dir: Path, accelerator: str | None = None,
                 backend: Backend | str | None = None):
        self.options = options
        self.accelerator = accelerator
        self.backend = backend
        self.observers: list = []
        self.dump = None
        if options.log_patch_stats:

            self.patch_stats = PatchStatsRecorder(Path(output_dir) / "analysis", "infer", options.patch_stats_limit)
            self.observers.append(self.patch_stats)
        if options.debug_dump is not None:

            self.dump = DebugDump(options.debug_dump)
            self.observers.append(self.dump)

    def finish(self, model, scan, result) -> None:
        if self.dump is not None:
            self.dump.write(result, model.patch_size)
            stats = self.dump.statistics(result)
            print(f"debug dump: {self.dump.directory} (patch var_zero_mean "
                  f"{stats['patch_amplitude']['var_zero_mean']:.4g}, canvas var_zero_mean "
                  f"{stats['canvas_amplitude']['var_zero_mean']:.4g})")
        capture = self.options.capture_stages
        if capture is not None:

            backend = Backend(self.backend or model.settings.backend).value
            n = self.options.capture_groups
            stages = capture_stages(model, scan, n, backend=backend, accelerator=self.accelerator)
            save_stages(capture, stages, stage_meta(model, scan, n, backend=backend))
            print(f"stages of {len(next(iter(stages.values())))} groups ({', '.join(stages)}): {capture}")
        if self.options.log_patch_stats:
            print(f"patch statistics: {self.patch_stats.path}")
