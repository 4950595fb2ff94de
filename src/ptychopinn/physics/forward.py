"""The forward model (docs/design/spec.md#forward-model): patch extraction, illumination and far-field amplitude.

This NumPy code is the oracle: the PyTorch and TensorFlow ops are tested against it.
"""

from __future__ import annotations

import numpy as np


def extract_patches(obj: np.ndarray, positions_xy: np.ndarray, n: int) -> np.ndarray:
    """Patches of size ``n`` centred on each position, bilinear for sub-pixel positions.

    Pixel (r, c) of the patch at (x, y) samples ``obj`` at row y − N/2 + r, column x − N/2 + c.
    Samples outside the object are zero. Returns (M, n, n) in ``obj``'s dtype class (complex128
    for complex input).
    """
    obj = np.asarray(obj)
    positions_xy = np.asarray(positions_xy, dtype=np.float64).reshape(-1, 2)
    pad = n + 2
    padded = np.pad(obj.astype(np.result_type(obj.dtype, np.float64)), pad)
    patches = np.empty((len(positions_xy), n, n), dtype=padded.dtype)
    for i, (x, y) in enumerate(positions_xy):
        patches[i] = _bilinear_window(padded, y - n / 2 + pad, x - n / 2 + pad, n)
    return patches


def _bilinear_window(padded: np.ndarray, top: float, left: float, n: int) -> np.ndarray:
    row0, col0 = int(np.floor(top)), int(np.floor(left))
    fy, fx = top - row0, left - col0
    if row0 < 0 or col0 < 0 or row0 + n + 1 > padded.shape[0] or col0 + n + 1 > padded.shape[1]:
        return np.zeros((n, n), dtype=padded.dtype)
    block = padded[row0 : row0 + n + 1, col0 : col0 + n + 1]
    return (
        (1 - fy) * (1 - fx) * block[:-1, :-1]
        + (1 - fy) * fx * block[:-1, 1:]
        + fy * (1 - fx) * block[1:, :-1]
        + fy * fx * block[1:, 1:]
    )


def illuminate(
    object_patches: np.ndarray, probe: np.ndarray, mask: np.ndarray | None = None
) -> np.ndarray:
    """Exit wave ψ = P · O_patch (· M when a probe mask is given)."""
    wave = probe * object_patches
    return wave * mask if mask is not None else wave


def far_field(exit_wave: np.ndarray) -> np.ndarray:
    """Ψ = fftshift(FFT2_ortho(ψ)) over the last two axes: unitary, DC at (N/2, N/2)."""
    return np.fft.fftshift(np.fft.fft2(exit_wave, norm="ortho"), axes=(-2, -1))


def forward_amplitude(
    object_patches: np.ndarray, probe: np.ndarray, mask: np.ndarray | None = None
) -> np.ndarray:
    """Predicted far-field amplitude Â = |Ψ| of each object patch under the probe."""
    return np.abs(far_field(illuminate(object_patches, probe, mask)))


def incoherent_amplitude(
    object_patches: np.ndarray, probe_modes: np.ndarray, mask: np.ndarray | None = None
) -> np.ndarray:
    """Predicted amplitude under K mutually incoherent probe modes (K, N, N): the intensities add,
    Â = √(Σ_k |F(P_k · O)|²). One mode gives :func:`forward_amplitude`."""
    modes = np.asarray(probe_modes)
    waves = illuminate(np.asarray(object_patches)[..., np.newaxis, :, :], modes, mask)
    return np.sqrt(np.sum(np.abs(far_field(waves)) ** 2, axis=-3))
