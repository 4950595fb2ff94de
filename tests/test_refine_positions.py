"""Position refinement (``refine_positions``, docs/design/spec.md#stitching-and-refinement): perturbed
positions are recovered and the object sharpens; exact positions stay put; the CLI writes them."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from helpers import run_cli
from ptychopinn.api import evaluate
from ptychopinn.data import save_scan
from ptychopinn.data.product import read_product
from ptychopinn.evaluation.data_fit import data_fit
from ptychopinn.reconstruction.refine import RefinementProblem, RefineOptions, refine
from ptychopinn.reconstruction.refine.engine import with_positions
from ptychopinn.reconstruction.result import Reconstruction
from ptychopinn.simulation.simulate import simulate

PASSES = 20
POSITION_ERROR_PX = 1.5  # RMS of the 2-D error


@pytest.fixture(scope="module")
def grf_scan():
    """N = 32, 256 positions, 1e6 photons: the positions, not the noise, limit the object."""
    return simulate("grf", size=96, n=32, step=4.0, jitter=0.5, photons=1e6, probe="defocused", seed=1)


def perturbed(scan, rms_px: float, seed: int = 3):
    """``scan`` with a seeded random error of ``rms_px`` RMS (2-D) on every position."""
    error = np.random.default_rng(seed).normal(0.0, rms_px / np.sqrt(2), (scan.n_patterns, 2))
    return replace(scan, xcoords=scan.xcoords + error[:, 0], ycoords=scan.ycoords + error[:, 1])


def rms_error(positions_xy: np.ndarray, truth_xy: np.ndarray) -> float:
    """RMS distance to the truth after removing the mean offset (a common shift is the object's)."""
    error = positions_xy - truth_xy
    error = error - error.mean(axis=0)
    return float(np.sqrt(np.mean(np.sum(error**2, axis=1))))


@pytest.fixture(scope="module")
def perturbed_runs(grf_scan):
    start = perturbed(grf_scan, POSITION_ERROR_PX)
    fixed = refine(start, None, RefineOptions(passes=PASSES))
    moved = refine(start, None, RefineOptions(passes=PASSES, refine_positions=True))
    return start, fixed, moved


def test_refined_positions_recover_the_truth_and_sharpen_the_object(grf_scan, perturbed_runs):
    start, fixed, moved = perturbed_runs
    before = rms_error(start.positions_xy, grf_scan.positions_xy)
    after = rms_error(moved.positions_xy, grf_scan.positions_xy)
    assert before == pytest.approx(POSITION_ERROR_PX, rel=0.1)
    # measured: 1.49 → 0.25 px (17 %)
    assert after < 0.4 * before
    np.testing.assert_array_equal(fixed.positions_xy, start.positions_xy)  # not refined: the scan's own
    ssim_fixed = evaluate(fixed.reconstruction, grf_scan)["phase_ssim"]
    ssim_moved = evaluate(moved.reconstruction, grf_scan)["phase_ssim"]
    # measured: 0.961 with the perturbed positions fixed, 0.991 refined (0.995 at the true positions)
    assert ssim_moved > ssim_fixed + 0.01


def test_the_mean_position_does_not_move(perturbed_runs):
    start, _, moved = perturbed_runs
    np.testing.assert_allclose(moved.positions_xy.mean(axis=0), start.positions_xy.mean(axis=0), rtol=0, atol=1e-9)


def test_exact_positions_stay_put_and_the_object_keeps_its_quality(grf_scan):
    fixed = refine(grf_scan, None, RefineOptions(passes=PASSES))
    moved = refine(grf_scan, None, RefineOptions(passes=PASSES, refine_positions=True))
    # measured: 0.11 px RMS wander, phase SSIM 0.9948 fixed, 0.9942 refined
    assert rms_error(moved.positions_xy, grf_scan.positions_xy) < 0.15
    assert evaluate(moved.reconstruction, grf_scan)["phase_ssim"] > evaluate(fixed.reconstruction, grf_scan)["phase_ssim"] - 0.01


def test_moving_a_position_moves_its_illumination_and_keeps_it_on_the_canvas(grf_scan):
    options = RefineOptions(refine_positions=True, max_position_step=0.5).for_scan(grf_scan)
    problem = RefinementProblem(grf_scan, None, options, torch.device("cpu"))
    before = problem.illumination.copy()
    shifted = problem.top_left.clone()
    shifted[0] += torch.tensor([0.0, 1.0], dtype=torch.float64)
    problem.move_positions(shifted)
    np.testing.assert_allclose(problem.positions_xy()[0], grf_scan.positions_xy[0] + [1.0, 0.0], atol=1e-12)
    assert problem.illumination.sum() == pytest.approx(before.sum(), rel=1e-5)  # the same footprints, moved
    assert not np.allclose(problem.illumination, before)
    steps = problem.position_steps.step()
    assert float(steps.norm(dim=1).max()) <= 2 * 0.5 + 1e-9  # clipped, then the mean (≤ clip) removed
    upper = torch.tensor(problem.shape, dtype=torch.float64) - problem.n - 2
    assert bool(((problem.top_left >= 1) & (problem.top_left <= upper)).all())


def test_one_step_from_the_true_object_removes_most_of_a_small_error(grf_scan):
    """The linearisation's sign and scale: Gauss-Newton on the exact object is nearly exact."""
    start = perturbed(grf_scan, 0.4)
    truth = Reconstruction(grf_scan.object, np.ones(grf_scan.object.shape, np.float32), (0.0, 0.0))
    options = RefineOptions(refine_positions=True).for_scan(grf_scan)
    problem = RefinementProblem(start, truth, options, torch.device("cpu"))
    before = rms_error(start.positions_xy, grf_scan.positions_xy)
    problem.position_steps.step()
    # measured: 0.40 → 0.087 px after one step, 0.029 after three
    assert rms_error(problem.positions_xy(), grf_scan.positions_xy) < 0.3 * before
    problem.position_steps.step()
    problem.position_steps.step()
    assert rms_error(problem.positions_xy(), grf_scan.positions_xy) < 0.15 * before


def test_a_flat_rival_keeps_its_own_positions(grf_scan):
    options = RefineOptions(refine_positions=True, optimizer="adam").for_scan(grf_scan)
    # started from the true object, whose gradient tells the positions where to go (a flat one's cannot)
    truth = Reconstruction(grf_scan.object, np.ones(grf_scan.object.shape, np.float32), (0.0, 0.0))
    problem = RefinementProblem(perturbed(grf_scan, POSITION_ERROR_PX), truth, options, torch.device("cpu"))
    rival = problem.flat_rival(grf_scan)
    start = rival.top_left.clone()
    problem.position_steps.step()
    assert not torch.equal(problem.top_left, start)
    assert torch.equal(rival.top_left, start) and rival.position_steps.problem is rival


def test_refinement_until_fitted_measures_the_misfit_at_the_refined_positions(grf_scan):
    start = perturbed(grf_scan, POSITION_ERROR_PX)
    result = refine(start, None, RefineOptions(passes="auto", auto_max_passes=8, refine_positions=True))
    at_refined = data_fit(with_positions(start, result.positions_xy), result.reconstruction).excess
    assert result.excess_per_pass[-1] == pytest.approx(at_refined, rel=1e-5)
    # the object was refined at the corrected positions: at the given ones it fits worse
    assert data_fit(start, result.reconstruction).excess > 1.5 * at_refined


@pytest.mark.parametrize(("option", "value", "message"), [
    ("position_start_pass", -1, "position_start_pass must be 0 or more"),
    ("max_position_step", -0.5, "max_position_step must be positive"),
    ("max_position_step", 0.0, "max_position_step must be positive"),
])
def test_impossible_position_options_are_refused(option, value, message):
    with pytest.raises(ValueError, match=message):
        RefineOptions(**{"refine_positions": True, option: value})


def test_refine_cli_writes_the_refined_positions(grf_scan, tmp_path):
    # as measured data (no reference object: a perturbed edge position may lie beyond it)
    start = replace(perturbed(grf_scan, POSITION_ERROR_PX), object=None)
    save_scan(start, tmp_path / "scan.npz")
    out = tmp_path / "refined"
    result = run_cli("refine", "--data", str(tmp_path / "scan.npz"), "--passes", "8", "--refine-positions",
                     "--no-refine-probe", "--output-dir", str(out), "-q")
    assert "positions refined after pass 6" in result.stdout and "positions refined: moved" in result.stdout
    with np.load(out / "positions.npz", allow_pickle=False) as saved:
        assert set(saved.files) == {"xcoords", "ycoords", "xcoords_start", "ycoords_start"}
        refined = np.stack([saved["xcoords"], saved["ycoords"]], axis=1)
        np.testing.assert_array_equal(saved["xcoords_start"], start.xcoords)
        np.testing.assert_array_equal(saved["ycoords_start"], start.ycoords)
    assert rms_error(refined, grf_scan.positions_xy) < rms_error(start.positions_xy, grf_scan.positions_xy)
    # product.h5 holds the positions relative to its object array, whose pixel (0, 0) is the origin
    product = read_product(out / "product.h5")
    origin = np.asarray(Reconstruction.load(out / "reconstruction.npz").origin_xy)
    np.testing.assert_allclose(np.stack([product.xcoords, product.ycoords], axis=1) + origin, refined, atol=1e-6)
    # the trust map was drawn at the refined positions
    with np.load(out / "trust_map.npz", allow_pickle=False) as trust:
        np.testing.assert_array_equal(trust["positions_xy"], refined)
