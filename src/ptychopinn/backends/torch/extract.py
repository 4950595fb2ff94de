"""Differentiable sub-pixel patch extraction from one large canvas (refinement's forward model)."""

from __future__ import annotations

import torch


def extract_patches(canvas: torch.Tensor, top_left_yx: torch.Tensor, n: int) -> torch.Tensor:
    """Bilinear (n, n) windows of ``canvas`` (H, W) whose pixel (r, c) samples canvas position
    (top + r, left + c); ``top_left_yx`` (B, 2) may be fractional. Outside samples are zero.

    Equivalent to :func:`ptychopinn.physics.forward.extract_patches` with centre
    (left + n/2, top + n/2); gradients flow to ``canvas``.
    """
    height, width = canvas.shape
    floor = torch.floor(top_left_yx)
    frac = (top_left_yx - floor).to(canvas.real.dtype if canvas.is_complex() else canvas.dtype)
    offsets = torch.arange(n, device=canvas.device)
    rows = floor[:, 0].long()[:, None] + offsets[None, :]  # (B, n)
    cols = floor[:, 1].long()[:, None] + offsets[None, :]
    fy, fx = frac[:, 0, None, None], frac[:, 1, None, None]
    result = 0
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            result = result + wy * wx * _gather(canvas, rows + dy, cols + dx, height, width)
    return result


def _gather(canvas: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, height: int, width: int):
    inside = ((rows >= 0) & (rows < height))[:, :, None] & ((cols >= 0) & (cols < width))[:, None, :]
    values = canvas[rows.clamp(0, height - 1)[:, :, None], cols.clamp(0, width - 1)[:, None, :]]
    return values * inside
