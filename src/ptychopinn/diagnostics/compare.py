"""Comparisons that gate scripts: two ``stats.json`` files, two reconstructions.

Every report is a strict-JSON-ready dict with ``status`` ``"ok"`` or ``"diverged"``; the CLI
exits 1 on ``"diverged"`` (2 stays for errors).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ptychopinn.diagnostics.stats import read_json

STATS_BLOCKS = ("patch_amplitude", "canvas_amplitude")
STATS_METRICS = ("mean", "std", "var_zero_mean")
DEFAULT_TOLERANCE = 0.05


def load_stats(path: str | Path) -> dict[str, Any]:
    """A ``stats.json`` (or a debug-dump directory holding one), checked for both blocks."""
    path = Path(path)
    if path.is_dir():
        path = path / "stats.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such stats file")
    stats = read_json(path, "stats")
    if not isinstance(stats, dict) or not all(isinstance(stats.get(b), dict) for b in STATS_BLOCKS):
        raise ValueError(f"{path}: not a stats.json file (needs the blocks {', '.join(STATS_BLOCKS)})")
    return stats


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def compare_metric(baseline: Any, candidate: Any, tolerance: float) -> dict[str, Any]:
    """One metric: ratio candidate/baseline, difference candidate − baseline, relative change
    |difference| / |baseline| and its status: ``ok`` (relative ≤ tolerance), ``diverged``,
    ``baseline_zero`` (baseline exactly 0: the ratio is undefined; not a divergence by itself,
    the difference tells), or ``missing`` (a value absent or non-finite, counted as diverged)."""
    b, c = _number(baseline), _number(candidate)
    entry: dict[str, Any] = {"baseline": b, "candidate": c, "ratio": None, "difference": None,
                             "relative": None}
    if b is None or c is None:
        return {**entry, "status": "missing"}
    entry["difference"] = c - b
    if b == 0:
        return {**entry, "status": "baseline_zero"}
    entry["ratio"] = c / b
    entry["relative"] = abs(c - b) / abs(b)
    return {**entry, "status": "ok" if entry["relative"] <= tolerance else "diverged"}


def compare_stats(
    baseline: dict[str, Any],
    candidate: dict[str, Any],
    tolerance: float = DEFAULT_TOLERANCE,
    *,
    labels: tuple[str, str] = ("baseline", "candidate"),
) -> dict[str, Any]:
    """Compare mean, std and var_zero_mean of the patch and canvas blocks of two stats dicts.

    ``tolerance`` is relative: a metric diverges when |candidate − baseline| > tolerance·|baseline|.
    The report's ``status`` is ``diverged`` when any metric is ``diverged`` or ``missing``.
    """
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    metrics: dict[str, dict[str, Any]] = {}
    for block in STATS_BLOCKS:
        for name in STATS_METRICS:
            metrics[f"{block}.{name}"] = compare_metric(
                (baseline.get(block) or {}).get(name), (candidate.get(block) or {}).get(name), tolerance)
    failing = [k for k, v in metrics.items() if v["status"] in ("diverged", "missing")]
    return {
        "labels": {"baseline": labels[0], "candidate": labels[1]},
        "tolerance": tolerance,
        "metrics": metrics,
        "diverged": failing,
        "status": "diverged" if failing else "ok",
    }


def _fmt(value: float | None, spec: str = ".5g") -> str:
    return "—" if value is None else format(value, spec)


def format_stats_report(report: dict[str, Any]) -> str:
    labels = report["labels"]
    lines = [f"{'metric':<32}{labels['baseline'][:14]:>14}{labels['candidate'][:14]:>14}"
             f"{'ratio':>10}{'rel. diff':>11}  status"]
    for name, m in report["metrics"].items():
        lines.append(f"{name:<32}{_fmt(m['baseline']):>14}{_fmt(m['candidate']):>14}"
                     f"{_fmt(m['ratio'], '.4f'):>10}{_fmt(m['relative'], '.2%'):>11}  {m['status']}")
    n = len(report["diverged"])
    verdict = "ok" if not n else "DIVERGED: " + ", ".join(report["diverged"])
    lines.append(f"compare-stats: {n} of {len(report['metrics'])} metrics beyond the relative "
                 f"tolerance {report['tolerance'] * 100:.3g} % → {verdict}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# reconstructions
# ---------------------------------------------------------------------------------------------

RECON_SCORES = ("amplitude_mae", "amplitude_ssim", "phase_mae", "phase_ssim", "complex_nrmse",
                "frc_0_5", "frc_half_bit")


def covered_overlap(a, b) -> tuple[float, float, float, float]:
    """Bounding box (x_min, x_max, y_min, y_max) in ``b``'s canvas pixels of the pixels covered in
    both reconstructions (``a`` placed by the integer difference of the origins)."""
    dx = int(round(a.origin_xy[0] - b.origin_xy[0]))
    dy = int(round(a.origin_xy[1] - b.origin_xy[1]))
    both = np.zeros(b.mask.shape, dtype=bool)
    rows, cols = np.nonzero(a.mask)
    rows, cols = rows + dy, cols + dx
    inside = (rows >= 0) & (rows < both.shape[0]) & (cols >= 0) & (cols < both.shape[1])
    both[rows[inside], cols[inside]] = True
    both &= b.mask
    if not both.any():
        raise ValueError("the two reconstructions share no covered pixel (check they are of the same scan)")
    r, c = np.nonzero(both)
    return float(c.min()), float(c.max() + 1), float(r.min()), float(r.max() + 1)


def compare_reconstructions(a, b, tolerance: float = DEFAULT_TOLERANCE, *, trim: int = 2):
    """Register reconstruction ``a`` to ``b`` (the reference) over the overlap of their covered
    regions as in docs/design/spec.md#evaluation (origins from both files, then sub-pixel registration, phase offset and
    plane, amplitude scale), and score them with MAE, SSIM and FRC for amplitude and phase.

    Diverged when amplitude or phase SSIM < 1 − tolerance, or when the amplitude scale that the
    registration had to apply differs from 1 by more than ``tolerance`` (relative). Returns
    ``(report, a_aligned, b_crop)``.
    """
    from ptychopinn.evaluation.metrics import align_for_comparison, compare_images

    if not 0 <= tolerance < 1:
        raise ValueError(f"tolerance must be in [0, 1), got {tolerance}")
    region = covered_overlap(a, b)
    origin = (a.origin_xy[0] - b.origin_xy[0], a.origin_xy[1] - b.origin_xy[1])
    aligned, reference, info = align_for_comparison(
        a.object, b.object, recon_origin_xy=origin, region_xy=region, trim=trim)
    scores = compare_images(aligned, reference)
    checks = {
        "amplitude_ssim": (scores["amplitude_ssim"], scores["amplitude_ssim"] >= 1 - tolerance),
        "phase_ssim": (scores["phase_ssim"], scores["phase_ssim"] >= 1 - tolerance),
        "amplitude_scale": (info["amplitude_scale"], abs(info["amplitude_scale"] - 1) <= tolerance),
    }
    failing = [name for name, (_, ok) in checks.items() if not ok]
    report = {
        "tolerance": tolerance,
        "rule": "diverged if amplitude or phase SSIM < 1 − tolerance or |amplitude_scale − 1| > tolerance",
        "scores": {k: scores[k] for k in RECON_SCORES},
        "checks": {name: {"value": value, "status": "ok" if ok else "diverged"}
                   for name, (value, ok) in checks.items()},
        "registration": info,
        "frc": {k: scores[k] for k in ("frc_frequencies", "frc_curve", "frc_ring_counts")},
        "diverged": failing,
        "status": "diverged" if failing else "ok",
    }
    return report, aligned, reference


def format_recon_report(report: dict[str, Any], labels: tuple[str, str]) -> str:
    s = report["scores"]
    lines = [
        f"{labels[0]} vs {labels[1]} over {report['registration']['compared_shape'][0]}×"
        f"{report['registration']['compared_shape'][1]} px (shift x={report['registration']['shift_xy'][0]:.2f}, "
        f"y={report['registration']['shift_xy'][1]:.2f} in {labels[1]}'s canvas pixels)",
        f"  amplitude: SSIM {s['amplitude_ssim']:.4f}, MAE {s['amplitude_mae']:.4g}; "
        f"phase: SSIM {s['phase_ssim']:.4f}, MAE {s['phase_mae']:.4g} rad",
        f"  FRC 0.5 {s['frc_0_5']:.2f}, 1/2-bit {s['frc_half_bit']:.2f}; amplitude scale applied "
        f"{report['checks']['amplitude_scale']['value']:.4f}; complex NRMSE {s['complex_nrmse']:.4g}",
    ]
    verdict = "ok" if report["status"] == "ok" else "DIVERGED: " + ", ".join(report["diverged"])
    lines.append(f"compare-recon (tolerance {report['tolerance']:g}) → {verdict}")
    return "\n".join(lines)
