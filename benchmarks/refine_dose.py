"""Refinement's two optimisers against the dose: which one to use at how many counts per pattern.

    python benchmarks/refine_dose.py [--photons 1e4 3e4 1e5 3e5 1e6 1e7] [--passes 20] [--seed 1] [--n 64]

Flat-start refinement of the quality benchmark's eight scans (objects grf, lines, image, star;
probes disk and defocused; 160² objects, N = 64, step 5) simulated at each dose, once with Adam and
once with mpie, otherwise default options. Records phase SSIM after every pass, the passes to phase
SSIM 0.9 and the final phase SSIM; the seed (1) is not the one the optimisers' settings were chosen
on (0). ``--n`` scales the pattern size with the object and the step (N = 128: 320² objects, step
10, the same overlap), to see whether the threshold carries over in counts per pattern; its results
are written as refine_dose_n<N>_*.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import print_json, write_results  # noqa: E402
from quality import or_dash, passes_to, scored_refinement  # noqa: E402

from ptychopinn.physics.scaling import mean_total_counts  # noqa: E402
from ptychopinn.reconstruction.refine import RefineOptimizer  # noqa: E402
from ptychopinn.simulation.simulate import simulate  # noqa: E402

OPTIMIZERS = (RefineOptimizer.adam.value, RefineOptimizer.mpie.value)


def run_case(obj: str, probe: str, photons: float, passes: int, seed: int, n: int = 64) -> dict:
    scale = n / 64
    scan = simulate(obj, size=round(160 * scale), n=n, step=5.0 * scale, photons=photons, probe=probe, seed=seed)
    row = {"object": obj, "probe": probe, "photons": photons,
           "mean_counts_per_pattern": round(mean_total_counts(scan.diffraction))}
    for optimizer in OPTIMIZERS:
        _, curve = scored_refinement(scan, None, passes, optimizer=optimizer)
        row[optimizer] = {"phase_ssim": [p["phase_ssim"] for p in curve], "final": curve[-1]["phase_ssim"],
                          "passes_to_0.9": passes_to(curve)}
    return row


def dose(photons: float) -> str:
    return f"{photons:.0e}".replace("e+0", "e")


def table(rows: list[dict]) -> str:
    lines = ["| object | probe | photons | mean counts | Adam: final, passes to 0.9 | mpie: final, passes to 0.9 |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        cells = [f"{r[o]['final']:.3f}, {or_dash(r[o]['passes_to_0.9'])}" for o in OPTIMIZERS]
        lines.append(f"| {r['object']} | {r['probe']} | {dose(r['photons'])} | {r['mean_counts_per_pattern']:,} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary(rows: list[dict]) -> str:
    """Per dose: each optimiser's mean final phase SSIM, and how often mpie ends higher and needs
    fewer passes to 0.9 than Adam (a run that never gets there counts as needing more)."""
    lines = ["| photons | Adam mean final | mpie mean final | mpie ends higher / within 0.005 / lower | "
             "mpie needs fewer / as many / more passes to 0.9 |", "|---|---|---|---|---|"]
    for photons in sorted({r["photons"] for r in rows}):
        at = [r for r in rows if r["photons"] == photons]
        means = [sum(r[o]["final"] for r in at) / len(at) for o in OPTIMIZERS]
        gaps = [r["mpie"]["final"] - r["adam"]["final"] for r in at]
        finals = (sum(g > 0.005 for g in gaps), sum(abs(g) <= 0.005 for g in gaps), sum(g < -0.005 for g in gaps))
        never = max(len(r["adam"]["phase_ssim"]) for r in at) + 1
        needed = [[r[o]["passes_to_0.9"] or never for o in OPTIMIZERS] for r in at]
        passes = (sum(m < a for a, m in needed), sum(m == a for a, m in needed), sum(m > a for a, m in needed))
        lines.append(f"| {dose(photons)} | {means[0]:.3f} | {means[1]:.3f} | {' / '.join(map(str, finals))} | "
                     f"{' / '.join(map(str, passes))} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", nargs="+", default=["grf", "lines", "image", "star"])
    parser.add_argument("--probes", nargs="+", default=["disk", "defocused"])
    parser.add_argument("--photons", nargs="+", type=float, default=[1e4, 3e4, 1e5, 3e5, 1e6, 1e7])
    parser.add_argument("--passes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--n", type=int, default=64, help="pattern size; object and step scale with it")
    args = parser.parse_args()
    rows = []
    for obj in args.objects:
        for probe in args.probes:
            for photons in args.photons:
                rows.append(run_case(obj, probe, photons, args.passes, args.seed, args.n))
                print(table(rows[-1:]).splitlines()[-1], flush=True)
    payload = {"passes": args.passes, "seed": args.seed, "n": args.n, "cases": rows,
               "command": "python benchmarks/refine_dose.py " + " ".join(sys.argv[1:])}
    markdown = (f"# flat-start refinement, Adam against mpie, by dose (N = {args.n}, {args.passes} passes, "
                f"seed {args.seed})\n\n"
                + summary(rows) + "\n\n" + table(rows))
    json_path, md_path = write_results("refine_dose" if args.n == 64 else f"refine_dose_n{args.n}", payload, markdown)
    print_json({k: v for k, v in payload.items() if k != "cases"})
    print(markdown)
    print(f"results: {json_path}, {md_path}")


if __name__ == "__main__":
    main()
