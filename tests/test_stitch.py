"""Stitching (docs/design/spec.md#stitching-and-refinement): exact reassembly, sub-pixel splatting, coverage, streaming, phase alignment."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from ptychopinn.physics import extract_patches
from ptychopinn.reconstruction.result import Reconstruction
from ptychopinn.reconstruction.stitch import Stitcher, bilinear_splat, stitch

N = 32
SIZE = 96


def smooth_object(
    seed: int = 0,
    size: int = SIZE,
    sigma: float = 4.0,
    phase_range: float = 2.0,
    amp_range: float = 0.5,
) -> np.ndarray:
    """Smooth complex object: amplitude in 1 ± amp_range, phase in ± phase_range radians."""
    rng = np.random.default_rng(seed)
    amp = gaussian_filter(rng.standard_normal((size, size)), sigma)
    phase = gaussian_filter(rng.standard_normal((size, size)), sigma)
    amp = 1 + amp_range * amp / np.abs(amp).max()
    phase = phase_range * phase / np.abs(phase).max()
    return amp * np.exp(1j * phase)


def grid_centers(lo: int = N // 2, hi: int = SIZE - N // 2, step: int = 4) -> np.ndarray:
    """Integer (x, y) centres in raster order (each overlaps the previous ones)."""
    ys, xs = np.meshgrid(np.arange(lo, hi + 1, step), np.arange(lo, hi + 1, step), indexing="ij")
    return np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64)


def slice_patches(obj: np.ndarray, centers_xy: np.ndarray, n: int = N) -> np.ndarray:
    """Exact patches at integer centres: patch (r, c) = obj[y − n/2 + r, x − n/2 + c]."""
    out = []
    for x, y in centers_xy.astype(int):
        out.append(obj[y - n // 2 : y + n // 2, x - n // 2 : x + n // 2])
    return np.array(out)


def object_view(result: Reconstruction, obj: np.ndarray) -> np.ndarray:
    """The true object on the result's canvas (pixel (i, j) ↔ object (i + oy, j + ox)), NaN outside."""
    ox, oy = (int(v) for v in result.origin_xy)
    h, w = result.object.shape
    view = np.full((h, w), np.nan + 0j)
    rows, cols = np.arange(h) + oy, np.arange(w) + ox
    rin = (rows >= 0) & (rows < obj.shape[0])
    cin = (cols >= 0) & (cols < obj.shape[1])
    view[np.ix_(rin, cin)] = obj[np.ix_(rows[rin], cols[cin])]
    return view


def remove_global_phase(estimate: np.ndarray, reference: np.ndarray) -> np.ndarray:
    z = np.vdot(estimate, reference)
    return estimate * z / abs(z)


def test_integer_centres_reproduce_object_exactly_with_origin_bookkeeping():
    obj = smooth_object()
    centers = grid_centers()
    result = stitch(slice_patches(obj, centers), centers, crop=20)

    assert result.object.dtype == np.complex64 and result.coverage.dtype == np.float32
    assert result.origin_xy == (float(16 - 16 - 1), float(16 - 16 - 1))
    truth = object_view(result, obj)
    assert not np.any(np.isnan(truth[result.mask]))
    np.testing.assert_allclose(result.object[result.mask], truth[result.mask], atol=1e-6)
    # The crops cover object rows/cols 6 … 89 exactly (centre 16 − 10 … centre 80 + 9).
    ox, oy = (int(v) for v in result.origin_xy)
    expected = np.zeros(result.object.shape, dtype=bool)
    expected[6 - oy : 90 - oy, 6 - ox : 90 - ox] = True
    np.testing.assert_array_equal(result.mask, expected)
    i, j = 40 - oy, 50 - ox
    assert result.object[i, j] == pytest.approx(obj[40, 50], abs=1e-6)


def test_subpixel_centres_reproduce_smooth_object():
    obj = smooth_object(seed=3, sigma=8.0, phase_range=1.0, amp_range=0.3)
    rng = np.random.default_rng(7)
    grid = grid_centers(18, 76)
    centers = grid + rng.uniform(0, 1, size=grid.shape)
    patches = extract_patches(obj, centers, N)
    result = stitch(patches, centers, crop=20)

    truth = object_view(result, obj)
    interior = _eroded(result.mask, 2)
    assert interior.sum() > 2000
    err = np.abs(result.object[interior] - truth[interior])
    scale = np.abs(obj).max()
    assert err.max() < 1e-2 * scale and err.mean() < 2e-3 * scale
    # A half-pixel misplacement would be first-order wrong: much larger than the splat error.
    shifted = stitch(patches, centers + 0.5, crop=20)
    shifted_err = np.abs(shifted.object - object_view(shifted, obj))[_eroded(shifted.mask, 2)]
    assert shifted_err.mean() > 3 * err.mean()


def _eroded(mask: np.ndarray, k: int) -> np.ndarray:
    out = mask.copy()
    for _ in range(k):
        out[1:-1, 1:-1] &= out[:-2, 1:-1] & out[2:, 1:-1] & out[1:-1, :-2] & out[1:-1, 2:]
        out[[0, -1], :] = False
        out[:, [0, -1]] = False
    return out


