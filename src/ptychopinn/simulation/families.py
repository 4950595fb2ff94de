"""Procedural object and probe families for an endless pretraining corpus (docs/design/corpus.md).

Every draw is a pure function of the family, the size and the state of the caller's
``np.random.Generator``: the same seed gives the same array, whether or not an :class:`ImageBank`
cache is passed in. Objects are complex64 transmissions (amplitude in (0, 1], phase within
[-π, π]); probes are complex64 (n, n) fields with peak amplitude 1, centred at pixel (n/2, n/2)
like every probe of the package (docs/design/spec.md#forward-model).

Each object family draws a grey-level *texture* t in [0, 1]; :func:`random_object` maps one or two
textures to amplitude and phase with a random absorption strength, phase span and
amplitude-phase relation. The held-out families (and the held-out images) never appear in
training draws, so they measure how a pretrained network generalises to unseen structure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from scipy import ndimage

OBJECT_FAMILIES: tuple[str, ...] = (
    "dead_leaves",
    "grf",
    "lines",
    "polygons",
    "particles",
    "cells",
    "natural",
)
HELD_OUT_OBJECT_FAMILIES: tuple[str, ...] = ("siemens_star", "natural_held_out", "circuit")
PROBE_FAMILIES: tuple[str, ...] = ("zone_plate", "pupil", "aperture")
HELD_OUT_PROBE_FAMILIES: tuple[str, ...] = ("kb_mirror",)

# Grey-scale images bundled with scikit-image (no download). camera and moon are the project's
# `image` test object, so they must stay out of training.
TRAINING_IMAGES: tuple[str, ...] = (
    "astronaut",
    "brick",
    "cell",
    "chelsea",
    "coffee",
    "coins",
    "grass",
    "gravel",
    "horse",
    "hubble_deep_field",
    "immunohistochemistry",
    "page",
    "retina",
    "rocket",
    "text",
)
HELD_OUT_IMAGES: tuple[str, ...] = ("camera", "moon", "shepp_logan_phantom", "microaneurysms")
# A crop whose grey levels (images stretched to [0, 1]) vary less than this is redrawn, as is
# a procedural texture (stretched to [0, 1]) below FLAT_TEXTURE_STD.
FLAT_CROP_STD = 0.02
FLAT_TEXTURE_STD = 1e-3
MAX_TEXTURE_ATTEMPTS = 8

MIN_OBJECT_SIZE = 16
# Object mapping ranges (docs/design/corpus.md#texture-to-transmission).
MIN_AMPLITUDE_RANGE = (0.05, 0.97)
PHASE_SPAN_RANGE = (0.1, np.pi)  # the largest |phase| of a draw, radians, log-uniform
# Illuminated radius of a probe, as a fraction of n, log-uniform; in small windows the largest
# beams stay BEAM_EDGE_CLEARANCE px inside the accepted square (see _beam_radius).
BEAM_RADIUS_RANGE = (1 / 12, 1 / 2.5)
BEAM_EDGE_CLEARANCE = 3
# A probe is accepted when this share of its energy lies inside the central (n − 2·margin)²
# square: the stated contract is 99 % with an 8 px smaller square; the draw keeps a margin.
PROBE_WINDOW_MARGIN = 4
PROBE_ENERGY_INSIDE = 0.995
MAX_PROBE_ATTEMPTS = 12
# The smallest patch the project supports; below it the 4 px margins leave no room for a beam.
MIN_PROBE_SIZE = 32
# Pupil radii (frequency px) stay within n/2 − LARGEST_PUPIL_MARGIN, so that even the widest
# soft edge (MAX_EDGE_WIDTH) fades out before the frequency grid's border instead of wrapping.
MAX_EDGE_WIDTH = 2.4
LARGEST_PUPIL_MARGIN = 1 + 2.5 * MAX_EDGE_WIDTH


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------


def random_object(
    family: str, size: int, rng: np.random.Generator, images: ImageBank | None = None
) -> np.ndarray:
    """A random complex64 (size, size) transmission of ``family``: amplitude in (0, 1], phase
    within [-π, π].

    ``images`` is only a cache of the bundled images: the result is the same with or without
    it. Pass the train bank to every training family (any training draw may take a `natural`
    second texture); without one, such a draw loads its image afresh. The bank must hold the
    split the family draws from (train for training families, held_out for
    ``natural_held_out``) so that held-out images cannot leak into training draws.
    """
    _check_choice(family, OBJECT_FAMILIES + HELD_OUT_OBJECT_FAMILIES, "object family")
    _check_size(size, "object size", minimum=MIN_OBJECT_SIZE)
    split = _image_split(family)
    if images is not None and split is not None and images.split != split:
        raise ValueError(
            f"object family {family!r} draws images from the {split!r} split, "
            f"got an ImageBank of the {images.split!r} split"
        )
    bank = images if images is not None or split is None else ImageBank(split)

    texture = _texture(family, size, rng, bank)
    relation = rng.choice(("correlated", "independent", "mixed"), p=(0.4, 0.35, 0.25))
    if relation == "correlated":
        return _transmission(texture, texture, rng)
    partner = _texture(_partner_family(family, rng), size, rng, bank)
    if relation == "independent":
        pair = (texture, partner) if rng.random() < 0.5 else (partner, texture)
        return _transmission(*pair, rng)
    weight = rng.uniform(0.2, 0.8)
    return _transmission(_unit_range(weight * texture + (1 - weight) * partner), texture, rng)


def random_probe(family: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """A random complex64 (n, n) probe of ``family`` (n ≥ 32): peak amplitude 1, intensity
    centroid at pixel (n/2, n/2), at least 99 % of its energy inside the central (n − 8)²
    square."""
    _check_choice(family, PROBE_FAMILIES + HELD_OUT_PROBE_FAMILIES, "probe family")
    _check_size(n, "probe size", minimum=MIN_PROBE_SIZE)
    if family == "kb_mirror":
        return _kb_mirror_probe(n, rng)
    if family == "aperture":
        return _fit_in_window(_draw_aperture(n, rng), _render_aperture, n)
    stop = rng.uniform(0.2, 0.5) if family == "zone_plate" else 0.0
    return _fit_in_window(_draw_pupil(n, rng, stop), render_pupil, n)


class ImageBank:
    """The bundled grey-scale images of one split, loaded on first use and cached per bank.

    Each image is kept at full and half resolution (an anti-aliased pyramid), so that crops
    which shrink the image sample the half-resolution copy instead of aliasing.
    """

    def __init__(self, split: Literal["train", "held_out"]):
        if split not in ("train", "held_out"):
            raise ValueError(f"unknown image split {split!r}; choose 'train' or 'held_out'")
        self.split = split
        self.names = TRAINING_IMAGES if split == "train" else HELD_OUT_IMAGES
        self._pyramids: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def image(self, name: str) -> np.ndarray:
        """The full-resolution grey-scale image ``name``, float64 in [0, 1]."""
        return self._pyramid(name)[0]

    def crop(self, size: int, rng: np.random.Generator) -> np.ndarray:
        """A (size, size) float64 crop in [0, 1] of a random image of the split, at a random
        scale (0.5–2 image pixels per output pixel, less where the image is too small),
        rotation and mirror flip; nearly flat crops (sky, paper) are redrawn."""
        _check_size(size, "crop size", minimum=2)
        for _ in range(8):
            crop = self._random_crop(size, rng)
            if crop.std() > FLAT_CROP_STD:
                break
        return _unit_range(crop)

    def _random_crop(self, size: int, rng: np.random.Generator) -> np.ndarray:
        name = self.names[rng.integers(len(self.names))]
        scale = np.exp(rng.uniform(np.log(0.5), np.log(2.0)))
        angle = rng.uniform(0, 2 * np.pi)
        mirror = 1.0 if rng.random() < 0.5 else -1.0
        full, half = self._pyramid(name)
        # The rotated crop spans a disk of radius scale·size/√2 image pixels: it must fit.
        scale = min(scale, (min(full.shape) - 2) / (size * np.sqrt(2)))
        image, scale = (half, scale / 2) if scale > 1 else (full, scale)
        reach = scale * size / np.sqrt(2)
        centre = np.array(
            [rng.uniform(reach, extent - 1 - reach) for extent in image.shape], dtype=np.float64
        )
        cos, sin = np.cos(angle), np.sin(angle)
        matrix = scale * np.array([[cos, -sin], [sin, cos]]) @ np.diag([1.0, mirror])
        offset = centre - matrix @ np.array([size / 2, size / 2])
        return ndimage.affine_transform(
            image,
            matrix,
            offset=offset,
            output_shape=(size, size),
            order=1,
            mode="nearest",
            prefilter=False,
        )

    def _pyramid(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if name not in self._pyramids:
            if name not in self.names:
                raise ValueError(f"image {name!r} is not in the {self.split!r} split: {self.names}")
            full = _load_bundled_image(name)
            half = ndimage.gaussian_filter(full, 1.0)[::2, ::2]
            self._pyramids[name] = (full, half)
        return self._pyramids[name]


# --------------------------------------------------------------------------------------------
# Checks and small helpers
# --------------------------------------------------------------------------------------------


def _check_choice(name: str, choices: tuple[str, ...], what: str) -> None:
    if name not in choices:
        raise ValueError(f"unknown {what} {name!r}; choose one of {choices}")


def _check_size(size: int, what: str, minimum: int) -> None:
    if int(size) != size or size < minimum:
        raise ValueError(f"{what} must be an integer ≥ {minimum}, got {size!r}")


def _unit_range(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image, dtype=np.float64)
    low, high = image.min(), image.max()
    return (image - low) / (high - low) if high > low else np.zeros_like(image)


def _log_uniform(rng: np.random.Generator, low: float, high: float, count=None):
    return np.exp(rng.uniform(np.log(low), np.log(high), count))


def _soft_step(x: np.ndarray, width: float) -> np.ndarray:
    """0 → 1 across x = 0 over about ``width``: anti-aliased edges of shapes and pupils."""
    return 0.5 * (1 + np.tanh(x / width))


def _load_bundled_image(name: str) -> np.ndarray:
    from skimage import data
    from skimage.color import rgb2gray

    image = np.asarray(getattr(data, name)())
    if image.ndim == 3:
        image = rgb2gray(image[..., :3])
    image = image.astype(np.float64)
    # A percentile stretch, so a few saturated pixels do not squash the rest of the range.
    low, high = np.percentile(image, [0.5, 99.5])
    if high <= low:
        low, high = image.min(), image.max()
    return np.clip((image - low) / max(high - low, 1e-12), 0, 1)


# --------------------------------------------------------------------------------------------
# Texture → transmission
# --------------------------------------------------------------------------------------------


def _transmission(
    amplitude_texture: np.ndarray, phase_texture: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Amplitude from 1 down to a_min ~ U(0.05, 0.97) (strong to weak absorbers), phase
    φ·(t − mean t) scaled so that its largest |value| is φ, log-uniform in [0.1, π], random sign
    (absorption may rise or fall with the phase)."""
    min_amplitude = rng.uniform(*MIN_AMPLITUDE_RANGE)
    absorber = amplitude_texture if rng.random() < 0.5 else 1 - amplitude_texture
    # The factor just below 1 keeps |·| ≤ 1 in complex64: a float32 cos/sin pair can carry |z|
    # an ulp or two above its amplitude.
    amplitude = ((1 - (1 - min_amplitude) * absorber) * (1 - 4e-7)).astype(np.float32)
    span = _log_uniform(rng, *PHASE_SPAN_RANGE) * rng.choice((-1.0, 1.0))
    centred = phase_texture - phase_texture.mean()
    peak = np.abs(centred).max()
    phase = (span * centred / peak if peak > 0 else np.zeros_like(centred)).astype(np.float32)
    transmission = np.empty(phase.shape, dtype=np.complex64)
    transmission.real = amplitude * np.cos(phase)
    transmission.imag = amplitude * np.sin(phase)
    return transmission


