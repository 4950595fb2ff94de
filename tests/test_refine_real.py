"""Refinement on real-like data (issue 27): detector masks, incoherent probe modes, stable probe
refinement, and the partially coherent, bad-pixel simulation they are tested on
(docs/design/spec.md#stitching-and-refinement)."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pytest
import torch

from ptychopinn.api import evaluate
from ptychopinn.cli.refine import run_refinement
from ptychopinn.config import RefineOptions
from ptychopinn.evaluation.data_fit import data_fit
from ptychopinn.physics.forward import extract_patches, far_field
from ptychopinn.reconstruction.refine import RefinementProblem, refine
from ptychopinn.reconstruction.refine.modes import (
    mode_powers,
    orthogonalized,
    starting_modes,
    subspace_overlap,
    with_total_power,
)
from ptychopinn.reconstruction.result import Reconstruction
from ptychopinn.simulation.simulate import (
    HOT_PIXEL_FACTOR,
    make_probe_modes,
    simulate,
    zone_plate_probe,
)

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def coherent_masked():
    """N = 32, one probe, 5 % bad pixels plus a dead column holding garbage."""
    return simulate("lines", size=96, n=32, step=4.0, jitter=0.5, photons=1e5, seed=1, bad_pixel_fraction=0.05)


@pytest.fixture(scope="module")
def partially_coherent():
    """N = 32, a zone-plate probe with a central stop, 2 incoherent modes (power 1 : 0.3)."""
    return simulate("lines", size=96, n=32, step=4.0, jitter=0.5, photons=1e5, seed=3, probe="zone_plate",
                    probe_modes=2)


def _truth(scan) -> Reconstruction:
    return Reconstruction(scan.object, np.ones(scan.object.shape, np.float32), (0.0, 0.0))


# --- the simulation --------------------------------------------------------------------------


def test_simulated_modes_are_orthogonal_with_decaying_power_and_mode_zero_is_the_probe():
    probe = zone_plate_probe(64)
    modes = make_probe_modes(probe, 3, power_ratio=0.3)
    assert modes.shape == (3, 64, 64) and modes.dtype == np.complex64
    assert np.array_equal(modes[0], probe)
    gram = np.einsum("kij,lij->kl", modes.conj().astype(np.complex128), modes)
    np.testing.assert_allclose(np.abs(gram - np.diag(np.diag(gram))), 0, atol=1e-4 * gram[0, 0].real)
    np.testing.assert_allclose(np.diag(gram).real / gram[0, 0].real, [1.0, 0.3, 0.09], rtol=1e-4)


def test_zone_plate_probe_is_dark_where_the_stop_shades_the_beam():
    intensity = np.abs(zone_plate_probe(64)) ** 2
    radius = np.hypot(*np.meshgrid(np.arange(64) - 32, np.arange(64) - 32))
    ring = intensity[(radius > 8) & (radius < 12)].mean()
    shadow = intensity[(radius > 2) & (radius < 5)].mean()  # inside the stop's shadow, off the Arago spot
    assert shadow < 0.3 * ring


def test_partially_coherent_counts_sum_the_modes_intensities(partially_coherent):
    scan = partially_coherent
    modes = scan.probe_modes.astype(np.complex128)
    patches = extract_patches(scan.object, scan.positions_xy[:50], scan.patch_size)
    expected = sum(np.abs(far_field(patches * mode)) ** 2 for mode in modes)
    counts = scan.diffraction[:50].astype(np.float64) ** 2
    scale = counts.sum() / expected.sum()
    # Poisson counts around the summed intensities: the mismatch is the noise, ~1/√λ relatively
    assert np.abs(counts.sum(axis=(1, 2)) / (scale * expected.sum(axis=(1, 2))) - 1).max() < 0.05
    single = np.abs(far_field(patches * modes[0])) ** 2
    assert np.abs(counts - scale * expected).mean() < 0.8 * np.abs(counts - counts.sum() / single.sum() * single).mean()


def test_bad_pixels_hold_garbage_and_are_marked(coherent_masked):
    scan = coherent_masked
    bad = scan.bad_pixels
    assert bad.shape == (32, 32) and bad.dtype == bool
    assert 0.05 < bad.mean() < 0.15  # 5 % at random plus a dead column
    assert bad.all(axis=0).sum() >= 1
    values = scan.diffraction[:, bad]
    brightest = scan.diffraction[:, ~bad].max()
    assert (values == 0).any() and values.max() >= 0.9 * np.sqrt(HOT_PIXEL_FACTOR) * brightest


# --- masks -------------------------------------------------------------------------------------


def test_garbage_in_bad_pixels_changes_neither_loss_nor_result(coherent_masked):
    scan = coherent_masked
    other_garbage = scan.diffraction.copy()
    other_garbage[:, scan.bad_pixels] = 1e3
    rescan = replace(scan, diffraction=other_garbage)
    options = RefineOptions(passes=2, refine_probe=True, probe_start_pass=1, probe_modes=2)
    first, second = refine(scan, None, options), refine(rescan, None, options)
    assert first.loss_per_pass == second.loss_per_pass
    np.testing.assert_array_equal(first.reconstruction.object, second.reconstruction.object)
    np.testing.assert_array_equal(first.probe_modes, second.probe_modes)
    assert data_fit(scan, _truth(scan)).misfit == pytest.approx(data_fit(rescan, _truth(rescan)).misfit, rel=1e-9)


def test_the_true_object_fits_masked_data_to_the_noise_floor_and_unmasked_data_badly(coherent_masked):
    masked = data_fit(coherent_masked, _truth(coherent_masked))
    unmasked = data_fit(replace(coherent_masked, bad_pixels=None), _truth(coherent_masked))
    assert masked.excess == pytest.approx(1.0, abs=0.05)
    assert unmasked.excess > 3
    assert np.median(masked.position_excess) == pytest.approx(1.0, abs=0.1)


def test_the_masked_loss_averages_over_valid_pixels_only(coherent_masked):
    problem = RefinementProblem(coherent_masked, _truth(coherent_masked), RefineOptions(), CPU)
    batch = torch.arange(8)
    predicted = problem.predicted(batch)
    valid = ~coherent_masked.bad_pixels
    residual = (predicted.detach().numpy() - coherent_masked.diffraction[:8]) ** 2
    assert float(problem.loss(predicted, problem.measured[batch]).detach()) == pytest.approx(
        residual[:, valid].mean(), rel=1e-5)


def test_masked_refinement_reaches_the_unmasked_quality(coherent_masked):
    masked = refine(coherent_masked, None, RefineOptions(passes=10, refine_probe=False))
    ignoring = refine(replace(coherent_masked, bad_pixels=None), None, RefineOptions(passes=10, refine_probe=False))
    ssim_masked = evaluate(masked.reconstruction, coherent_masked)["phase_ssim"]
    assert ssim_masked > 0.9
    assert ssim_masked > evaluate(ignoring.reconstruction, coherent_masked)["phase_ssim"] + 0.1


# --- incoherent modes --------------------------------------------------------------------------


def test_predicted_amplitude_sums_the_mode_intensities(partially_coherent):
    scan = partially_coherent
    problem = RefinementProblem(scan, _truth(scan), RefineOptions(refine_probe=False), CPU)
    batch = torch.tensor([0, 5, 17])
    modes = problem.probe.detach().numpy().astype(np.complex128)
    canvas = torch.view_as_complex(problem.canvas.detach()).numpy()
    centres = scan.positions_xy[[0, 5, 17]] - np.array(problem.origin_xy)
    patches = extract_patches(canvas, centres, scan.patch_size)
    expected = np.sqrt(sum(np.abs(far_field(patches * mode)) ** 2 for mode in modes))
    np.testing.assert_allclose(problem.predicted(batch).detach().numpy(), expected, rtol=2e-4, atol=2e-4)


def test_orthogonalisation_keeps_the_incoherent_sum_and_orders_by_power(rng):
    modes = rng.standard_normal((3, 8, 8)) + 1j * rng.standard_normal((3, 8, 8))
    modes[2] *= 3
    result = orthogonalized(modes)
    flat = result.reshape(3, -1)
    gram = flat.conj() @ flat.T
    np.testing.assert_allclose(np.abs(gram - np.diag(np.diag(gram))), 0, atol=1e-9)
    assert np.all(np.diff(np.diag(gram).real) <= 0)
    before, after = modes.reshape(3, -1), flat
    np.testing.assert_allclose(before.T @ before.conj(), after.T @ after.conj(), atol=1e-9)  # Σ_k P_k P_k†
    torch_result = orthogonalized(torch.tensor(modes))
    np.testing.assert_allclose(np.abs(torch_result.numpy()), np.abs(result), atol=1e-9)
    assert subspace_overlap(result, modes) == pytest.approx(1.0)


def test_extra_modes_start_weak_orthogonal_and_keep_the_total_power():
    probe = zone_plate_probe(32)
    modes = starting_modes(probe[np.newaxis], 3)
    assert modes.shape == (3, 32, 32)
    powers = mode_powers(modes)
    assert powers[0] > 0.85 and powers[1] > powers[2] > 0
    assert np.sum(np.abs(modes.astype(np.complex128)) ** 2) == pytest.approx(np.sum(np.abs(probe) ** 2), rel=1e-5)
    assert subspace_overlap(modes[:1], probe[np.newaxis]) == pytest.approx(1.0, abs=1e-4)
    # fewer than given: the strongest
    assert np.array_equal(starting_modes(modes, 1)[0] != 0, modes[0] != 0)


def test_a_scan_with_modes_is_refined_with_all_of_them_unless_told_otherwise(partially_coherent, caplog):
    assert RefineOptions(refine_probe=False).for_scan(partially_coherent).probe_modes == 2
    # a simulation carries its true probe: fixed by default; measured data (no reference object) are not
    simulated = RefineOptions().for_scan(partially_coherent)
    assert (simulated.refine_probe, simulated.probe_modes) == (False, 2)
    measured = RefineOptions().for_scan(replace(partially_coherent, object=None))
    assert (measured.refine_probe, measured.probe_modes) == (True, 3)
    with caplog.at_level(logging.WARNING, logger="ptychopinn"):
        assert RefineOptions(probe_modes=1).for_scan(partially_coherent).probe_modes == 1
    assert "2 incoherent modes but probe_modes=1" in caplog.text


def test_the_true_modes_explain_a_partially_coherent_scan_one_mode_does_not(partially_coherent):
    scan = partially_coherent
    both = data_fit(scan, _truth(scan))
    one = data_fit(scan, _truth(scan), probes=scan.probe)
    assert both.excess == pytest.approx(1.0, abs=0.05)
    assert one.excess > 1.5


# --- probe refinement ---------------------------------------------------------------------------


def test_the_probe_power_is_held_at_its_start(partially_coherent):
    problem = RefinementProblem(partially_coherent, None, RefineOptions(refine_probe=True, probe_start_pass=0), CPU)
    start = float(problem.probe_energy())
    batches = list(torch.arange(partially_coherent.n_patterns).split(32))
    problem.run_pass(batches, [1.0] * len(batches), pass_index=0)
    assert not np.allclose(problem.probes_numpy(), starting_modes(partially_coherent.probes, 3), atol=1e-4)
    assert float(problem.probe_energy()) == pytest.approx(start, rel=1e-5)
    doubled = with_total_power(2 * problem.probe.detach(), problem.start_probe_energy)
    assert float(doubled.abs().square().sum()) == pytest.approx(start, rel=1e-5)


def test_probe_refinement_from_a_rough_guess_recovers_the_modes(partially_coherent):
    """From mode 0 alone, made rough (an extra defocus), with the default settings."""
    scan = partially_coherent
    n = scan.patch_size
    f = np.fft.fftfreq(n)
    defocus = np.exp(-1j * 2.0 * (f[:, None] ** 2 + f[None, :] ** 2) / 0.25**2)
    rough = np.fft.ifft2(np.fft.fft2(scan.probe) * defocus).astype(np.complex64)
    start = replace(scan, probe=rough, probe_modes=None, object=None)  # measured data: no reference
    fixed = refine(start, None, RefineOptions(passes=12, refine_probe=False))
    refined = refine(start, None, RefineOptions(passes=12))
    ssim_fixed = evaluate(fixed.reconstruction, scan)["phase_ssim"]
    ssim_refined = evaluate(refined.reconstruction, scan)["phase_ssim"]
    assert ssim_refined > 0.85 and ssim_refined > ssim_fixed + 0.1
    assert subspace_overlap(refined.probe_modes[:2], scan.probe_modes) > 0.9
    assert 0.1 < mode_powers(refined.probe_modes)[1:].sum() < 0.4  # truth: 0.3 / 1.3 = 0.23
    # the refined probe explains the data better than the guess, for the same object
    assert data_fit(scan, refined.reconstruction, probes=refined.probe_modes).excess < data_fit(
        start, refined.reconstruction).excess


def test_refine_saves_the_refined_probe_and_fits_with_it(partially_coherent, tmp_path, capsys):
    scan = partially_coherent
    result, fit = run_refinement(scan, None, tmp_path, RefineOptions(passes=4, refine_probe=True, probe_start_pass=1),
                                 "cpu", quiet=True)
    out = capsys.readouterr().out
    assert "refinement engine: mpie steps" in out and "probe refined from pass 2" in out
    assert "3 incoherent probe modes (the scan's 2 + 1 started from it)" in out
    with np.load(tmp_path / "probe.npz", allow_pickle=False) as saved:
        np.testing.assert_array_equal(saved["probes"], result.probe_modes)
        assert saved["mode_power_fraction"].sum() == pytest.approx(1.0)
        assert saved["probes"].shape == (3, 32, 32)
    used = data_fit(scan, result.reconstruction, probes=result.probe_modes)
    assert fit.misfit == pytest.approx(used.misfit, rel=1e-6)
    assert fit.misfit != pytest.approx(data_fit(scan, result.reconstruction).misfit, rel=1e-3)
