"""``ptychopinn train``: train the network on a scan's diffraction alone.

Train the physics-informed network on a scan's diffraction alone. Writes DIR/model.pinn,
DIR/config.yaml (resolved settings), DIR/metrics.csv, DIR/training_curves.png and checkpoints under
DIR/checkpoints/. Settings come from the defaults, then --config FILE, then the flags given. With
--test-data the scan is reconstructed, stitched (and evaluated, if it has objectGuess) into
DIR/test/ afterwards.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ptychopinn.api import train_with_summary
from ptychopinn.cli import common
from ptychopinn.cli.diagnostics import (
    DiagnosticOptions,
    add_train_diagnostic_flags,
    train_observers,
)
from ptychopinn.cli.flags import (
    TRAIN_SECTIONS,
    add_setting_flags,
    flags_for,
    overrides_from,
    resolve,
)
from ptychopinn.cli.infer import ReportOptions, reconstruct_and_report
from ptychopinn.data import load_scan

log = logging.getLogger("ptychopinn")

FLAGS = flags_for(paths=TRAIN_SECTIONS, exclude=("--passes", "--refine-passes"))


@dataclass(frozen=True)
class TrainOptions:
    train_data: Path
    test_data: Path | None
    output_dir: Path
    config: Path | None
    resume: Path | None
    overrides: dict[str, Any]
    diagnostics: DiagnosticOptions
    quiet: bool

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> TrainOptions:
        if args.do_stitching and args.test_data is None:
            log.info("--do_stitching: there is no --test-data to reconstruct and stitch")
        return cls(args.train_data, args.test_data, args.output_dir, args.config, args.resume,
                   overrides_from(args, FLAGS), DiagnosticOptions.from_args(args, args.output_dir), args.quiet)


def add_parser(commands) -> None:
    p = common.add_command(
        commands, "train", run, help="train the PINN on a scan (no ground truth needed)",
        doc=__doc__,
    )
    p.add_argument("--train-data", dest="train_data", type=Path, required=True, help="training scan (any format --data reads: docs/guides/own-data.md)")
    common.add_legacy(p, "--train_data_file", "--train-data")
    p.add_argument("--test-data", dest="test_data", type=Path, default=None,
                   help="scan to reconstruct (and evaluate, if it has objectGuess) after training")
    common.add_legacy(p, "--test_data_file", "--test-data")
    # the predecessor's switch for what --test-data does anyway
    common.add_hidden(p, "--do_stitching", dest="do_stitching", action="store_true")
    p.add_argument("--output-dir", dest="output_dir", type=Path, required=True, help="output directory")
    common.add_legacy(p, "--output_dir", "--output-dir")
    p.add_argument("--config", type=Path, default=None, help="YAML/JSON settings file")
    p.add_argument("--resume", type=Path, default=None, help="continue from a Lightning checkpoint")
    add_setting_flags(p, FLAGS, "settings (override --config)")
    add_train_diagnostic_flags(p)


def run(args: argparse.Namespace) -> int:
    options = TrainOptions.from_args(args)

    settings = resolve(options.overrides, FLAGS, config=options.config)
    common.check_backend(settings.backend)
    common.check_accelerator(settings.training.accelerator)
    scan = common.read_input(options.train_data, "scan file", lambda p: load_scan(p, intensity=settings.data.intensity))
    test_scan = None
    if options.test_data is not None:
        test_scan = common.read_input(options.test_data, "scan file",
                               lambda p: load_scan(p, intensity=settings.data.intensity))
    if options.resume is not None and not options.resume.is_file():
        raise FileNotFoundError(f"{options.resume}: no such checkpoint (--resume)")
    with common.new_outputs(options.output_dir):
        summary = train_with_summary(scan, options.output_dir, settings, resume=options.resume,
                                     quiet=options.quiet,
                                     batch_observers=train_observers(options.diagnostics, options.output_dir))
        stages = f" ({summary.curriculum_epochs_run} at gridsize 1)" if summary.curriculum_epochs_run else ""
        print(f"trained {summary.epochs_run} epochs{stages} on {summary.device}; model: {summary.model_path}")
        if summary.model.probe_guess_digest is not None:
            print(f"probe: learned ({len(summary.model.probes)} mode(s)), kept in the model")
        if summary.collapse_warnings:
            # the last epoch's verdict is what the saved model is closest to; all were logged
            print(f"warning: {summary.collapse_warnings[-1]} ({len(summary.collapse_warnings)} epoch(s) flagged)")
        if test_scan is not None:
            # the test scan is reconstructed as the predecessor did: its --n-groups groups
            report = ReportOptions(
                data=options.test_data, output_dir=options.output_dir / "test",
                n_groups=settings.data.n_groups, accelerator=settings.training.accelerator,
                diagnostics=DiagnosticOptions(options.diagnostics.log_patch_stats,
                                              options.diagnostics.patch_stats_limit),
                quiet=options.quiet)
            reconstruct_and_report(summary.model, test_scan, summary.model.settings, report)
    return common.EXIT_OK
