"""``ptychopinn inspect``: what a scientist checks in a scan file before reconstructing it.

Print pattern count and size, value kind, photons, scan extent, step, probe size and overlap;
optionally draw an overview figure.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from ptychopinn.cli.common import EXIT_OK, add_command, new_outputs, read_input
from ptychopinn.data import load_scan
from ptychopinn.data.summary import summarize_scan
from ptychopinn.plots import plot_scan_overview


@dataclass(frozen=True)
class InspectOptions:
    scan: Path
    plot: Path | None
    intensity: bool

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> InspectOptions:
        return cls(args.scan, args.plot, args.intensity)


def add_parser(commands) -> None:
    p = add_command(
        commands, "inspect", run, help="summarise a scan file",
        doc=__doc__,
    )
    p.add_argument("scan", type=Path, help="scan: this project's .npz, a ptychodus export .npz, a ptychodus workflow directory or diffraction.h5/product.h5, or a CXI file (docs/guides/own-data.md)")
    p.add_argument("--plot", type=Path, default=None, help="write positions, probe and mean pattern to this PNG")
    p.add_argument("--intensity", action="store_true", help="the file holds intensities (counts)")


def run(args: argparse.Namespace) -> int:
    options = InspectOptions.from_args(args)

    scan = read_input(options.scan, "scan file", lambda path: load_scan(path, intensity=options.intensity))
    print(summarize_scan(scan).format())
    if options.plot:

        with new_outputs(files=(options.plot,)):
            plot_scan_overview(scan, options.plot)
        print(f"overview figure: {options.plot}")
    return EXIT_OK
