"""train → infer → evaluate through the real console script (tiny data, one epoch)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from helpers import run_cli
from ptychopinn.config import Settings
from ptychopinn.data import save_scan
from ptychopinn.evaluation.data_fit import POOR_FIT_EXCESS
from ptychopinn.reconstruction.result import Reconstruction


@pytest.fixture(scope="module")
def workspace(tiny_scan, tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    save_scan(tiny_scan, root / "scan.npz")
    return root


@pytest.fixture(scope="module")
def trained_dir(workspace):
    out = workspace / "run"
    # predecessor spellings on purpose: they must keep working in users' scripts
    run_cli("train", "--train_data_file", str(workspace / "scan.npz"), "--output_dir", str(out),
            "--gridsize", "2", "--n_images", "96", "--nepochs", "1", "--batch_size", "8",
            "--n-filters-scale", "1", "--torch-loss-mode", "mae", "--seed", "3", "-q")
    return out


def test_train_resolves_flags_over_defaults(trained_dir):
    settings = Settings.load(trained_dir / "config.yaml")
    assert settings.data.n_groups == 96 and settings.training.epochs == 1
    assert settings.training.batch_size == 8 and settings.model.n_filters_scale == 1
    assert {k.value: v for k, v in settings.training.loss.items()} == {"mae": 1.0}
    assert settings.data.seed == 3 and settings.training.seed == 3
    assert (trained_dir / "model.pinn").is_file() and (trained_dir / "metrics.csv").is_file()


def test_config_file_is_used_and_flags_win(workspace, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("training:\n  epochs: 1\n  batch_size: 32\nmodel:\n  n_filters_scale: 1\n"
                      "data:\n  gridsize: 1\n  n_groups: 40\n")
    run_cli("train", "--train-data", str(workspace / "scan.npz"), "--output-dir", str(tmp_path / "o"),
            "--config", str(config), "--batch-size", "20", "--input-mode", "amplitude",
            "--group-encoding", "joint", "-q")
    settings = Settings.load(tmp_path / "o" / "config.yaml")
    assert settings.training.batch_size == 20 and settings.data.n_groups == 40
    assert settings.data.gridsize == 1
    assert settings.model.input_mode.value == "amplitude" and settings.model.group_encoding.value == "joint"


@pytest.fixture(scope="module")
def inferred(workspace, trained_dir):
    out = workspace / "infer"
    result = run_cli("infer", "--model_path", str(trained_dir), "--test_data", str(workspace / "scan.npz"),
                     "--output-dir", str(out), "--batch-size", "5", "--stitch-crop", "16")
    return out, result


def test_infer_writes_reconstruction_and_figures(inferred):
    out, result = inferred
    recon = Reconstruction.load(out / "reconstruction.npz")
    with np.load(out / "reconstruction.npz") as data:
        assert set(data.files) == {"object", "amplitude", "phase", "coverage", "origin_xy"}
        assert data["object"].dtype == np.complex64
        np.testing.assert_allclose(data["amplitude"], np.abs(data["object"]), rtol=1e-6)
    assert recon.mask.any() and np.isfinite(recon.object).all()
    assert "phase SSIM" in result.stdout  # the scan has objectGuess: it is evaluated too
    # the fit to the measured patterns needs no reference; a poor one comes with a hint
    excess = float(re.search(r"network object: data misfit [\d.]+ % .*?, ([\d.]+)×", result.stdout).group(1))
    assert excess >= 0.9
    assert ("does not explain these patterns" in result.stdout) == (excess > POOR_FIT_EXCESS)
    for name in ("amplitude.png", "phase.png", "comparison.png"):
        from PIL import Image

        with Image.open(out / name) as image:
            assert image.format == "PNG" and np.asarray(image.convert("L")).std() > 5
    assert "scale contract (from the bundle)" in result.stderr  # the loaded scales are logged


def test_stitch_crop_changes_the_result(workspace, trained_dir):
    outputs = {}
    for crop in ("8", "24"):
        out = workspace / f"crop{crop}"
        run_cli("infer", "--model", str(trained_dir / "model.pinn"), "--data", str(workspace / "scan.npz"),
                "--output-dir", str(out), "--stitch-crop", crop, "-q")
        outputs[crop] = Reconstruction.load(out / "reconstruction.npz")
    assert outputs["8"].mask.sum() < outputs["24"].mask.sum()


def test_evaluate_writes_metrics_and_comparison(workspace, inferred):
    out, _ = inferred
    result = run_cli("evaluate", "--recon", str(out / "reconstruction.npz"),
                     "--truth", str(workspace / "scan.npz"), "--output-dir", str(workspace / "eval"))
    metrics = json.loads((workspace / "eval" / "metrics.json").read_text())
    for key in ("amplitude_ssim", "phase_ssim", "phase_psnr", "amplitude_mae", "complex_nrmse",
                "frc_0_5", "frc_half_bit", "frc_curve"):
        assert key in metrics
    assert -1 <= metrics["phase_ssim"] <= 1 and 0 < metrics["frc_half_bit"] <= 1
    assert f"{metrics['phase_ssim']:.3f}" in result.stdout


def test_missing_model_is_a_clear_error(workspace, tmp_path):
    result = run_cli("infer", "--model", str(tmp_path / "nope.pinn"), "--data", str(workspace / "scan.npz"),
                     "--output-dir", str(tmp_path / "o"), check=False)
    assert result.returncode == 2 and "nope.pinn" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "o" / "reconstruction.npz").exists()


@pytest.mark.parametrize("command", ["train", "infer", "evaluate", "demo"])
def test_help(command):
    out = run_cli(command, "--help").stdout
    assert "usage: ptychopinn" in out


def test_infer_with_finetune_and_refinement(workspace, trained_dir, tmp_path):
    bundle = trained_dir / "model.pinn"
    before = bundle.read_bytes()
    out = tmp_path / "tuned"
    result = run_cli("infer", "--model", str(bundle), "--data", str(workspace / "scan.npz"),
                     "--output-dir", str(out), "--finetune-epochs", "1", "--refine-steps", "2", "-q")
    assert bundle.read_bytes() == before  # the bundle on disk is unchanged without --save-model
    assert not (out / "model_finetuned.pinn").exists()
    network = Reconstruction.load(out / "network_reconstruction.npz")
    refined = Reconstruction.load(out / "reconstruction.npz")
    # refinement writes its own canvas (scan positions ± N/2), different from the network's
    assert network.object.shape != refined.object.shape or not np.allclose(network.object, refined.object)
    assert refined.mask.sum() > 0.5 * network.mask.sum()
    assert (out / "refinement_loss.png").stat().st_size > 0 and "refined 2 passes" in result.stdout
    run_cli("infer", "--model", str(bundle), "--data", str(workspace / "scan.npz"), "--output-dir",
            str(tmp_path / "saved"), "--finetune-epochs", "1", "--save-model", "-q")
    from ptychopinn.model.trained import load_model

    tuned = load_model(tmp_path / "saved" / "model_finetuned.pinn")
    original = load_model(bundle)
    assert any(not np.array_equal(tuned.weights[k], original.weights[k]) for k in original.weights)
