"""The forward-parity toolkit (docs/design/spec.md#diagnostics): patch statistics, debug dumps, comparisons, stage probes.

Importing this package needs NumPy only (no torch, no matplotlib until a figure is drawn).

* statistics: :func:`var_zero_mean`, :func:`patch_statistics`, :class:`PatchAccumulator`,
  :func:`canvas_statistics`;
* observers for ``train_with_summary``/``reconstruct`` (``batch_observers=[...]``):
  :class:`PatchStatsRecorder` (``analysis/patch_stats.json``), :class:`DebugDump`, and
  :func:`debug_dump` (reconstruct + dump in one call);
* comparisons that gate scripts: :func:`compare_stats`, :func:`compare_reconstructions`,
  :func:`compare_stages`;
* stage probes: :func:`capture_stages`, :func:`stage_meta`, :func:`save_stages`,
  :func:`load_stages`, :func:`backend_forward`.
"""

from __future__ import annotations

from ptychopinn.diagnostics.compare import (
    compare_reconstructions,
    compare_stats,
    format_recon_report,
    format_stats_report,
    load_stats,
)
from ptychopinn.diagnostics.probes import (
    backend_forward,
    capture_stages,
    compare_stages,
    format_stages_report,
    load_stages,
    save_stages,
    stage_meta,
)
from ptychopinn.diagnostics.recording import DebugDump, PatchStatsRecorder, debug_dump
from ptychopinn.diagnostics.stats import (
    PatchAccumulator,
    canvas_statistics,
    patch_statistics,
    strict_json,
    var_zero_mean,
    write_strict_json,
)

__all__ = [
    "DebugDump",
    "PatchAccumulator",
    "PatchStatsRecorder",
    "backend_forward",
    "canvas_statistics",
    "capture_stages",
    "compare_reconstructions",
    "compare_stages",
    "compare_stats",
    "debug_dump",
    "format_recon_report",
    "format_stages_report",
    "format_stats_report",
    "load_stages",
    "load_stats",
    "patch_statistics",
    "save_stages",
    "stage_meta",
    "strict_json",
    "var_zero_mean",
    "write_strict_json",
]
