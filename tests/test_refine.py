"""Refinement (docs/design/spec.md#stitching-and-refinement): its forward model, convergence, options and the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import run_cli
from ptychopinn.api import evaluate
from ptychopinn.backends.torch.extract import extract_patches
from ptychopinn.data import save_scan
from ptychopinn.evaluation.data_fit import data_fit
from ptychopinn.physics import extract_patches as reference_extract
from ptychopinn.reconstruction.refine import (
    RefineLoss,
    RefinementProblem,
    RefineOptimizer,
    RefineOptions,
    refine,
)
from ptychopinn.reconstruction.refine.engine import fitted_enough
from ptychopinn.reconstruction.refine.mpie import PieSteps
from ptychopinn.reconstruction.result import Reconstruction
from ptychopinn.reconstruction.stitch import bilinear_splat
from ptychopinn.simulation.simulate import simulate


def test_extraction_matches_numpy_reference(rng):
    canvas = rng.standard_normal((40, 40)) + 1j * rng.standard_normal((40, 40))
    centres = np.array([[20.0, 20.0], [15.3, 22.8], [30.5, 10.25], [36.0, 36.0]])  # last one partly outside
    top_left = torch.tensor(np.stack([centres[:, 1] - 8, centres[:, 0] - 8], axis=1))
    got = extract_patches(torch.tensor(canvas, dtype=torch.complex128), top_left, 16).numpy()
    np.testing.assert_allclose(got, reference_extract(canvas, centres, 16), atol=1e-12)


def test_extraction_gradient_reaches_the_canvas():
    canvas = torch.zeros(20, 20, requires_grad=True)
    extract_patches(canvas, torch.tensor([[2.5, 3.0]]), 8).sum().backward()
    assert canvas.grad.sum() == pytest.approx(64.0)


def test_batch_illumination_is_the_probe_intensity_splatted_at_each_position(tiny_scan):
    """The mpie step's denominator: Σ|P|² of the batch's footprints at sub-pixel positions."""
    problem = RefinementProblem(tiny_scan, None, RefineOptions(), torch.device("cpu"))
    batch = torch.tensor([0, 7, 40])
    got = problem.batch_illumination(batch).numpy()
    expected = np.zeros((problem.shape[0] + 1, problem.shape[1] + 1))
    weights = np.abs(problem.probe_numpy()) ** 2
    for top, left in problem.top_left[batch].numpy():
        r, c = int(np.floor(top)), int(np.floor(left))
        expected[r : r + problem.n + 1, c : c + problem.n + 1] += bilinear_splat(weights, top - r, left - c)
    np.testing.assert_allclose(got, expected[: problem.shape[0], : problem.shape[1]], rtol=1e-5, atol=1e-6)
    assert problem.top_left[batch].numpy().round(3).tolist() != problem.top_left[batch].numpy().round().tolist()


@pytest.fixture(scope="module", params=[RefineOptimizer.adam, RefineOptimizer.mpie])
def flat_refined(tiny_scan, request):
    scores = []
    result = refine(tiny_scan, None, RefineOptions(passes=15, optimizer=request.param),
                    on_pass=lambda i, rec: scores.append(evaluate(rec, tiny_scan)["phase_ssim"]))
    return result, scores


def test_flat_start_converges_to_the_object(flat_refined):
    result, scores = flat_refined
    assert scores[-1] > 0.85  # an iterative reconstruction in its own right
    assert scores[-1] > scores[0] + 0.3
    assert result.loss_per_pass[-1] < 0.2 * result.loss_per_pass[0]
    rec = result.reconstruction
    assert np.isfinite(rec.object).all() and not rec.object[~rec.mask].any()


def test_starting_from_the_truth_needs_no_work(tiny_scan):
    truth = Reconstruction(tiny_scan.object, np.ones(tiny_scan.object.shape, np.float32), (0.0, 0.0))
    small_steps = {"passes": 2, "optimizer": "adam", "learning_rate": 0.01}
    result = refine(tiny_scan, truth, RefineOptions(**small_steps, flat_check_passes=0))
    flat = refine(tiny_scan, None, RefineOptions(**small_steps))
    # the truth's misfit is the Poisson noise floor; a small step polishes it without scrambling
    assert result.loss_per_pass[0] < 0.1 * flat.loss_per_pass[0]
    assert evaluate(result.reconstruction, tiny_scan)["phase_ssim"] > 0.9


def test_a_start_at_any_constant_phase_fits_the_data_equally(tiny_scan):
    """The object's phase is defined up to a constant; the canvas around a start that covers only
    the scanned interior must carry the start's phase, not 0 (a step at the coverage edge cost a
    network start at phase π twice the passes of a flat start)."""
    coverage = np.zeros(tiny_scan.object.shape, np.float32)
    coverage[24:-24, 24:-24] = 1.0
    interior = np.where(coverage > 0, tiny_scan.object, 0)
    still = RefineOptions(passes=1, optimizer="adam", learning_rate=1e-9, flat_check_passes=0)  # the start's loss
    losses = [refine(tiny_scan, Reconstruction((interior * np.exp(1j * shift)).astype(np.complex64),
                                                coverage, (0.0, 0.0)), still).loss_per_pass[0]
              for shift in (0.0, np.pi, 2.0)]
    assert losses[1] == pytest.approx(losses[0], rel=1e-3)
    assert losses[2] == pytest.approx(losses[0], rel=1e-3)


def test_a_start_worse_than_flat_is_dropped_after_the_check(tiny_scan, rng):
    """A start that fits the data worse than a flat object after the checked passes is dropped:
    the result is exactly the flat run's, and the flat rival's losses are reported."""
    scrambled = np.exp(2j * np.pi * rng.random(tiny_scan.object.shape)).astype(np.complex64)
    start = Reconstruction(scrambled, np.ones(scrambled.shape, np.float32), (0.0, 0.0))
    options = RefineOptions(passes=4, flat_check_passes=2)
    checked = refine(tiny_scan, start, options)
    flat = refine(tiny_scan, None, options)
    assert checked.start == "flat" and flat.start == "flat"
    assert checked.flat_check_loss == flat.loss_per_pass[:2]
    assert checked.loss_per_pass == flat.loss_per_pass
    np.testing.assert_array_equal(checked.reconstruction.object, flat.reconstruction.object)
    unchecked = refine(tiny_scan, start, RefineOptions(passes=4, flat_check_passes=0))
    assert unchecked.start == "given" and unchecked.flat_check_loss == []
    assert unchecked.loss_per_pass[-1] > flat.loss_per_pass[-1]


def test_a_start_better_than_flat_is_kept_unchanged_by_the_check(tiny_scan):
    truth = Reconstruction(tiny_scan.object, np.ones(tiny_scan.object.shape, np.float32), (0.0, 0.0))
    checked = refine(tiny_scan, truth, RefineOptions(passes=3, flat_check_passes=2))
    unchecked = refine(tiny_scan, truth, RefineOptions(passes=3, flat_check_passes=0))
    assert checked.start == "given" and len(checked.flat_check_loss) == 2
    assert checked.flat_check_loss[-1] > checked.loss_per_pass[1]
    assert checked.loss_per_pass == unchecked.loss_per_pass  # the rival does not disturb the start's run
    np.testing.assert_array_equal(checked.reconstruction.object, unchecked.reconstruction.object)


def test_mpie_keeps_a_good_start_where_adam_scrambles_it(tiny_scan):
    """Adam moves every pixel by about its step whatever the gradient, so from the true object its
    first full-size steps add noise; the PIE step is proportional to the misfit it explains."""
    truth = Reconstruction(tiny_scan.object, np.ones(tiny_scan.object.shape, np.float32), (0.0, 0.0))
    scores = {optimizer: evaluate(refine(tiny_scan, truth, RefineOptions(
        passes=2, optimizer=optimizer, flat_check_passes=0)).reconstruction, tiny_scan)["phase_ssim"]
        for optimizer in (RefineOptimizer.adam, RefineOptimizer.mpie)}
    assert scores[RefineOptimizer.mpie] > 0.9
    assert scores[RefineOptimizer.mpie] > scores[RefineOptimizer.adam] + 0.02


def test_mpie_floors_the_batch_illumination_so_noisy_data_are_fitted(monkeypatch):
    """ePIE's scaling, the batch's own illumination, weights each batch's gradient differently; at
    low dose the steps then settle at a worse fit and a worse object than with the floor."""
    scan = simulate("lines", size=96, n=32, step=4.0, jitter=0.5, photons=1e4, probe="defocused", seed=1)
    options = RefineOptions(passes=10, optimizer="mpie", flat_check_passes=0)
    floored = refine(scan, None, options).reconstruction
    monkeypatch.setattr(PieSteps, "illumination", lambda steps, batch: steps.problem.batch_illumination(batch))
    batch_only = refine(scan, None, options).reconstruction
    assert data_fit(scan, floored).misfit < data_fit(scan, batch_only).misfit
    assert evaluate(floored, scan)["phase_ssim"] > evaluate(batch_only, scan)["phase_ssim"] + 0.05


def test_a_refined_probe_carries_the_mpie_floor_with_its_energy(tiny_scan):
    """Twice the probe's amplitude lights every pixel four times as much, the floor included:
    a floor left at the starting probe's energy would step a brighter probe's object too far."""
    options = RefineOptions(optimizer="mpie", refine_probe=True)
    problem = RefinementProblem(tiny_scan, None, options, torch.device("cpu"))
    batch = torch.tensor([0, 7, 40])
    before = problem.pie_steps.illumination(batch)
    assert bool((problem.batch_illumination(batch) < before).any())  # the floor is in play
    with torch.no_grad():
        problem.probe.mul_(2.0)
    torch.testing.assert_close(problem.pie_steps.illumination(batch), 4.0 * before, rtol=1e-5, atol=1e-6)


def test_poisson_loss_is_an_option_and_converges_slower(tiny_scan):
    poisson = refine(tiny_scan, None, RefineOptions(passes=5, loss=RefineLoss.poisson))
    amplitude = refine(tiny_scan, None, RefineOptions(passes=5))
    assert evaluate(poisson.reconstruction, tiny_scan)["phase_ssim"] < evaluate(
        amplitude.reconstruction, tiny_scan)["phase_ssim"]


def test_probe_refinement_changes_the_probe(tiny_scan):
    fixed = refine(tiny_scan, None, RefineOptions(passes=3))
    moving = refine(tiny_scan, None, RefineOptions(passes=3, refine_probe=True, probe_start_pass=1))
    assert np.array_equal(fixed.probe, refine(tiny_scan, None, RefineOptions(passes=1)).probe)
    assert not np.allclose(moving.probe, fixed.probe)


def test_refine_cli_from_flat_and_from_a_reconstruction(tiny_scan, tmp_path):
    save_scan(tiny_scan, tmp_path / "scan.npz")
    result = run_cli("refine", "--data", str(tmp_path / "scan.npz"), "--init", "flat", "--passes", "6",
                     "--output-dir", str(tmp_path / "flat"), "-q")
    assert "phase SSIM" in result.stdout
    assert "refined 6 passes with mpie" in result.stdout  # auto, at 1e5 counts per pattern
    first = Reconstruction.load(tmp_path / "flat" / "reconstruction.npz")
    for name in ("amplitude.png", "phase.png", "refinement_loss.png", "comparison.png", "metrics.json"):
        assert (tmp_path / "flat" / name).stat().st_size > 0
    polished = run_cli("refine", "--data", str(tmp_path / "scan.npz"), "--init",
                       str(tmp_path / "flat" / "reconstruction.npz"), "--steps", "3", "--refine-optimizer", "adam",
                       "--refine-lr", "0.01", "--output-dir", str(tmp_path / "again"), "-q")
    assert "start check: after 2 passes the given start fitted the data better" in polished.stdout
    again = Reconstruction.load(tmp_path / "again" / "reconstruction.npz")
    # a small step polishes a converged object without scrambling it
    assert evaluate(again, tiny_scan)["phase_ssim"] >= evaluate(first, tiny_scan)["phase_ssim"] - 0.03


@pytest.mark.parametrize(("option", "value", "message"), [
    ("passes", -1, "passes must be 0 or more"),
    ("flat_check_passes", -2, "flat_check_passes must be 0 or more"),
    ("batch_size", 0, "batch size must be at least 1"),
    ("learning_rate", 0.0, "step sizes must be positive"),
    ("momentum", 1.0, "momentum must be in"),

    ("final_lr_fraction", 0.0, "final_lr_fraction"),
])
def test_impossible_refine_options_are_refused(option, value, message):
    with pytest.raises(ValueError, match=message):
        RefineOptions(**{"optimizer": "adam", option: value})


def test_auto_picks_mpie_at_moderate_dose_and_adam_at_low_dose_or_with_the_poisson_loss(tiny_scan):
    low_dose = simulate("lines", size=96, n=32, step=4.0, jitter=0.5, photons=1e4, seed=1)
    assert RefineOptions().for_scan(tiny_scan).optimizer is RefineOptimizer.mpie  # 1e5 counts per pattern
    assert RefineOptions().for_scan(low_dose).optimizer is RefineOptimizer.adam
    assert RefineOptions(loss="poisson").for_scan(tiny_scan).optimizer is RefineOptimizer.adam
    assert RefineOptions(optimizer="adam").for_scan(tiny_scan).optimizer is RefineOptimizer.adam
    auto = refine(tiny_scan, None, RefineOptions(passes=2))
    mpie = refine(tiny_scan, None, RefineOptions(passes=2, optimizer="mpie"))
    assert auto.optimizer == mpie.optimizer == "mpie" and auto.loss_per_pass == mpie.loss_per_pass
    assert refine(low_dose, None, RefineOptions(passes=1)).optimizer == "adam"


def test_the_start_check_defaults_to_adams_two_passes_and_off_for_mpie(tiny_scan):
    """mpie refines a twin-mixed network start about as fast as a flat one (docs/lab-notes/2026-11-25-network-quality.md)."""
    assert RefineOptions().for_scan(tiny_scan).flat_check_passes == 0
    assert RefineOptions(optimizer="adam").for_scan(tiny_scan).flat_check_passes == 2
    assert RefineOptions(flat_check_passes=3).for_scan(tiny_scan).flat_check_passes == 3
    truth = Reconstruction(tiny_scan.object, np.ones(tiny_scan.object.shape, np.float32), (0.0, 0.0))
    assert refine(tiny_scan, truth, RefineOptions(passes=1)).flat_check_loss == []
    assert len(refine(tiny_scan, truth, RefineOptions(passes=2, optimizer="adam")).flat_check_loss) == 2


def test_a_step_size_without_its_optimiser_is_refused():
    with pytest.raises(ValueError, match="choose --refine-optimizer adam or mpie"):
        RefineOptions(learning_rate=0.1)


def test_the_mpie_step_refuses_the_poisson_loss_it_is_not_scaled_for():
    with pytest.raises(ValueError, match="use --refine-optimizer adam with the Poisson loss"):
        RefineOptions(optimizer="mpie", loss="poisson")


def test_cli_refuses_a_negative_flat_check_clearly(tiny_scan, tmp_path):
    save_scan(tiny_scan, tmp_path / "scan.npz")
    result = run_cli("refine", "--data", str(tmp_path / "scan.npz"), "--flat-check", "-1",
                     "--output-dir", str(tmp_path / "r"), check=False)
    assert result.returncode == 2 and "flat_check_passes must be 0 or more" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "r" / "reconstruction.npz").exists()


def test_refine_cli_runs_the_mpie_step_and_explains_a_poisson_mismatch(tiny_scan, tmp_path):
    save_scan(tiny_scan, tmp_path / "scan.npz")
    common = ("refine", "--data", str(tmp_path / "scan.npz"), "--init", "flat", "--passes", "8", "-q")
    run_cli(*common, "--refine-optimizer", "mpie", "--output-dir", str(tmp_path / "mpie"))
    refined = Reconstruction.load(tmp_path / "mpie" / "reconstruction.npz")
    assert evaluate(refined, tiny_scan)["phase_ssim"] > 0.5  # flat start scores about 0.4 after one pass
    refused = run_cli(*common, "--refine-optimizer", "mpie", "--refine-loss", "poisson",
                      "--output-dir", str(tmp_path / "poisson"), check=False)
    assert refused.returncode != 0
    assert "use --refine-optimizer adam with the Poisson loss" in refused.stderr + refused.stdout


def test_passes_auto_refines_until_the_misfit_reaches_the_noise_floor(tiny_scan):
    options = RefineOptions(passes="auto")
    result = refine(tiny_scan, None, options, accelerator="cpu")
    passes = len(result.loss_per_pass)
    assert 1 < passes < options.auto_max_passes  # measured: 18 passes, 1.64× after the first
    assert len(result.excess_per_pass) == passes
    assert result.excess_per_pass[-1] <= options.auto_target_excess < result.excess_per_pass[0]
    assert "reached" in result.stop_reason
    # the criterion is the fit of the object as saved, the one infer and refine report
    reported = data_fit(tiny_scan, result.reconstruction, accelerator="cpu").excess
    assert reported == pytest.approx(result.excess_per_pass[-1], rel=1e-6)


def test_passes_auto_stops_when_the_misfit_stops_falling():
    assert fitted_enough([1.6, 1.3], target=1.1) == ""
    assert "reached 1.05" in fitted_enough([1.6, 1.3, 1.05], target=1.1)
    assert "stopped falling" in fitted_enough([1.6, 1.40, 1.40, 1.395, 1.394], target=1.1)
    assert fitted_enough([1.6, 1.40, 1.38, 1.36, 1.34], target=1.1) == ""  # still 4 % per 3 passes


def test_passes_auto_from_the_command_line_and_a_config_file(tiny_scan, tmp_path):
    save_scan(tiny_scan, tmp_path / "scan.npz")
    (tmp_path / "auto.yaml").write_text("refinement:\n  passes: auto\n  auto_max_passes: 2\n")
    out = run_cli("refine", "--data", str(tmp_path / "scan.npz"), "--config", str(tmp_path / "auto.yaml"),
                  "--output-dir", str(tmp_path / "r"), "-q")
    assert "refined 2 passes" in out.stdout and "the pass budget ran out" in out.stdout
    refused = run_cli("refine", "--data", str(tmp_path / "scan.npz"), "--passes", "many",
                      "--output-dir", str(tmp_path / "r2"), check=False)
    assert refused.returncode == 2 and "--passes" in refused.stderr and "Traceback" not in refused.stderr