def _image_split(family: str) -> str | None:
    if family == "natural_held_out":
        return "held_out"
    if family in OBJECT_FAMILIES:  # a training draw's second texture may be `natural`
        return "train"
    return None


def _partner_family(family: str, rng: np.random.Generator) -> str:
    """The family of the second texture: a held-out family stays within itself, a training
    family picks itself or (half the time) any training family."""
    if family not in OBJECT_FAMILIES or rng.random() < 0.5:
        return family
    return OBJECT_FAMILIES[rng.integers(len(OBJECT_FAMILIES))]


def _texture(
    family: str, size: int, rng: np.random.Generator, bank: ImageBank | None
) -> np.ndarray:
    """A float64 (size, size) texture in [0, 1] of ``family``; a flat draw (a small field
    filled by one shape, every fibre outside it) is drawn again."""
    if family in ("natural", "natural_held_out"):
        return bank.crop(size, rng)
    for _ in range(MAX_TEXTURE_ATTEMPTS):
        texture = _unit_range(_TEXTURES[family](size, rng))
        if texture.std() > FLAT_TEXTURE_STD:
            break
    return texture


# --------------------------------------------------------------------------------------------
# Scan-line rasterisation shared by dead leaves and polygons
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Runs:
    """Horizontal runs of pixels, one per (shape, row): pixel centres ``first``–``last``
    (inclusive) of ``row`` lie inside shape ``shape``. Rows and columns may reach ``pad``
    pixels beyond the field; they wrap around (the field is periodic)."""

    shape: np.ndarray
    row: np.ndarray
    first: np.ndarray
    last: np.ndarray


