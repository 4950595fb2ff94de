"""``ptychopinn demo``: reconstruct a fresh simulated scan with the shipped general model.

The main job end to end on built-in simulated data: a scan the shipped general model never saw
(an object made of two held-out images, a defocused probe of none of the pretraining families) is
reconstructed in one pass, fine-tuned on its own diffraction (no ground truth; --epochs), refined,
and compared with the iterative baseline from a flat start. --train trains a network on the scan
instead (--epochs then counts training epochs).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ptychopinn.cli.common import EXIT_OK, add_command, add_legacy, new_outputs
from ptychopinn.cli.flags import add_setting_flags, flags_for, overrides_from, resolve
from ptychopinn.demo import demo_settings, run_demo

FLAGS = flags_for(names=("--epochs", "--gridsize", "--seed"))


@dataclass(frozen=True)
class DemoOptions:
    output_dir: Path
    overrides: dict[str, Any]
    train: bool
    quiet: bool

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> DemoOptions:
        return cls(args.output_dir, overrides_from(args, FLAGS), args.train, args.quiet)


def add_parser(commands) -> None:
    p = add_command(
        commands, "demo", run,
        help="reconstruct, fine-tune, refine and evaluate a fresh simulated scan (about 2 minutes on a laptop)",
        doc=__doc__,
    )
    p.add_argument("--train", action="store_true",
                   help="train a network on the scan instead of using the shipped general model")
    p.add_argument("--output-dir", dest="output_dir", type=Path, default=Path("demo_output"),
                   help="output directory [%(default)s]")
    add_legacy(p, "--output_dir", "--output-dir")
    add_setting_flags(p, FLAGS, "settings (the demo's own defaults)", demo_settings())


def run(args: argparse.Namespace) -> int:
    options = DemoOptions.from_args(args)

    settings = resolve(options.overrides, FLAGS, base=demo_settings())
    with new_outputs(options.output_dir):
        report = run_demo(options.output_dir, settings=settings, quiet=options.quiet, train=options.train,
                          epochs=options.overrides.get("training", {}).get("epochs"))
    print(report.format())
    return EXIT_OK
