"""Stage probes: named intermediate tensors of one forward pass, saved, loaded and compared.

Two runs (two models, two settings, two backends) are fed the same grouped, normalised batch,
the first K groups of the scan grouped with the model's settings; the first stage (in
:data:`ptychopinn.diagnostics.stages.STAGE_NAMES` order) whose relative difference max|a − b| / max|a|
exceeds ``rtol`` localises the discrepancy ("normalized_input" diverging means the inputs or
the scale contract differ, not the network).

The backends run through the same batch runner as :func:`ptychopinn.api.reconstruct` (the
backend's ``predictor``);
any other ``forward(x, offsets) -> output`` (NumPy X_n (B, C, N, N) and offsets (B, C, 2)
float32 in, an object with the attributes of ``ForwardOutput`` out) can be passed instead.

>>> stages = capture_stages(model, scan, n_groups=8)                # doctest: +SKIP
>>> save_stages("torch.npz", stages, stage_meta(model, scan, 8))     # doctest: +SKIP
>>> report = compare_stages(load_stages("torch.npz")[0], load_stages("tf.npz")[0], rtol=1e-4)
... # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ptychopinn.api import as_scan, with_scan_probe
from ptychopinn.atomic import atomic_path
from ptychopinn.backends import ModelBackend, get_backend
from ptychopinn.data.grouped import GroupedScan
from ptychopinn.diagnostics.stages import STAGE_NAMES, stages_from_forward

STAGES_FORMAT = "ptychopinn-stages"
STAGES_VERSION = 1
DEFAULT_RTOL = 1e-4

StageForward = Callable[[np.ndarray, np.ndarray], Any]


def backend_forward(model, backend: str | ModelBackend, accelerator: str | None = None) -> StageForward:
    """``forward(x, offsets) -> output`` of ``model`` in ``backend``, on the CPU unless
    ``accelerator`` says otherwise (captures are then reproducible)."""
    run = get_backend(backend).predictor(model, accelerator or "cpu")
    return lambda x, offsets: run(x, offsets)[1]


def _stage_batch(model, scan, n_groups: int):
    if n_groups < 1:
        raise ValueError(f"--capture-groups must be at least 1, got {n_groups}")
    scan = as_scan(scan, model.settings.data.intensity)
    grouped = GroupedScan.build(scan, model.settings.data)
    selection = slice(0, min(n_groups, len(grouped)))
    return scan, grouped, selection


def capture_stages(
    model,
    scan,
    n_groups: int = 8,
    backend: str | ModelBackend = "torch",
    *,
    forward: StageForward | None = None,
    accelerator: str | None = None,
) -> dict[str, np.ndarray]:
    """Stages of one forward pass of ``model`` over the first ``n_groups`` groups of ``scan``
    (grouped with the model's settings, normalised with the scan's own input scale a exactly as
    :func:`ptychopinn.api.reconstruct` does). ``forward`` overrides the registered backend;
    ``accelerator`` defaults to the CPU so that captures are reproducible."""
    scan, grouped, selection = _stage_batch(model, scan, n_groups)
    forward = forward or backend_forward(with_scan_probe(model, scan), backend, accelerator)
    x = grouped.diffraction(selection)
    output = forward(x, grouped.offsets(selection))
    return {name: stages[name] for name in STAGE_NAMES
            if name in (stages := stages_from_forward(x, output))}


def stage_meta(model, scan, n_groups: int = 8, backend: str = "torch", **extra: Any) -> dict[str, Any]:
    """The ``meta`` record of a capture: backend, model path, the groups' scan indices, scales."""
    scan, grouped, selection = _stage_batch(model, scan, n_groups)
    return {
        "format": STAGES_FORMAT,
        "version": STAGES_VERSION,
        "backend": backend,
        "model": str(model.source) if getattr(model, "source", None) else None,
        "data": str(scan.source) if getattr(scan, "source", None) else None,
        "n_groups": int(selection.stop),
        "group_indices": grouped.groups.indices[selection].tolist(),
        "input_scale": grouped.input_scale,
        "photon_scale": model.scales.photon_scale,
        **extra,
    }