def _shape_rows(row_low: np.ndarray, row_high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(shape index, row) for every integer row from ``row_low`` to ``row_high`` of each shape."""
    heights = np.maximum(row_high - row_low + 1, 0)
    shape = np.repeat(np.arange(len(heights)), heights)
    local = np.arange(heights.sum()) - np.repeat(np.cumsum(heights) - heights, heights)
    return shape, row_low[shape] + local


def _ellipse_runs(centres: np.ndarray, semi_axes: np.ndarray, angles: np.ndarray) -> _Runs:
    """Runs of ellipses (semi-axes a along ``angles`` from the x axis, b across), solving the
    quadratic a'·dx² + b'·dy·dx + c'·dy² ≤ 1 for dx on every row: no per-pixel test."""
    cos, sin = np.cos(angles), np.sin(angles)
    inv_a2, inv_b2 = semi_axes[:, 0] ** -2.0, semi_axes[:, 1] ** -2.0
    qa = cos**2 * inv_a2 + sin**2 * inv_b2
    qb = 2 * cos * sin * (inv_a2 - inv_b2)
    qc = sin**2 * inv_a2 + cos**2 * inv_b2
    half_height = np.sqrt(qa / (qa * qc - qb**2 / 4))  # the ellipse's extent in y
    cy, cx = centres[:, 0], centres[:, 1]
    shape, row = _shape_rows(
        np.ceil(cy - half_height).astype(np.int64), np.floor(cy + half_height).astype(np.int64)
    )
    dy = row - cy[shape]
    a, b = qa[shape], qb[shape] * dy
    root = np.sqrt(np.maximum(b**2 - 4 * a * (qc[shape] * dy**2 - 1), 0))
    first = np.ceil(cx[shape] + (-b - root) / (2 * a)).astype(np.int64)
    last = np.floor(cx[shape] + (-b + root) / (2 * a)).astype(np.int64)
    return _Runs(shape, row, first, last)


def _triangle_runs(owner: np.ndarray, corners: np.ndarray) -> _Runs:
    """Runs of triangles (``corners`` (T, 3, 2) as (y, x)), each painted as shape ``owner``:
    on every row, the span between the row's crossings of the triangle's edges."""
    ys, xs = corners[..., 0], corners[..., 1]
    triangle, row = _shape_rows(
        np.ceil(ys.min(axis=1)).astype(np.int64), np.floor(ys.max(axis=1)).astype(np.int64)
    )
    first = np.full(len(row), np.inf)
    last = np.full(len(row), -np.inf)
    for start, end in ((0, 1), (1, 2), (2, 0)):
        ya, yb = ys[triangle, start], ys[triangle, end]
        xa, xb = xs[triangle, start], xs[triangle, end]
        span = yb - ya
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (row - ya) / span
        crosses = (span != 0) & (t >= 0) & (t <= 1)
        x = np.where(crosses, xa + t * (xb - xa), np.nan)
        first = np.where(crosses, np.minimum(first, x), first)
        last = np.where(crosses, np.maximum(last, x), last)
    hit = np.isfinite(first)
    return _Runs(
        owner[triangle[hit]],
        row[hit],
        np.ceil(first[hit]).astype(np.int64),
        np.floor(last[hit]).astype(np.int64),
    )


def _paint_top_shape(runs: _Runs, size: int, pad: int) -> np.ndarray:
    """Index of the top-most (highest-index) shape covering each pixel, −1 where none does."""
    lengths = np.maximum(runs.last - runs.first + 1, 0)
    width = size + 2 * pad
    start = (runs.row + pad) * width + runs.first + pad
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    canvas = np.full(width * width, -1, dtype=np.int64)
    np.maximum.at(canvas, np.repeat(start, lengths) + offsets, np.repeat(runs.shape, lengths))
    return _fold_periodic(canvas.reshape(width, width), size, pad)


def _fold_periodic(canvas: np.ndarray, size: int, pad: int) -> np.ndarray:
    """Fold a canvas padded by ``pad`` (≤ size) on every side back onto the periodic field,
    keeping the top-most shape where the margins overlap it."""
    for axis in (0, 1):
        canvas = np.moveaxis(canvas, axis, 0)
        folded = canvas[pad : pad + size].copy()
        folded[size - pad :] = np.maximum(folded[size - pad :], canvas[:pad])
        folded[:pad] = np.maximum(folded[:pad], canvas[pad + size :])
        canvas = np.moveaxis(folded, 0, axis)
    return canvas


def _shade(top: np.ndarray, levels: np.ndarray, background: float) -> np.ndarray:
    return np.where(top >= 0, levels[np.maximum(top, 0)], background)


# --------------------------------------------------------------------------------------------
# Training texture families
# --------------------------------------------------------------------------------------------


def _dead_leaves_texture(size: int, rng: np.random.Generator) -> np.ndarray:
    """Occluding disks and ellipses of random grey, radii power-law distributed (p(r) ∝ r^−α,
    α ∈ [2, 3.2]; α = 3 is scale invariant) from r_min ∈ [1.5, 4] to r_max ∈ [size/8, size/3],
    added until their total area is 2–3.5 × the image (uncovered pixels keep a background)."""
    r_min = rng.uniform(1.5, 4.0)
    r_max = max(size * rng.uniform(1 / 8, 1 / 3), 1.5 * r_min)  # small fields: still a range
    alpha = rng.uniform(2.0, 3.2)
    coverage = rng.uniform(2.0, 3.5)
    # Every leaf covers at least π·r_min², which bounds how many can be needed.
    candidates = int(np.ceil(coverage * size**2 / (np.pi * r_min**2)))
    radii = _power_law(rng, r_min, r_max, alpha, candidates)
    count = min(
        int(np.searchsorted(np.cumsum(np.pi * radii**2), coverage * size**2)) + 1, candidates
    )
    radii = radii[:count]
    elongation = rng.uniform(0.3, 1.0, count) if rng.random() < 0.5 else np.ones(count)
    runs = _ellipse_runs(
        rng.uniform(0, size, (count, 2)),
        np.stack([radii, radii * elongation], axis=1),
        rng.uniform(0, np.pi, count),
    )
    top = _paint_top_shape(runs, size, pad=int(np.ceil(r_max)) + 1)
    texture = _shade(top, rng.uniform(0, 1, count), rng.uniform(0, 1))
    return ndimage.gaussian_filter(texture, rng.uniform(0.4, 1.0))


def _power_law(rng, low: float, high: float, alpha: float, count: int) -> np.ndarray:
    """Samples of p(r) ∝ r^−α on [low, high] by inverting the CDF."""
    exponent = 1 - alpha
    u = rng.uniform(0, 1, count)
    return (low**exponent + u * (high**exponent - low**exponent)) ** (1 / exponent)


def _grf_texture(size: int, rng: np.random.Generator) -> np.ndarray:
    """A Gaussian random field of Gaussian correlation length 1–16 px (log-uniform), a third of
    the time anisotropic (aspect up to 3); 40 % of draws are thresholded at random quantiles into
    2–4 flat phase domains."""
    length = _log_uniform(rng, 1.0, 16.0)
    aspect = rng.uniform(1.0, 3.0) if rng.random() < 1 / 3 else 1.0
    field = _correlated_noise(size, rng, length, aspect, rng.uniform(0, np.pi))
    if rng.random() < 0.4:
        levels = int(rng.integers(2, 5))
        cuts = np.quantile(field, np.sort(rng.uniform(0.15, 0.85, levels - 1)))
        field = ndimage.gaussian_filter(np.digitize(field, cuts).astype(np.float64), 0.6)
    return field


def _correlated_noise(
    size: int, rng: np.random.Generator, length: float, aspect: float = 1.0, angle: float = 0.0
) -> np.ndarray:
    """White noise filtered in Fourier space by a Gaussian of real-space σ = ``length`` px
    (σ·aspect along ``angle``): constant cost whatever the correlation length."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    along = fx * np.cos(angle) + fy * np.sin(angle)
    across = -fx * np.sin(angle) + fy * np.cos(angle)
    transfer = np.exp(-2 * np.pi**2 * length**2 * ((aspect * along) ** 2 + across**2))
    spectrum = np.fft.rfft2(rng.standard_normal((size, size))) * transfer
    return np.fft.irfft2(spectrum, s=(size, size))


def _lines_texture(size: int, rng: np.random.Generator) -> np.ndarray:
    """5–40 straight segments or curved fibres (a random walk of the direction, 0.02–0.12 rad
    per half pixel) of length size/4–1.2·size, in one or two width classes of 1–8 px FWHM,
    soft (Gaussian profile) or hard-edged, each of its own grey level."""
    count = max(3, int(round(_log_uniform(rng, 5, 40) * size / 128)))
    bend = rng.uniform(0.02, 0.12) if rng.random() < 0.5 else 0.0
    step = 0.5
    lengths = rng.uniform(size / 4, 1.2 * size, count)
    samples = int(lengths.max() / step) + 1
    direction = rng.uniform(0, 2 * np.pi, (count, 1)) + np.cumsum(
        bend * rng.standard_normal((count, samples)), axis=1
    )
    start = rng.uniform(-0.1 * size, 1.1 * size, (count, 2))
    rows = start[:, :1] + step * np.cumsum(np.sin(direction), axis=1)
    cols = start[:, 1:] + step * np.cumsum(np.cos(direction), axis=1)
    on_line = np.arange(samples)[None, :] < (lengths / step)[:, None]
    valid = on_line & (rows >= 0) & (rows < size) & (cols >= 0) & (cols < size)
    flat = rows.astype(np.int64) * size + cols.astype(np.int64)
    levels = np.broadcast_to(rng.uniform(0.3, 1.0, (count, 1)), flat.shape)

    widths = _log_uniform(rng, 1.0, 8.0, int(rng.integers(1, 3)))
    width_class = rng.integers(len(widths), size=count)
    texture = np.zeros((size, size))
    for index, width in enumerate(widths):
        chosen = valid & (width_class == index)[:, None]
        layer = _stroke(flat[chosen], levels[chosen], size, width, hard=rng.random() < 0.5)
        texture = np.maximum(texture, layer)
    return texture


def _stroke(
    flat: np.ndarray, levels: np.ndarray, size: int, width: float, hard: bool
) -> np.ndarray:
    """Centre-line pixels blurred to a full width at half maximum of ``width``: a Gaussian
    profile, or (``hard``) a flat band cut at half maximum; overlaps keep the mean grey level."""
    hits = np.bincount(flat, minlength=size * size).reshape(size, size)
    grey = np.bincount(flat, weights=levels, minlength=size * size).reshape(size, size)
    occupied = (hits > 0).astype(np.float64)
    grey = np.where(hits > 0, grey / np.maximum(hits, 1), 0.0)
    sigma = width / 2.355
    # The blurred height of a one-pixel line: the centre weight of the 1-D kernel.
    impulse = np.zeros(int(8 * sigma) + 3)
    impulse[len(impulse) // 2] = 1
    line_peak = ndimage.gaussian_filter1d(impulse, sigma)[len(impulse) // 2]
    strength = ndimage.gaussian_filter(occupied, sigma) / line_peak
    mean_grey = ndimage.gaussian_filter(grey, sigma) / np.maximum(strength * line_peak, 1e-12)
    cover = np.clip(4 * (strength - 0.5) + 0.5, 0, 1) if hard else np.clip(strength, 0, 1)
    return cover * np.clip(mean_grey, 0, 1)


def _polygons_texture(size: int, rng: np.random.Generator) -> np.ndarray:
    """3–30 occluding filled polygons of random grey: convex-looking (3–9 vertices at jittered
    equal angles, radii within ±15 %) or stars (alternating inner/outer radii, ratio 0.3–0.7),
    circumradius size/24–size/4. Each polygon is star-shaped about its centre, so it is the
    union of the triangles (centre, vertex k, vertex k + 1)."""
    count = int(rng.integers(3, 31))
    corners = int(rng.integers(3, 10))
    star = rng.random() < 0.5
    vertices = 2 * corners if star else corners
    radius = size * rng.uniform(1 / 24, 1 / 4, (count, 1))
    if star:
        inner = rng.uniform(0.3, 0.7, (count, 1))
        profile = np.where(np.arange(vertices) % 2 == 0, 1.0, inner)
    else:
        profile = rng.uniform(0.85, 1.15, (count, vertices))
    angles = rng.uniform(0, 2 * np.pi, (count, 1)) + (2 * np.pi / vertices) * (
        np.arange(vertices) + rng.uniform(-0.3, 0.3, (count, vertices))
    )
    centres = rng.uniform(0, size, (count, 2))
    ring = np.stack([np.sin(angles), np.cos(angles)], axis=-1) * (radius * profile)[..., None]
    ring = centres[:, None, :] + ring  # (count, vertices, 2) as (y, x)
    triangles = np.stack(
        [np.broadcast_to(centres[:, None, :], ring.shape), ring, np.roll(ring, -1, axis=1)], axis=2
    ).reshape(-1, 3, 2)
    owner = np.repeat(np.arange(count), vertices)
    top = _paint_top_shape(
        _triangle_runs(owner, triangles), size, pad=int(np.ceil(1.15 * radius.max())) + 1
    )
    texture = _shade(top, rng.uniform(0, 1, count), rng.uniform(0, 1))
    return ndimage.gaussian_filter(texture, rng.uniform(0.4, 1.0))


def _particles_texture(size: int, rng: np.random.Generator) -> np.ndarray:
    """Particles of one to three size classes (radius 1–size/10 px), each covering 1–50 % of
    the field (sparse to dense), shaped as flat disks, projected spheres or Gaussian blobs;
    overlapping particles add, as projected thickness does."""
    coords = np.fft.fftfreq(size) * size
    distance = np.hypot(coords[:, None], coords[None, :])  # from pixel (0, 0), wrapping
    shape = rng.choice(("disk", "sphere", "gaussian"))
    spectrum = np.zeros((size, size // 2 + 1), dtype=np.complex128)
    for _ in range(int(rng.integers(1, 4))):
        radius = _log_uniform(rng, 1.0, size / 10)
        coverage = _log_uniform(rng, 0.01, 0.5)
        count = int(np.clip(round(coverage * size**2 / (np.pi * radius**2)), 1, 4000))
        flat = rng.integers(0, size * size, count)
        heights = rng.uniform(0.3, 1.0, count)
        impulses = np.bincount(flat, weights=heights, minlength=size * size).reshape(size, size)
        spectrum += np.fft.rfft2(impulses) * np.fft.rfft2(
            _particle_profile(shape, distance, radius)
        )
    return np.maximum(np.fft.irfft2(spectrum, s=(size, size)), 0)


def _particle_profile(shape: str, distance: np.ndarray, radius: float) -> np.ndarray:
    if shape == "disk":
        return _soft_step(radius - distance, 0.5)
    if shape == "sphere":  # the projected thickness of a ball
        return np.sqrt(np.clip(1 - (distance / radius) ** 2, 0, None))
    return np.exp(-0.5 * (distance / (radius / 1.5)) ** 2)


def _cells_texture(size: int, rng: np.random.Generator) -> np.ndarray:
    """Voronoi cells (6–150 per 128² field; seeds uniform or on a jittered lattice) with smooth
    interiors of per-cell grey plus a slow gradient, walls 1–4 px thick, and nuclei (radius
    0.2–0.45 of the cell radius) at the seeds; each of walls and nuclei is sometimes absent."""
    count = max(3, int(round(_log_uniform(rng, 6, 150) * (size / 128) ** 2)))
    seeds = _cell_seeds(size, count, rng)
    count = len(seeds)
    seed_map = np.full((size, size), -1, dtype=np.int64)
    seed_map[seeds[:, 0], seeds[:, 1]] = np.arange(count)
    # One Euclidean distance transform gives both each pixel's nearest seed (its cell) and
    # the distance to it (for the nucleus).
    distance, (near_row, near_col) = ndimage.distance_transform_edt(
        seed_map < 0, return_indices=True
    )
    cell = seed_map[near_row, near_col]
    cell_radius = np.sqrt(size**2 / (np.pi * count))

    texture = rng.uniform(0.2, 0.8, count)[cell]
    texture += 0.15 * _unit_range(_correlated_noise(size, rng, cell_radius)) - 0.075
    with_walls, with_nuclei = rng.random() < 0.8, rng.random() < 0.7
    if with_nuclei or not with_walls:
        nucleus_radius = cell_radius * rng.uniform(0.2, 0.45) * rng.uniform(0.7, 1.3, count)
        nucleus = _soft_step(nucleus_radius[cell] - distance, 0.6)
        nucleus_grey = (
            rng.uniform(0.6, 1.0, count) if rng.random() < 0.5 else rng.uniform(0, 0.3, count)
        )
        texture = texture * (1 - nucleus) + nucleus_grey[cell] * nucleus
    if with_walls:
        boundary = np.zeros((size, size), dtype=bool)
        boundary[:-1] |= cell[:-1] != cell[1:]
        boundary[:, :-1] |= cell[:, :-1] != cell[:, 1:]
        wall = ndimage.maximum_filter(boundary, size=int(rng.integers(1, 5)))
        texture = np.where(
            wall, rng.uniform(0.85, 1.0) if rng.random() < 0.5 else rng.uniform(0, 0.15), texture
        )
    return ndimage.gaussian_filter(texture, rng.uniform(0.5, 1.0))


def _cell_seeds(size: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """Distinct integer seed pixels: uniform at random, or (tissue-like, 40 %) a jittered grid."""
    if rng.random() < 0.4:
        per_side = max(2, int(round(np.sqrt(count))))
        pitch = size / per_side
        grid = (np.arange(per_side) + 0.5) * pitch
        seeds = np.stack(np.meshgrid(grid, grid, indexing="ij"), axis=-1).reshape(-1, 2)
        seeds = seeds + rng.uniform(-0.35, 0.35, seeds.shape) * pitch
    else:
        seeds = rng.uniform(0, size, (count, 2))
    seeds = np.clip(seeds.astype(np.int64), 0, size - 1)
    return np.unique(seeds, axis=0)


# --------------------------------------------------------------------------------------------
# Held-out texture families
# --------------------------------------------------------------------------------------------


def _siemens_star_texture(size: int, rng: np.random.Generator) -> np.ndarray:
    """A Siemens star of 4–36 spoke periods, random rotation, centre within size/4 of the
    middle, outer radius 0.35–1 × size, and (half the time) a blank central disk."""
    periods = int(rng.integers(4, 37))
    centre = size / 2 + rng.uniform(-size / 4, size / 4, 2)
    rows = np.arange(size)[:, None] - centre[0]
    cols = np.arange(size)[None, :] - centre[1]
    radius = np.hypot(rows, cols)
    theta = np.arctan2(rows, cols) - rng.uniform(0, 2 * np.pi)
    # ρ·sin(mθ)/m is the distance in pixels to the nearest spoke edge (near the edges), so the
    # edge stays about one pixel wide at every radius.
    spokes = _soft_step(radius * np.sin(periods * theta) / periods, 0.5)
    star = spokes * _soft_step(size * rng.uniform(0.35, 1.0) - radius, 0.5)
    if rng.random() < 0.5:
        star = star * _soft_step(radius - rng.uniform(1.0, 0.1 * size), 0.5)
    return star


def _circuit_texture(size: int, rng: np.random.Generator) -> np.ndarray:
    """A Manhattan layout: 1–3 layers of axis-aligned wires (each layer preferring one
    direction), pads and vias snapped to a 2–6 px pitch grid; later layers cover earlier ones."""
    pitch = max(2, int(round(rng.integers(2, 7) * size / 128)))
    cells = max(4, size // pitch)
    texture = np.full((size, size), rng.uniform(0, 0.3))
    for layer in range(int(rng.integers(1, 4))):
        grey = rng.uniform(0.35, 1.0)
        for top, left, height, width in _layer_rectangles(cells, layer % 2 == 0, rng):
            # Wires may start before the field's edge: clip (a negative slice start would wrap).
            rows = slice(max(top, 0) * pitch, (top + height) * pitch)
            cols = slice(max(left, 0) * pitch, (left + width) * pitch)
            texture[rows, cols] = grey
    return ndimage.gaussian_filter(texture, 0.5)


def _layer_rectangles(cells: int, horizontal: bool, rng: np.random.Generator):
    """(top, left, height, width) in grid cells: wires, pads and vias of one layer."""
    for _ in range(int(rng.integers(5, 31))):
        length = int(rng.integers(4, cells + 1))
        thickness = int(rng.integers(1, 3))
        start, offset = int(rng.integers(-length // 2, cells)), int(rng.integers(0, cells))
        if horizontal != (rng.random() < 0.2):  # a few wires run against the layer's direction
            yield offset, start, thickness, length
        else:
            yield start, offset, length, thickness
    for _ in range(int(rng.integers(0, 9))):
        side = int(rng.integers(2, 6))
        yield int(rng.integers(0, cells)), int(rng.integers(0, cells)), side, side
    for _ in range(int(rng.integers(0, 31))):
        yield int(rng.integers(0, cells)), int(rng.integers(0, cells)), 1, 1


_TEXTURES: dict[str, Callable[[int, np.random.Generator], np.ndarray]] = {
    "dead_leaves": _dead_leaves_texture,
    "grf": _grf_texture,
    "lines": _lines_texture,
    "polygons": _polygons_texture,
    "particles": _particles_texture,
    "cells": _cells_texture,
    "siemens_star": _siemens_star_texture,
    "circuit": _circuit_texture,
}


# --------------------------------------------------------------------------------------------
# Probes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PupilDraw:
    """A focusing optic's pupil (radius and soft edge in frequency pixels, optional central
    stop), out of focus by ``defocus`` radians at the pupil edge, with Zernike-like aberrations
    (radians): astigmatism, coma (each with an axis angle) and spherical."""

    pupil_radius: float
    edge_width: float
    stop_fraction: float
    defocus: float
    astigmatism: float
    astigmatism_angle: float
    coma: float
    coma_angle: float
    spherical: float

    def shrunk(self, factor: float, n: int) -> PupilDraw:
        """A smaller, softer-edged beam: less defocus and aberration, a wider pupil edge."""
        return replace(
            self,
            edge_width=min(self.edge_width * 1.2, _max_edge_width(n, self.pupil_radius)),
            defocus=self.defocus * factor,
            astigmatism=self.astigmatism * factor,
            coma=self.coma * factor,
            spherical=self.spherical * factor,
        )


def _max_edge_width(n: int, pupil_radius: float) -> float:
    """The widest pupil edge (frequency px) for a pupil of this radius: clear of the grid's
    border, and at most 25 % of the radius, since a defocused beam's edge is the pupil's edge
    magnified by R/k_p and a blurred beam edge would spill out of the window."""
    return max(0.5, min((n / 2 - 1 - pupil_radius) / 2.5, 0.25 * pupil_radius, MAX_EDGE_WIDTH))


def _beam_radius(n: int, rng: np.random.Generator) -> float:
    """An illuminated radius, log-uniform over BEAM_RADIUS_RANGE·n, the top clipped so that
    the geometric beam ends inside the accepted square (n − 2·margin)² with some clearance."""
    low, high = (fraction * n for fraction in BEAM_RADIUS_RANGE)
    high = min(high, n / 2 - PROBE_WINDOW_MARGIN - BEAM_EDGE_CLEARANCE)
    return float(_log_uniform(rng, low, max(high, low)))


def _draw_pupil(n: int, rng: np.random.Generator, stop_fraction: float) -> PupilDraw:
    """A defocused pupil whose geometric beam radius R is log-uniform in [n/12, n/2.5].

    The in-focus Airy spot of a pupil of radius k_p has its first zero at 0.61·n/k_p px; k_p is
    drawn so that this spot is at most R/2 (the beam is defocus dominated). A pupil phase
    D·(k/k_p)² moves the edge rays D·n/(π·k_p) px, so D = π·k_p·R/n gives the radius R (the
    geometry of `physics.probe._defocused_probe`)."""
    beam_radius = _beam_radius(n, rng)
    largest = n / 2 - LARGEST_PUPIL_MARGIN
    smallest = min(max(n / 8, 1.22 * n / beam_radius), largest)
    pupil_radius = rng.uniform(smallest, largest)
    edge = min(rng.uniform(0.5, 2.0), _max_edge_width(n, pupil_radius))
    aberration = 1.5 if stop_fraction == 0 else 1.0
    return PupilDraw(
        pupil_radius=pupil_radius,
        edge_width=edge,
        stop_fraction=stop_fraction,
        defocus=rng.choice((-1.0, 1.0)) * np.pi * pupil_radius * beam_radius / n,
        astigmatism=aberration * rng.uniform(-1, 1),
        astigmatism_angle=rng.uniform(0, np.pi),
        coma=0.7 * aberration * rng.uniform(-1, 1),
        coma_angle=rng.uniform(0, 2 * np.pi),
        spherical=0.7 * aberration * rng.uniform(-1, 1),
    )


def render_pupil(draw: PupilDraw, n: int) -> np.ndarray:
    k = np.arange(n) - n / 2
    ky, kx = k[:, None], k[None, :]
    k_radius = np.hypot(ky, kx)
    rho, theta = k_radius / draw.pupil_radius, np.arctan2(ky, kx)
    amplitude = _soft_step(draw.pupil_radius - k_radius, draw.edge_width)
    if draw.stop_fraction > 0:
        stop_radius = draw.stop_fraction * draw.pupil_radius
        # The stop's edge stays sharp enough that its centre is dark even for small pupils.
        amplitude = amplitude * _soft_step(
            k_radius - stop_radius, min(draw.edge_width, stop_radius / 3)
        )
    phase = (
        draw.defocus * rho**2
        + draw.astigmatism * rho**2 * np.cos(2 * (theta - draw.astigmatism_angle))
        + draw.coma * (3 * rho**3 - 2 * rho) * np.cos(theta - draw.coma_angle)
        + draw.spherical * (6 * rho**4 - 6 * rho**2 + 1)
    )
    return _centred(_pupil_to_field(amplitude * np.exp(1j * phase)))


@dataclass(frozen=True)
class _ApertureDraw:
    """A smooth-edged (slightly elliptical) pinhole of radius ``radius`` px with a quadratic
    phase of ``curvature`` rad at its edge, optionally propagated a short distance
    (``fresnel_length`` = √(λz) in pixels) to give edge fringes."""

    radius: float
    edge_fraction: float
    axis_ratio: float
    angle: float
    curvature: float
    fresnel_length: float

    def shrunk(self, factor: float, n: int) -> _ApertureDraw:
        return replace(
            self, radius=self.radius * factor, fresnel_length=self.fresnel_length * factor
        )


def _draw_aperture(n: int, rng: np.random.Generator) -> _ApertureDraw:
    radius = _beam_radius(n, rng)
    return _ApertureDraw(
        radius=radius,
        edge_fraction=rng.uniform(0.06, 0.2),
        axis_ratio=rng.uniform(0.8, 1.0) if rng.random() < 0.5 else 1.0,
        angle=rng.uniform(0, np.pi),
        curvature=rng.uniform(-3 * np.pi, 3 * np.pi),
        fresnel_length=rng.uniform(0, radius / 3) if rng.random() < 0.5 else 0.0,
    )


def _render_aperture(draw: _ApertureDraw, n: int) -> np.ndarray:
    coords = np.arange(n) - n / 2
    y, x = coords[:, None], coords[None, :]
    cos, sin = np.cos(draw.angle), np.sin(draw.angle)
    along, across = x * cos + y * sin, (-x * sin + y * cos) / draw.axis_ratio
    r = np.hypot(along, across)
    amplitude = _soft_step(draw.radius - r, max(draw.edge_fraction * draw.radius, 0.75) / 2)
    # The phase slope at the edge, 2·c/R rad/px, must stay under π (the pixel Nyquist limit).
    curvature = np.clip(draw.curvature, -0.45 * np.pi * draw.radius, 0.45 * np.pi * draw.radius)
    field = amplitude * np.exp(1j * curvature * (r / draw.radius) ** 2)
    if draw.fresnel_length > 0:
        f = np.fft.fftfreq(n)
        transfer = np.exp(
            -1j * np.pi * draw.fresnel_length**2 * (f[:, None] ** 2 + f[None, :] ** 2)
        )
        field = np.fft.ifft2(np.fft.fft2(field) * transfer)
    return _centred(field)


def _pupil_to_field(pupil: np.ndarray) -> np.ndarray:
    """The far field of a pupil whose DC sits at the centre pixel, also centred (1-D or 2-D)."""
    return np.fft.fftshift(np.fft.ifftn(np.fft.ifftshift(pupil)))


def _centred(field: np.ndarray) -> np.ndarray:
    """``field`` shifted (exactly, by a phase ramp on its spectrum) so that its intensity
    centroid sits at pixel n/2 on every axis, scaled to peak amplitude 1. Coma and figure errors
    move a beam off axis; the project's probes are centred at n/2."""
    n = field.shape[0]
    offset = _centroid(np.abs(field) ** 2) - n / 2
    if np.any(np.abs(offset) > 1e-3):
        ramp = sum(
            np.fft.fftfreq(n).reshape([-1 if a == axis else 1 for a in range(field.ndim)]) * shift
            for axis, shift in enumerate(offset)
        )
        field = np.fft.ifftn(np.fft.fftn(field) * np.exp(2j * np.pi * ramp))
    return field / np.abs(field).max()


