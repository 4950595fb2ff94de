"""Simulated objects, scan patterns and complete simulated scans."""

from __future__ import annotations

import numpy as np
import pytest

from ptychopinn.data import load_scan, save_scan, validate_scan
from ptychopinn.simulation.objects import OBJECT_KINDS, make_object
from ptychopinn.simulation.scan_patterns import make_positions
from ptychopinn.simulation.simulate import simulate


@pytest.mark.parametrize("kind", OBJECT_KINDS)
def test_objects_have_documented_ranges_and_are_seeded(kind):
    obj = make_object(kind, size=64, seed=4)
    assert obj.shape == (64, 64) and obj.dtype == np.complex64
    amplitude, phase = np.abs(obj), np.angle(obj)
    assert 0.55 <= amplitude.min() and amplitude.max() <= 1.0 + 1e-6
    assert np.all(np.abs(phase) <= np.pi / 2 + 1e-5)
    assert phase.std() > 0.05  # there is structure to reconstruct
    np.testing.assert_array_equal(obj, make_object(kind, size=64, seed=4))


def test_random_generators_depend_on_seed():
    assert not np.array_equal(make_object("lines", 64, seed=1), make_object("lines", 64, seed=2))


def test_image_file_object_with_separate_phase(tmp_path):
    from skimage import io

    ramp = np.tile(np.linspace(0, 255, 40, dtype=np.uint8), (40, 1))
    io.imsave(tmp_path / "amp.png", ramp)
    io.imsave(tmp_path / "phase.png", ramp.T.copy())
    obj = make_object(str(tmp_path / "amp.png"), size=32, phase_image=tmp_path / "phase.png")
    amplitude, phase = np.abs(obj), np.angle(obj)
    assert amplitude[:, 0].mean() > amplitude[:, -1].mean() + 0.3  # amplitude varies along x
    assert phase[-1].mean() > phase[0].mean() + 2.0  # phase varies along y


def test_unknown_object_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown object"):
        make_object("nonexistent-kind", 32)


@pytest.mark.parametrize("kind", ["raster", "fermat", "random"])
def test_scan_patterns_stay_inside_and_match_step(kind):
    positions = make_positions(kind, object_size=128, patch_size=32, step=5, jitter=0.5, seed=0)
    assert positions.min() >= 17 - 1e-9 and positions.max() <= 128 - 17 + 1e-9
    from scipy.spatial import cKDTree

    nearest = cKDTree(positions).query(positions, k=2)[0][:, 1]
    # mean spacing within a factor of ~2 of the step (random scans cluster)
    assert 0.3 * 5 < np.median(nearest) < 1.5 * 5
    expected = ((128 - 34) / 5) ** 2
    assert 0.6 * expected < len(positions) < 1.5 * expected


def test_raster_without_jitter_is_a_regular_grid():
    positions = make_positions("raster", 64, 16, step=4, jitter=0, seed=0)
    xs = np.unique(np.round(positions[:, 0], 9))
    np.testing.assert_allclose(np.diff(xs), 4)


def test_simulated_scan_is_valid_and_round_trips(tmp_path):
    scan = simulate("grf", size=64, n=16, step=3, photons=1e4, seed=2)
    validate_scan(scan)
    save_scan(scan, tmp_path / "s.npz")
    again = load_scan(tmp_path / "s.npz")
    np.testing.assert_array_equal(again.diffraction, scan.diffraction)
    np.testing.assert_array_equal(again.object, scan.object)
    totals = np.sum(scan.diffraction.astype(np.float64) ** 2, axis=(1, 2))
    assert totals.mean() == pytest.approx(1e4, rel=0.01)


def test_simulation_is_seeded():
    a = simulate("dots", size=64, n=16, step=4, photons=1e3, seed=9)
    b = simulate("dots", size=64, n=16, step=4, photons=1e3, seed=9)
    c = simulate("dots", size=64, n=16, step=4, photons=1e3, seed=10)
    np.testing.assert_array_equal(a.diffraction, b.diffraction)
    assert not np.array_equal(a.diffraction, c.diffraction)


def test_lower_dose_is_noisier():
    noisy = simulate("lines", size=64, n=16, step=4, photons=1e2, seed=0, jitter=0)
    clean = simulate("lines", size=64, n=16, step=4, photons=1e6, seed=0, jitter=0)

    def relative_error(scan, photons):
        # same object and positions, so the spread of totals differs only by shot noise
        counts = scan.diffraction.astype(np.float64) ** 2
        return np.mean(np.abs(counts.sum(axis=(1, 2)) - photons)) / photons
    assert relative_error(noisy, 1e2) > relative_error(clean, 1e6)
