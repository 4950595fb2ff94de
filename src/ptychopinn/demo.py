"""``ptychopinn demo``: simulate → reconstruct (→ fine-tune) → refine → evaluate on built-in data.

By default the demo reconstructs with the general model shipped in the package (pretrained once on
a procedural corpus; docs/guides/pretraining.md) on a scan it has never seen: an object built from
two held-out images under a defocused probe that is none of the pretraining families. With
``train=True`` it trains a network on the scan instead, as a model for one scan is made.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from ptychopinn.api import finetune, reconstruct, train_with_summary
from ptychopinn.config import Settings, resolve_settings
from ptychopinn.data import save_scan
from ptychopinn.plots import plot_reconstruction_channel, plot_scan_overview
from ptychopinn.simulation.simulate import simulate

# Sized to finish in about three minutes on two CPU cores.
DEMO_SCAN = {"size": 160, "n": 64, "step": 5.0, "photons": 1e6, "object": "lines", "probe": "defocused"}
# the general model's scan: its object comes from two images pretraining never saw (camera, moon)
GENERAL_DEMO_SCAN = {**DEMO_SCAN, "object": "image"}
DEMO_MODEL = "general"
DEMO_FINETUNE_EPOCHS = 3
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
    train: bool = False,
) -> DemoReport:
    """The demo in ``output_dir``: the shipped general model on a fresh scan, or with ``train``
    a network trained on the scan. ``settings`` (default: :func:`demo_settings` of
    ``gridsize``, ``epochs`` and ``seed``) set the training (or fine-tuning: ``epochs``, default
    DEMO_FINETUNE_EPOCHS) and the refinement, the data seed the simulation."""
    if not train:
        return run_general_demo(output_dir, epochs=epochs, seed=seed, quiet=quiet, settings=settings)
    return run_training_demo(output_dir, gridsize=gridsize, epochs=epochs, seed=seed, quiet=quiet,
                             settings=settings)


def run_training_demo(
    output_dir: str | Path = "demo_output",
    *,
    gridsize: int = 2,
    epochs: int | None = None,
    seed: int = 0,
    quiet: bool = False,
    settings: Settings | None = None,
) -> DemoReport:
    """Simulate, train a network on the scan, reconstruct, refine and evaluate."""
    from ptychopinn.evaluation.truth import evaluate_and_plot

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
    _save_with_plots(result, infer_dir)
    seconds["reconstruct"], clock = time.perf_counter() - clock, time.perf_counter()

    passes = settings.refinement.passes
    polished, baseline = _refine_from_start_and_flat(scan, result, settings, output_dir, seconds)
    clock = time.perf_counter()

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


def run_general_demo(
    output_dir: str | Path = "demo_output",
    *,
    epochs: int | None = None,
    seed: int = 0,
    quiet: bool = False,
    settings: Settings | None = None,
) -> DemoReport:
    """Simulate a scan the general model never saw; one pass; fine-tune on the scan (no ground
    truth); refine; and the iterative baseline from a flat start, all evaluated."""
    from ptychopinn.evaluation.truth import evaluate_and_plot
    from ptychopinn.model.trained import load_model

    settings = settings or demo_settings(seed=seed)
    finetune_epochs = epochs or DEMO_FINETUNE_EPOCHS
    output_dir = Path(output_dir)
    seconds: dict[str, float] = {}
    clock = time.perf_counter()
    scan_args = dict(GENERAL_DEMO_SCAN)
    scan = simulate(scan_args.pop("object"), seed=settings.data.seed, show_progress=not quiet, **scan_args)
    scan_path = save_scan(scan, output_dir / "scan.npz")
    plot_scan_overview(scan, output_dir / "scan_overview.png")
    model = load_model(DEMO_MODEL)
    seconds["simulate"], clock = time.perf_counter() - clock, time.perf_counter()

    one_pass = reconstruct(model, scan, show_progress=not quiet)
    infer_dir = output_dir / "reconstruction"
    _save_with_plots(one_pass, infer_dir)
    seconds["one pass"], clock = time.perf_counter() - clock, time.perf_counter()

    tuned = finetune(model, scan, finetune_epochs, output_dir / "finetune", quiet=quiet)
    tuned_result = reconstruct(tuned, scan)
    _save_with_plots(tuned_result, output_dir / "finetuned")
    seconds["fine-tune"], clock = time.perf_counter() - clock, time.perf_counter()

    passes = settings.refinement.passes
    polished, baseline = _refine_from_start_and_flat(scan, tuned_result, settings, output_dir, seconds)
    clock = time.perf_counter()

    metrics = {
        "general model, one pass": evaluate_and_plot(one_pass, scan, infer_dir),
        f"+ fine-tuning ({finetune_epochs} epochs)": evaluate_and_plot(tuned_result, scan, output_dir / "finetuned"),
        f"+ {passes} refinement passes": evaluate_and_plot(
            polished.reconstruction, scan, output_dir / "refined",
            others={"one pass": one_pass, "flat start": baseline.reconstruction}, label="fine-tuned + refined"),
        f"flat start + {passes} passes (iterative)": evaluate_and_plot(
            baseline.reconstruction, scan, output_dir / "baseline"),
    }
    seconds["evaluate"] = time.perf_counter() - clock
    files = {
        "scan": scan_path,
        "scan overview": output_dir / "scan_overview.png",
        "one pass": infer_dir / "reconstruction.npz",
        "one pass vs truth": infer_dir / "comparison.png",
        "all methods vs truth": output_dir / "refined" / "comparison.png",
        "metrics": infer_dir / "metrics.json",
    }
    return DemoReport(output_dir, scan.n_patterns, seconds, metrics, files)


def _refine_from_start_and_flat(scan, start, settings: Settings, output_dir: Path, seconds: dict[str, float]):
    """Refine ``start`` and, as the iterative baseline, a flat object with the same options;
    saved to DIR/refined and DIR/baseline, their times added to ``seconds``."""
    from ptychopinn.reconstruction.refine import refine

    results = []
    for label, initial, directory in (("refine", start, "refined"), ("refine flat (baseline)", None, "baseline")):
        clock = time.perf_counter()
        refined = refine(scan, initial, settings.refinement)
        refined.reconstruction.save(output_dir / directory / "reconstruction.npz")
        seconds[label] = time.perf_counter() - clock
        results.append(refined)
    return results


def _save_with_plots(result, directory: Path) -> None:
    result.save(directory / "reconstruction.npz")
    plot_reconstruction_channel(result, "amplitude", directory / "amplitude.png")
    plot_reconstruction_channel(result, "phase", directory / "phase.png")
