"""Differentiable physics ops in PyTorch (docs/design/spec.md#forward-model, #model), tested against the NumPy reference.

Every op acts per sample: nothing mixes the groups of a batch, so outputs never depend on the
batch size or on which other groups share the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def translate(images: torch.Tensor, shifts_xy: torch.Tensor) -> torch.Tensor:
    """Move image content by ``shifts_xy`` pixels, bilinear, zero-filled.

    ``images`` (B, H, W) real or complex; ``shifts_xy`` (B, 2) in [x, y]: output pixel (r, c) =
    input at (r − dy, c − dx), so a positive shift moves content right/down.
    """
    if images.is_complex():
        stacked = torch.stack([images.real, images.imag], dim=1)
        moved = _grid_shift(stacked, shifts_xy)
        return torch.complex(moved[:, 0], moved[:, 1])
    return _grid_shift(images[:, None], shifts_xy)[:, 0]


def _grid_shift(images: torch.Tensor, shifts_xy: torch.Tensor) -> torch.Tensor:
    """(B, K, H, W) real images shifted by (B, 2) pixel offsets with ``grid_sample``."""
    batch, _, height, width = images.shape
    dtype, device = images.dtype, images.device
    rows = torch.arange(height, dtype=dtype, device=device)
    cols = torch.arange(width, dtype=dtype, device=device)
    source_x = cols[None, None, :] - shifts_xy[:, 0, None, None].to(dtype)  # (B, 1, W)
    source_y = rows[None, :, None] - shifts_xy[:, 1, None, None].to(dtype)  # (B, H, 1)
    # align_corners=True: pixel index i ↔ normalised −1 + 2i/(size − 1).
    grid_x = (2 * source_x / max(width - 1, 1) - 1).expand(batch, height, width)
    grid_y = (2 * source_y / max(height - 1, 1) - 1).expand(batch, height, width)
    grid = torch.stack([grid_x, grid_y], dim=-1)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def far_field_amplitude(exit_wave: torch.Tensor) -> torch.Tensor:
    """Â = |fftshift(FFT2_ortho(ψ))| over the last two axes (DC at N/2, N/2)."""
    field = torch.fft.fft2(exit_wave, norm="ortho")
    return torch.fft.fftshift(field, dim=(-2, -1)).abs()


def illuminate(
    object_patches: torch.Tensor, probe: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """ψ = P · O (· M)."""
    wave = object_patches * probe
    return wave * mask if mask is not None else wave


# the square root's gradient is infinite at 0: an intensity this small (in normalised units, where
# a bright pixel is ~1) is treated as this small instead
INTENSITY_FLOOR = 1e-12


def add_incoherent_modes(
    amplitude: torch.Tensor, object_patches: torch.Tensor, extra_modes: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mode 0's amplitude (B, C, N, N) with the intensities of the incoherent ``extra_modes``
    (K − 1, N, N) added: √(|F(P_0 O)|² + Σ_k |F(P_k O)|²)."""
    waves = illuminate(object_patches[:, :, None], extra_modes, mask)
    field = torch.fft.fft2(waves, norm="ortho")  # the shift is irrelevant to a pixelwise sum of …
    extra = torch.fft.fftshift((field.real**2 + field.imag**2).sum(dim=2), dim=(-2, -1))  # … intensities
    return torch.sqrt((amplitude**2 + extra).clamp_min(INTENSITY_FLOOR))


def pad_to(patches: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad (..., N, N) centred to (..., size, size); centre N/2 maps to size/2."""
    n = patches.shape[-1]
    before = size // 2 - n // 2
    after = size - n - before
    return F.pad(patches, (before, after, before, after))


def crop_centre(images: torch.Tensor, n: int) -> torch.Tensor:
    """Central (..., n, n) of (..., S, S); the inverse of :func:`pad_to`."""
    size = images.shape[-1]
    start = size // 2 - n // 2
    return images[..., start : start + n, start : start + n]


def merge_and_reextract(
    patches: torch.Tensor, offsets_xy: torch.Tensor, support: torch.Tensor, canvas_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge each group's C patches into one canvas and re-extract them (object_big, docs/design/spec.md#model).

    patches (B, C, N, N) complex; offsets (B, C, 2). Patch c is translated by +offset_c on a
    (canvas_size)² canvas centred on the group centre; the sum is divided by max(coverage, 1),
    coverage being the equally translated ``support`` indicator (N, N); patch c is then
    re-extracted by translating by −offset_c. Returns (re-extracted (B, C, N, N), canvas (B, S, S)).
    """
    batch, channels, n, _ = patches.shape
    flat_shifts = offsets_xy.reshape(batch * channels, 2)
    placed = translate(pad_to(patches, canvas_size).reshape(-1, canvas_size, canvas_size), flat_shifts)
    indicator = pad_to(support.to(patches.real.dtype), canvas_size).expand(batch * channels, -1, -1)
    coverage = translate(indicator, flat_shifts)
    placed = placed.reshape(batch, channels, canvas_size, canvas_size).sum(dim=1)
    coverage = coverage.reshape(batch, channels, canvas_size, canvas_size).sum(dim=1)
    canvas = placed / coverage.clamp(min=1.0)
    repeated = canvas[:, None].expand(-1, channels, -1, -1).reshape(-1, canvas_size, canvas_size)
    extracted = crop_centre(translate(repeated, -flat_shifts), n)
    return extracted.reshape(batch, channels, n, n), canvas


def repeat_members(patch: torch.Tensor, channels: int) -> torch.Tensor:
    """(B, 1, N, N) → (B, channels, N, N): one patch for every member of its group."""
    return patch.expand(-1, channels, -1, -1)


def reshape(tensor: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    return tensor.reshape(shape)
