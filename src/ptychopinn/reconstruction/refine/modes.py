"""Incoherent probe modes in refinement (docs/design/spec.md#stitching-and-refinement): the
starting modes, their orthogonalisation and the probe power constraint. A partially coherent beam
is a mixture of mutually incoherent modes P_k; a pattern is Σ_k |F(P_k · O)|², which is unchanged
by any unitary mixing of the modes, so only the mode *subspace* and the summed intensity are
physical: the modes are kept orthogonal and ordered by power to make them unique."""

from __future__ import annotations

import numpy as np
import torch

from ptychopinn.simulation.simulate import make_probe_modes

# An added mode starts with this fraction of the power of the mode before it: enough for the data's
# gradient to reach it, little enough not to blur the patterns of a coherent beam
EXTRA_MODE_POWER_RATIO = 0.1


def starting_modes(modes: np.ndarray, count: int) -> np.ndarray:
    """(count, N, N) complex64 starting modes from ``modes`` (K, N, N), strongest first, with the
    same total power: the given ones (the strongest ``count`` when there are more), and beyond them
    modes made from the strongest, times a low-order Hermite-Gauss-like pattern, orthogonalised,
    each at EXTRA_MODE_POWER_RATIO of the power of the one before."""
    modes = np.asarray(modes, dtype=np.complex64)
    total = np.sum(np.abs(modes.astype(np.complex128)) ** 2)
    if count <= len(modes):
        chosen = modes[:count].astype(np.complex128)
    else:
        added = make_probe_modes(modes[0], count - len(modes) + 1, EXTRA_MODE_POWER_RATIO)[1:]
        # scaled to the weakest given mode, then orthogonalised against every mode
        weakest = np.sum(np.abs(modes[-1].astype(np.complex128)) ** 2) / np.sum(np.abs(modes[0]) ** 2)
        chosen = np.concatenate([modes, added * np.sqrt(weakest)]).astype(np.complex128)
        chosen = orthogonalized(chosen)
    chosen *= np.sqrt(total / np.sum(np.abs(chosen) ** 2))
    return chosen.astype(np.complex64)


def orthogonalized(modes):
    """The modes (K, N, N) made mutually orthogonal, strongest first, with the same incoherent sum
    Σ_k P_k P_k^† (hence the same predicted patterns): the singular vectors of the (K, N²) stack
    scaled by their singular values. NumPy or torch arrays."""
    if isinstance(modes, torch.Tensor):
        flat = modes.reshape(len(modes), -1)
        u, s, vh = torch.linalg.svd(flat, full_matrices=False)
        return (s[:, None].to(vh.dtype) * vh).reshape(modes.shape)
    flat = np.asarray(modes).reshape(len(modes), -1)
    u, s, vh = np.linalg.svd(flat, full_matrices=False)
    return (s[:, None] * vh).reshape(np.shape(modes)).astype(np.asarray(modes).dtype)


def with_total_power(modes: torch.Tensor, power: torch.Tensor) -> torch.Tensor:
    """``modes`` scaled so that Σ_k Σ|P_k|² = ``power``: object and probe scale are not separately
    identifiable, and holding the probe's power at what the counts imply keeps the object at its
    physical scale instead of letting the two drift apart (a diverging probe was issue 27's 6e24 loss)."""
    return modes * torch.sqrt(power / modes.abs().square().sum())


def mode_powers(modes: np.ndarray) -> np.ndarray:
    """Each mode's share of the total power, (K,) float64."""
    power = np.sum(np.abs(np.asarray(modes).astype(np.complex128)) ** 2, axis=(-2, -1))
    return power / power.sum()


def subspace_overlap(modes: np.ndarray, reference: np.ndarray) -> float:
    """How much of the power of ``modes`` lies in the subspace spanned by ``reference``: Σ_k ‖Π P_k‖²
    / Σ_k ‖P_k‖² with Π the projector onto span(reference); 1 when every mode is a mixture of the
    reference modes (independent of the global phase and of unitary mixing), towards 0 otherwise."""
    found = np.asarray(modes).astype(np.complex128).reshape(len(modes), -1)
    basis, _ = np.linalg.qr(np.asarray(reference).astype(np.complex128).reshape(len(reference), -1).T)
    projected = found @ basis.conj()
    return float(np.sum(np.abs(projected) ** 2) / np.sum(np.abs(found) ** 2))