def test_coverage_counts_crops_and_uncovered_pixels_are_zero():
    obj = smooth_object()
    # Two separate clusters leave an uncovered gap between them.
    centers = np.concatenate([grid_centers(16, 28), grid_centers(68, 80)])
    result = stitch(slice_patches(obj, centers), centers, crop=20)
    ox, oy = (int(v) for v in result.origin_xy)

    for arr in (result.object.real, result.object.imag, result.coverage):
        assert np.all(np.isfinite(arr))
    assert np.all(result.object[~result.mask] == 0)
    assert np.all(result.coverage[~result.mask] == 0)
    # Pixel (20, 20) lies in the crops of centres 16…28 along each axis: 4 × 4 = 16 crops.
    assert result.coverage[20 - oy, 20 - ox] == 16
    # Pixel (6, 6) is only in the crop of centre (16, 16).
    assert result.coverage[6 - oy, 6 - ox] == 1
    # (48, 48) is between the clusters: never covered.
    assert not result.mask[48 - oy, 48 - ox] and result.object[48 - oy, 48 - ox] == 0
    # The canvas border margin is uncovered.
    assert not result.mask[0].any() and not result.mask[:, -1].any()


@pytest.mark.parametrize("align_phase", [False, True])
def test_streaming_batch_sizes_give_identical_results(align_phase):
    obj = smooth_object(seed=5)
    rng = np.random.default_rng(11)
    centers = grid_centers(18, 76) + rng.uniform(0, 1, size=(len(grid_centers(18, 76)), 2))
    patches = extract_patches(obj, centers, N)
    results = []
    for batch in (1, 7, len(centers)):
        stitcher = Stitcher(centers, N, align_phase=align_phase)
        for k in range(0, len(centers), batch):
            stitcher.add(patches[k : k + batch], centers[k : k + batch])
        results.append(stitcher.result())
    for other in results[1:]:
        assert other.origin_xy == results[0].origin_xy
        np.testing.assert_allclose(other.object, results[0].object, atol=1e-6)
        np.testing.assert_allclose(other.coverage, results[0].coverage, atol=1e-6)
        np.testing.assert_array_equal(other.mask, results[0].mask)


def gaussian_probe(n: int = N, sigma: float = 6.0) -> np.ndarray:
    yy, xx = np.mgrid[:n, :n] - n / 2
    return np.exp(-(xx**2 + yy**2) / (2 * sigma**2)) * np.exp(0.3j * xx)


def test_probe_weighting_reproduces_object_and_needs_a_probe():
    obj = smooth_object(seed=2)
    centers = grid_centers()
    patches = slice_patches(obj, centers)
    result = stitch(patches, centers, weighting="probe", probe=gaussian_probe())

    truth = object_view(result, obj)
    well = result.coverage > 0.1 * result.coverage.max()
    assert well.sum() > 3000 and np.all(result.mask[well])
    np.testing.assert_allclose(result.object[well], truth[well], atol=1e-6)
    assert np.all(result.object[~result.mask] == 0)
    with pytest.raises(ValueError, match="probe"):
        stitch(patches, centers, weighting="probe")


def test_align_phase_recovers_object_up_to_one_global_phase():
    obj = smooth_object(seed=4)
    centers = grid_centers()
    rng = np.random.default_rng(3)
    offsets = np.exp(1j * rng.uniform(-np.pi, np.pi, size=len(centers)))
    patches = slice_patches(obj, centers) * offsets[:, None, None]

    plain = stitch(patches, centers)
    aligned = stitch(patches, centers, align_phase=True)
    truth = object_view(plain, obj)
    m = plain.mask
    plain_err = np.abs(remove_global_phase(plain.object[m], truth[m]) - truth[m]).mean()
    aligned_err = np.abs(remove_global_phase(aligned.object[m], truth[m]) - truth[m]).max()
    assert plain_err > 0.2
    assert aligned_err < 1e-5


def test_bilinear_splat_is_adjoint_of_bilinear_sampling():
    rng = np.random.default_rng(0)
    values = rng.standard_normal((5, 5))
    image = rng.standard_normal((6, 6))
    fy, fx = 0.3, 0.8
    sampled = (
        (1 - fy) * (1 - fx) * image[:-1, :-1]
        + (1 - fy) * fx * image[:-1, 1:]
        + fy * (1 - fx) * image[1:, :-1]
        + fy * fx * image[1:, 1:]
    )
    assert np.sum(bilinear_splat(values, fy, fx) * image) == pytest.approx(np.sum(values * sampled))


def test_result_properties():
    obj = smooth_object()
    centers = grid_centers()
    result = stitch(slice_patches(obj, centers), centers)
    np.testing.assert_allclose(result.amplitude, np.abs(result.object))
    assert np.all(result.phase[~result.mask] == 0)
    np.testing.assert_allclose(
        result.phase[result.mask], np.angle(result.object[result.mask]), atol=1e-6
    )


def test_validation_errors():
    centers = grid_centers()
    patches = np.ones((len(centers), N, N), dtype=np.complex64)
    with pytest.raises(ValueError, match="crop"):
        Stitcher(centers, N, crop=N + 1)
    stitcher = Stitcher(centers, N)
    with pytest.raises(ValueError, match="shape"):
        stitcher.add(np.ones((2, N, N - 1)), centers[:2])
    with pytest.raises(ValueError, match="patches but"):
        stitcher.add(patches[:3], centers[:2])
    with pytest.raises(ValueError, match="outside the canvas"):
        stitcher.add(patches[:1], np.array([[500.0, 500.0]]))
    with pytest.raises(ValueError, match="2-D"):
        Stitcher(centers, N, weighting="probe", probe=np.ones((1, N, N)))
    with pytest.raises(ValueError, match="weighting"):
        Stitcher(centers, N, weighting="gauss")
    with pytest.raises(ValueError, match=r"\(B, 2\)"):
        Stitcher(np.zeros((3, 3)), N)
    with pytest.raises(ValueError, match="at least one"):
        Stitcher(np.zeros((0, 2)), N)
