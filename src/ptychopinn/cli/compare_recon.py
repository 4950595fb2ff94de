"""``ptychopinn compare-recon REFERENCE CANDIDATE``: two reconstructions, registered and scored.

Register the candidate to the reference over the overlap of their covered regions as in
docs/design/spec.md#evaluation (origins from both files, sub-pixel registration, global phase and
phase plane removed, amplitude scaled by the ratio of means), then report MAE, SSIM and FRC of
amplitude and phase. Diverged when amplitude or phase SSIM < 1 − tolerance, or when the amplitude
scale the registration applied differs from 1 by more than the tolerance. With --out-dir DIR also
DIR/compare_recon.png (side by side, difference maps, FRC).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ptychopinn.cli import compare
from ptychopinn.cli.common import add_legacy, new_outputs, status_exit
from ptychopinn.diagnostics import (
    compare_reconstructions,
    format_recon_report,
    write_strict_json,
)
from ptychopinn.plots import plot_comparison
from ptychopinn.reconstruction.result import Reconstruction


def add_parser(commands) -> None:
    p = compare.add_compare_command(
        commands, "compare-recon", run, what="reconstruction.npz",
        help="compare two reconstructions (exit 1 if they diverge)", doc=__doc__,
        tolerance=0.05, tolerance_help="SSIM must reach 1 − tolerance; amplitude scale within ±tolerance",
    )
    p.add_argument("--label-reference", dest="label_reference", default=None, metavar="NAME",
                   help="name of the reference [its directory name]")
    add_legacy(p, "--label-b", "--label-reference")
    p.add_argument("--label-candidate", dest="label_candidate", default=None, metavar="NAME",
                   help="name of the candidate [its directory name]")
    add_legacy(p, "--label-a", "--label-candidate")
    add_legacy(p, "--out", "--out-dir")  # the predecessor's --out was a directory too


def _labels(a: Path, b: Path, label_a: str | None, label_b: str | None) -> tuple[str, str]:
    default_a, default_b = a.resolve().parent.name or "A", b.resolve().parent.name or "B"
    if default_a == default_b:
        default_a, default_b = "A", "B"
    return label_a or default_a, label_b or default_b


def run(args: argparse.Namespace) -> int:
    options = compare.CompareOptions.from_args(args, "compare_recon")
    labels = _labels(options.candidate, options.reference, options.labels[1], options.labels[0])

    reference, candidate = compare.read_pair(options.reference, options.candidate, "reconstruction.npz",
                                     Reconstruction.load)
    report, aligned, registered_reference = compare_reconstructions(candidate, reference, options.tolerance)
    report["labels"] = {"reference": labels[1], "candidate": labels[0]}
    report["files"] = {"reference": str(options.reference), "candidate": str(options.candidate)}
    print(format_recon_report(report, labels))
    if options.out_dir:

        with new_outputs(options.out_dir):
            write_strict_json(options.out_dir / "compare_recon.json", report)
            metrics = {**report["scores"], **report["frc"]}
            plot_comparison({labels[1]: registered_reference, labels[0]: aligned}, metrics,
                            options.out_dir / "compare_recon.png")
        print(f"report: {options.out_dir / 'compare_recon.json'}; figure: {options.out_dir / 'compare_recon.png'}")
    return status_exit(report)
