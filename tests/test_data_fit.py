"""Data fit without a reference: the misfit of an object to the measured patterns against what
Poisson noise alone leaves."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from helpers import assert_real_png, run_cli
from ptychopinn.data import save_scan
from ptychopinn.evaluation.data_fit import DataFit, data_fit
from ptychopinn.physics.noise import AmplitudeNoise
from ptychopinn.reconstruction.refine import RefineOptions, refine
from ptychopinn.reconstruction.result import Reconstruction
from ptychopinn.simulation.simulate import simulate


def _as_reconstruction(obj: np.ndarray) -> Reconstruction:
    return Reconstruction(obj.astype(np.complex64), np.ones(obj.shape, np.float32), (0.0, 0.0))


@pytest.mark.parametrize("expected_counts", [0.02, 0.3, 1.0, 2.5, 7.0, 40.0, 300.0, 5000.0])
def test_expected_amplitude_residual_matches_sampling(expected_counts):
    counts = np.random.default_rng(5).poisson(expected_counts, 400_000)
    sampled = np.mean((np.sqrt(counts) - np.sqrt(expected_counts)) ** 2)
    table = AmplitudeNoise().expected_square_residual(np.array([expected_counts]))[0]
    assert table == pytest.approx(sampled, rel=0.02, abs=2e-4)


def test_amplitude_residual_limits():
    noise = AmplitudeNoise().expected_square_residual(np.array([0.0, 1e-3, 1.0, 1e4]))
    assert noise[0] == 0.0
    assert noise[1] == pytest.approx(2e-3, rel=0.1)  # faint pixels: about 2λ
    assert noise[2] == pytest.approx(0.4536, abs=1e-3)  # the peak near one count
    assert noise[3] == 0.25


@pytest.mark.parametrize("photons", [1e4, 1e6])
def test_the_true_object_leaves_exactly_the_noise_floor(photons):
    scan = simulate("lines", size=96, n=32, step=4.0, photons=photons, probe="defocused", seed=2)
    fit = data_fit(scan, _as_reconstruction(scan.object), accelerator="cpu")
    assert fit.excess == pytest.approx(1.0, abs=0.03)
    assert 0.005 < fit.noise_floor < 0.5
    # a lower dose leaves more noise
    if photons == 1e4:
        assert fit.noise_floor > 0.1


def test_the_fit_ignores_the_object_scale_and_global_phase(tiny_scan):
    truth = data_fit(tiny_scan, _as_reconstruction(tiny_scan.object), accelerator="cpu")
    scaled = data_fit(tiny_scan, _as_reconstruction(3.0 * np.exp(0.7j) * tiny_scan.object), accelerator="cpu")
    assert scaled.misfit == pytest.approx(truth.misfit, rel=1e-4)


def test_a_wrong_object_fits_far_worse_and_refinement_closes_the_gap(tiny_scan):
    flat = data_fit(tiny_scan, _as_reconstruction(np.ones_like(tiny_scan.object)), accelerator="cpu")
    refined = refine(tiny_scan, None, RefineOptions(passes=15), accelerator="cpu").reconstruction
    after = data_fit(tiny_scan, refined, accelerator="cpu")
    assert flat.excess > 3
    assert after.excess < 1.5
    assert after.misfit < 0.3 * flat.misfit


def test_format_states_misfit_and_floor():
    text = DataFit(0.26, 0.032).format()
    assert "26.0 %" in text and "8.1×" in text and "3.2 %" in text


def test_evaluate_and_refine_commands_report_the_fit(tiny_scan, tmp_path):
    save_scan(tiny_scan, tmp_path / "scan.npz")
    refined = run_cli("refine", "--data", str(tmp_path / "scan.npz"), "--steps", "12",
                      "--output-dir", str(tmp_path / "flat"), "-q")
    excess = float(re.search(r"refined object: data misfit [\d.]+ % .*?, ([\d.]+)×", refined.stdout).group(1))
    assert excess < 1.6
    evaluated = run_cli("evaluate", "--recon", str(tmp_path / "flat" / "reconstruction.npz"),
                        "--truth", str(tmp_path / "scan.npz"))
    assert "reconstruction: data misfit" in evaluated.stdout and f"{excess:.1f}×" in evaluated.stdout
    metrics = json.loads((tmp_path / "flat" / "metrics.json").read_text())  # evaluate's, next to --recon
    assert f"{metrics['data_misfit_excess']:.1f}" == f"{excess:.1f}"
    assert metrics["data_misfit"] == pytest.approx(metrics["data_misfit_excess"] * metrics["data_misfit_noise_floor"])


def test_the_trust_map_is_about_one_per_position_for_the_true_object_and_high_for_a_wrong_one(tiny_scan):
    truth = data_fit(tiny_scan, _as_reconstruction(tiny_scan.object), accelerator="cpu")
    flat = data_fit(tiny_scan, _as_reconstruction(np.ones_like(tiny_scan.object)), accelerator="cpu")
    assert truth.position_excess.shape == flat.position_excess.shape == (tiny_scan.n_patterns,)
    assert np.median(truth.position_excess) == pytest.approx(1.0, abs=0.1)
    assert truth.untrusted_fraction() == 0.0
    # a flat start on this weak-contrast scan: 3.5× over the whole scan, 2.5× at the median position
    assert np.median(flat.position_excess) > 2 * np.median(truth.position_excess)
    assert flat.untrusted_fraction() > 0.2


def test_refine_writes_the_trust_map_of_its_result(tiny_scan, tmp_path):
    save_scan(tiny_scan, tmp_path / "scan.npz")
    out = tmp_path / "refined"
    refined = run_cli("refine", "--data", str(tmp_path / "scan.npz"), "--passes", "3", "--output-dir", str(out), "-q")
    saved = np.load(out / "trust_map.npz")
    assert np.array_equal(saved["positions_xy"], tiny_scan.positions_xy)
    fit = data_fit(tiny_scan, Reconstruction.load(out / "reconstruction.npz"), accelerator="cpu")
    np.testing.assert_allclose(saved["excess"], fit.position_excess, rtol=1e-6)
    assert f"median {np.median(fit.position_excess):.1f}×" in refined.stdout
    assert_real_png(out / "trust_map.png")
