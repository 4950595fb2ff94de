"""``ptychopinn parity``: one model in PyTorch and in TensorFlow, compared stage by stage.
Nothing here imports TensorFlow; the command loads it when it runs.

Feed the identical grouped, normalised batch (the first --groups groups of the scan, grouped with
the model's settings) to the PyTorch and the TensorFlow backend and report, per forward stage, the
max absolute and the relative difference max|a − b| / max|a| (PyTorch is the reference); then
reconstruct the whole scan with each backend and compare the stats.json statistics and the stitched
canvases (registered as in docs/design/spec.md#evaluation, scored with MAE/SSIM/FRC). Runs on the
CPU. Exit status: 0 every stage, statistic and canvas within --rtol, 1 beyond it, 2 error.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from ptychopinn.cli.common import (
    EXIT_DIVERGED,
    EXIT_OK,
    add_command,
    add_legacy,
    add_model_and_data,
    check_backend,
    new_outputs,
    read_input,
    read_model,
)
from ptychopinn.data import load_scan
from ptychopinn.diagnostics.parity import backend_parity, format_parity_report


@dataclass(frozen=True)
class ParityOptions:
    model: Path
    data: Path
    groups: int
    output_dir: Path | None
    tolerance: float

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ParityOptions:
        if args.groups < 1:
            raise ValueError(f"--groups must be at least 1, got {args.groups}")
        if args.rtol < 0:
            raise ValueError(f"--rtol must be 0 or more, got {args.rtol}")
        return cls(args.model, args.data, args.groups, args.output_dir, args.rtol)


def add_parser(commands) -> None:
    p = add_command(
        commands, "parity", run,
        help="run a model in PyTorch and in TensorFlow and compare (exit 1 beyond tolerance)", doc=__doc__,
    )
    add_model_and_data(p, "model.pinn (trained by either backend), or the directory holding it")
    p.add_argument("--groups", type=int, default=64, help="groups in the compared batch [%(default)s]")
    p.add_argument("--output-dir", dest="output_dir", type=Path, default=None,
                   help="write parity.json, stages_{torch,tensorflow}.npz, {torch,tensorflow}/stats.json "
                   "(debug dumps), {torch,tensorflow}/reconstruction.npz and compare_recon.png here")
    add_legacy(p, "--output_dir", "--output-dir")
    p.add_argument("--rtol", type=float, default=1e-4,
                   help="relative tolerance (float32 arithmetic gives ~1e-6) [%(default)s]")


def run(args: argparse.Namespace) -> int:
    options = ParityOptions.from_args(args)

    check_backend("tensorflow")
    model = read_model(options.model)
    scan = read_input(options.data, "scan file", lambda p: load_scan(p, intensity=model.settings.data.intensity))
    with new_outputs(options.output_dir):
        result = backend_parity(model, scan, n_groups=options.groups, rtol=options.tolerance,
                                output_dir=options.output_dir)
    print(format_parity_report(result.report))
    if options.output_dir:
        print(f"report: {options.output_dir / 'parity.json'}")
    return EXIT_OK if result.ok else EXIT_DIVERGED