def _centroid(intensity: np.ndarray) -> np.ndarray:
    """Intensity-weighted mean pixel index along each axis."""
    grids = np.indices(intensity.shape).reshape(intensity.ndim, -1)
    return grids @ intensity.ravel() / intensity.sum()


def _energy_inside(intensity: np.ndarray, margin: int) -> float:
    inner = tuple(slice(margin, length - margin) for length in intensity.shape)
    return float(intensity[inner].sum() / intensity.sum())


def _fit_in_window(draw, render: Callable, n: int) -> np.ndarray:
    """Render ``draw``; while too much energy falls near the window's edge (where the periodic
    FFT would wrap it around), shrink the beam by 15 % and render again."""
    for _ in range(MAX_PROBE_ATTEMPTS):
        probe = render(draw, n)
        if _energy_inside(np.abs(probe) ** 2, PROBE_WINDOW_MARGIN) >= PROBE_ENERGY_INSIDE:
            break
        draw = draw.shrunk(0.85, n)
    return probe.astype(np.complex64)


@dataclass(frozen=True)
class _MirrorDraw:
    """One Kirkpatrick–Baez mirror: a 1-D slit pupil of half-width ``aperture`` frequency px
    with a soft edge, ``defocus`` rad at its edge and figure errors (cubic and quartic, rad)."""

    aperture: float
    edge_width: float
    defocus: float
    cubic: float
    quartic: float

    def shrunk(self, factor: float, n: int) -> _MirrorDraw:
        return replace(
            self,
            edge_width=min(self.edge_width * 1.2, _max_edge_width(n, self.aperture)),
            defocus=self.defocus * factor,
            cubic=self.cubic * factor,
            quartic=self.quartic * factor,
        )


