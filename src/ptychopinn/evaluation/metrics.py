"""Evaluation of a reconstruction against a reference object.

The pipeline (:func:`evaluate_reconstruction`) is

1. **Integer placement.** Recon pixel ``(i, j)`` is object pixel ``(i + oy, j + ox)``. The origin
   ``(ox, oy)`` is either given (``recon_origin_xy``, rounded) or found by normalised
   cross-correlation of amplitudes (:func:`skimage.feature.match_template`, the smaller image
   being the template; wrapped phase gradients are used instead when the amplitude is flat). A
   recon smaller than the region is assumed to lie inside the reference.
2. **Comparison region.** ``region_xy = (x_min, x_max, y_min, y_max)`` in object pixels, taken as
   the half-open box ``rows [floor(y_min), ceil(y_max))``, ``cols [floor(x_min), ceil(x_max))``,
   clipped to the reference and to the part of the object the recon covers.
3. **Sub-pixel registration.** :func:`skimage.registration.phase_cross_correlation` (upsampled,
   on apodised images, with and without phase normalisation) proposes residual shifts
   ``s = (s_y, s_x)`` from the amplitudes and from the complex images; the shift ``0`` is always
   a candidate too. Each is applied to the recon by a Fourier shift (no interpolation smoothing,
   so noise is not flattered), and the candidate whose corrected recon has the smallest complex
   NRMSE on a common region is kept. A residual over half a pixel moves the integer placement and
   the step is repeated (at most three passes). After shifting, ``trim + ceil(|s_y|)`` rows and
   ``trim + ceil(|s_x|)`` columns are cut from each edge.
4. **Ambiguity removal.** With ``r`` the recon and ``f`` the reference crop:

   * global phase: ``r <- r * exp(-i * arg(sum(r * conj(f))))``;
   * phase plane: ``a + b x + c y`` fitted by least squares, weighted by ``|f|``, to the wrapped
     ``arg(r * conj(f))`` (seeded by the peak of the zero-padded FFT of ``|f| exp(i arg(r conj f))``
     so steep ramps do not wrap), then ``r <- r * exp(-i (a + b x + c y))``;
   * amplitude scale: ``r <- r * mean(|f|) / mean(|r|)``.

5. **Scores** (:func:`compare_images`): MAE, PSNR and SSIM of amplitude and phase, complex NRMSE
   and the Fourier ring correlation with its 0.5 and 1/2-bit cutoffs.

Only numpy, scipy and scikit-image are used; every statistic is computed in float64.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import ndimage, signal
from skimage.feature import match_template
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from skimage.registration import phase_cross_correlation

__all__ = [
    "align_for_comparison",
    "compare_images",
    "evaluate_reconstruction",
    "frc",
    "frc_cutoffs",
    "half_bit_threshold",
]

MIN_SIDE = 8
"""Smallest accepted side (pixels) of the compared region, before and after trimming."""

RANGE_EPS = 1e-6
"""Data range used for PSNR/SSIM when the reference channel is flat (range ~ 0)."""

_FLAT_REL_STD = 1e-3  # relative std below which an amplitude image counts as flat


# ----------------------------------------------------------------------------------------------
# input handling
# ----------------------------------------------------------------------------------------------


def _as_complex_2d(a: Any, name: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.complex128, copy=False)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite values")
    return arr


def _region_bounds(region_xy: Any, ref_shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """``(r0, r1, c0, c1)``: half-open row/column bounds of the region, clipped to the reference."""
    ny, nx = ref_shape
    if region_xy is None:
        return 0, ny, 0, nx
    vals = np.asarray(region_xy, dtype=np.float64).ravel()
    if vals.size != 4 or not np.all(np.isfinite(vals)):
        raise ValueError(
            f"region_xy must be four finite numbers (x_min, x_max, y_min, y_max), got {region_xy!r}"
        )
    x_min, x_max, y_min, y_max = vals
    if x_max < x_min or y_max < y_min:
        raise ValueError(
            f"region_xy must satisfy x_min <= x_max and y_min <= y_max, got {region_xy!r}"
        )
    r0 = min(max(math.floor(y_min), 0), ny)
    r1 = min(max(math.ceil(y_max), 0), ny)
    c0 = min(max(math.floor(x_min), 0), nx)
    c1 = min(max(math.ceil(x_max), 0), nx)
    return r0, r1, c0, c1


def _check_side(shape: tuple[int, int], what: str) -> None:
    if min(shape) < MIN_SIDE:
        raise ValueError(
            f"{what} is {shape[0]}x{shape[1]} px; at least {MIN_SIDE}x{MIN_SIDE} px are needed "
            "(check recon_origin_xy / region_xy and that recon and reference overlap)"
        )


# ----------------------------------------------------------------------------------------------
# integer placement
# ----------------------------------------------------------------------------------------------


def _is_flat(amplitude: np.ndarray) -> bool:
    return bool(amplitude.std() <= _FLAT_REL_STD * max(float(amplitude.mean()), 1e-300))


def _features(z: np.ndarray, phase_mode: bool) -> list[np.ndarray]:
    """Real images to match, all ``(h-1, w-1)`` with the top-left pixel kept in place.

    Amplitude normally; for a flat amplitude (phase object) the wrapped phase differences along
    x and y, ``arg(z[y, x+1] conj z[y, x])`` and ``arg(z[y+1, x] conj z[y, x])``, which a global
    phase offset leaves unchanged and a phase ramp shifts by a constant (which NCC ignores).
    """
    base = z[:-1, :-1]
    if not phase_mode:
        return [np.abs(base)]
    return [np.angle(z[:-1, 1:] * np.conj(base)), np.angle(z[1:, :-1] * np.conj(base))]


def _argmax2d(score: np.ndarray) -> tuple[int, int]:
    r, c = np.unravel_index(int(np.argmax(np.nan_to_num(score, nan=-np.inf))), score.shape)
    return int(r), int(c)


def _best_match(image: list[np.ndarray], template: list[np.ndarray]) -> tuple[int, int]:
    """Top-left ``(row, col)`` of the template inside the image maximising the summed NCC."""
    score = sum(match_template(im, t) for im, t in zip(image, template, strict=True))
    return _argmax2d(np.asarray(score))


def _partial_overlap_ncc(image: np.ndarray, template: np.ndarray, min_overlap: int) -> np.ndarray:
    """NCC of ``template`` placed at every offset ``d`` that overlaps ``image`` (not only inside).

    ``NCC(d) = (S_it - S_i S_t / n) / sqrt((S_ii - S_i^2 / n) (S_tt - S_t^2 / n))`` with the sums
    over the ``n`` overlapping pixels, all from FFT correlations. Entry ``k`` is the offset
    ``d = k - (template.shape - 1)``; offsets with ``n < min_overlap`` score ``-inf``.
    """

    def corr(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return signal.fftconvolve(x, y[::-1, ::-1], mode="full")

    one_i, one_t = np.ones_like(image), np.ones_like(template)
    n = np.rint(corr(one_i, one_t))
    s_i, s_t = corr(image, one_t), corr(one_i, template)
    nn = np.maximum(n, 1.0)
    var_i = np.maximum(corr(image**2, one_t) - s_i**2 / nn, 0.0)
    var_t = np.maximum(corr(one_i, template**2) - s_t**2 / nn, 0.0)
    den = np.sqrt(var_i * var_t)
    ok = (n >= min_overlap) & (den > 1e-9 * max(float(den.max()), 1e-300))
    score = np.full(n.shape, -np.inf)
    score[ok] = (corr(image, template)[ok] - s_i[ok] * s_t[ok] / nn[ok]) / den[ok]
    return score


def _find_origin(
    recon: np.ndarray, reference: np.ndarray, bounds: tuple[int, int, int, int]
) -> tuple[int, int]:
    """Integer origin ``(oy, ox)`` of the recon in object pixels, by normalised cross-correlation.

    * recon covers at least the region in both directions: the reference region is the template
      (:func:`skimage.feature.match_template`) searched in the recon; a match at recon ``(p, q)``
      gives ``oy = r0 - p``, ``ox = c0 - q``;
    * the recon fits in the region grown by the recon size on every side (clipped to the
      reference): the recon is the template searched there (so it is assumed to lie inside the
      reference);
    * otherwise (recon longer than the reference in one direction, shorter in the other): NCC
      over partial overlaps (:func:`_partial_overlap_ncc`) of the recon against that window.
    """
    r0, r1, c0, c1 = bounds
    hr, wr = recon.shape
    window = reference[r0:r1, c0:c1]
    phase_mode = _is_flat(np.abs(window)) or _is_flat(np.abs(recon))
    rec_f = _features(recon, phase_mode)
    if hr >= r1 - r0 and wr >= c1 - c0:
        p, q = _best_match(rec_f, _features(window, phase_mode))
        return r0 - p, c0 - q
    ny, nx = reference.shape
    sr0, sr1 = max(r0 - hr + 1, 0), min(r1 + hr - 1, ny)
    sc0, sc1 = max(c0 - wr + 1, 0), min(c1 + wr - 1, nx)
    search_f = _features(reference[sr0:sr1, sc0:sc1], phase_mode)
    if hr <= sr1 - sr0 and wr <= sc1 - sc0:
        p, q = _best_match(search_f, rec_f)
        return sr0 + p, sc0 + q
    min_overlap = max(MIN_SIDE**2, int(0.25 * min(search_f[0].size, rec_f[0].size)))
    score = sum(
        _partial_overlap_ncc(im, t, min_overlap) for im, t in zip(search_f, rec_f, strict=True)
    )
    p, q = _argmax2d(np.asarray(score))
    return sr0 + p - (rec_f[0].shape[0] - 1), sc0 + q - (rec_f[0].shape[1] - 1)


# ----------------------------------------------------------------------------------------------
# sub-pixel shift and ambiguity corrections
# ----------------------------------------------------------------------------------------------

_SHIFT_PAD = 16  # extra recon pixels (or reflections) around a crop before the Fourier shift


def _recon_window(
    rec: np.ndarray, oy: int, ox: int, bounds: tuple[int, int, int, int], pad: int
) -> np.ndarray:
    """Recon over object rows ``[r0-pad, r1+pad)``, cols ``[c0-pad, c1+pad)``.

    Missing pixels are filled by odd (point) reflection, ``f(-k) = 2 f(0) - f(k)``, which keeps
    the first derivative continuous and so limits Fourier-shift ringing.
    """
    r0, r1, c0, c1 = bounds
    h, w = rec.shape
    a0, a1, b0, b1 = r0 - oy - pad, r1 - oy + pad, c0 - ox - pad, c1 - ox + pad
    part = rec[max(a0, 0) : min(a1, h), max(b0, 0) : min(b1, w)]
    widths = ((max(a0, 0) - a0, a1 - min(a1, h)), (max(b0, 0) - b0, b1 - min(b1, w)))
    if any(v for pair in widths for v in pair):
        part = np.pad(part, widths, mode="reflect", reflect_type="odd")
    return part


def _border_taper(n: int, width: int) -> np.ndarray:
    """1 inside, raised cosine from 0 (outermost pixel) to 1 over ``width`` px at each end."""
    w = np.ones(n, dtype=np.float64)
    if width >= 1:
        ramp = 0.5 * (1.0 - np.cos(np.pi * np.arange(width, dtype=np.float64) / width))
        w[:width] = ramp
        w[n - width :] = ramp[::-1]
    return w


def _shifted_crop(
    rec: np.ndarray, oy: int, ox: int, bounds: tuple[int, int, int, int], shift: np.ndarray
) -> np.ndarray:
    """Recon crop over ``bounds`` translated by ``shift``: ``out(p) = crop(p - shift)``.

    A Fourier shift (exact for band-limited content and, being unitary, free of the noise
    smoothing an interpolating kernel would add) of the crop grown by ``pad`` real recon pixels
    or reflections, blended over that border by a raised cosine into its mean value so that the
    periodic extension is smooth and the shift does not ring.
    """
    r0, r1, c0, c1 = bounds
    if not np.any(shift):
        return rec[r0 - oy : r1 - oy, c0 - ox : c1 - ox].copy()
    reach = math.ceil(float(np.max(np.abs(shift)))) + 1
    pad = _SHIFT_PAD + reach
    ext = _recon_window(rec, oy, ox, bounds, pad)
    win = np.outer(*(_border_taper(n, pad - reach) for n in ext.shape))
    mean = ext.mean()
    ext = mean + win * (ext - mean)
    moved = np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(ext), shift))
    return moved[pad : pad + r1 - r0, pad : pad + c1 - c0]


def _edge_trim(shift: np.ndarray, trim: int) -> tuple[int, int]:
    """Pixels cut from each edge per axis: ``trim + ceil(|s|)`` (tolerant to round-off)."""
    return tuple(trim + math.ceil(abs(float(s)) - 1e-9) for s in shift)  # type: ignore[return-value]


def _trimmed(img: np.ndarray, cut: tuple[int, int]) -> np.ndarray:
    ty, tx = cut
    return img[ty : img.shape[0] - ty, tx : img.shape[1] - tx]


def remove_phase_offset(recon: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, float]:
    """Return ``(recon * exp(-i phi0), phi0)`` with ``phi0 = arg(sum(recon * conj(reference)))``.

    ``phi0`` is the constant phase minimising ``||recon exp(-i phi0) - reference||``.
    """
    phi0 = float(np.angle(np.sum(recon * np.conj(reference))))
    return recon * np.exp(-1j * phi0), phi0


def _centered_grid(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    ny, nx = shape
    y = np.arange(ny, dtype=np.float64) - (ny - 1) / 2.0
    x = np.arange(nx, dtype=np.float64) - (nx - 1) / 2.0
    return np.meshgrid(y, x, indexing="ij")


def fit_phase_plane(recon: np.ndarray, reference: np.ndarray) -> tuple[float, float, float]:
    """Fit ``arg(recon * conj(reference)) ~ a + b x + c y`` (x, y centred pixel coordinates).

    Least squares weighted by ``|reference|``: minimise ``sum w (d - a - b x - c y)^2`` with
    ``d`` the phase difference wrapped about the current plane. The slopes are seeded by the
    peak of the 2x zero-padded FFT of ``|reference| exp(i arg(recon conj(reference)))`` (and ``a``
    by the phase of the weighted sum with that ramp removed) so a ramp of many radians across the
    image is not corrupted by wrapping; two refinements follow.
    Returns ``(a, b, c)`` in rad, rad/px (along columns), rad/px (along rows).
    """
    w = np.abs(reference).astype(np.float64)
    if not np.any(w > 0):
        return 0.0, 0.0, 0.0
    yy, xx = _centered_grid(recon.shape)
    diff = recon * np.conj(reference)
    unit = np.exp(1j * np.angle(diff))
    ny, nx = recon.shape
    spec = np.abs(np.fft.fft2(w * unit, s=(2 * ny, 2 * nx)))
    ky, kx = np.unravel_index(int(np.argmax(spec)), spec.shape)
    c = 2.0 * np.pi * float(np.fft.fftfreq(2 * ny)[ky])
    b = 2.0 * np.pi * float(np.fft.fftfreq(2 * nx)[kx])
    a = float(np.angle(np.sum(w * unit * np.exp(-1j * (b * xx + c * yy)))))
    basis = (np.ones_like(xx), xx, yy)
    gram = np.array([[np.sum(w * p * q) for q in basis] for p in basis])  # weighted normal eqs
    for _ in range(2):
        resid = np.angle(unit * np.exp(-1j * (a + b * xx + c * yy)))
        rhs = np.array([np.sum(w * p * resid) for p in basis])
        coef = np.linalg.lstsq(gram, rhs, rcond=None)[0]
        a, b, c = a + float(coef[0]), b + float(coef[1]), c + float(coef[2])
    a = float(np.angle(np.exp(1j * a)))
    return a, b, c


def remove_phase_plane(
    recon: np.ndarray, reference: np.ndarray
) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Return ``(recon * exp(-i (a + b x + c y)), (a, b, c))`` with the plane of :func:`fit_phase_plane`."""
    a, b, c = fit_phase_plane(recon, reference)
    if a == 0.0 and b == 0.0 and c == 0.0:
        return recon.copy(), (a, b, c)
    yy, xx = _centered_grid(recon.shape)
    return recon * np.exp(-1j * (a + b * xx + c * yy)), (a, b, c)


