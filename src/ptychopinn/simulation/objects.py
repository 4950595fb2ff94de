"""Synthetic test objects: complex transmission functions on the object pixel grid.

Every generator returns a complex64 (size, size) array with amplitude in about [0.5, 1] and
phase in about [-π/2, π/2]. The built-in generators model one material of varying thickness t
in [0, 1] (amplitude 1 − 0.4·t, phase (π/2)·t); image-based objects can take amplitude and phase
from two independent images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

OBJECT_KINDS = ("lines", "grf", "dots", "star", "image")
AMPLITUDE_CONTRAST = 0.4
PHASE_RANGE = np.pi / 2


def _unit_range(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image, dtype=np.float64)
    span = image.max() - image.min()
    return (image - image.min()) / span if span > 0 else np.zeros_like(image)


def from_thickness(thickness: np.ndarray) -> np.ndarray:
    t = _unit_range(thickness)
    return ((1 - AMPLITUDE_CONTRAST * t) * np.exp(1j * PHASE_RANGE * t)).astype(np.complex64)


def from_amplitude_phase(amplitude_image: np.ndarray, phase_image: np.ndarray) -> np.ndarray:
    amplitude = 1 - AMPLITUDE_CONTRAST * _unit_range(amplitude_image)
    phase = PHASE_RANGE * (_unit_range(phase_image) - 0.5) * 2
    return (amplitude * np.exp(1j * phase)).astype(np.complex64)


def lines_thickness(size: int, rng: np.random.Generator, n_lines: int | None = None) -> np.ndarray:
    """Random straight segments of random length and weight, blurred by σ = 1 px."""
    from skimage.draw import line_aa

    n_lines = n_lines or max(size // 4, 8)
    canvas = np.zeros((size, size))
    for _ in range(n_lines):
        r0, c0 = rng.integers(0, size, 2)
        angle, length = rng.uniform(0, np.pi), rng.uniform(size / 8, size / 2)
        r1 = int(np.clip(r0 + length * np.sin(angle), 0, size - 1))
        c1 = int(np.clip(c0 + length * np.cos(angle), 0, size - 1))
        rr, cc, val = line_aa(int(r0), int(c0), r1, c1)
        canvas[rr, cc] = np.maximum(canvas[rr, cc], val * rng.uniform(0.4, 1.0))
    return ndimage.gaussian_filter(canvas, 1.0)


def grf_thickness(size: int, rng: np.random.Generator, correlation: float | None = None) -> np.ndarray:
    """A Gaussian random field with a Gaussian correlation of ``correlation`` px (default size/32)."""
    sigma = correlation or max(size / 32, 2.0)
    return ndimage.gaussian_filter(rng.standard_normal((size, size)), sigma, mode="wrap")


def dots_thickness(size: int, rng: np.random.Generator, n_dots: int | None = None) -> np.ndarray:
    """Random disks of radius 2–8 px (scaled with size), slightly blurred."""
    n_dots = n_dots or max(size // 2, 16)
    rows, cols = np.mgrid[:size, :size]
    canvas = np.zeros((size, size))
    for _ in range(n_dots):
        r, c = rng.uniform(0, size, 2)
        radius = rng.uniform(2, 8) * size / 256
        canvas[(rows - r) ** 2 + (cols - c) ** 2 <= max(radius, 1.5) ** 2] = rng.uniform(0.5, 1)
    return ndimage.gaussian_filter(canvas, 0.7)


def star_thickness(size: int, spokes: int = 36) -> np.ndarray:
    """A Siemens star: the sharp-edged resolution target, spokes converging at the centre."""
    coords = np.arange(size) - size / 2 + 0.5
    theta = np.arctan2(coords[:, None], coords[None, :])
    radius = np.hypot(coords[:, None], coords[None, :])
    star = (np.sin(spokes / 2 * theta) > 0).astype(float) * (radius < 0.48 * size)
    return ndimage.gaussian_filter(star, 0.5)


def load_image(path: str | Path, size: int) -> np.ndarray:
    """A grey-scale image file resized to (size, size), float64 in [0, 1]."""
    from skimage import io, transform
    from skimage.color import rgb2gray, rgba2rgb

    image = io.imread(str(path))
    if image.ndim == 3 and image.shape[-1] == 4:
        image = rgba2rgb(image)
    if image.ndim == 3:
        image = rgb2gray(image)
    if image.ndim != 2:
        raise ValueError(f"{path}: expected a 2-D or RGB(A) image, got shape {image.shape}")
    return _unit_range(transform.resize(image.astype(np.float64), (size, size), anti_aliasing=True))


def builtin_image_pair(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Two unrelated natural images shipped with scikit-image (amplitude, phase)."""
    from skimage import data, transform

    def fit(image: np.ndarray) -> np.ndarray:
        return transform.resize(image.astype(np.float64), (size, size), anti_aliasing=True)

    return fit(data.camera()), fit(data.moon())


def make_object(
    kind: str = "lines",
    size: int = 256,
    seed: int = 0,
    phase_image: str | Path | None = None,
) -> np.ndarray:
    """A complex test object: a named generator or an image file (``kind`` is then its path)."""
    rng = np.random.default_rng(seed)
    if kind == "lines":
        thickness = lines_thickness(size, rng)
    elif kind == "grf":
        thickness = grf_thickness(size, rng)
    elif kind == "dots":
        thickness = dots_thickness(size, rng)
    elif kind == "star":
        thickness = star_thickness(size)
    elif kind == "image":
        amplitude, phase = builtin_image_pair(size)
        return from_amplitude_phase(amplitude, phase)
    elif Path(kind).is_file():
        thickness = load_image(kind, size)
    else:
        raise ValueError(f"unknown object {kind!r}: choose one of {OBJECT_KINDS} or an image path")
    if phase_image is not None:
        return from_amplitude_phase(thickness, load_image(phase_image, size))
    return from_thickness(thickness)
