"""Numerical parity of the two backends (issue: "TensorFlow backend with proven parity").

:func:`backend_parity` feeds one model (either backend may have trained it) the identical
grouped, normalised batch in PyTorch and in TensorFlow and compares every forward stage
(:data:`ptychopinn.diagnostics.stages.STAGE_NAMES`), then reconstructs the whole scan with each backend and
compares the debug-dump statistics (``stats.json``) and the stitched canvases (registered as in
docs/design/spec.md#evaluation, scored with :func:`ptychopinn.evaluation.metrics.compare_images`). The comparisons are those of
:mod:`ptychopinn.diagnostics`; PyTorch is the reference ("a"/"baseline") throughout.

:func:`training_parity` trains both backends from the same initial weights on the same batches.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ptychopinn.api import reconstruct, training_inputs
from ptychopinn.backends import TrainingRun, get_backend
from ptychopinn.data import Scan
from ptychopinn.diagnostics.compare import (
    compare_reconstructions,
    compare_stats,
    format_recon_report,
    format_stats_report,
)
from ptychopinn.diagnostics.probes import (
    DEFAULT_RTOL,
    capture_stages,
    compare_stages,
    format_stages_report,
    save_stages,
    stage_meta,
)
from ptychopinn.diagnostics.recording import DebugDump
from ptychopinn.diagnostics.stats import write_strict_json
from ptychopinn.model.architecture import Architecture, ModelGeometry, canvas_size_for
from ptychopinn.model.trained import TrainedModel
from ptychopinn.plots import plot_comparison

log = logging.getLogger(__name__)

BACKENDS = ("torch", "tensorflow")


@dataclass
class ParityResult:
    report: dict[str, Any]
    stages: dict[str, dict[str, np.ndarray]]
    reconstructions: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.report["status"] == "ok"


def backend_parity(
    model: TrainedModel,
    scan: Scan,
    *,
    n_groups: int = 64,
    rtol: float = DEFAULT_RTOL,
    output_dir: str | Path | None = None,
    accelerator: str = "cpu",
    jit_compile: bool | None = None,
) -> ParityResult:
    """Compare the backends on ``model`` and ``scan``; the report's ``status`` is ``"ok"`` when

    * every forward stage of the first ``n_groups`` groups agrees within ``rtol`` (relative to the
      largest magnitude of the torch stage; the predicted amplitudes included),
    * mean, std and var_zero_mean of the patch and canvas amplitudes (``stats.json``) agree
      within ``rtol`` relative, and
    * the two stitched reconstructions of the whole scan agree: amplitude and phase SSIM ≥ 1 −
      ``rtol`` and an amplitude scale within ``rtol`` of 1 (``compare_reconstructions``).

    With ``output_dir``: ``parity.json`` (the report), ``stages_{torch,tensorflow}.npz``,
    ``{torch,tensorflow}/`` debug dumps (``stats.json``, ``offsets.json``, ``canvas.json``, patch
    grids, canvas) and ``reconstruction.npz``, and ``compare_recon.png``.
    """
    if not rtol >= 0:
        raise ValueError(f"rtol must be >= 0, got {rtol}")
    out = Path(output_dir) if output_dir is not None else None
    backends = {"torch": get_backend("torch"), "tensorflow": get_backend("tensorflow", jit_compile=jit_compile)}
    stages = {name: capture_stages(model, scan, n_groups, backend=backends[name], accelerator=accelerator)
              for name in BACKENDS}
    stage_report = compare_stages(stages["torch"], stages["tensorflow"], rtol)

    reconstructions, statistics, dumps = {}, {}, {}
    for name in BACKENDS:
        dumps[name] = DebugDump((out or Path(".")) / name)
        reconstructions[name] = reconstruct(model, scan, accelerator=accelerator, backend=backends[name],
                                            batch_observers=[dumps[name]])
        statistics[name] = dumps[name].statistics(reconstructions[name])
    stats_report = compare_stats(statistics["torch"], statistics["tensorflow"], rtol, labels=BACKENDS)
    recon_report, aligned, reference = compare_reconstructions(
        reconstructions["tensorflow"], reconstructions["torch"], min(rtol, 0.999))
    recon_report["labels"] = {"a": "tensorflow", "b": "torch"}
    recon_report["max_abs_diff"] = _canvas_difference(reconstructions["torch"], reconstructions["tensorflow"])

    failing = [name for name, part in (("stages", stage_report), ("stats", stats_report),
                                       ("reconstruction", recon_report)) if part["status"] != "ok"]
    report = {
        "model": str(model.source) if model.source else None,
        "trained_with": model.backend,
        "data": str(scan.source) if scan.source else None,
        "n_groups": len(next(iter(stages["torch"].values()))),
        "rtol": rtol,
        "accelerator": accelerator,
        "rule": "ok when every stage, the stats.json metrics and the stitched canvases agree within rtol",
        "stages": stage_report,
        "stats": {"torch": statistics["torch"], "tensorflow": statistics["tensorflow"], "comparison": stats_report},
        "reconstruction": recon_report,
        "diverged": failing,
        "status": "diverged" if failing else "ok",
    }
    if out is not None:
        _write_outputs(out, model, scan, n_groups, stages, dumps, reconstructions, report, aligned, reference)
    return ParityResult(report, stages, reconstructions)


def _canvas_difference(a, b) -> dict[str, float]:
    """max |a − b| and max |a| over the pixels both cover, when both canvases share one grid."""
    if a.object.shape != b.object.shape or tuple(a.origin_xy) != tuple(b.origin_xy):
        return {"max_abs_diff": None, "max_abs": None, "relative": None}
    both = a.mask & b.mask
    diff = float(np.max(np.abs(a.object[both].astype(np.complex128) - b.object[both]), initial=0.0))
    scale = float(np.max(np.abs(a.object[both]), initial=0.0))
    return {"max_abs_diff": diff, "max_abs": scale, "relative": diff / scale if scale else None}


def _write_outputs(out: Path, model, scan, n_groups, stages, dumps, reconstructions, report, aligned, reference):
    for name in BACKENDS:
        save_stages(out / f"stages_{name}.npz", stages[name], stage_meta(model, scan, n_groups, backend=name))
        dumps[name].write(reconstructions[name], model.patch_size, backend=name)
        reconstructions[name].save(out / name / "reconstruction.npz")
    scores = report["reconstruction"]
    plot_comparison({"torch": reference, "tensorflow": aligned}, {**scores["scores"], **scores["frc"]},
                    out / "compare_recon.png")
    write_strict_json(out / "parity.json", report)


def format_parity_report(report: dict[str, Any]) -> str:
    """The three comparisons as text, and a verdict line."""
    recon = report["reconstruction"]
    canvas = recon["max_abs_diff"]
    lines = [
        f"forward stages of {report['n_groups']} groups, torch (reference) vs tensorflow:",
        format_stages_report(report["stages"], ("torch", "tensorflow")),
        "",
        "stats.json (whole-scan inference), torch vs tensorflow:",
        format_stats_report(report["stats"]["comparison"]),
        "",
        "stitched canvases (whole scan):",
        format_recon_report(recon, ("tensorflow", "torch")),
    ]
    if canvas["max_abs_diff"] is not None:
        lines.append(f"  same canvas grid: max |torch − tensorflow| {canvas['max_abs_diff']:.3e} "
                     f"(max |torch| {canvas['max_abs']:.3g}, relative {canvas['relative']:.3e})")
    amplitude = next(e for e in report["stages"]["stages"] if e["stage"] == "predicted_amplitude")
    verdict = "PARITY OK" if report["status"] == "ok" else "PARITY FAILED: " + ", ".join(report["diverged"])
    lines += ["", f"{verdict} (rtol {report['rtol']:g}; predicted amplitudes differ by "
                  f"{amplitude['relative_diff']:.2e} relative)"]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# training parity
# ---------------------------------------------------------------------------------------------


@dataclass
class TrainingParity:
    torch: dict[str, list[float]]  # per epoch: train_loss, val_loss, lr
    tensorflow: dict[str, list[float]]
    torch_weights: dict[str, np.ndarray]
    tensorflow_weights: dict[str, np.ndarray]

    def relative_loss_differences(self) -> dict[str, list[float]]:
        """|tf − torch| / |torch| per epoch, for train_loss and val_loss."""
        result = {}
        for key in ("train_loss", "val_loss"):
            a, b = np.asarray(self.torch.get(key, [])), np.asarray(self.tensorflow.get(key, []))
            if len(a) and len(a) == len(b):
                result[key] = (np.abs(b - a) / np.abs(a)).tolist()
        return result


def training_parity(
    scan: Scan,
    settings,
    output_dir: str | Path,
    *,
    initial_weights: dict[str, np.ndarray] | None = None,
    jit_compile: bool | None = False,
) -> TrainingParity:
    """Train ``settings.training.epochs`` epochs in each backend from the same initial weights
    (``initial_weights``, or the torch initialisation with ``settings.training.seed``) on the
    same groups and batches (the backend-neutral split and order), on the CPU."""
    import torch

    from ptychopinn.backends.torch.backend import torch_weights

    output_dir = Path(output_dir)
    settings = settings.model_copy(deep=True)
    settings.training.accelerator = "cpu"
    grouped, scales, probe = training_inputs(scan, settings)
    geometry = ModelGeometry(scan.patch_size, canvas_size_for(scan.patch_size, grouped.max_offset))
    arch = Architecture.from_settings(settings, geometry)
    backends = {"torch": get_backend("torch"), "tensorflow": get_backend("tensorflow", jit_compile=jit_compile)}
    if initial_weights is None:
        torch.manual_seed(settings.training.seed)
        initial_weights = torch_weights(backends["torch"].build_module(arch, probe))
    results = {name: backend.train(TrainingRun(grouped, settings, scales, probe, arch, output_dir / name,
                                               initial_weights=initial_weights))
               for name, backend in backends.items()}
    return TrainingParity(
        torch=epoch_metrics(results["torch"].metrics_csv),
        tensorflow=epoch_metrics(results["tensorflow"].metrics_csv),
        torch_weights=results["torch"].weights,
        tensorflow_weights=results["tensorflow"].weights,
    )


def epoch_metrics(metrics_csv: Path | None) -> dict[str, list[float]]:
    """train_loss, val_loss and lr per epoch from a metrics.csv of either backend.

    Lightning logs the learning rate on a row of its own, without an epoch, before the epoch's
    rows; it is attributed to the next epoch seen."""

    series: dict[str, dict[int, float]] = {"train_loss": {}, "val_loss": {}, "lr": {}}
    if metrics_csv is None:
        return {k: [] for k in series}
    pending_lr = None
    with open(metrics_csv, newline="") as handle:
        for row in csv.DictReader(handle):
            if not row.get("epoch"):
                pending_lr = float(row["lr-Adam"]) if row.get("lr-Adam") else pending_lr
                continue
            epoch = int(float(row["epoch"]))
            if pending_lr is not None:
                series["lr"][epoch], pending_lr = pending_lr, None
            for key, column in (("train_loss", "train_loss"), ("val_loss", "val_loss"), ("lr", "lr-Adam")):
                if row.get(column):
                    series[key][epoch] = float(row[column])
    return {k: [v[e] for e in sorted(v)] for k, v in series.items()}
