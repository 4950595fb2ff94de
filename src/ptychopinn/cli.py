"""The ``ptychopinn`` command line: parse, build settings, call the library, report.

Each sub-command lives in one ``_cmd_*`` function; all the work happens in the library.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger("ptychopinn")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


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
                   help="lines | grf | dots | star | image | PATH to an image file (amplitude)")
    p.add_argument("--phase", default=None, help="image file for the phase (with --object PATH)")
    p.add_argument("--size", type=int, default=256, help="object side in pixels")
    p.add_argument("--n", type=int, default=64, help="patch (diffraction pattern) size N")
    p.add_argument("--probe", default="disk", help="disk | defocused")
    p.add_argument("--scan", default="raster", help="raster | fermat | random")
    p.add_argument("--step", type=float, default=6.0, help="mean scan step in pixels")
    p.add_argument("--jitter", type=float, default=1.0, help="position jitter σ in pixels")
    p.add_argument("--photons", type=float, default=1e6, help="mean photons per pattern")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=_cmd_simulate)


def _cmd_simulate(args: argparse.Namespace) -> int:
    from ptychopinn.data import save_scan
    from ptychopinn.physics.simulate import simulate

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


COMMANDS = [_add_simulate, _add_inspect]


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    logging.getLogger("ptychopinn").setLevel(level)
    try:
        return int(args.handler(args) or 0)
    except (ValueError, FileNotFoundError) as error:
        log.error("%s", error)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
