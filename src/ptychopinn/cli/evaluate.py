"""``ptychopinn evaluate``: score a reconstruction against the scan's reference object.

Register the reconstruction to the scan's objectGuess over the scanned region, remove phase offset
and plane, and report MAE, PSNR, SSIM, NRMSE and FRC. Writes metrics.json and comparison.png.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from ptychopinn.cli.common import (
    EXIT_OK,
    add_command,
    add_legacy,
    metrics_headline,
    new_outputs,
    read_input,
)
from ptychopinn.data import load_scan
from ptychopinn.evaluation.data_fit import data_fit
from ptychopinn.reconstruction.result import Reconstruction


@dataclass(frozen=True)
class EvaluateOptions:
    recon: Path
    truth: Path
    output_dir: Path

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> EvaluateOptions:
        return cls(args.recon, args.truth, args.output_dir or args.recon.parent)


def add_parser(commands) -> None:
    p = add_command(
        commands, "evaluate", run, help="score a reconstruction against the reference object",
        doc=__doc__,
    )
    p.add_argument("--recon", type=Path, required=True, help="reconstruction.npz")
    p.add_argument("--truth", type=Path, required=True, help="scan .npz with objectGuess")
    p.add_argument("--output-dir", dest="output_dir", type=Path, default=None,
                   help="where to write metrics.json and comparison.png [next to --recon]")
    add_legacy(p, "--output_dir", "--output-dir")


def run(args: argparse.Namespace) -> int:
    options = EvaluateOptions.from_args(args)
    from ptychopinn.evaluation.truth import evaluate_and_plot

    reconstruction = read_input(options.recon, "reconstruction.npz", Reconstruction.load)
    scan = read_input(options.truth, "scan file", load_scan)
    if scan.object is None:
        raise FileNotFoundError(f"{options.truth}: no objectGuess to evaluate against")
    with new_outputs(options.output_dir):
        fit = data_fit(scan, reconstruction)
        print(metrics_headline(evaluate_and_plot(reconstruction, scan, options.output_dir, fit=fit)))
    print(f"reconstruction: {fit.format()}")
    print(f"metrics: {options.output_dir / 'metrics.json'}; figure: {options.output_dir / 'comparison.png'}")
    return EXIT_OK