def save_stages(path: str | Path, stages: dict[str, np.ndarray], meta: dict[str, Any] | None = None) -> Path:
    """Write stages to an ``.npz`` (atomically) with ``meta`` as a JSON string (0-d str array)
    that also records the stage order; readable with ``allow_pickle=False``."""
    if "meta" in stages:
        raise ValueError("'meta' is reserved and cannot be a stage name")
    order = [n for n in STAGE_NAMES if n in stages] + [n for n in stages if n not in STAGE_NAMES]
    meta = {"format": STAGES_FORMAT, "version": STAGES_VERSION, **(meta or {}), "stage_order": order}
    arrays = {name: np.asarray(stages[name]) for name in order}
    for name, value in arrays.items():
        if value.dtype == object:
            raise ValueError(f"stage {name!r} is not a numeric array")
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, meta=np.array(json.dumps(meta)), **arrays)
    return Path(path)


def load_stages(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(stages in recorded order, meta) of a file written by :func:`save_stages`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such stage capture")
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise ValueError(f"{path}: not a readable .npz stage capture ({error})") from None
    if not hasattr(data, "files"):
        raise ValueError(f"{path}: not a stage capture (a single array, not an .npz archive)")
    with data:
        if "meta" not in data.files:
            raise ValueError(f"{path}: not a stage capture (no 'meta' entry)")
        try:
            meta = json.loads(str(data["meta"]))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: meta is not valid JSON ({error})") from None
        if not isinstance(meta, dict) or meta.get("format") != STAGES_FORMAT:
            raise ValueError(f"{path}: not a stage capture (meta format is not {STAGES_FORMAT!r})")
        order = meta.get("stage_order") or [n for n in data.files if n != "meta"]
        missing = [n for n in order if n not in data.files]
        if missing:
            raise ValueError(f"{path}: stages {missing} are listed in meta but absent")
        return {name: data[name] for name in order}, meta


def _stage_entry(name: str, a: np.ndarray | None, b: np.ndarray | None, rtol: float) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "stage": name,
        "shape_a": None if a is None else list(a.shape),
        "shape_b": None if b is None else list(b.shape),
        "max_abs_diff": None, "max_abs_a": None, "relative_diff": None,
    }
    if a is None or b is None:
        return {**entry, "status": "missing"}
    if a.shape != b.shape:
        return {**entry, "status": "shape_mismatch"}
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return {**entry, "status": "non_finite"}
    diff = float(np.max(np.abs(a.astype(np.complex128 if np.iscomplexobj(a) or np.iscomplexobj(b)
                                       else np.float64) - b), initial=0.0))
    scale = float(np.max(np.abs(a), initial=0.0))
    relative = diff / scale if scale > 0 else (0.0 if diff == 0 else math.inf)
    entry.update(max_abs_diff=diff, max_abs_a=scale, relative_diff=relative)
    return {**entry, "status": "ok" if relative <= rtol else "diverged"}


def compare_stages(a: dict[str, np.ndarray], b: dict[str, np.ndarray], rtol: float = DEFAULT_RTOL) -> dict:
    """Per-stage max |a − b| and relative difference max|a − b| / max|a| (``a`` is the reference).

    A stage diverges when the relative difference exceeds ``rtol``, when it exists in only one
    capture, when the shapes differ or when either holds a non-finite value. The report lists
    the stages in forward order, ``first_divergent`` (or None) and ``status``.
    """
    if not rtol >= 0:
        raise ValueError(f"rtol must be >= 0, got {rtol}")
    names = [n for n in STAGE_NAMES if n in a or n in b]
    names += [n for n in (*a, *b) if n not in names]
    entries = [_stage_entry(n, a.get(n), b.get(n), rtol) for n in names]
    failing = [e["stage"] for e in entries if e["status"] != "ok"]
    return {
        "rtol": rtol,
        "stages": entries,
        "first_divergent": failing[0] if failing else None,
        "diverged": failing,
        "status": "diverged" if failing else "ok",
    }


def format_stages_report(report: dict[str, Any], labels: tuple[str, str] = ("a", "b")) -> str:
    lines = [f"{'stage':<22}{'shape':>20}{'max|a−b|':>12}{'max|a|':>12}{'relative':>12}  status"]
    for e in report["stages"]:
        shape = "×".join(map(str, e["shape_a"] or e["shape_b"] or []))
        fmt = (lambda v: "—" if v is None else f"{v:.3e}")  # noqa: E731
        lines.append(f"{e['stage']:<22}{shape:>20}{fmt(e['max_abs_diff']):>12}{fmt(e['max_abs_a']):>12}"
                     f"{fmt(e['relative_diff']):>12}  {e['status']}")
    first = report["first_divergent"]
    lines.append(f"compare-stages {labels[0]} vs {labels[1]} (rtol {report['rtol']:g}): "
                 + ("all stages agree" if first is None else f"first divergent stage: {first}"))
    return "\n".join(lines)
