"""``ptychopinn compare-stages REFERENCE CANDIDATE``: two stage captures, stage by stage.

Per stage (in forward order) the max |reference − candidate| and the relative difference
max|reference − candidate| / max|reference| of two captures written by infer --capture-stages (or
the parity tooling); a stage diverges beyond --tolerance, when present in one capture only, or on a
shape mismatch or non-finite values. Prints the first divergent stage.
"""

from __future__ import annotations

import argparse

from ptychopinn.cli import compare
from ptychopinn.cli.common import add_legacy, status_exit
from ptychopinn.diagnostics import compare_stages, format_stages_report, load_stages


def add_parser(commands) -> None:
    p = compare.add_compare_command(
        commands, "compare-stages", run, what="stage capture .npz",
        help="compare two stage captures (exit 1 at the first divergent stage)", doc=__doc__,
        tolerance=1e-4, tolerance_help="relative tolerance per stage",
    )
    add_legacy(p, "--rtol", "--tolerance")
    compare.add_legacy_report_file(p)


def run(args: argparse.Namespace) -> int:
    options = compare.CompareOptions.from_args(args, "compare_stages")

    (stages_a, meta_a), (stages_b, meta_b) = compare.read_pair(options.reference, options.candidate,
                                                       "stage capture .npz", load_stages)
    report = compare_stages(stages_a, stages_b, options.tolerance)
    report["meta"] = {"a": meta_a, "b": meta_b}
    report["same_groups"] = meta_a.get("group_indices") == meta_b.get("group_indices")
    names = (options.reference.name, options.candidate.name)
    if names[0] == names[1]:
        names = (f"{options.reference.parent.name}/{names[0]}", f"{options.candidate.parent.name}/{names[1]}")
    print(format_stages_report(report, names))
    if not report["same_groups"]:
        print("note: the two captures hold different groups (see meta.group_indices)")
    compare.write_report(options.report, report)
    return status_exit(report)
