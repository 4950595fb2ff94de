"""Refinement with and without position correction on scans whose positions are wrong (issue 27).

    python benchmarks/position_refinement.py [--passes 30] [--threads 1]

Each case simulates a scan (N = 64, 160 × 160 object, defocused probe, step 8 px, 1e6 photons), then
moves the positions refinement is given by a seeded error: none (does the correction leave exact
positions alone?), random per position (0.5, 1 or 2 px RMS,
the jitter of a stage) or a smooth drift along the scan (1.5 px RMS, a slow wander of the stage).
Both runs refine from a flat object with the true probe (fixed) for the same passes; the position
run uses the defaults of ``refine_positions``. Reported: phase SSIM against the truth (the
evaluation's alignment and phase-offset conventions), the RMS position error after removing the
mean offset (a common shift is the object's, which the data cannot see) at the start and the end,
and wall time; the reference row refines at the true positions.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import add_threads_flag, machine_description, print_json, use_threads, write_results  # noqa: E402

from ptychopinn.api import evaluate  # noqa: E402
from ptychopinn.reconstruction.refine import RefineOptions, refine  # noqa: E402
from ptychopinn.simulation.simulate import simulate  # noqa: E402

SCAN = {"size": 160, "n": 64, "probe": "defocused", "step": 8.0, "jitter": 0.5, "photons": 1e6}
OBJECTS = {"lines": 1, "grf": 5}  # object: simulation seed
ERRORS = {"exact": ("none", 0.0), "random 0.5 px": ("random", 0.5), "random 1 px": ("random", 1.0), "random 2 px": ("random", 2.0),
          "drift 1.5 px": ("drift", 1.5)}


def position_error(kind: str, rms_px: float, count: int, seed: int) -> np.ndarray:
    """(count, 2) [x, y] errors of ``rms_px`` RMS (2-D, mean removed): none, independent per position,
    or a smooth drift along the scan order (a few slow sinusoids per axis)."""
    rng = np.random.default_rng(seed)
    if kind == "none":
        return np.zeros((count, 2))
    if kind == "random":
        error = rng.normal(0.0, 1.0, (count, 2))
    else:
        t = np.linspace(0.0, 1.0, count)[:, None]
        periods = rng.uniform(0.3, 1.5, (3, 2))
        phases = rng.uniform(0.0, 2 * np.pi, (3, 2))
        error = np.sum(np.sin(2 * np.pi * t[None] / periods[:, None] + phases[:, None]), axis=0)
    error = error - error.mean(axis=0)
    return error * rms_px / np.sqrt(np.mean(np.sum(error**2, axis=1)))


def rms_error(positions_xy: np.ndarray, truth_xy: np.ndarray) -> float:
    error = positions_xy - truth_xy
    error = error - error.mean(axis=0)
    return float(np.sqrt(np.mean(np.sum(error**2, axis=1))))


def run(truth, start, passes: int, positions: bool) -> dict:
    began = time.perf_counter()
    result = refine(start, None, RefineOptions(passes=passes, refine_positions=positions))
    seconds = time.perf_counter() - began
    return {"phase_ssim": round(evaluate(result.reconstruction, truth)["phase_ssim"], 4),
            "position_error_px": round(rms_error(result.positions_xy, truth.positions_xy), 3),
            "seconds": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passes", type=int, default=30, help="refinement passes of every run [%(default)s]")
    add_threads_flag(parser)
    args = parser.parse_args()
    use_threads(args.threads)
    rows = {}
    for name, seed in OBJECTS.items():
        truth = simulate(name, seed=seed, **SCAN)
        reference = run(truth, truth, args.passes, positions=False)
        print(f"{name}: {truth.n_patterns} patterns, true positions {reference}", flush=True)
        rows[name] = {"patterns": truth.n_patterns, "true positions": reference, "cases": {}}
        for index, (case, (kind, rms)) in enumerate(ERRORS.items()):
            error = position_error(kind, rms, truth.n_patterns, seed=100 + index)
            start = replace(truth, xcoords=truth.xcoords + error[:, 0], ycoords=truth.ycoords + error[:, 1])
            row = {"start_error_px": round(rms_error(start.positions_xy, truth.positions_xy), 3),
                   "positions fixed": run(truth, start, args.passes, positions=False),
                   "positions refined": run(truth, start, args.passes, positions=True)}
            print(f"  {case}: {row}", flush=True)
            rows[name]["cases"][case] = row
    command = "python benchmarks/position_refinement.py " + " ".join(sys.argv[1:])
    payload = {"passes": args.passes, "scan": SCAN, "rows": rows, "command": command,
               "cost_ratio": cost_ratio(rows)}
    json_path, md_path = write_results("position_refinement", payload,
                                       markdown(rows, command, machine_description(), args.passes))
    print_json(payload)
    print(f"wrote {json_path} and {md_path}")


def cost_ratio(rows: dict) -> float:
    """Wall time with position refinement over without, summed over every case."""
    cases = [case for row in rows.values() for case in row["cases"].values()]
    fixed = sum(case["positions fixed"]["seconds"] for case in cases)
    return round(sum(case["positions refined"]["seconds"] for case in cases) / fixed, 2)


def markdown(rows: dict, command: str, machine: dict, passes: int) -> str:
    lines = ["# Position refinement: refinement from flat with and without position correction", "",
             f"Command: `{command}`", "", f"Machine: {machine}", "", __doc__.split("\n\n", 1)[1].strip(), "",
             f"{passes} passes per run. Position error: RMS after removing the mean offset, start → end.", "",
             "| object | positions | start error px | phase SSIM fixed | phase SSIM refined | end error px "
             "| s fixed | s refined |",
             "|---|---|---|---|---|---|---|---|"]
    for name, row in rows.items():
        true = row["true positions"]
        lines.append(f"| {name} | true | 0 | {true['phase_ssim']:.3f} | | | {true['seconds']:.1f} | |")
        for case, result in row["cases"].items():
            fixed, moved = result["positions fixed"], result["positions refined"]
            lines.append(f"| {name} | {case} | {result['start_error_px']:.2f} | {fixed['phase_ssim']:.3f} | "
                         f"{moved['phase_ssim']:.3f} | {moved['position_error_px']:.2f} | "
                         f"{fixed['seconds']:.1f} | {moved['seconds']:.1f} |")
    lines += ["", f"Wall time with position refinement / without, over all cases: {cost_ratio(rows)}×.",
              "Seconds are wall time on a machine that may be shared with other jobs: compare them within a run only."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
