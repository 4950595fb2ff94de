"""The network on a partially coherent scan: learned probe and incoherent modes (issue 27 item 5).

    python benchmarks/network_partial_coherence.py [--epochs 8] [--size 160] [--step 5] [--filters 2]
                                                  [--gridsize 1] [--generator cnn] [--probe-lr 1e-3]
                                                  [--runs fixed learned modes refined_probe ...]
                                                  [--out DIR] [--threads T]
    python benchmarks/network_partial_coherence.py --record-from OUT [OUT ...]

Simulates a scan with ``ptychopinn.simulate``: N = 64, the zone-plate probe with a central stop,
three incoherent modes (powers 1 : 0.3 : 0.09), 1e6 photons per pattern, 5 % bad pixels plus a dead
column. The file the network sees carries a rough probe guess only: the true mode 0 out of focus
(a quadratic pupil phase of GUESS_DEFOCUS rad at the pupil edge) as one coherent probe; the modes
and the truth stay hidden. Each run trains (``ptychopinn.api.train``), reconstructs
the scan with the network alone (one pass, no refinement) and scores it against the true object:

* ``fixed``: the guess as it is, one mode (what train did before);
* ``learned``: the probe learned with the network (--learn-probe), one mode;
* ``modes``: learned with three modes (--learn-probe --probe-modes 3);
* ``refined_probe``: as ``modes``, started from the modes that ``refine`` recovered from the guess
  (refine, then ``convert --probe probe.npz``, then train);
* ``refined_probe_fixed``: the modes ``refine`` recovered, held;
* ``true_modes``: the true modes given and held: the bound a perfectly learned probe would reach.

Also reported: the similarity of the learned mode 0 to the true one and the collapse warnings.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import add_threads_flag, print_json, use_threads  # noqa: E402

GUESS_DEFOCUS = 3.0  # rad of quadratic phase at spatial frequency N/4 (the zone plate's pupil edge)
RUNS = {
    "fixed": {},
    "learned": {"training": {"learn_probe": True}},
    "modes": {"training": {"learn_probe": True}, "physics": {"probe_modes": 3}},
    # the probe modes that refinement from the guess recovered, then learned on with the network
    "refined_probe": {"training": {"learn_probe": True}, "physics": {"probe_modes": 3}},
    # the same modes, held
    "refined_probe_fixed": {"physics": {"probe_modes": 3}},
    # a bound, not a use: the true modes given and held (what a perfectly learned probe would allow)
    "true_modes": {},
}


def rough_guess(probe: np.ndarray) -> np.ndarray:
    """``probe`` defocused: a quadratic phase over its spectrum (what a wrong focus setting does)."""
    n = probe.shape[-1]
    coords = np.fft.fftfreq(n) * n
    k2 = coords[:, None] ** 2 + coords[None, :] ** 2
    pupil = np.exp(1j * GUESS_DEFOCUS * k2 / (n / 4) ** 2)
    return np.fft.ifft2(np.fft.fft2(probe) * pupil).astype(np.complex64)


def simulated_scan(size: int, step: float, seed: int):
    import ptychopinn
    from ptychopinn.physics.probe import probe_similarity

    truth = ptychopinn.simulate("lines", size=size, n=64, probe="zone_plate", probe_modes=3, photons=1e6,
                                step=step, seed=seed, bad_pixel_fraction=0.05)
    guess = rough_guess(truth.probe)
    seen = dataclasses.replace(truth, probe=guess, probe_modes=None)
    return truth, seen, probe_similarity(guess, truth.probe)


def with_refined_probe(seen):
    """``seen`` with the probe modes that ``refine`` (its defaults for measured data: probe and 3
    modes refined, 40 passes) recovers from the guess: what ``refine`` writes to probe.npz, which
    ``convert SCAN OUT --probe probe.npz`` puts into the scan a network then trains on."""
    from ptychopinn.reconstruction.refine import refine

    modes = refine(dataclasses.replace(seen, object=None)).probe_modes
    return dataclasses.replace(seen, probe=modes[0], probe_modes=modes if len(modes) > 1 else None)


def run(name: str, seen, truth, args: argparse.Namespace, out: Path) -> dict:
    from ptychopinn.api import evaluate, reconstruct, train_with_summary
    from ptychopinn.physics.probe import probe_similarity

    overrides = {"data": {"gridsize": args.gridsize},
                 "model": {"n_filters_scale": args.filters, "generator": args.generator},
                 "training": {"epochs": args.epochs, "probe_learning_rate": args.probe_lr}}
    for section, values in RUNS[name].items():
        overrides.setdefault(section, {}).update(values)
    start = time.perf_counter()
    refine_seconds = None
    if name.startswith("refined_probe"):
        seen = with_refined_probe(seen)
        refine_seconds = round(time.perf_counter() - start, 1)
    if name == "true_modes":
        seen = dataclasses.replace(seen, probe=truth.probe, probe_modes=truth.probe_modes)
    summary = train_with_summary(seen, out / name, overrides=overrides)
    seconds = time.perf_counter() - start
    scores = evaluate(reconstruct(summary.model, seen), truth)
    return {
        "run": name, "generator": args.generator,
        "phase_activation": summary.model.settings.model.phase_activation.value,
        "epochs_run": summary.epochs_run,
        "train_seconds": round(seconds, 1),
        "of_which_refinement_seconds": refine_seconds,
        "phase_ssim": scores["phase_ssim"], "amplitude_ssim": scores["amplitude_ssim"],
        "probe_modes": len(summary.model.probes),
        "mode0_similarity_to_truth": probe_similarity(summary.model.probe, truth.probe),
        "collapse_warnings": summary.collapse_warnings,
    }


SETTINGS = ("patterns", "epochs", "n_filters_scale", "gridsize", "probe_learning_rate")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--step", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--filters", type=int, default=2, help="model.n_filters_scale")
    parser.add_argument("--gridsize", type=int, default=1)
    parser.add_argument("--generator", choices=("cnn", "unet"), default="cnn", help="model.generator")
    parser.add_argument("--probe-lr", type=float, default=1e-3, help="training.probe_learning_rate")
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    parser.add_argument("--out", type=Path, default=None)
    add_threads_flag(parser)
    parser.add_argument("--record-from", type=Path, nargs="+", default=None, metavar="OUT",
                        help="no training: record the results.json of earlier runs (their --out) in "
                             "benchmarks/results/, e.g. runs made in parallel")
    args = parser.parse_args()
    if args.record_from:
        for out in args.record_from:
            record(json.loads((out / "results.json").read_text()))
        return
    use_threads(args.threads)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    out = args.out or Path(tempfile.mkdtemp(prefix="partial_coherence_"))
    truth, seen, guess_similarity = simulated_scan(args.size, args.step, args.seed)
    results = {"patterns": truth.n_patterns, "guess_similarity_to_truth": guess_similarity,
               "epochs": args.epochs, "n_filters_scale": args.filters, "gridsize": args.gridsize,
               "generator": args.generator, "probe_learning_rate": args.probe_lr, "runs": []}
    for name in args.runs:
        results["runs"].append(run(name, seen, truth, args, out))
        print_json(results["runs"][-1])
    from ptychopinn.atomic import write_json_atomic

    write_json_atomic(out / "results.json", results)
    print_json(results)
    record(results)


def command_of(results: dict, run_name: str, generator: str) -> str:
    return (f"python benchmarks/network_partial_coherence.py --epochs {results['epochs']} "
            f"--filters {results['n_filters_scale']} --gridsize {results['gridsize']} "
            f"--probe-lr {results['probe_learning_rate']:g} --generator {generator} "
            f"--runs {run_name}")


def record(results: dict) -> None:
    """Add the runs to benchmarks/results/network_partial_coherence_<cpu|gpu>: the latest of each
    run name, kept beside the recorded runs of the same settings (runs of other settings are dropped)."""
    from common import RESULTS, machine_description, write_results

    tag = "gpu" if machine_description()["cuda"] else "cpu"
    path = RESULTS / f"network_partial_coherence_{tag}.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    same = all(previous.get(key) == results[key] for key in SETTINGS)
    runs = {}
    for run in previous.get("runs", []) if same else []:
        runs[run["generator"], run["run"]] = run
    for run_result in results["runs"]:
        generator = run_result["generator"]
        runs[generator, run_result["run"]] = {**run_result, "command": command_of(results, run_result["run"], generator)}
    payload = {key: results[key] for key in (*SETTINGS, "guess_similarity_to_truth")}
    payload["runs"] = list(runs.values())
    write_results("network_partial_coherence", payload, markdown(payload))


def markdown(payload: dict) -> str:
    lines = ["# The network alone on a partially coherent scan", "", __doc__.split("\n\n", 2)[2].strip(), "",
             f"{payload['patterns']} patterns, gridsize {payload['gridsize']}, n_filters_scale "
             f"{payload['n_filters_scale']}, {payload['epochs']} epochs (after the curriculum's), probe step "
             f"{payload['probe_learning_rate']:g}; the guess's similarity to the true mode 0: "
             f"{payload['guess_similarity_to_truth']:.3f}.", "",
             "| run | generator | phase activation | phase SSIM | amplitude SSIM | learned mode 0 vs truth | modes | "
             "train s | command |",
             "|---|---|---|---|---|---|---|---|---|"]
    for run_result in payload["runs"]:
        lines.append(f"| {run_result['run']} | {run_result['generator']} | {run_result['phase_activation']} | "
                     f"{run_result['phase_ssim']:.3f} | "
                     f"{run_result['amplitude_ssim']:.3f} | "
                     f"{run_result['mode0_similarity_to_truth']:.3f} | {run_result['probe_modes']} | "
                     f"{run_result['train_seconds']:.0f} | `{run_result['command']}` |")
    lines += ["", "Train seconds are wall time on a machine that may be shared with other jobs."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
