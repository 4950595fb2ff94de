"""``ptychopinn compare-stats REFERENCE CANDIDATE``: two debug-dump stats.json files.

Ratios and differences of mean, std and var_zero_mean of the patch and canvas amplitude blocks of
two stats.json files (from infer --debug-dump). A metric diverges when |candidate − reference| >
tolerance·|reference|; 'baseline_zero' marks an undefined ratio (reference exactly 0) and does not
fail by itself; a missing or non-finite value fails.
"""

from __future__ import annotations

import argparse

from ptychopinn.cli import compare
from ptychopinn.cli.common import add_legacy, status_exit
from ptychopinn.diagnostics import compare_stats, format_stats_report, load_stats


def add_parser(commands) -> None:
    p = compare.add_compare_command(
        commands, "compare-stats", run, what="stats.json (or its debug-dump directory)",
        help="compare two debug-dump stats.json files (exit 1 if they diverge)", doc=__doc__,
        tolerance=0.05, tolerance_help="relative tolerance",
    )
    p.add_argument("--label-reference", dest="label_reference", default="baseline", metavar="NAME",
                   help="name of the reference [%(default)s]")
    add_legacy(p, "--label-baseline", "--label-reference")
    p.add_argument("--label-candidate", default="candidate", metavar="NAME",
                   help="name of the candidate [%(default)s]")
    compare.add_legacy_report_file(p)


def run(args: argparse.Namespace) -> int:
    options = compare.CompareOptions.from_args(args, "compare_stats")

    reference, candidate = compare.read_pair(options.reference, options.candidate, "stats.json", load_stats)
    report = compare_stats(reference, candidate, options.tolerance, labels=options.labels)
    report["files"] = {"baseline": str(options.reference), "candidate": str(options.candidate)}
    print(format_stats_report(report))
    compare.write_report(options.report, report)
    return status_exit(report)
