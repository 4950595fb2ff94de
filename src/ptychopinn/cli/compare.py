"""What the three ``compare-*`` commands share: ``REFERENCE CANDIDATE`` in this order,
``--tolerance`` and ``--out-dir DIR``; exit 0 when the two agree within the tolerance, 1 when
anything diverged (so they can gate scripts), 2 on errors (unreadable or malformed inputs)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from ptychopinn.cli.common import add_command, add_hidden, new_outputs, read_input
from ptychopinn.diagnostics import write_strict_json

EXIT_STATUS_TEXT = "Exit status: 0 ok, 1 diverged, 2 error."


@dataclass(frozen=True)
class CompareOptions:
    """The command line of a ``compare-*`` command, typed."""

    reference: Path
    candidate: Path
    tolerance: float
    out_dir: Path | None
    report: Path | None  # the JSON report: DIR/<command>.json, or the predecessor's --out FILE
    labels: tuple[str | None, str | None]  # names given for (reference, candidate), if any

    @classmethod
    def from_args(cls, args: argparse.Namespace, report_name: str) -> CompareOptions:
        return cls(
            args.reference, args.candidate, check_tolerance(args.tolerance), args.out_dir,
            report_path(args.out_dir, getattr(args, "out_file", None), report_name),
            (getattr(args, "label_reference", None), getattr(args, "label_candidate", None)),
        )


def add_compare_command(commands, name: str, run, *, what: str, help: str, doc: str,
                        tolerance: float, tolerance_help: str) -> argparse.ArgumentParser:
    p = add_command(commands, name, run, help=help, doc=doc, epilog=EXIT_STATUS_TEXT)
    p.add_argument("reference", type=Path, metavar="REFERENCE", help=f"the reference {what}")
    p.add_argument("candidate", type=Path, metavar="CANDIDATE", help=f"the {what} to test against it")
    p.add_argument("--tolerance", type=float, default=tolerance, metavar="TOL",
                   help=f"{tolerance_help} [%(default)s]")
    p.add_argument("--out-dir", dest="out_dir", type=Path, default=None, metavar="DIR",
                   help=f"write the report to DIR/{name.replace('-', '_')}.json")
    return p


def add_legacy_report_file(parser: argparse.ArgumentParser) -> None:
    """The predecessor spelling ``--out FILE.json``: the report's own file name."""
    add_hidden(parser, "--out", dest="out_file", type=Path, default=None)


def report_path(out_dir: Path | None, out_file: Path | None, name: str) -> Path | None:
    if out_file is not None:
        return out_file
    return None if out_dir is None else out_dir / f"{name}.json"


def read_pair(reference: Path, candidate: Path, what: str, load):
    """Both inputs, loaded; either one unreadable is a user error naming it."""
    return read_input(reference, what, load), read_input(candidate, what, load)


def write_report(path: Path | None, report: dict) -> None:
    """The report as strict JSON to ``path`` (nothing when None), announced on stdout."""
    if path is None:
        return

    with new_outputs(files=(path,)):
        write_strict_json(path, report)
    print(f"report: {path}")


def check_tolerance(tolerance: float) -> float:
    if not tolerance >= 0:
        raise ValueError(f"--tolerance must be 0 or more, got {tolerance}")
    return tolerance