def match_amplitude_scale(recon: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, float]:
    """Return ``(k * recon, k)`` with ``k = mean(|reference|) / mean(|recon|)`` (``k = 1`` if recon is 0)."""
    m = float(np.mean(np.abs(recon)))
    k = float(np.mean(np.abs(reference))) / m if m > 0 else 1.0
    return recon * k, k


def _correct_ambiguities(recon: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, dict]:
    """Global phase, phase plane and amplitude scale removal, in that order."""
    r, phi0 = remove_phase_offset(recon, reference)
    r, plane = remove_phase_plane(r, reference)
    r, k = match_amplitude_scale(r, reference)
    return r, {"phase_offset": phi0, "phase_plane_abc": list(plane), "amplitude_scale": k}


def _nrmse(a: np.ndarray, b: np.ndarray) -> float:
    """``||a - b|| / ||b||`` (``inf`` if ``b`` is zero and ``a`` is not, 0 if both are zero)."""
    num = math.sqrt(float(np.sum(np.abs(a - b) ** 2)))
    den = math.sqrt(float(np.sum(np.abs(b) ** 2)))
    if den == 0.0:
        return 0.0 if num == 0.0 else math.inf
    return num / den


def _shift_candidates(
    rec: np.ndarray, ref: np.ndarray, upsample_factor: int, max_shift: float
) -> list[tuple[str, np.ndarray]]:
    """Residual shifts proposed by phase correlation of amplitudes and of complex images."""
    pre, _ = remove_phase_plane(remove_phase_offset(rec, ref)[0], ref)
    win = np.outer(_tukey_1d(ref.shape[0], 0.5), _tukey_1d(ref.shape[1], 0.5))

    def prep(img: np.ndarray) -> np.ndarray:
        return (img - img.mean()) * win

    pairs = [
        ("amplitude", prep(np.abs(ref)), prep(np.abs(rec))),
        ("complex", prep(ref), prep(pre)),
    ]
    out: list[tuple[str, np.ndarray]] = [("none", np.zeros(2))]
    for name, fixed, moving in pairs:
        if not (np.any(fixed) and np.any(moving)):
            continue
        for norm in ("phase", None):
            shift, _, _ = phase_cross_correlation(
                fixed, moving, upsample_factor=upsample_factor, normalization=norm
            )
            shift = np.asarray(shift, dtype=np.float64)
            if np.all(np.isfinite(shift)) and np.max(np.abs(shift)) <= max_shift:
                out.append((f"{name}/{norm or 'plain'}", shift))
    return out


