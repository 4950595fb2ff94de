"""Refinement with default settings on partially coherent scans with a rough probe guess, with and
without a detector mask, and on a coherent scan (issue 27).

    python benchmarks/partial_coherence.py [--passes P] [--coherent-size 256]

Each partially coherent case simulates a zone-plate probe with a central stop (N = 64, and one case at
N = 128, the size of the issue's real scan), K incoherent
modes (power 1 : 0.3 : 0.09) and Poisson counts, and refines from a flat object and a rough probe:
the true mode 0 with 3 rad of extra defocus at the pupil edge and its amplitude blurred (similarity
about 0.77 to the truth), as a measured scan would come (no reference object, one probe mode), so the
defaults refine the probe with 3 modes. Reported: phase SSIM against the truth (the evaluation's
alignment and phase-offset conventions), the refined modes' power fractions, the share of their power
inside the true modes' subspace, and the data misfit (with the refined probe) in units of the Poisson
floor. The coherent case compares the defaults before issue 27 (probe fixed, one mode) with today's on
`ptychopinn simulate`'s default scan, both as a simulation (the true probe: fixed) and as measured
data (the probe refined with 3 modes).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import add_threads_flag, machine_description, print_json, use_threads, write_results  # noqa: E402

from ptychopinn.api import evaluate  # noqa: E402
from ptychopinn.evaluation.data_fit import data_fit  # noqa: E402
from ptychopinn.physics.probe import probe_similarity  # noqa: E402
from ptychopinn.reconstruction.refine import RefineOptions, refine  # noqa: E402
from ptychopinn.reconstruction.refine.modes import mode_powers, subspace_overlap  # noqa: E402
from ptychopinn.simulation.simulate import simulate  # noqa: E402

PARTIAL = {"size": 160, "n": 64, "probe": "zone_plate", "step": 6.0}
CASES = {
    "lines, 3 modes, 3e5 photons": {"object": "lines", "probe_modes": 3, "photons": 3e5, "seed": 2},
    "lines, 3 modes, 3e5 photons, 5 % bad pixels": {"object": "lines", "probe_modes": 3, "photons": 3e5,
                                                     "seed": 2, "bad_pixel_fraction": 0.05},
    "grf, 2 modes, 1e6 photons, 5 % bad pixels": {"object": "grf", "probe_modes": 2, "photons": 1e6,
                                                  "seed": 5, "bad_pixel_fraction": 0.05},
    # the size of the real X-ray scan: 529 patterns of 128 × 128. The probe's footprint (in
    # object pixels) grows 4× with N and the step 2×, so every object pixel is lit by as many patterns
    # with a quarter of the photons: 1.2e6 per pattern give the dose per object pixel of the N = 64
    # cases, 3e5 a quarter of it
    "lines, 3 modes, 3e5 photons, N = 128": {"object": "lines", "probe_modes": 3, "photons": 3e5, "seed": 7,
                                             "n": 128, "size": 392, "step": 12.0},
    "lines, 3 modes, 1.2e6 photons, N = 128": {"object": "lines", "probe_modes": 3, "photons": 1.2e6, "seed": 7,
                                               "n": 128, "size": 392, "step": 12.0},
}
GUESS_DEFOCUS_RAD, GUESS_BLUR_PX = 3.0, 1.5


def rough_guess(probe: np.ndarray) -> np.ndarray:
    """``probe`` out of focus by GUESS_DEFOCUS_RAD at the zone plate's pupil edge (radius N/4
    frequency pixels) with its amplitude blurred: a probe guess as a user would have one."""
    n = probe.shape[-1]
    f = np.fft.fftfreq(n)
    defocus = np.exp(-1j * GUESS_DEFOCUS_RAD * (f[:, None] ** 2 + f[None, :] ** 2) / 0.25**2)
    field = np.fft.ifft2(np.fft.fft2(probe) * defocus)
    amplitude = ndimage.gaussian_filter(np.abs(field), GUESS_BLUR_PX)
    return (amplitude * np.exp(1j * np.angle(field))).astype(np.complex64)


def run_case(truth_scan, start_scan, options: RefineOptions) -> dict:
    began = time.perf_counter()
    result = refine(start_scan, None, options)
    seconds = time.perf_counter() - began
    fit = data_fit(start_scan, result.reconstruction, probes=result.probe_modes)
    row = {"phase_ssim": round(evaluate(result.reconstruction, truth_scan)["phase_ssim"], 4),
           "seconds": round(seconds, 1), "optimizer": result.optimizer,
           "mode_power_fraction": [round(float(p), 3) for p in mode_powers(result.probe_modes)],
           "data_misfit_excess": round(fit.excess, 3)}
    if truth_scan.probe_modes is not None:
        row["true_mode_power_fraction"] = [round(float(p), 3) for p in mode_powers(truth_scan.probe_modes)]
        row["subspace_overlap"] = round(subspace_overlap(result.probe_modes, truth_scan.probe_modes), 4)
    print(row, flush=True)
    return row


def options(args, **settings) -> RefineOptions:
    """Refinement settings for a case: ``--passes`` only when given, so that the settings' own
    default (which depends on whether the probe is refined) is what is measured."""
    if args.passes is not None:
        settings["passes"] = args.passes
    return RefineOptions(**settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passes", type=int, default=None,
                        help="passes for every case (default: the settings' own, 40 when the probe is refined, else 20)")
    parser.add_argument("--coherent-size", type=int, default=256, help="object side of the coherent case")
    add_threads_flag(parser)
    args = parser.parse_args()
    use_threads(args.threads)
    rows = {}
    for name, case in CASES.items():
        truth = simulate(**{**PARTIAL, **case})
        guess = rough_guess(truth.probe)
        # a measured scan: one rough probe, no reference object
        start = replace(truth, probe=guess, probe_modes=None, object=None)
        print(f"{name}: {truth.n_patterns} patterns, guess similarity {probe_similarity(guess, truth.probe):.3f}")
        rows[name] = {"patterns": truth.n_patterns, "guess_similarity": round(probe_similarity(guess, truth.probe), 3),
                      "defaults": run_case(truth, start, options(args)),
                      "probe_fixed": run_case(truth, start, options(args, refine_probe=False))}
    coherent = simulate(size=args.coherent_size)  # `ptychopinn simulate`'s defaults
    measured = replace(coherent, object=None)
    print(f"coherent: {coherent.n_patterns} patterns")
    rows["coherent (simulate defaults)"] = {
        "patterns": coherent.n_patterns,
        "before (probe fixed, 1 mode)": run_case(coherent, coherent, options(
            args, refine_probe=False, probe_modes=1)),
        "defaults, as a simulation": run_case(coherent, coherent, options(args)),
        "defaults, as measured data": run_case(coherent, measured, options(args)),
    }
    command = "python benchmarks/partial_coherence.py " + " ".join(sys.argv[1:])
    payload = {"passes": args.passes, "rows": rows, "command": command}
    json_path, md_path = write_results("partial_coherence", payload, markdown(rows, command, machine_description()))
    print_json(payload)
    print(f"wrote {json_path} and {md_path}")


def markdown(rows: dict, command: str, machine: dict) -> str:
    lines = ["# Partially coherent scans: refinement with default settings", "",
             f"Command: `{command}`", "", f"Machine: {machine}", "", __doc__.split("\n\n", 1)[1].strip(), "",
             "| case | settings | phase SSIM | mode powers (truth) | subspace overlap | misfit / floor | s |",
             "|---|---|---|---|---|---|---|"]
    for name, row in rows.items():
        for settings, result in row.items():
            if not isinstance(result, dict):
                continue
            truth_powers = result.get("true_mode_power_fraction", "")
            lines.append(f"| {name} | {settings} | {result['phase_ssim']:.3f} | {result['mode_power_fraction']} "
                         f"({truth_powers}) | {result.get('subspace_overlap', '')} | "
                         f"{result['data_misfit_excess']:.2f} | {result['seconds']:.0f} |")
    lines += ["", "Seconds are wall time on a machine that may be shared with other jobs: compare them "
              "within a run only."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
