"""NumPy physics reference (docs/design/spec.md#forward-model to #scaling): property tests with stated tolerances."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ptychopinn.physics import (
    ScaleContract,
    extract_patches,
    far_field,
    forward_amplitude,
    input_scale,
    make_probe,
    mean_total_counts,
    normalize_probe,
    probe_mask,
)
from ptychopinn.physics.scaling import normalize_diffraction
from ptychopinn.simulation.simulate import simulate_diffraction


def random_complex(rng, shape):
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([8, 16, 32]))
def test_far_field_is_unitary_parseval(seed, n):
    wave = random_complex(np.random.default_rng(seed), (3, n, n))
    field = far_field(wave)
    np.testing.assert_allclose(
        np.sum(np.abs(field) ** 2, axis=(1, 2)), np.sum(np.abs(wave) ** 2, axis=(1, 2)), rtol=1e-10
    )


@pytest.mark.parametrize("n", [8, 32, 64])
def test_dc_lands_at_centre(n):
    field = far_field(np.ones((n, n), dtype=complex))
    peak = np.unravel_index(np.argmax(np.abs(field)), field.shape)
    assert peak == (n // 2, n // 2)
    assert np.isclose(np.abs(field[n // 2, n // 2]), n)  # ortho: N² / N


def test_far_field_is_linear(rng):
    a, b = random_complex(rng, (16, 16)), random_complex(rng, (16, 16))
    np.testing.assert_allclose(far_field(2 * a - 3j * b), 2 * far_field(a) - 3j * far_field(b), atol=1e-10)


def test_extraction_pixel_convention():
    obj = np.arange(40 * 40, dtype=float).reshape(40, 40)
    patch = extract_patches(obj, np.array([[20.0, 15.0]]), 8)[0]
    # pixel (r, c) samples row y − N/2 + r, column x − N/2 + c
    np.testing.assert_array_equal(patch, obj[11:19, 16:24])


@settings(max_examples=25, deadline=None)
@given(st.integers(-6, 6), st.integers(-6, 6), st.floats(16, 24), st.floats(16, 24))
def test_integer_shift_equivariance(dx, dy, x, y):
    obj = random_complex(np.random.default_rng(7), (64, 64))
    base = extract_patches(obj, np.array([[x, y]]), 16)[0]
    shifted_obj = np.roll(obj, (dy, dx), axis=(0, 1))
    moved = extract_patches(shifted_obj, np.array([[x + dx, y + dy]]), 16)[0]
    np.testing.assert_allclose(moved, base, atol=1e-12)


def test_half_pixel_extraction_splits_a_delta_evenly():
    obj = np.zeros((32, 32))
    obj[16, 16] = 1.0
    patch = extract_patches(obj, np.array([[16.5, 16.0]]), 8)[0]
    # sampling columns 12.5 … 19.5: the delta at column 16 falls between patch columns 3 and 4
    assert patch[4, 3] == pytest.approx(0.5) and patch[4, 4] == pytest.approx(0.5)
    assert patch.sum() == pytest.approx(1.0)
    both = extract_patches(obj, np.array([[16.5, 16.5]]), 8)[0]
    np.testing.assert_allclose(both[3:5, 3:5], 0.25)


def test_extraction_outside_object_is_zero():
    patch = extract_patches(np.ones((16, 16)), np.array([[200.0, 200.0]]), 8)[0]
    assert not patch.any()


def test_probe_mask_is_disk_of_radius_quarter_n():
    mask = probe_mask(64)
    assert mask[32, 32] == 1 and mask[32, 32 + 16] == 1 and mask[32, 32 + 17] == 0
    assert mask.sum() == pytest.approx(math.pi * 16**2, rel=0.03)


@pytest.mark.parametrize("use_mask", [False, True])
def test_probe_normalisation(use_mask):
    probe = make_probe(32, "disk", defocus=1.0) * 7.3
    normalised = normalize_probe(probe, probe_scale=4.0, use_mask=use_mask)
    weights = probe_mask(32) if use_mask else 1.0
    assert np.mean(np.abs(weights * normalised)) == pytest.approx(0.25, rel=1e-6)


def test_probe_kinds_are_centred_and_peak_one():
    for kind in ("disk", "defocused"):
        probe = make_probe(64, kind)
        assert np.abs(probe).max() == pytest.approx(1.0, rel=1e-4)
        intensity = np.abs(probe) ** 2
        rows = np.arange(64)
        centroid = (intensity.sum(1) * rows).sum() / intensity.sum()
        assert abs(centroid - 32) < 1.0
    with pytest.raises(ValueError, match="unknown probe kind"):
        make_probe(16, "square")


def test_defocus_adds_phase_curvature():
    flat, curved = make_probe(32, "disk"), make_probe(32, "disk", defocus=2.0)
    assert np.ptp(np.angle(flat[np.abs(flat) > 0.5])) < 1e-6
    assert np.ptp(np.angle(curved[np.abs(curved) > 0.5])) > 1.0


def test_forward_amplitude_matches_definition(rng):
    obj = np.exp(1j * rng.uniform(-1, 1, (4, 16, 16)))
    probe = make_probe(16)
    expected = np.abs(np.fft.fftshift(np.fft.fft2(probe * obj, norm="ortho"), axes=(-2, -1)))
    np.testing.assert_allclose(forward_amplitude(obj, probe), expected, atol=1e-12)


def test_simulated_counts_match_nphotons():
    rng = np.random.default_rng(3)
    obj = np.exp(1j * rng.uniform(-0.5, 0.5, (64, 64)))
    positions = rng.uniform(20, 44, (400, 2))
    amplitudes = simulate_diffraction(obj, make_probe(32), positions, nphotons=1e4, seed=0)
    totals = np.sum(amplitudes.astype(np.float64) ** 2, axis=(1, 2))
    # the mean of 400 Poisson totals of mean ~1e4: standard error ≈ sqrt(1e4 / 400) = 5 counts
    assert abs(totals.mean() - 1e4) < 5 * math.sqrt(1e4 / 400) + 1e4 * 1e-3
    squared = amplitudes.astype(np.float64) ** 2
    assert np.abs(squared - np.round(squared)).max() < 1e-3  # square roots of integer counts


def test_normalised_mean_pattern_energy_is_exact(rng):
    data = rng.uniform(0, 30, (50, 32, 32)).astype(np.float32)
    scaled = normalize_diffraction(data, input_scale(data))
    energy = np.mean(np.sum(scaled.astype(np.float64) ** 2, axis=(1, 2)))
    assert energy == pytest.approx(16.0**2, rel=1e-6)


def test_scale_contract_counts_identity(rng):
    counts = rng.poisson(5.0, (40, 16, 16)).astype(np.float64)
    amplitudes = np.sqrt(counts).astype(np.float32)
    contract = ScaleContract.from_training_data(amplitudes)
    assert contract.mean_counts == pytest.approx(counts.sum(axis=(1, 2)).mean(), rel=1e-6)
    k = (contract.photon_scale * normalize_diffraction(amplitudes, contract.input_scale)) ** 2
    np.testing.assert_allclose(k, counts, rtol=1e-5, atol=1e-4)  # k equals the measured counts


def test_scale_contract_nphotons_override_and_json_round_trip(rng):
    amplitudes = rng.uniform(0, 1, (10, 8, 8))
    contract = ScaleContract.from_training_data(amplitudes, nphotons=1e6, probe_mask=True)
    assert contract.photon_scale == pytest.approx(math.sqrt(1e6) / 4)
    assert contract.mean_counts == 1e6
    assert contract.input_scale == pytest.approx(input_scale(amplitudes))
    assert ScaleContract.from_json(contract.to_json()) == contract
    with pytest.raises(ValueError, match="missing"):
        ScaleContract.from_dict({"patch_size": 8})


def test_mean_total_counts_rejects_empty():
    with pytest.raises(ValueError):
        mean_total_counts(np.zeros((0, 8, 8)))
    with pytest.raises(ValueError, match="zero total energy"):
        input_scale(np.zeros((2, 8, 8)))


def test_twin_asymmetry_tells_a_flat_phase_disk_from_probes_with_phase():
    """A real, centro-symmetric probe gives a patch and its twin identical diffraction."""
    from ptychopinn.physics.forward import far_field
    from ptychopinn.physics.probe import twin, twin_asymmetry

    flat_disk = make_probe(64, "disk")
    assert twin_asymmetry(flat_disk) < 1e-6
    # a global phase (a probe read from a file) leaves the ambiguity, and the measure, as they are
    assert twin_asymmetry(flat_disk * np.exp(1.3j)) < 1e-6
    assert twin_asymmetry(make_probe(64, "disk", defocus=1.0)) > 0.1
    assert twin_asymmetry(make_probe(64, "defocused")) > 0.1
    patch = np.exp(1j * np.random.default_rng(0).random((64, 64)))
    for probe, same in ((flat_disk, True), (flat_disk * np.exp(1.3j), True), (make_probe(64, "defocused"), False)):
        pattern, twin_pattern = (np.abs(far_field(probe * p)) for p in (patch, twin(patch)))
        assert np.allclose(pattern, twin_pattern, rtol=1e-4, atol=1e-4) == same
