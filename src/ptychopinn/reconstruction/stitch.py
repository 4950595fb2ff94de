"""Stitching object patches into one object (docs/design/spec.md#stitching-and-refinement, with the C = 1 phase rule of #model).

Each group yields an N × N object patch centred on the group centre (x, y) (x = column, y = row,
object-pixel coordinates). Patch pixel (r, c) is object pixel (y − N/2 + r, x − N/2 + c).

Every patch contributes a weighted window W (an M × M central crop with weight 1, or the whole
patch weighted by |P|² / max|P|²). With S_k the bilinear splat of patch k (the adjoint of bilinear
sampling at its sub-pixel position),

    sum      = Σ_k S_k(W · p_k)        coverage = Σ_k S_k(W)
    object   = sum / coverage          where coverage ≥ threshold · max W, else 0.

Only the canvas (complex sum and coverage) is held; patches stream through :meth:`Stitcher.add`.
"""

from __future__ import annotations

import math

import numpy as np

from ptychopinn.reconstruction.result import Reconstruction

WEIGHTINGS = ("crop", "probe")
_TINY = 1e-12


class Stitcher:
    """Streaming accumulator: ``add`` batches of patches, then take the ``result``.

    The canvas is sized at construction from all group centres: its origin is
    ``floor(min centre − N/2) − 1`` in x and y (= floor(min centre) − N/2 − 1 for even N), and it
    extends so that every full N × N patch, plus the one extra pixel of a bilinear splat, fits
    with a 2 px margin.

    ``align_phase``: before accumulating patch p with weighted splat s = S(W · p), compute
    z = Σ sum_canvas · conj(s) over its footprint; if |z| is not negligible, p ← p · exp(i·arg z),
    so its global phase agrees with what the canvas already holds (needed at C = 1, docs/design/spec.md#model).
    """

    def __init__(
        self,
        centers_xy: np.ndarray,
        patch_size: int,
        crop: int = 20,
        weighting: str = "crop",
        probe: np.ndarray | None = None,
        align_phase: bool = False,
        threshold: float = 1e-3,
    ) -> None:
        self.patch_size = _check_patch_size(patch_size)
        self.weighting = weighting
        self.align_phase = bool(align_phase)
        if not (threshold >= 0 and math.isfinite(threshold)):
            raise ValueError(f"threshold must be a finite number >= 0, got {threshold}")
        self.threshold = float(threshold)
        self._window, self._start = _make_window(self.patch_size, crop, weighting, probe)
        centers = _check_centers(centers_xy, "centers_xy")
        if len(centers) == 0:
            raise ValueError("centers_xy must hold at least one centre")
        self.origin_xy, height, width = _canvas_bounds(centers, self.patch_size)
        self._sum = np.zeros((height, width), dtype=np.complex128)
        self._coverage = np.zeros((height, width), dtype=np.float64)

    @property
    def canvas_shape(self) -> tuple[int, int]:
        return self._sum.shape

    def add(self, patches: np.ndarray, centers_xy: np.ndarray) -> None:
        """Accumulate a batch: ``patches`` (B, N, N) complex centred at ``centers_xy`` (B, 2)."""
        patches = np.asarray(patches)
        n = self.patch_size
        if patches.ndim == 2:
            patches = patches[None]
        if patches.ndim != 3 or patches.shape[1:] != (n, n):
            raise ValueError(f"patches must have shape (B, {n}, {n}), got {patches.shape}")
        centers = _check_centers(centers_xy, "centers_xy")
        if len(centers) != len(patches):
            raise ValueError(f"{len(patches)} patches but {len(centers)} centres")
        for patch, center in zip(patches, centers, strict=True):
            self._add_one(patch, center)

    def result(self) -> Reconstruction:
        """Normalised object: sum / coverage where coverage ≥ threshold · max W, else 0 (and the
        coverage is reported as 0 there, so ``mask`` = coverage > 0)."""
        mask = self._coverage >= self.threshold * float(self._window.max())
        mask &= self._coverage > 0
        obj = np.zeros(self._sum.shape, dtype=np.complex64)
        obj[mask] = self._sum[mask] / self._coverage[mask]
        coverage = np.where(mask, self._coverage, 0).astype(np.float32)
        return Reconstruction(object=obj, coverage=coverage, origin_xy=self.origin_xy)

    def _add_one(self, patch: np.ndarray, center: np.ndarray) -> None:
        m = self._window.shape[0]
        values = self._window * patch[self._start : self._start + m, self._start : self._start + m]
        row0, col0, fy, fx = self._footprint(center)
        rows, cols = slice(row0, row0 + m + 1), slice(col0, col0 + m + 1)
        splat_values = bilinear_splat(values, fy, fx)
        if self.align_phase:
            splat_values = splat_values * _phase_to_match(self._sum[rows, cols], splat_values)
        self._sum[rows, cols] += splat_values
        self._coverage[rows, cols] += bilinear_splat(self._window, fy, fx)

    def _footprint(self, center: np.ndarray) -> tuple[int, int, float, float]:
        """Integer canvas corner and fractional offset (fy, fx) of a window's top-left pixel."""
        x, y = float(center[0]), float(center[1])
        offset = self._start - self.patch_size / 2
        top = y + offset - self.origin_xy[1]
        left = x + offset - self.origin_xy[0]
        row0, col0 = math.floor(top), math.floor(left)
        m = self._window.shape[0]
        height, width = self._sum.shape
        if row0 < 0 or col0 < 0 or row0 + m + 1 > height or col0 + m + 1 > width:
            raise ValueError(
                f"centre (x={x}, y={y}) falls outside the canvas sized at construction "
                f"(origin {self.origin_xy}, shape {self._sum.shape}); pass all centres up front"
            )
        return row0, col0, top - row0, left - col0


