"""The demo end to end: its reconstruction must be recognisably the object."""

from __future__ import annotations

import numpy as np
import pytest

from ptychopinn.demo import run_demo
from ptychopinn.evaluation.truth import evaluate_against_truth
from ptychopinn.reconstruction.result import Reconstruction


def impostors(scan, like: Reconstruction) -> dict[str, Reconstruction]:
    """Reconstructions with no correct structure, on the same canvas as ``like``."""
    rng = np.random.default_rng(0)
    ox, oy = (int(v) for v in like.origin_xy)
    rows, cols = like.object.shape
    padded = np.pad(scan.object, ((max(-oy, 0), rows), (max(-ox, 0), cols)), constant_values=1)
    truth = padded[max(oy, 0) : max(oy, 0) + rows, max(ox, 0) : max(ox, 0) + cols]
    covered = like.mask
    shuffled = truth.copy()
    shuffled[covered] = rng.permutation(truth[covered])
    flat = np.where(covered, np.mean(truth[covered]), 0)
    wrong_sign = np.conj(truth)
    return {name: Reconstruction(np.where(covered, obj, 0).astype(np.complex64), like.coverage, like.origin_xy)
            for name, obj in {"flat": flat, "shuffled": shuffled, "wrong sign": wrong_sign}.items()}


@pytest.mark.slow
def test_demo_reconstructs_the_object(tmp_path):
    report = run_demo(tmp_path, quiet=True, train=True)
    from ptychopinn.data import load_scan

    scan = load_scan(tmp_path / "scan.npz")
    network = Reconstruction.load(tmp_path / "reconstruction" / "reconstruction.npz")
    scores = {name: evaluate_against_truth(fake, scan)["phase_ssim"]
              for name, fake in impostors(scan, network).items()}
    network_ssim = report.metrics["network alone"]["phase_ssim"]
    print("phase SSIM: network", network_ssim, "impostors", scores)  # shown with pytest -s
    assert network_ssim > max(scores.values()) + 0.05
    refined = [m["phase_ssim"] for label, m in report.metrics.items() if label.startswith("network +")][0]
    assert refined > 0.85 and refined > network_ssim
    fits = [m["data_misfit_excess"] for m in report.metrics.values()]  # network, refined, flat
    assert fits[1] < 2.0 and fits[2] < 2.0 and fits[0] > fits[1]
    assert "data misfit" in report.format()
    for path in report.files.values():
        assert path.stat().st_size > 0


@pytest.mark.slow
def test_the_general_demo_reconstructs_a_scan_the_model_never_saw(tmp_path):
    """The default demo: the shipped general model on a held-out object under a probe of none of
    its families; fine-tuning on the scan's own diffraction fits the data better than the one
    pass, and refinement from there reaches what the iterative baseline reaches."""
    report = run_demo(tmp_path, quiet=True)
    one_pass, tuned, refined, flat = report.metrics.values()
    assert tuned["data_misfit_excess"] < one_pass["data_misfit_excess"]
    assert refined["phase_ssim"] > 0.85 and refined["data_misfit_excess"] < 2.0
    assert refined["phase_ssim"] > flat["phase_ssim"] - 0.05
    for path in report.files.values():
        assert path.stat().st_size > 0
