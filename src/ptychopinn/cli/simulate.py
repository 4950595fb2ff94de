"""``ptychopinn simulate``: a simulated scan with its ground-truth object.

Simulate a ptychographic scan (Poisson counts stored as amplitudes) and save it as a PtychoPINN .npz
file including objectGuess.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from ptychopinn.cli.common import EXIT_OK, UserError, add_command, new_outputs
from ptychopinn.data import save_scan
from ptychopinn.simulation.simulate import simulate


@dataclass(frozen=True)
class SimulateOptions:
    output: Path
    object: str
    phase: str | None
    size: int
    n: int
    probe: str
    scan: str
    step: float
    jitter: float
    photons: float
    seed: int
    quiet: bool
    probe_modes: int = 1
    bad_pixels: float = 0.0

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> SimulateOptions:
        options = cls(args.output, args.object, args.phase, args.size, args.n, args.probe, args.scan, args.step,
                      args.jitter, args.photons, args.seed, args.quiet, args.probe_modes, args.bad_pixels)
        options.check()
        return options

    def check(self) -> None:
        """Refuse values no scan can have, naming the flag."""
        impossible = {
            "--n": (self.n, self.n >= 2, "at least 2"),
            "--size": (self.size, self.size >= self.n, f"at least the patch size --n ({self.n})"),
            "--step": (self.step, self.step > 0, "positive"),
            "--jitter": (self.jitter, self.jitter >= 0, "0 or more"),
            "--photons": (self.photons, self.photons > 0, "positive"),
            "--probe-modes": (self.probe_modes, 1 <= self.probe_modes <= 7, "from 1 to 7"),
            "--bad-pixels": (self.bad_pixels, 0 <= self.bad_pixels < 1, "in [0, 1)"),
        }
        for flag, (value, possible, needed) in impossible.items():
            if not possible:
                raise UserError(f"{flag} {value:g}: must be {needed}")


def add_parser(commands) -> None:
    p = add_command(
        commands, "simulate", run, help="simulate a scan with its ground-truth object",
        doc=__doc__,
    )
    p.add_argument("output", type=Path, help="output .npz file")
    p.add_argument("--object", default="lines",
                   help="lines | grf | dots | star | image | PATH to an image file (amplitude) [%(default)s]")
    p.add_argument("--phase", default=None, help="image file for the phase (with --object PATH) [%(default)s]")
    p.add_argument("--size", type=int, default=256, help="object side in pixels [%(default)s]")
    p.add_argument("--n", type=int, default=64, help="patch (diffraction pattern) size N [%(default)s]")
    p.add_argument("--probe", default="disk",
                   help="disk | defocused | zone_plate (defocused, with a central stop) [%(default)s]")
    p.add_argument("--probe-modes", type=int, default=1,
                   help="incoherent probe modes K (partial coherence; powers 1 : 0.3 : 0.09 ...) [%(default)s]")
    p.add_argument("--bad-pixels", type=float, default=0.0,
                   help="fraction of detector pixels holding garbage (plus one dead column when > 0), "
                   "saved as the scan's bad-pixel mask [%(default)s]")
    p.add_argument("--scan", default="raster", help="raster | fermat | random [%(default)s]")
    p.add_argument("--step", type=float, default=6.0, help="mean scan step in pixels [%(default)s]")
    p.add_argument("--jitter", type=float, default=1.0, help="position jitter σ in pixels [%(default)s]")
    p.add_argument("--photons", type=float, default=1e6, help="mean photons per pattern [%(default)s]")
    p.add_argument("--seed", type=int, default=0, help="[%(default)s]")


def run(args: argparse.Namespace) -> int:
    options = SimulateOptions.from_args(args)

    with new_outputs(files=(options.output,)):
        scan = simulate(
            options.object, size=options.size, n=options.n, probe=options.probe, scan=options.scan,
            step=options.step, jitter=options.jitter, photons=options.photons, seed=options.seed,
            phase_image=options.phase, show_progress=not options.quiet,
            probe_modes=options.probe_modes, bad_pixel_fraction=options.bad_pixels,
        )
        save_scan(scan, options.output)
    print(f"wrote {options.output}: {scan.n_patterns} patterns of {scan.patch_size}×{scan.patch_size}, "
          f"object {scan.object.shape[0]}×{scan.object.shape[1]}, {scan.n_probe_modes} probe mode(s), "
          f"{0 if scan.bad_pixels is None else int(scan.bad_pixels.sum())} bad pixels")
    return EXIT_OK
