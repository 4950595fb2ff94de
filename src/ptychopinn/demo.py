"""``ptychopinn demo``: simulate → train → reconstruct → evaluate on built-in data."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from ptychopinn.api import reconstruct, train_with_summary
from ptychopinn.config import Settings, resolve_settings
from ptychopinn.data import save_scan
from ptychopinn.plots import plot_reconstruction_channel, plot_scan_overview
from ptychopinn.simulation.simulate import simulate

# Sized to finish in about three minutes on two CPU cores.
DEMO_SCAN = {"size": 160, "n": 64, "step": 5.0, "photons": 1e6, "object": "lines", "probe": "defocused"}
DEMO_EPOCHS = 8
DEMO_REFINE_PASSES = 10
# Batches of 16 where the auto batch size would pick 4 on this 361-pattern scan: 4 learns more per
# epoch but trains 1.3-1.5x as long (docs/lab-notes/2026-11-25-network-quality.md), and the demo keeps its budget.
DEMO_SETTINGS = {
    "model": {"n_filters_scale": 1},
    "training": {"batch_size": 16},
}


@dataclass
class DemoReport:
    output_dir: Path
    n_patterns: int
    seconds: dict[str, float]
    metrics: dict[str, dict[str, float]]
    files: dict[str, Path] = field(default_factory=dict)

    def format(self) -> str:
        lines = [
            f"demo finished in {sum(self.seconds.values()):.0f} s "
            + "(" + ", ".join(f"{k} {v:.1f} s" for k, v in self.seconds.items()) + ")",
            f"scan: {self.n_patterns} simulated patterns; metrics against the ground truth:",
            f"  {'method':<34}{'phase SSIM':>11}{'amp. SSIM':>11}{'phase PSNR':>12}{'FRC 1/2-bit':>13}"
            f"{'data misfit':>13}",
        ]
        for label, m in self.metrics.items():
            lines.append(f"  {label:<34}{m['phase_ssim']:>11.3f}{m['amplitude_ssim']:>11.3f}"
                         f"{m['phase_psnr']:>10.1f}dB{m['frc_half_bit']:>13.2f}{m['data_misfit_excess']:>11.1f}× ")
        lines += [
            "  (data misfit: in units of what Poisson noise alone leaves, no reference needed; ~1 explains the data)",
            "figures and files:",
            *(f"  {name:<22}{path}" for name, path in self.files.items()),
        ]
        return "\n".join(lines)


def demo_settings(*, gridsize: int = 2, epochs: int | None = None, seed: int = 0) -> Settings:
    """The demo's settings: a small network, batches of 16, DEMO_EPOCHS epochs and
    DEMO_REFINE_PASSES refinement passes from either start (the network's start is not checked:
    the demo shows both side by side)."""
    return resolve_settings(None, {
        **DEMO_SETTINGS,
        "data": {"gridsize": gridsize, "seed": seed},
        "training": {**DEMO_SETTINGS["training"], "epochs": epochs or DEMO_EPOCHS, "seed": seed},
        "refinement": {"passes": DEMO_REFINE_PASSES, "seed": seed, "flat_check_passes": 0},
    })


def run_demo(
    output_dir: str | Path = "demo_output",
    *,
    gridsize: int = 2,
    epochs: int | None = None,
    seed: int = 0,
    quiet: bool = False,
    settings: Settings | None = None,
) -> DemoReport:
    """The demo in ``output_dir``; ``settings`` (default: :func:`demo_settings` of ``gridsize``,
    ``epochs`` and ``seed``) set the training and the refinement, the data seed the simulation."""
    from ptychopinn.evaluation.truth import evaluate_and_plot
    from ptychopinn.reconstruction.refine import refine

    settings = settings or demo_settings(gridsize=gridsize, epochs=epochs, seed=seed)
    output_dir = Path(output_dir)
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    scan_args = dict(DEMO_SCAN)
    scan = simulate(scan_args.pop("object"), seed=settings.data.seed, show_progress=not quiet, **scan_args)
    scan_path = save_scan(scan, output_dir / "scan.npz")
    plot_scan_overview(scan, output_dir / "scan_overview.png")
    seconds["simulate"], clock = time.perf_counter() - clock, time.perf_counter()

    summary = train_with_summary(scan, output_dir / "train", settings, quiet=quiet)
    seconds["train"], clock = time.perf_counter() - clock, time.perf_counter()

    result = reconstruct(summary.model, scan, show_progress=not quiet)
    infer_dir = output_dir / "reconstruction"
    result.save(infer_dir / "reconstruction.npz")
    plot_reconstruction_channel(result, "amplitude", infer_dir / "amplitude.png")
    plot_reconstruction_channel(result, "phase", infer_dir / "phase.png")
    seconds["reconstruct"], clock = time.perf_counter() - clock, time.perf_counter()

    options, passes = settings.refinement, settings.refinement.passes
    polished = refine(scan, result, options)
    polished.reconstruction.save(output_dir / "refined" / "reconstruction.npz")
    seconds["refine network"], clock = time.perf_counter() - clock, time.perf_counter()
    baseline = refine(scan, None, options)
    baseline.reconstruction.save(output_dir / "baseline" / "reconstruction.npz")
    seconds["refine flat (baseline)"], clock = time.perf_counter() - clock, time.perf_counter()

    metrics = {
        "network alone": evaluate_and_plot(result, scan, infer_dir),
        f"network + {passes} refinement passes": evaluate_and_plot(
            polished.reconstruction, scan, output_dir / "refined",
            others={"network": result, "flat start": baseline.reconstruction},
            label="network + refinement"),
        f"flat start + {passes} passes (iterative)": evaluate_and_plot(
            baseline.reconstruction, scan, output_dir / "baseline"),
    }
    seconds["evaluate"] = time.perf_counter() - clock
    files = {
        "scan": scan_path,
        "scan overview": output_dir / "scan_overview.png",
        "model": summary.model_path,
        "training curves": output_dir / "train" / "training_curves.png",
        "reconstruction": infer_dir / "reconstruction.npz",
        "network vs truth": infer_dir / "comparison.png",
        "all methods vs truth": output_dir / "refined" / "comparison.png",
        "metrics": infer_dir / "metrics.json",
    }
    return DemoReport(output_dir, scan.n_patterns, seconds, metrics, files)