def _choose_shift(
    shifted: Callable[[np.ndarray], np.ndarray],
    ref: np.ndarray,
    candidates: list[tuple[str, np.ndarray]],
    trim: int,
) -> tuple[str, np.ndarray]:
    """Candidate whose shifted (``shifted(s)``) and corrected recon has the least NRMSE.

    All candidates are compared on the same pixels: the crop trimmed for the largest shift.
    """
    if len(candidates) == 1:
        return candidates[0]
    common = tuple(max(c) for c in zip(*(_edge_trim(s, trim) for _, s in candidates), strict=True))
    ref_t = _trimmed(ref, common)  # type: ignore[arg-type]
    best, best_err = candidates[0], math.inf
    for name, shift in candidates:
        moved = _trimmed(shifted(shift), common)  # type: ignore[arg-type]
        err = _nrmse(_correct_ambiguities(moved, ref_t)[0], ref_t)
        if err < best_err - 1e-12:
            best, best_err = (name, shift), err
    return best


def _overlap_crops(
    rec: np.ndarray, ref: np.ndarray, bounds: tuple[int, int, int, int], oy: int, ox: int
) -> tuple[tuple[int, int, int, int], np.ndarray, np.ndarray]:
    """Object bounds of region ∩ recon footprint, and the recon and reference crops over it."""
    r0, r1 = max(bounds[0], oy), min(bounds[1], oy + rec.shape[0])
    c0, c1 = max(bounds[2], ox), min(bounds[3], ox + rec.shape[1])
    _check_side((max(r1 - r0, 0), max(c1 - c0, 0)), "the overlap of recon and reference")
    return (r0, r1, c0, c1), rec[r0 - oy : r1 - oy, c0 - ox : c1 - ox], ref[r0:r1, c0:c1]


