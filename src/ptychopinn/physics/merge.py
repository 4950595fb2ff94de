"""NumPy reference of translation and the per-group merge/re-extract (docs/design/spec.md#model).

These are the oracles for the backends' ``translate`` and ``merge_and_reextract``.
"""

from __future__ import annotations

import numpy as np

from ptychopinn.physics.forward import extract_patches


def translate(image: np.ndarray, shift_xy: tuple[float, float]) -> np.ndarray:
    """Content moved by (dx, dy): out(r, c) = in(r − dy, c − dx), bilinear, zero outside."""
    height, width = image.shape
    if height != width:
        raise ValueError("the reference translation handles square images")
    centre = np.array([[width / 2 - shift_xy[0], height / 2 - shift_xy[1]]])
    return extract_patches(image, centre, width)[0]


def pad_to(patch: np.ndarray, size: int) -> np.ndarray:
    n = patch.shape[-1]
    before = size // 2 - n // 2
    return np.pad(patch, (before, size - n - before))


def crop_centre(image: np.ndarray, n: int) -> np.ndarray:
    start = image.shape[-1] // 2 - n // 2
    return image[start : start + n, start : start + n]


def merge_and_reextract(
    patches: np.ndarray, offsets_xy: np.ndarray, support: np.ndarray, canvas_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """One group: patches (C, N, N), offsets (C, 2) → (re-extracted (C, N, N), canvas (S, S))."""
    n = patches.shape[-1]
    placed = sum(translate(pad_to(p, canvas_size), o) for p, o in zip(patches, offsets_xy, strict=True))
    coverage = sum(translate(pad_to(support, canvas_size), o).real for o in offsets_xy)
    canvas = placed / np.maximum(coverage, 1.0)
    extracted = np.stack([crop_centre(translate(canvas, -o), n) for o in offsets_xy])
    return extracted, canvas
