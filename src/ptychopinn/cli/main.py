"""The ``ptychopinn`` command line: the command table, logging, and the one place that turns a
user error into one line on stderr and exit status 2.

Each command lives in its own module (``add_parser(commands)`` and ``run(args)``); ``run`` turns
the parsed arguments into typed options and settings at its first line and leaves the work to the
library.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from ptychopinn.cli import (
    compare_recon,
    compare_stages,
    compare_stats,
    convert,
    demo,
    evaluate,
    export,
    infer,
    inspect_scan,
    parity,
    pretrain,
    refine,
    simulate,
    train,
)
from ptychopinn.cli.common import EXIT_USER_ERROR, USER_ERRORS, CommandParser, HelpFormatter
from ptychopinn.cli.flags import describe_validation_error

log = logging.getLogger("ptychopinn")

COMMANDS = (simulate, inspect_scan, convert, train, pretrain, infer, evaluate, refine, demo, parity,
            compare_stats, compare_recon, compare_stages, export)


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="ptychopinn",
        description="Physics-informed neural-network reconstruction for ptychography.",
        formatter_class=HelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=CommandParser)
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


def _lightning_prints_its_own_info(record: logging.LogRecord) -> bool:
    """Lightning attaches its own console handler; without this every one of its lines (device,
    tips) would be printed a second time through ours."""
    return record.levelno >= logging.WARNING or not record.name.startswith("lightning")


def _configure_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    logging.getLogger("ptychopinn").setLevel(level)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_lightning_prints_its_own_info)


def describe(error: BaseException) -> str:
    """A user error as one line."""
    if isinstance(error, ValidationError):
        text = describe_validation_error(error)
    elif isinstance(error, OSError) and error.filename is not None and error.strerror:
        text = f"{error.filename}: {error.strerror}"
    else:
        text = str(error) or type(error).__name__
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:  # --help (0) or a malformed command line (2, usage printed)
        return int(exit.code or 0)
    _configure_logging(args.verbose, args.quiet)
    try:
        return int(args.run(args) or 0)
    except USER_ERRORS as error:
        print(f"ptychopinn {args.command}: error: {describe(error)}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