# ----------------------------------------------------------------------------------------------
# public: alignment
# ----------------------------------------------------------------------------------------------


def align_for_comparison(
    recon: np.ndarray,
    reference: np.ndarray,
    *,
    recon_origin_xy: tuple[float, float] | None = None,
    region_xy: tuple[float, float, float, float] | None = None,
    trim: int = 2,
    upsample_factor: int = 20,
    max_subpixel_shift: float | None = None,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Register ``recon`` to ``reference`` and remove the phase/amplitude ambiguities.

    Parameters are those of :func:`evaluate_reconstruction`, plus ``upsample_factor`` for the
    sub-pixel correlation (precision ``1/upsample_factor`` px) and ``max_subpixel_shift``, the
    largest residual shift accepted after integer placement (default: a quarter of the shorter
    side of the compared region; always capped so that trimming leaves ``MIN_SIDE`` pixels).

    Returns ``(recon_aligned, reference_crop, info)``: two complex128 arrays of equal shape over
    the compared object pixels, and a JSON-serialisable ``info`` dict with

    * ``shift_xy``: ``[x, y]`` object position of recon pixel ``(0, 0)``, i.e. recon ``(i, j)``
      maps to object ``(i + y, j + x)`` (integer placement + sub-pixel residual);
    * ``integer_origin_xy``, ``subpixel_shift_xy``: the two parts of ``shift_xy``;
    * ``registration``: which candidate gave the sub-pixel shift (``"none"`` for zero);
    * ``region_rows``, ``region_cols``: half-open object-pixel bounds of the compared area;
    * ``compared_shape``: ``[rows, cols]``;
    * ``phase_offset``, ``phase_plane_abc`` (rad, rad/px along x, rad/px along y, about the
      crop centre), ``amplitude_scale``: the corrections applied to the recon.
    """
    rec = _as_complex_2d(recon, "recon")
    ref = _as_complex_2d(reference, "reference")
    trim = int(trim)
    if trim < 0:
        raise ValueError(f"trim must be >= 0, got {trim}")
    if int(upsample_factor) < 1:
        raise ValueError(f"upsample_factor must be >= 1, got {upsample_factor}")
    bounds = _region_bounds(region_xy, ref.shape)
    _check_side(
        (bounds[1] - bounds[0], bounds[3] - bounds[2]), "region_xy clipped to the reference"
    )

    if recon_origin_xy is None:
        oy, ox = _find_origin(rec, ref, bounds)
    else:
        vals = np.asarray(recon_origin_xy, dtype=np.float64).ravel()
        if vals.size != 2 or not np.all(np.isfinite(vals)):
            raise ValueError(
                f"recon_origin_xy must be two finite numbers (x, y), got {recon_origin_xy!r}"
            )
        ox, oy = (int(round(float(v))) for v in vals)

    # Sub-pixel step; a residual over half a pixel moves the integer placement and is re-estimated
    # on the re-cut crops (better overlap, better estimate).
    for attempt in range(3):
        crop_bounds, rec_crop, ref_crop = _overlap_crops(rec, ref, bounds, oy, ox)
        max_shift = (
            0.25 * min(ref_crop.shape) if max_subpixel_shift is None else float(max_subpixel_shift)
        )
        # never propose a shift whose edge trim would leave less than MIN_SIDE pixels
        max_shift = min(max_shift, float((min(ref_crop.shape) - MIN_SIDE) // 2 - trim))
        candidates = _shift_candidates(rec_crop, ref_crop, int(upsample_factor), max_shift)

        def shifted(s: np.ndarray, oy: int = oy, ox: int = ox, cb: Any = crop_bounds) -> np.ndarray:
            return _shifted_crop(rec, oy, ox, cb, s)

        reg_name, shift = _choose_shift(shifted, ref_crop, candidates, trim)
        step = np.rint(shift).astype(int)
        if not np.any(step) or attempt == 2:
            break
        oy, ox = oy + int(step[0]), ox + int(step[1])

    cut = _edge_trim(shift, trim)
    ref_out = _trimmed(ref_crop, cut).copy()
    _check_side(ref_out.shape, "the compared region after trimming")
    rec_out, corr = _correct_ambiguities(_trimmed(shifted(shift), cut), ref_out)
    r0, r1, c0, c1 = crop_bounds

    sy, sx = (float(v) for v in shift)
    info: dict[str, Any] = {
        "shift_xy": [ox + sx, oy + sy],
        "integer_origin_xy": [int(ox), int(oy)],
        "subpixel_shift_xy": [sx, sy],
        "registration": reg_name,
        "region_rows": [int(r0 + cut[0]), int(r1 - cut[0])],
        "region_cols": [int(c0 + cut[1]), int(c1 - cut[1])],
        "compared_shape": [int(n) for n in ref_out.shape],
        **corr,
    }
    return rec_out, ref_out, info


# ----------------------------------------------------------------------------------------------
# public: Fourier ring correlation
# ----------------------------------------------------------------------------------------------


def half_bit_threshold(n: Any) -> np.ndarray:
    """1/2-bit threshold ``T(n) = (0.2071 + 1.9102/sqrt(n)) / (1.2071 + 0.9102/sqrt(n))``.

    ``n`` is the number of pixels in the ring (van Heel & Schatz, 2005). ``T(1) = 1`` and
    ``T(n) -> 0.1716`` as ``n -> inf``.
    """
    s = np.sqrt(np.maximum(np.asarray(n, dtype=np.float64), 1.0))
    return (0.2071 + 1.9102 / s) / (1.2071 + 0.9102 / s)


def _tukey_1d(n: int, alpha: float) -> np.ndarray:
    """Tukey (tapered cosine) window with taper fraction ``alpha`` (``alpha*(n-1)/2`` px per side)."""
    return _border_taper(n, int(math.floor(alpha * (n - 1) / 2.0)))


def frc(
    a: np.ndarray, b: np.ndarray, *, apodize: float = 0.25
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fourier ring correlation of two equally shaped 2-D (complex) images.

    With ``F = FFT(w a)``, ``G = FFT(w b)`` (``w`` a separable Tukey window of taper fraction
    ``apodize``, 0 for none, which suppresses the edge-discontinuity cross shared by aligned crops)

        ``FRC(k) = Re(sum_{ring k} F conj(G)) / sqrt(sum_{ring k} |F|^2 * sum_{ring k} |G|^2)``.

    Rings use normalised frequency ``rho = sqrt((2 f_y)^2 + (2 f_x)^2)`` (f in cycles/px, so
    ``rho = 1`` is Nyquist along either axis, also on non-square grids); ring ``k`` holds the
    pixels with ``round(rho * K) = k``, ``K = min(ny, nx) // 2``, ``k = 0..K``. Frequencies past
    Nyquist (the corners) are dropped. Rings with no power get correlation 0.

    Returns ``(frequencies, curve, counts)``: ``k / K`` (fraction of Nyquist), the FRC values and
    the number of pixels per ring, each of length ``K + 1`` (index 0 is the DC term).
    """
    fa = _as_complex_2d(a, "a")
    fb = _as_complex_2d(b, "b")
    if fa.shape != fb.shape:
        raise ValueError(f"frc needs equal shapes, got {fa.shape} and {fb.shape}")
    ny, nx = fa.shape
    if min(ny, nx) < 2:
        raise ValueError(f"frc needs images at least 2x2, got {fa.shape}")
    if apodize > 0:
        win = np.outer(_tukey_1d(ny, apodize), _tukey_1d(nx, apodize))
        fa, fb = fa * win, fb * win
    spec_a, spec_b = np.fft.fft2(fa), np.fft.fft2(fb)
    kmax = min(ny, nx) // 2
    rho = np.hypot(2.0 * np.fft.fftfreq(ny)[:, None], 2.0 * np.fft.fftfreq(nx)[None, :])
    ring = np.rint(rho * kmax).astype(np.int64)
    keep = ring <= kmax
    idx = ring[keep]

    def ring_sum(values: np.ndarray) -> np.ndarray:
        return np.bincount(idx, weights=values[keep], minlength=kmax + 1)

    cross = ring_sum(np.real(spec_a * np.conj(spec_b)))
    den = np.sqrt(ring_sum(np.abs(spec_a) ** 2) * ring_sum(np.abs(spec_b) ** 2))
    curve = np.divide(cross, den, out=np.zeros_like(cross), where=den > 0)
    counts = np.bincount(idx, minlength=kmax + 1).astype(np.int64)
    freqs = np.arange(kmax + 1, dtype=np.float64) / kmax
    return freqs, curve, counts


def _first_crossing(freqs: np.ndarray, margin: np.ndarray) -> float:
    """First frequency (k >= 1) where ``margin = curve - threshold`` goes negative, interpolated."""
    below = np.nonzero(margin[1:] < 0)[0]
    if below.size == 0:
        return 1.0
    k = int(below[0]) + 1
    prev = max(float(margin[k - 1]), 0.0)
    frac = prev / (prev - float(margin[k]))
    return float(freqs[k - 1] + frac * (freqs[k] - freqs[k - 1]))


def frc_cutoffs(freqs: np.ndarray, curve: np.ndarray, counts: np.ndarray) -> tuple[float, float]:
    """Resolution cutoffs ``(cut_05, cut_halfbit)`` of an FRC curve, as fractions of Nyquist.

    Each cutoff is the first frequency above DC at which the curve falls below the threshold
    (0.5, resp. :func:`half_bit_threshold` of the ring pixel count), linearly interpolated
    between that ring and the previous one; 1.0 when the curve never falls below it.
    """
    freqs = np.asarray(freqs, dtype=np.float64)
    curve = np.asarray(curve, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    if not (freqs.shape == curve.shape == counts.shape) or freqs.ndim != 1:
        raise ValueError("freqs, curve and counts must be 1-D arrays of equal length")
    if freqs.size < 2:
        return 1.0, 1.0
    return (
        _first_crossing(freqs, curve - 0.5),
        _first_crossing(freqs, curve - half_bit_threshold(counts)),
    )


# ----------------------------------------------------------------------------------------------
# public: scores
# ----------------------------------------------------------------------------------------------


def _data_range(ref_channel: np.ndarray) -> float:
    rng = float(ref_channel.max() - ref_channel.min())
    return rng if rng > RANGE_EPS else RANGE_EPS


def _psnr(ref: np.ndarray, test: np.ndarray, data_range: float) -> float:
    """``10 log10(data_range^2 / MSE)``; ``inf`` for identical images."""
    if np.array_equal(ref, test):
        return math.inf
    return float(peak_signal_noise_ratio(ref, test, data_range=data_range))


def _channel_scores(ref: np.ndarray, test: np.ndarray, prefix: str) -> dict[str, float]:
    dr = _data_range(ref)
    return {
        f"{prefix}_mae": float(np.mean(np.abs(test - ref))),
        f"{prefix}_psnr": _psnr(ref, test, dr),
        f"{prefix}_ssim": float(structural_similarity(ref, test, data_range=dr)),
    }


def compare_images(a_aligned: np.ndarray, b_aligned: np.ndarray) -> dict[str, Any]:
    """Scores of ``a_aligned`` (test) against ``b_aligned`` (reference), already registered.

    * amplitude: ``|a|`` vs ``|b|``; phase: ``arg(b) + arg(a conj(b))`` vs ``arg(b)`` (the test
      phase is unwrapped onto the reference's branch, so differences are wrapped to (-pi, pi]);
    * MAE ``mean|t - r|``; PSNR ``10 log10(R^2 / mean((t - r)^2))`` and SSIM
      (:func:`skimage.metrics.structural_similarity`, 7x7 window) with ``R = max(r) - min(r)``
      of the reference channel (``RANGE_EPS`` if that is ~0);
    * ``complex_nrmse = ||a - b|| / ||b||``;
    * FRC (:func:`frc`) with its 0.5 and 1/2-bit cutoffs (:func:`frc_cutoffs`).

    Returns a JSON-serialisable dict (PSNR is ``inf`` for identical channels).
    """
    a = _as_complex_2d(a_aligned, "a_aligned")
    b = _as_complex_2d(b_aligned, "b_aligned")
    if a.shape != b.shape:
        raise ValueError(f"compare_images needs equal shapes, got {a.shape} and {b.shape}")
    if min(a.shape) < 7:
        raise ValueError(f"compare_images needs images at least 7x7 (SSIM window), got {a.shape}")
    ref_phase = np.angle(b)
    test_phase = ref_phase + np.angle(a * np.conj(b))
    freqs, curve, counts = frc(a, b)
    cut05, cut_hb = frc_cutoffs(freqs, curve, counts)
    return {
        **_channel_scores(np.abs(b), np.abs(a), "amplitude"),
        **_channel_scores(ref_phase, test_phase, "phase"),
        "complex_nrmse": _nrmse(a, b),
        "frc_0_5": cut05,
        "frc_half_bit": cut_hb,
        "frc_curve": [float(v) for v in curve],
        "frc_frequencies": [float(v) for v in freqs],
        "frc_ring_counts": [int(v) for v in counts],
    }


def evaluate_reconstruction(
    recon: np.ndarray,
    reference: np.ndarray,
    *,
    recon_origin_xy: tuple[float, float] | None = None,
    region_xy: tuple[float, float, float, float] | None = None,
    trim: int = 2,
) -> dict[str, Any]:
    """Align ``recon`` to ``reference`` (:func:`align_for_comparison`) and score it (:func:`compare_images`).

    ``recon_origin_xy = (ox, oy)``: recon pixel ``(i, j)`` is object pixel ``(i + oy, j + ox)``
    (rounded for the integer placement; ``None``: found by template matching).
    ``region_xy = (x_min, x_max, y_min, y_max)``: object pixels to compare (the scan bounding
    box +- M/2), clipped to the reference; ``None``: the whole overlap. ``trim``: pixels cut from
    every edge after registration (plus the ceiling of the sub-pixel shift).

    Returns a JSON-serialisable dict with ``amplitude_{mae,psnr,ssim}``,
    ``phase_{mae,psnr,ssim}``, ``complex_nrmse``, ``frc_0_5``, ``frc_half_bit`` (fractions of
    Nyquist), ``frc_curve``, ``frc_frequencies``, ``frc_ring_counts``, ``shift_xy`` (``[x, y]``
    object position of recon pixel (0, 0), integer + sub-pixel), ``compared_shape`` (``[rows,
    cols]``) and the registration details of :func:`align_for_comparison`.
    """
    rec_al, ref_crop, info = align_for_comparison(
        recon, reference, recon_origin_xy=recon_origin_xy, region_xy=region_xy, trim=trim
    )
    return {**compare_images(rec_al, ref_crop), **info}