def stitch(
    patches: np.ndarray,
    centers_xy: np.ndarray,
    patch_size: int | None = None,
    **kwargs,
) -> Reconstruction:
    """One-shot stitching of (B, N, N) patches at (B, 2) centres; kwargs go to :class:`Stitcher`."""
    patches = np.asarray(patches)
    if patch_size is None:
        if patches.ndim != 3:
            raise ValueError(f"patches must have shape (B, N, N), got {patches.shape}")
        patch_size = patches.shape[-1]
    stitcher = Stitcher(centers_xy, patch_size, **kwargs)
    stitcher.add(patches, centers_xy)
    return stitcher.result()


def bilinear_splat(values: np.ndarray, fy: float, fx: float) -> np.ndarray:
    """Adjoint of bilinear sampling at offset (fy, fx) ∈ [0, 1)²: (m, m) → (m + 1, m + 1).

    Value v at (r, c) goes to (r, c), (r, c+1), (r+1, c), (r+1, c+1) with weights
    (1−fy)(1−fx), (1−fy)fx, fy(1−fx), fy·fx.
    """
    m_rows, m_cols = values.shape
    out = np.zeros((m_rows + 1, m_cols + 1), dtype=np.result_type(values.dtype, np.float64))
    out[:-1, :-1] += (1 - fy) * (1 - fx) * values
    out[:-1, 1:] += (1 - fy) * fx * values
    out[1:, :-1] += fy * (1 - fx) * values
    out[1:, 1:] += fy * fx * values
    return out


def _phase_to_match(canvas_block: np.ndarray, contribution: np.ndarray) -> complex:
    """exp(i·arg z), z = Σ canvas · conj(contribution); 1 when z is negligible (no overlap)."""
    z = np.vdot(contribution, canvas_block)
    scale = np.linalg.norm(canvas_block) * np.linalg.norm(contribution)
    if scale == 0 or abs(z) <= _TINY * scale:
        return 1.0
    return z / abs(z)


def _make_window(
    patch_size: int, crop: int, weighting: str, probe: np.ndarray | None
) -> tuple[np.ndarray, int]:
    """Weight window W and the patch row/column where it starts."""
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    if probe is not None:
        probe = _check_probe(probe, patch_size)
    if weighting == "probe":
        if probe is None:
            raise ValueError("weighting='probe' needs a probe")
        intensity = np.abs(probe) ** 2
        return intensity / intensity.max(), 0
    if isinstance(crop, bool) or int(crop) != crop or crop < 1:
        raise ValueError(f"crop must be a positive integer, got {crop}")
    crop = int(crop)
    if crop > patch_size:
        raise ValueError(f"crop ({crop}) larger than the patch size ({patch_size})")
    return np.ones((crop, crop)), patch_size // 2 - crop // 2


def _check_probe(probe: np.ndarray, patch_size: int) -> np.ndarray:
    probe = np.asarray(probe)
    if probe.ndim != 2:
        raise ValueError(f"probe must be 2-D, got shape {probe.shape}")
    if probe.shape != (patch_size, patch_size):
        raise ValueError(f"probe shape {probe.shape} does not match patch size {patch_size}")
    if not np.all(np.isfinite(probe)) or not np.any(probe):
        raise ValueError("probe must be finite and not all zero")
    return probe


def _check_patch_size(patch_size: int) -> int:
    if isinstance(patch_size, bool) or int(patch_size) != patch_size or patch_size < 1:
        raise ValueError(f"patch_size must be a positive integer, got {patch_size}")
    return int(patch_size)


def _check_centers(centers_xy: np.ndarray, name: str) -> np.ndarray:
    centers = np.asarray(centers_xy, dtype=np.float64)
    if centers.ndim == 1 and centers.shape == (2,):
        centers = centers[None]
    if centers.ndim != 2 or centers.shape[1] != 2:
        raise ValueError(f"{name} must have shape (B, 2) as (x, y), got {centers.shape}")
    if not np.all(np.isfinite(centers)):
        raise ValueError(f"{name} must be finite")
    return centers


def _canvas_bounds(centers: np.ndarray, n: int) -> tuple[tuple[float, float], int, int]:
    """Origin (x, y) and (height, width) so every full patch plus its splat pixel fits, +2 px."""
    low = np.floor(centers.min(axis=0) - n / 2) - 1
    high = np.ceil(centers.max(axis=0) + n / 2)  # last patch pixel + 1 (the splat neighbour)
    width, height = (high - low + 1 + 2).astype(int)
    return (float(low[0]), float(low[1])), int(height), int(width)
