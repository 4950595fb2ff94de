"""Tests for ptychopinn.evaluation.metrics: registration, ambiguity removal, scores and FRC."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from ptychopinn.evaluation.metrics import (
    align_for_comparison,
    compare_images,
    evaluate_reconstruction,
    frc,
    frc_cutoffs,
    half_bit_threshold,
)

N = 128


def _smooth_unit_field(rng: np.random.Generator, n: int, sigma: float) -> np.ndarray:
    """Periodic smooth random field rescaled to [0, 1]."""
    g = ndimage.gaussian_filter(rng.standard_normal((n, n)), sigma, mode="wrap")
    return (g - g.min()) / (g.max() - g.min())


def make_object(n: int = N, seed: int = 0, sigma: float = 3.0) -> np.ndarray:
    """Complex object with amplitude in [0.5, 1] and phase in [-1, 1] (periodic)."""
    rng = np.random.default_rng(seed)
    amp = 0.5 + 0.5 * _smooth_unit_field(rng, n, sigma)
    phase = 2.0 * _smooth_unit_field(rng, n, sigma) - 1.0
    return amp * np.exp(1j * phase)


def fourier_shift(img: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """``out(y, x) = img(y - dy, x - dx)`` for a periodic image."""
    return np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(img), (dy, dx)))


def complex_noise(shape: tuple[int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2.0)


SCORE_KEYS = {
    "amplitude_mae",
    "amplitude_psnr",
    "amplitude_ssim",
    "phase_mae",
    "phase_psnr",
    "phase_ssim",
    "complex_nrmse",
    "frc_0_5",
    "frc_half_bit",
    "frc_curve",
    "frc_frequencies",
    "shift_xy",
    "compared_shape",
}


# ----------------------------------------------------------------------------------------------
# evaluate_reconstruction
# ----------------------------------------------------------------------------------------------


def test_identical_images_score_perfectly():
    obj = make_object()
    res = evaluate_reconstruction(obj.copy(), obj)
    assert SCORE_KEYS <= set(res)
    assert res["amplitude_ssim"] == pytest.approx(1.0, abs=1e-6)
    assert res["phase_ssim"] == pytest.approx(1.0, abs=1e-6)
    assert res["amplitude_mae"] < 1e-10
    assert res["phase_mae"] < 1e-10
    assert res["complex_nrmse"] < 1e-10
    assert res["amplitude_psnr"] > 150 and res["phase_psnr"] > 150
    assert res["frc_0_5"] == 1.0 and res["frc_half_bit"] == 1.0
    np.testing.assert_allclose(res["frc_curve"], 1.0, atol=1e-9)
    np.testing.assert_allclose(res["shift_xy"], [0.0, 0.0], atol=1e-9)
    assert res["compared_shape"] == [N - 4, N - 4]
    assert res["frc_frequencies"][0] == 0.0 and res["frc_frequencies"][-1] == 1.0
    json.dumps(res)  # plain Python types only


def _distorted_crop(obj: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """Shift by (dx, dy) = (3.4, -2.7), add phase offset + ramp, scale amplitude, crop.

    Returns the recon and its true origin (x, y) in object pixels.
    """
    dx, dy = 3.4, -2.7
    yy, xx = np.mgrid[0 : obj.shape[0], 0 : obj.shape[1]]
    moved = fourier_shift(obj, dy, dx) * 1.7 * np.exp(1j * (1.3 + 0.02 * xx - 0.015 * yy))
    r0, c0 = 10, 20
    recon = moved[r0 : r0 + 100, c0 : c0 + 100]
    return recon, (c0 - dx, r0 - dy)


@pytest.mark.parametrize("origin_mode", ["none", "exact", "rounded_unshifted"])
def test_shifted_scaled_ramped_crop_scores_near_perfectly(origin_mode):
    obj = make_object(seed=1)
    recon, (true_x, true_y) = _distorted_crop(obj)
    origin = {
        "none": None,
        "exact": (true_x, true_y),
        "rounded_unshifted": (20.0, 10.0),  # crop corner only, unaware of the 3.4/-2.7 px shift
    }[origin_mode]
    res = evaluate_reconstruction(recon, obj, recon_origin_xy=origin)
    assert res["amplitude_ssim"] > 0.97
    assert res["phase_ssim"] > 0.97
    assert res["complex_nrmse"] < 0.1
    np.testing.assert_allclose(res["shift_xy"], [true_x, true_y], atol=0.1)
    assert res["frc_0_5"] > 0.9


def test_align_for_comparison_recovers_corrections():
    obj = make_object(seed=2)
    recon, (true_x, true_y) = _distorted_crop(obj)
    rec_al, ref_crop, info = align_for_comparison(recon, obj)
    assert rec_al.shape == ref_crop.shape == tuple(info["compared_shape"])
    assert rec_al.dtype == np.complex128
    rows, cols = info["region_rows"], info["region_cols"]
    np.testing.assert_array_equal(ref_crop, obj[rows[0] : rows[1], cols[0] : cols[1]])
    assert info["amplitude_scale"] == pytest.approx(1 / 1.7, rel=1e-3)
    _, slope_x, slope_y = info["phase_plane_abc"]
    assert slope_x == pytest.approx(0.02, abs=1e-3)
    assert slope_y == pytest.approx(-0.015, abs=1e-3)
    np.testing.assert_allclose(info["shift_xy"], [true_x, true_y], atol=0.1)
    assert np.linalg.norm(rec_al - ref_crop) / np.linalg.norm(ref_crop) < 0.01
    json.dumps(info)


def test_recon_larger_than_reference_is_placed_by_template_matching():
    big = make_object(n=160, seed=3)
    recon = fourier_shift(big, 0.25, 0.75) * np.exp(-2j)  # origin (x, y) = (-0.75, -0.25)
    reference = big[40:120, 30:130]  # recon covers it entirely
    res = evaluate_reconstruction(recon, reference)
    # recon pixel (i, j) is reference pixel (i - 40 - 0.25, j - 30 - 0.75)
    np.testing.assert_allclose(res["shift_xy"], [-30.75, -40.25], atol=0.1)
    assert res["amplitude_ssim"] > 0.99 and res["phase_ssim"] > 0.99


def test_phase_only_object_with_steep_ramp_is_registered():
    obj = np.exp(1j * np.angle(make_object(seed=4)))  # flat amplitude
    yy, xx = np.mgrid[0:N, 0:N]
    moved = fourier_shift(obj, 1.3, -0.6) * np.exp(1j * (0.5 + 0.2 * xx + 0.1 * yy))
    recon = moved[20:110, 15:120]  # origin (x, y) = (15.6, 18.7)
    res = evaluate_reconstruction(recon, obj)
    np.testing.assert_allclose(res["shift_xy"], [15.6, 18.7], atol=0.1)
    assert res["phase_ssim"] > 0.99
    assert res["complex_nrmse"] < 0.05


def test_increasing_noise_lowers_every_score():
    obj = make_object(seed=5)
    noise = complex_noise(obj.shape, seed=6)
    results = [
        evaluate_reconstruction(obj + level * noise, obj) for level in (0.02, 0.05, 0.1, 0.2)
    ]

    def series(key: str) -> np.ndarray:
        return np.array([r[key] for r in results])

    for key in ("amplitude_ssim", "phase_ssim", "amplitude_psnr", "phase_psnr"):
        assert np.all(np.diff(series(key)) < 0), (key, series(key))
    for key in ("amplitude_mae", "phase_mae", "complex_nrmse"):
        assert np.all(np.diff(series(key)) > 0), (key, series(key))
    for key in ("frc_0_5", "frc_half_bit"):
        values = series(key)
        assert np.all(np.diff(values) <= 0), (key, values)
        assert values[0] > values[-1] and values[0] < 1.0, (key, values)


def test_flat_image_has_near_zero_phase_ssim():
    obj = make_object(seed=7)
    flat = np.full_like(obj, 0.8)
    res = evaluate_reconstruction(flat, obj)
    assert abs(res["phase_ssim"]) < 0.1
    # amplitude means are matched, so only SSIM's stabilising constant keeps it above 0
    assert res["amplitude_ssim"] < 0.3
    assert res["frc_0_5"] < 0.2


def test_flat_reference_phase_is_guarded():
    """A reference with zero phase everywhere has a zero phase range: no division by zero."""
    amp = np.abs(make_object(seed=8))
    res = evaluate_reconstruction(amp.astype(complex), amp.astype(complex))
    assert np.isfinite(res["phase_ssim"]) and res["phase_ssim"] == pytest.approx(1.0, abs=1e-6)
    noisy = evaluate_reconstruction(amp + 0.05 * complex_noise(amp.shape, 9), amp.astype(complex))
    for key in ("phase_ssim", "phase_psnr", "phase_mae"):
        assert np.isfinite(noisy[key]), key


def test_region_restricts_comparison():
    obj = make_object(seed=10)
    res = evaluate_reconstruction(obj, obj, region_xy=(20.0, 100.0, 30.0, 90.0), trim=2)
    assert res["compared_shape"] == [60 - 4, 80 - 4]
    assert res["region_rows"] == [32, 88] and res["region_cols"] == [22, 98]
    # the region is clipped to the reference
    res = evaluate_reconstruction(obj, obj, region_xy=(-10.0, 50.0, -5.0, 40.0), trim=3)
    assert res["compared_shape"] == [40 - 6, 50 - 6]
    # with a known origin the region is taken in object pixels
    recon = obj[10:110, 20:120]
    res = evaluate_reconstruction(recon, obj, recon_origin_xy=(20, 10), region_xy=(40, 80, 30, 70))
    assert res["compared_shape"] == [36, 36]
    assert res["amplitude_ssim"] == pytest.approx(1.0, abs=1e-6)


def test_bad_inputs_raise_value_error():
    obj = make_object(n=32, seed=11)
    with pytest.raises(ValueError, match="2-D"):
        evaluate_reconstruction(obj[0], obj)
    with pytest.raises(ValueError, match="2-D"):
        evaluate_reconstruction(obj, obj[None])
    with pytest.raises(ValueError, match="non-finite"):
        bad = obj.copy()
        bad[3, 3] = np.nan
        evaluate_reconstruction(bad, obj)
    with pytest.raises(ValueError, match="overlap"):
        evaluate_reconstruction(obj, obj, recon_origin_xy=(28, 0))  # 4 columns overlap
    with pytest.raises(ValueError, match="region"):
        evaluate_reconstruction(obj, obj, region_xy=(0, 5, 0, 32))
    with pytest.raises(ValueError):
        evaluate_reconstruction(obj, obj, region_xy=(0, 10, 0))
    with pytest.raises(ValueError, match="trimming"):
        evaluate_reconstruction(obj, obj, region_xy=(0, 10, 0, 10), trim=2)
    with pytest.raises(ValueError):
        compare_images(obj, obj[:20])
    with pytest.raises(ValueError):
        frc(obj, obj[:, :20])


# ----------------------------------------------------------------------------------------------
# compare_images and FRC
# ----------------------------------------------------------------------------------------------


def test_compare_images_wraps_phase_differences():
    """A phase near +pi against one near -pi is a small error, not a 2 pi one."""
    ref = np.exp(1j * np.full((32, 32), np.pi - 0.01))
    test = np.exp(1j * np.full((32, 32), -np.pi + 0.01))
    scores = compare_images(test, ref)
    assert scores["phase_mae"] == pytest.approx(0.02, abs=1e-9)


def test_frc_identical_images_is_one():
    img = make_object(seed=12)[:, :96]  # non-square grid
    freqs, curve, counts = frc(img, img)
    assert len(freqs) == len(curve) == len(counts) == 96 // 2 + 1
    np.testing.assert_allclose(curve, 1.0, atol=1e-12)
    assert freqs[0] == 0.0 and freqs[-1] == 1.0
    assert np.all(counts > 0)
    assert frc_cutoffs(freqs, curve, counts) == (1.0, 1.0)


def test_frc_independent_noise_is_small_at_high_frequency():
    a = complex_noise((N, N), seed=13)
    b = complex_noise((N, N), seed=14)
    freqs, curve, counts = frc(a, b)
    high = freqs > 0.5
    assert np.mean(np.abs(curve[high])) < 0.1
    assert np.max(np.abs(curve[high])) < 0.3
    cut05, cut_hb = frc_cutoffs(freqs, curve, counts)
    assert cut05 < 0.1 and cut_hb < 0.1


def test_half_bit_threshold_formula():
    n = 100.0
    expected = (0.2071 + 1.9102 / 10.0) / (1.2071 + 0.9102 / 10.0)
    assert float(half_bit_threshold(n)) == pytest.approx(expected, rel=1e-12)
    assert float(half_bit_threshold(n)) == pytest.approx(0.306689, abs=1e-6)
    assert float(half_bit_threshold(1)) == pytest.approx(1.0, abs=1e-12)
    assert float(half_bit_threshold(1e12)) == pytest.approx(0.2071 / 1.2071, abs=1e-5)


def test_frc_cutoffs_interpolate_between_rings():
    freqs = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    curve = np.array([1.0, 0.8, 0.6, 0.4, 0.2])
    counts = np.full(5, 1e12)  # half-bit threshold ~0.1716: never crossed
    cut05, cut_hb = frc_cutoffs(freqs, curve, counts)
    assert cut05 == pytest.approx(0.625)  # 0.6 -> 0.4 crosses 0.5 half way between 0.5 and 0.75
    assert cut_hb == 1.0
    curve2 = np.array([1.0, 0.9, 0.3, 0.1, 0.05])
    counts2 = np.array([1, 8, 16, 24, 32])
    thr = half_bit_threshold(counts2)
    _, cut_hb2 = frc_cutoffs(freqs, curve2, counts2)
    m1, m2 = curve2[1] - thr[1], curve2[2] - thr[2]
    assert cut_hb2 == pytest.approx(0.25 + 0.25 * m1 / (m1 - m2))
