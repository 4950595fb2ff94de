"""``ptychopinn demo``: simulate, train, reconstruct, refine and evaluate on built-in data.

The main job end to end on built-in simulated data.
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
    quiet: bool

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> DemoOptions:
        return cls(args.output_dir, overrides_from(args, FLAGS), args.quiet)


def add_parser(commands) -> None:
    p = add_command(
        commands, "demo", run,
        help="simulate, train, reconstruct and evaluate in one go (about 3 minutes on a laptop)", doc=__doc__,
    )
    p.add_argument("--output-dir", dest="output_dir", type=Path, default=Path("demo_output"),
                   help="output directory [%(default)s]")
    add_legacy(p, "--output_dir", "--output-dir")
    add_setting_flags(p, FLAGS, "settings (the demo's own defaults)", demo_settings())


def run(args: argparse.Namespace) -> int:
    options = DemoOptions.from_args(args)

    settings = resolve(options.overrides, FLAGS, base=demo_settings())
    with new_outputs(options.output_dir):
        report = run_demo(options.output_dir, settings=settings, quiet=options.quiet)
    print(report.format())
    return EXIT_OK
