"""Statistics of amplitude patches and canvases (docs/design/spec.md#diagnostics), streaming and in float64.

``var_zero_mean`` of a set of amplitude patches is the mean over all their pixels of
(|A| − mean over that patch's pixels of |A|)², i.e. the average within-patch variance. A collapsed
model (flat patches) drives it to zero while the global mean can look perfectly healthy, which is
why every diagnostic reports it next to mean and std.

>>> import numpy as np
>>> var_zero_mean(np.array([[[0.0, 2.0]], [[5.0, 5.0]]]))  # patch variances 1 and 0
0.5
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ptychopinn.atomic import write_text_atomic


def to_numpy(values: Any) -> np.ndarray:
    """A NumPy view of a NumPy array or a (detached, CPU) torch tensor."""
    if hasattr(values, "detach"):
        values = values.detach()
        if values.is_complex() and values.element_size() < 8:
            values = values.to(dtype=values.real.float().dtype.to_complex())
        elif values.is_floating_point() and values.element_size() < 4:
            values = values.float()  # bfloat16/float16 have no NumPy dtype
        values = values.cpu().numpy()
    return np.asarray(values)


def amplitudes_of(values: Any) -> np.ndarray:
    """|values| as float64 (complex patches give their modulus, real ones their absolute value)."""
    return np.abs(to_numpy(values)).astype(np.float64, copy=False)


def _as_patches(amplitudes: Any) -> np.ndarray:
    """(P, pixels) float64 view of amplitude patches (..., H, W); a 2-D image is one patch."""
    a = amplitudes_of(amplitudes)
    if a.ndim < 2:
        raise ValueError(f"amplitude patches need at least 2 dimensions (..., H, W), got shape {a.shape}")
    return a.reshape(-1, a.shape[-2] * a.shape[-1])


def centred_phases(patches: Any, axis: int | tuple[int, ...] = (-2, -1)) -> np.ndarray:
    """Phase of each complex patch (its pixels along ``axis``) relative to its amplitude-weighted
    circular mean phase, in (−π, π]: the global phase of a patch is arbitrary, its structure is not."""
    values = np.asarray(patches)
    mean = np.sum(values, axis=axis, keepdims=True)
    return np.angle(values * np.exp(-1j * np.angle(mean)))


def var_zero_mean(amplitudes: Any) -> float:
    """Mean over all pixels of (A − mean of A over its own patch)² for patches (..., H, W), float64."""
    return PatchAccumulator().update(amplitudes).result()["var_zero_mean"]


def patch_statistics(amplitudes: Any) -> dict[str, Any]:
    """{mean, std, min, max, var_zero_mean, n_patches, n_pixels} of amplitude patches (..., H, W).

    Complex input is reduced to its modulus; std is the population standard deviation over all
    pixels. Identical to feeding the same patches to :class:`PatchAccumulator` in any batches.
    """
    return PatchAccumulator().update(amplitudes).result()


class RunningMoments:
    """Count, mean and sum of squared deviations of a stream of numbers (Chan et al.'s pairwise
    update, stable in float64), plus min and max."""

    def __init__(self) -> None:
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.min = math.inf
        self.max = -math.inf

    def update(self, values: np.ndarray) -> RunningMoments:
        values = np.asarray(values, dtype=np.float64).ravel()
        if values.size == 0:
            return self
        n_b = values.size
        mean_b = float(values.mean())
        m2_b = float(np.sum((values - mean_b) ** 2))
        total = self.count + n_b
        delta = mean_b - self.mean
        self.mean += delta * n_b / total
        self.m2 += m2_b + delta * delta * self.count * n_b / total
        self.count = total
        self.min = min(self.min, float(values.min()))
        self.max = max(self.max, float(values.max()))
        return self

    @property
    def std(self) -> float:
        return math.sqrt(max(self.m2, 0.0) / self.count) if self.count else math.nan


class PatchAccumulator:
    """Streaming :func:`patch_statistics`: feed batches of amplitude patches with :meth:`update`;
    only running sums are kept (memory independent of the number of patches)."""

    def __init__(self) -> None:
        self.moments = RunningMoments()
        self.n_patches = 0
        self.within_ssd = 0.0  # Σ over patches of Σ over pixels (A − patch mean)²

    def update(self, amplitudes: Any) -> PatchAccumulator:
        patches = _as_patches(amplitudes)
        if patches.size == 0:
            return self
        self.moments.update(patches)
        self.n_patches += patches.shape[0]
        self.within_ssd += float(np.sum((patches - patches.mean(axis=1, keepdims=True)) ** 2))
        return self

    def result(self) -> dict[str, Any]:
        m = self.moments
        empty = m.count == 0
        return {
            "mean": math.nan if empty else m.mean,
            "std": m.std,
            "min": math.nan if empty else m.min,
            "max": math.nan if empty else m.max,
            "var_zero_mean": math.nan if empty else self.within_ssd / m.count,
            "n_patches": self.n_patches,
            "n_pixels": m.count,
        }


def canvas_statistics(amplitude: Any, mask: Any | None = None) -> dict[str, Any]:
    """{mean, std, min, max, var_zero_mean, n_pixels} of a canvas amplitude over its covered
    pixels (``mask``); the covered pixels form one "patch", so var_zero_mean is their variance."""
    values = amplitudes_of(amplitude)
    if mask is not None:
        values = values[np.asarray(mask, dtype=bool)]
    stats = PatchAccumulator().update(values.reshape(1, 1, -1)).result()
    stats.pop("n_patches")
    return stats


def batch_record(phase: str, batch_idx: int, batch_size: int, amplitudes: Any, n_per_patch: int = 4) -> dict:
    """One per-batch record of predicted amplitude patches (``patch_stats.json``)."""
    patches = _as_patches(amplitudes)
    stats = patch_statistics(patches[:, None, :])
    per_patch = [
        {"patch_idx": i, "mean": float(p.mean()), "std": float(p.std()), "min": float(p.min()),
         "max": float(p.max())}
        for i, p in enumerate(patches[:n_per_patch])
    ]
    return {
        "phase": phase,
        "batch_idx": int(batch_idx),
        "batch_size": int(batch_size),
        "n_patches": int(patches.shape[0]),
        "global_mean": stats["mean"],
        "global_std": stats["std"],
        "var_zero_mean": stats["var_zero_mean"],
        "per_patch": per_patch,
    }


class OffsetSummary:
    """Streaming summary of group member offsets (B, C, 2) in [x, y] (``offsets.json``)."""

    def __init__(self, n_first: int = 8) -> None:
        self.n_first = n_first
        self.count = 0
        self.channels: int | None = None
        self.first: list = []
        self.dx = RunningMoments()
        self.dy = RunningMoments()

    def update(self, offsets: Any) -> OffsetSummary:
        offsets = to_numpy(offsets).astype(np.float64)
        if offsets.ndim == 2:
            offsets = offsets[:, None]
        self.count += offsets.shape[0]
        self.channels = int(offsets.shape[1])
        room = self.n_first - len(self.first)
        if room > 0:
            self.first.extend(offsets[:room].tolist())
        self.dx.update(offsets[..., 0])
        self.dy.update(offsets[..., 1])
        return self

    def result(self) -> dict[str, Any]:
        empty = self.count == 0
        return {
            "count": self.count,
            "channels": self.channels,
            "order": "xy",
            "first_offsets": self.first,
            "dx_mean": math.nan if empty else self.dx.mean,
            "dx_std": self.dx.std,
            "dy_mean": math.nan if empty else self.dy.mean,
            "dy_std": self.dy.std,
        }


def strict_json(value: Any) -> Any:
    """``value`` with NumPy types made plain and NaN/±inf replaced by None (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): strict_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return strict_json(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_strict_json(path: str | Path, payload: Any) -> Path:
    """Write ``payload`` atomically as strict JSON (no NaN/Infinity tokens)."""
    text = json.dumps(strict_json(payload), indent=2, allow_nan=False)
    return write_text_atomic(path, text + "\n")


def read_json(path: str | Path, what: str) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not a valid {what} JSON file ({error})") from None