def _kb_mirror_probe(n: int, rng: np.random.Generator) -> np.ndarray:
    """The held-out probe: crossed mirrors focus x and y independently, so the field is the
    outer product of two 1-D defocused slit fields (a rectangular, astigmatic beam with
    sinc-like side lobes near focus), each with its own beam half-width in [n/12, n/2.5]."""
    rows, cols = (_fit_mirror(_draw_mirror(n, rng), n) for _ in range(2))
    probe = np.outer(rows, cols)
    return (probe / np.abs(probe).max()).astype(np.complex64)


def _draw_mirror(n: int, rng: np.random.Generator) -> _MirrorDraw:
    half_width = _beam_radius(n, rng)
    largest = n / 2 - LARGEST_PUPIL_MARGIN
    aperture = rng.uniform(min(max(n / 8, n / half_width), largest), largest)
    edge = min(rng.uniform(0.75, 2.0), _max_edge_width(n, aperture))
    return _MirrorDraw(
        aperture=aperture,
        edge_width=edge,
        defocus=rng.choice((-1.0, 1.0)) * np.pi * aperture * half_width / n,
        cubic=rng.uniform(-0.5, 0.5),
        quartic=rng.uniform(-0.5, 0.5),
    )


def _render_mirror(draw: _MirrorDraw, n: int) -> np.ndarray:
    k = np.arange(n) - n / 2
    u = k / draw.aperture
    pupil = _soft_step(draw.aperture - np.abs(k), draw.edge_width) * np.exp(
        1j * (draw.defocus * u**2 + draw.cubic * u**3 + draw.quartic * u**4)
    )
    return _centred(_pupil_to_field(pupil))


def _fit_mirror(draw: _MirrorDraw, n: int) -> np.ndarray:
    # Both axes at ≥ 99.75 % keep the 2-D product at ≥ 99.5 %.
    for _ in range(MAX_PROBE_ATTEMPTS):
        field = _render_mirror(draw, n)
        if (
            _energy_inside(np.abs(field) ** 2, PROBE_WINDOW_MARGIN)
            >= 1 - (1 - PROBE_ENERGY_INSIDE) / 2
        ):
            break
        draw = draw.shrunk(0.85, n)
    return field
