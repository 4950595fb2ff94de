"""The scale contract (docs/design/spec.md#scaling): every scale factor, computed once by one function, persisted.

Training, inference, diagnostics and both backends read the same :class:`ScaleContract`; the
input scale of the data being reconstructed is always computed by :func:`input_scale`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

COUNTS_CHUNK = 256  # patterns read at a time when only the valid pixels count


def mean_total_counts(diffraction: np.ndarray, valid: np.ndarray | None = None) -> float:
    """n̄ = mean over patterns of Σ X² (float64): mean total counts when X = sqrt(counts), summed
    over the ``valid`` detector pixels ((N, N) bool; None: all). A bad pixel's value is garbage,
    and a hot one would outweigh the signal."""
    if valid is None and hasattr(diffraction, "pattern_energies"):  # read lazily: one chunked pass, kept
        return float(np.mean(diffraction.pattern_energies()))
    if np.ndim(diffraction) < 2 or np.size(diffraction) == 0:
        raise ValueError("diffraction must be a non-empty stack of patterns")
    if valid is None:
        x = np.asarray(diffraction, dtype=np.float64)
        return float(np.mean(np.sum(x**2, axis=(-2, -1)).reshape(-1)))
    # pattern by pattern, as above, so that garbage masked here and zeros in its place sum alike;
    # a chunk at a time, so that a lazily read scan is never held whole
    energies = [np.sum(np.asarray(diffraction[start : start + COUNTS_CHUNK], dtype=np.float64) ** 2 * valid,
                       axis=(-2, -1)).reshape(-1) for start in range(0, len(diffraction), COUNTS_CHUNK)]
    return float(np.mean(np.concatenate(energies)))


def input_scale(diffraction: np.ndarray, valid: np.ndarray | None = None) -> float:
    """a = sqrt((N/2)² / mean_patterns Σ X²), so the mean pattern energy of a·X is (N/2)²; the sum
    runs over the ``valid`` detector pixels (None: all), as training sees bad pixels as 0."""
    return _scale_for_energy(np.shape(diffraction)[-1], mean_total_counts(diffraction, valid))


def _scale_for_energy(n: int, energy: float) -> float:
    """a for patterns of side ``n`` whose mean energy is ``energy`` (:func:`input_scale`)."""
    if not energy > 0:
        raise ValueError("diffraction has zero total energy; cannot normalise it")
    return math.sqrt((n / 2) ** 2 / energy)


def normalize_diffraction(diffraction: np.ndarray, scale: float) -> np.ndarray:
    """X_n = a · X as float32 (the product is formed in float64)."""
    return (np.asarray(diffraction, dtype=np.float64) * scale).astype(np.float32)


@dataclass(frozen=True)
class ScaleContract:
    """All scale factors of one model (docs/design/spec.md#scaling).

    ``photon_scale`` S maps normalised amplitudes to counts: λ̂ = (S·Â_n)², k = (S·X_n)².
    ``input_scale`` and ``mean_counts`` are the training data's a and n̄ (kept for diagnostics;
    inference computes a afresh from the data being reconstructed).
    """

    patch_size: int
    probe_scale: float
    probe_mask: bool
    input_scale: float
    mean_counts: float
    photon_scale: float

    @classmethod
    def from_training_data(
        cls,
        diffraction: np.ndarray,
        *,
        probe_scale: float = 4.0,
        probe_mask: bool = False,
        nphotons: float | None = None,
        valid: np.ndarray | None = None,
    ) -> ScaleContract:
        """Build the contract from training amplitudes, over the ``valid`` detector pixels ((N, N)
        bool; None: all).

        ``nphotons`` overrides the measured n̄ only for data that are not in counts.
        """
        n = int(np.shape(diffraction)[-1])
        measured = mean_total_counts(diffraction, valid)
        mean_counts = float(nphotons) if nphotons is not None else measured
        if not mean_counts > 0:
            raise ValueError(f"mean counts per pattern must be positive, got {mean_counts}")
        return cls(
            patch_size=n,
            probe_scale=float(probe_scale),
            probe_mask=bool(probe_mask),
            input_scale=_scale_for_energy(n, measured),  # one pass over the patterns, not two
            mean_counts=mean_counts,
            photon_scale=math.sqrt(mean_counts) / (n / 2),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> ScaleContract:
        expected = set(cls.__dataclass_fields__)
        missing, extra = expected - set(payload), set(payload) - expected
        if missing or extra:
            raise ValueError(
                f"scale contract fields mismatch: missing {sorted(missing)}, unknown {sorted(extra)}"
            )
        return cls(**payload)

    @classmethod
    def from_json(cls, text: str) -> ScaleContract:
        return cls.from_dict(json.loads(text))
