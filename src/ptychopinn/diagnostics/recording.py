"""Batch observers for training and inference: per-batch patch statistics and the debug dump.

Observers are called as ``observe(phase, batch_idx, (x, offsets), output)`` with ``output`` a
backend forward output (attributes as on ``ForwardOutput``); the statistics always describe the
**predicted** object patches ``output.object_patches`` (never the ground truth, docs/design/spec.md#diagnostics).
Nothing is registered unless a diagnostic is asked for, so training and inference pay nothing
by default.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from ptychopinn.api import reconstruct
from ptychopinn.diagnostics.figures import plot_canvas, plot_patch_grid
from ptychopinn.diagnostics.stats import (
    OffsetSummary,
    PatchAccumulator,
    batch_record,
    canvas_statistics,
    to_numpy,
    write_strict_json,
)

log = logging.getLogger(__name__)

PATCH_STATS_FILE = "patch_stats.json"
PATCH_GRID_FILE = "patch_grid.png"
GRID_PATCHES = 16


class PatchStatsRecorder:
    """Records the first ``limit`` batches of ``phase`` to ``directory/patch_stats.json`` (a JSON
    list of :func:`~ptychopinn.diagnostics.stats.batch_record` records, rewritten atomically after
    each recorded batch), draws the first batch's patches to ``directory/patch_grid.png`` and logs
    one INFO line per batch. Other phases (validation, Lightning's sanity check) are ignored;
    after ``limit`` batches a call returns at once."""

    def __init__(self, directory: str | Path, phase: str = "train", limit: int = 2, grid: bool = True):
        if limit < 1:
            raise ValueError(f"--patch-stats-limit must be at least 1, got {limit}")
        self.directory = Path(directory)
        self.phase = phase
        self.limit = int(limit)
        self.grid = grid
        self.records: list[dict] = []

    @property
    def path(self) -> Path:
        return self.directory / PATCH_STATS_FILE

    def __call__(self, phase: str, batch_idx: int, batch: Any, output: Any) -> None:
        if phase != self.phase or len(self.records) >= self.limit:
            return
        patches = to_numpy(output.object_patches)
        record = batch_record(phase, batch_idx, len(batch[0]), np.abs(patches))
        self.records.append(record)
        log.info("patch stats %s batch %d: %d groups, %d patches, mean %.4g, std %.4g, var_zero_mean %.4g",
                 phase, batch_idx, record["batch_size"], record["n_patches"], record["global_mean"],
                 record["global_std"], record["var_zero_mean"])
        write_strict_json(self.path, self.records)
        if self.grid and len(self.records) == 1:
            flat = patches.reshape(-1, *patches.shape[-2:])[:GRID_PATCHES]
            plot_patch_grid(flat, self.directory / PATCH_GRID_FILE, title=f"{phase} batch {batch_idx}")


class DebugDump:
    """Inference observer accumulating the debug dump (docs/design/spec.md#diagnostics); :meth:`write` finishes it.

    Patch statistics cover every predicted object patch of every group (streamed in float64:
    running moments and the running within-patch sum of squares, no patch kept), offsets are
    summarised, and the first ``GRID_PATCHES`` patches are kept for the grids.
    """

    def __init__(self, directory: str | Path, n_offsets: int = 8, n_grid: int = GRID_PATCHES):
        self.directory = Path(directory)
        self.patches = PatchAccumulator()
        self.offsets = OffsetSummary(n_offsets)
        self.n_grid = n_grid
        self.grid: list[np.ndarray] = []
        self.n_groups = 0

    def __call__(self, phase: str, batch_idx: int, batch: Any, output: Any) -> None:
        patches = to_numpy(output.object_patches)
        self.patches.update(np.abs(patches))
        self.offsets.update(batch[1])
        self.n_groups += len(patches)
        flat = patches.reshape(-1, *patches.shape[-2:])
        kept = sum(len(p) for p in self.grid)
        if kept < self.n_grid:
            self.grid.append(flat[: self.n_grid - kept].copy())

    def statistics(self, reconstruction) -> dict[str, Any]:
        return {
            "patch_amplitude": self.patches.result(),
            "canvas_amplitude": canvas_statistics(reconstruction.amplitude, reconstruction.mask),
        }

    def write(self, reconstruction, patch_size: int, **canvas_extra: Any) -> dict[str, Path]:
        """stats.json, offsets.json, canvas.json, patch_grid_amp.png, patch_grid_phase.png and
        canvas.png in the dump directory; returns the written paths by name."""
        if self.n_groups == 0:
            raise ValueError("debug dump: no batch was observed")
        d = self.directory
        ox, oy = reconstruction.origin_xy
        canvas = {
            "patch_size": int(patch_size),
            "canvas_shape": [int(v) for v in reconstruction.object.shape],
            "origin": {"x": float(ox), "y": float(oy)},
            "n_patches": self.n_groups,
            "covered_pixels": int(reconstruction.mask.sum()),
            **canvas_extra,
        }
        grid = np.concatenate(self.grid)
        paths = {
            "stats": write_strict_json(d / "stats.json", self.statistics(reconstruction)),
            "offsets": write_strict_json(d / "offsets.json", self.offsets.result()),
            "canvas": write_strict_json(d / "canvas.json", canvas),
            "patch_grid_amp": plot_patch_grid(grid, d / "patch_grid_amp.png", ("amplitude",)),
            "patch_grid_phase": plot_patch_grid(grid, d / "patch_grid_phase.png", ("phase",)),
            "canvas_png": plot_canvas(reconstruction, d / "canvas.png"),
        }
        return paths


def debug_dump(model, scan, directory: str | Path, **reconstruct_options: Any):
    """Reconstruct ``scan`` with ``model`` while recording the debug dump into ``directory``.

    Returns ``(reconstruction, stats)`` with ``stats`` the content of ``stats.json``.
    ``reconstruct_options`` go to :func:`ptychopinn.api.reconstruct` (its
    ``batch_observers`` are extended, not replaced).
    """

    dump = DebugDump(directory)
    observers = [*(reconstruct_options.pop("batch_observers", None) or ()), dump]
    result = reconstruct(model, scan, batch_observers=observers, **reconstruct_options)
    dump.write(result, model.patch_size)
    return result, dump.statistics(result)
