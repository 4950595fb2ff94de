"""Refinement from a flat object, with default options, on scans unlike the quality benchmark's.

    python benchmarks/refine_robustness.py [--passes 20] [--refine-optimizer adam]

Each case changes one thing against the quality benchmark's scans (160² object, N = 64, step 5,
1e6 photons): the object (dots), the scan pattern (fermat, random), the dose (1e4, 1e9), the overlap
(step 10 and 3), the probe (a random aberrated pupil, complex and asymmetric) and the pattern size
(N = 128). Records phase SSIM every 5 passes and the final data misfit against the Poisson floor.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import add_optimizer_argument, print_json, results_name, write_results  # noqa: E402

from ptychopinn.evaluation.data_fit import data_fit  # noqa: E402
from ptychopinn.evaluation.truth import evaluate_against_truth  # noqa: E402
from ptychopinn.reconstruction.refine import RefineOptions, refine  # noqa: E402
from ptychopinn.simulation.simulate import simulate  # noqa: E402

BASE = {"size": 160, "n": 64, "step": 5.0, "photons": 1e6}
CASES = {
    "dots, disk": {"object": "dots"},
    "star, defocused, fermat scan": {"object": "star", "probe": "defocused", "scan": "fermat"},
    "image, disk, random scan": {"object": "image", "scan": "random"},
    "lines, defocused, 1e4 photons": {"object": "lines", "probe": "defocused", "photons": 1e4},
    "grf, disk, 1e9 photons": {"object": "grf", "photons": 1e9},
    "star, disk, step 10 (low overlap)": {"object": "star", "step": 10.0},
    "image, defocused, step 3": {"object": "image", "probe": "defocused", "step": 3.0},
    "star, aberrated probe": {"object": "star", "probe": "aberrated"},
    "image, defocused, N = 128": {"object": "image", "probe": "defocused", "n": 128, "size": 320, "step": 10.0},
}


def aberrated_probe(n: int, seed: int = 3) -> np.ndarray:
    """A band-limited probe with random low-order aberrations: complex, not its own twin."""
    frequencies = np.fft.fftshift(np.fft.fftfreq(n))
    kx, ky = np.meshgrid(frequencies, frequencies)
    pupil = (np.hypot(kx, ky) < 0.12).astype(np.complex128)
    c = np.random.default_rng(seed).normal(size=5) * 6
    aberration = (50 * c[0] * kx * ky + 50 * c[1] * (kx**2 - ky**2) + 80 * c[2] * (kx**2 + ky**2)
                  + 300 * c[3] * kx**3 + 300 * c[4] * ky**3)
    probe = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(pupil * np.exp(1j * aberration))))
    return (probe / np.abs(probe).max()).astype(np.complex64)


def run_case(settings: dict, passes: int, optimizer: str) -> dict:
    kwargs = {**BASE, **settings}
    if kwargs.get("probe") == "aberrated":
        kwargs["probe"] = aberrated_probe(kwargs["n"])
    scan = simulate(**kwargs)
    curve = []
    start = time.perf_counter()
    result = refine(scan, None, RefineOptions(passes=passes, optimizer=optimizer),
                    on_pass=lambda i, rec: curve.append(float(evaluate_against_truth(rec, scan)["phase_ssim"])))
    seconds = time.perf_counter() - start
    fit = data_fit(scan, result.reconstruction)
    return {"patterns": scan.n_patterns, "optimizer": result.optimizer, "seconds_with_scoring": round(seconds, 1),
            "phase_ssim_every_5": [round(v, 3) for v in curve[4::5]],
            "data_misfit_excess": round(fit.excess, 2), "noise_floor": round(fit.noise_floor, 4)}


def table(results: dict) -> str:
    lines = ["| case | patterns | optimiser | phase SSIM after 5 / 10 / 15 / 20 passes | data misfit ÷ noise floor |",
             "|---|---|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['patterns']} | {r.get('optimizer', '')} | {' / '.join(f'{v:.3f}' for v in r['phase_ssim_every_5'])} | "
                     f"{r['data_misfit_excess']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passes", type=int, default=20)
    add_optimizer_argument(parser)
    args = parser.parse_args()
    results = {}
    for name, settings in CASES.items():
        results[name] = run_case(settings, args.passes, args.refine_optimizer)
        print(name, results[name], flush=True)
    payload = {"passes": args.passes, "refine_optimizer": args.refine_optimizer, "cases": results,
               "command": "python benchmarks/refine_robustness.py " + " ".join(sys.argv[1:])}
    json_path, md_path = write_results(results_name("refine_robustness", args.refine_optimizer), payload,
                                       f"# flat-start refinement, {args.refine_optimizer}, otherwise default "
                                       f"options, {args.passes} passes\n\n"
                                       + table(results))
    print_json({k: v for k, v in payload.items() if k != "cases"})
    print(table(results))
    print(f"results: {json_path}, {md_path}")


if __name__ == "__main__":
    main()
