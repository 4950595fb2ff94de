"""Run-to-run spread of the network start's advantage: the core of benchmarks/quality.py, over seeds.

    python benchmarks/quality_spread.py [--seeds 0 1 2] [--objects grf lines image star] [--refine-optimizer adam]
                                        [--probes disk defocused] [--epochs 50] [--passes 30] [--reuse]

One seed of quality.py cannot say whether a network start that saves one or two refinement passes
over a flat start does so by chance: float32 training is chaotic, and a change as small as the
convolutions' summation order moved that comparison on several cases (at 8 epochs; at 24 the star
scans' networks still differed between two runs of the same seed). Here every
seed draws a new scan (object texture, scan jitter, Poisson noise) and trains with a new seed;
per case and seed it records the gridsize-2 network's phase SSIM and the refinement passes to
phase SSIM 0.9 from it (with and without the default start check, whose flat rival's passes count
as work) and from a flat object, and counts wins, ties and losses. The gridsize-1 and
predecessor-style networks of quality.py are left out to keep the run short, and inference is run
once (its recorded time is a first call's, with the one-time costs quality.py times apart).
Writes benchmarks/results/quality_spread_*.{json,md}.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import add_optimizer_argument, print_json, results_name, write_results  # noqa: E402
from quality import (  # noqa: E402
    add_case_arguments,
    network_run,
    or_dash,
    passes_to,
    scored_refinement,
    training_seconds,
)

from ptychopinn.reconstruction.refine import ADAM_FLAT_CHECK_PASSES  # noqa: E402
from ptychopinn.simulation.simulate import simulate  # noqa: E402


def run_case(obj: str, probe: str, seed: int, args) -> dict:
    scan = simulate(obj, size=args.size, n=64, step=args.step, photons=1e6, probe=probe, seed=seed)
    network, train_s, infer_s, _ = network_run(scan, args.workdir / f"seed{seed}" / f"{obj}_{probe}", 2, args.epochs,
                                            {"training": {"seed": seed}, "data": {"seed": seed}}, args.reuse,
                                            timing_repeats=0)  # passes are what this compares
    optimizer = args.refine_optimizer
    _, from_network = scored_refinement(scan, network, args.passes, optimizer=optimizer)
    _, from_flat = scored_refinement(scan, None, args.passes, optimizer=optimizer)
    checked_run, checked = scored_refinement(scan, network, args.passes, ADAM_FLAT_CHECK_PASSES, optimizer)
    return {"object": obj, "probe": probe, "seed": seed, "network_phase_ssim": from_network[0]["phase_ssim"],
            "passes_network": passes_to(from_network), "passes_flat": passes_to(from_flat),
            "passes_checked": passes_to(checked), "checked_start": checked_run.start,
            "final_network": from_network[-1]["phase_ssim"], "final_flat": from_flat[-1]["phase_ssim"],
            "final_checked": checked[-1]["phase_ssim"],
            "train_s": training_seconds(train_s), "infer_s": round(infer_s, 2)}


OUTCOMES = ("win", "tie", "loss")


def outcome(run: dict, start: str) -> str:
    """'win', 'tie' or 'loss' of a network start ("network", or "checked": with the start check)
    against the flat start, by passes of work to phase SSIM 0.9."""
    never = float("inf")
    given = never if run[f"passes_{start}"] is None else run[f"passes_{start}"]
    flat = never if run["passes_flat"] is None else run["passes_flat"]
    return "win" if given < flat else "tie" if given == flat else "loss"


def counts(runs: list[dict], start: str) -> dict[str, int]:
    outcomes = [outcome(r, start) for r in runs]
    return {k: outcomes.count(k) for k in OUTCOMES}


def tally(runs: list[dict], start: str) -> str:
    return " / ".join(map(str, counts(runs, start).values()))


def table(runs: list[dict], seeds: list[int]) -> str:
    header = ("| object | probe | "
              + " | ".join(f"seed {s}: net g2, passes to 0.9 (net / checked / flat)" for s in seeds)
              + " | net g2 mean (min–max) | wins / ties / losses: net start | with start check |")
    lines = [header, "|" + "---|" * (len(seeds) + 5)]
    for obj, probe in dict.fromkeys((r["object"], r["probe"]) for r in runs):
        mine = {r["seed"]: r for r in runs if (r["object"], r["probe"]) == (obj, probe)}
        cells = [f"{mine[s]['network_phase_ssim']:.3f}, " + " / ".join(
                 or_dash(mine[s][f"passes_{k}"]) for k in ("network", "checked", "flat")) if s in mine else ""
                 for s in seeds]
        ssim = [r["network_phase_ssim"] for r in mine.values()]
        lines.append(f"| {obj} | {probe} | " + " | ".join(cells)
                     + f" | {statistics.mean(ssim):.3f} ({min(ssim):.3f}–{max(ssim):.3f}) | "
                     + f"{tally(list(mine.values()), 'network')} | {tally(list(mine.values()), 'checked')} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_case_arguments(parser)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/ptychopinn_quality_spread"))
    add_optimizer_argument(parser)
    args = parser.parse_args()
    runs = []
    for seed in args.seeds:
        for obj in args.objects:
            for probe in args.probes:
                runs.append(run_case(obj, probe, seed, args))
                print(runs[-1], flush=True)
    summary = {start: counts(runs, start) for start in ("network", "checked")}
    payload = {"epochs": args.epochs, "passes": args.passes, "seeds": args.seeds,
               "refine_optimizer": args.refine_optimizer, "outcomes": summary,
               "runs": runs, "command": "python benchmarks/quality_spread.py " + " ".join(sys.argv[1:])}
    header = (f"# network start against flat start over seeds ({args.epochs} training epochs, "
              f"{args.passes} refinement passes with {args.refine_optimizer}; passes of work to phase SSIM 0.9)\n\n")
    footer = (f"\n\nall cases and seeds, wins / ties / losses against the flat start: network start "
              f"{tally(runs, 'network')}, with the start check {tally(runs, 'checked')}")
    json_path, md_path = write_results(results_name("quality_spread", args.refine_optimizer), payload,
                                       header + table(runs, args.seeds) + footer)
    print_json({k: v for k, v in payload.items() if k != "runs"})
    print(table(runs, args.seeds) + footer)
    print(f"results: {json_path}, {md_path}")


if __name__ == "__main__":
    main()
