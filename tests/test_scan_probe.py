"""The probe is an input at run time (docs/design/spec.md#scaling): a model reconstructs a scan
with that scan's own probe, says how similar it is to its training probe, and does better with it
than with the probe stored at training."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest

from ptychopinn.api import (
    PROBE_SIMILARITY_WARN_BELOW,
    evaluate,
    reconstruct,
    train,
    with_scan_probe,
)
from ptychopinn.evaluation.data_fit import data_fit
from ptychopinn.physics.probe import make_probe, probe_similarity
from ptychopinn.simulation.simulate import simulate

SCAN = {"size": 96, "n": 32, "step": 4.0, "jitter": 0.5, "photons": 1e5}


def test_probe_similarity_is_one_for_the_same_probe_up_to_phase_and_scale():
    disk, defocused = make_probe(32, "disk"), make_probe(32, "defocused")
    assert probe_similarity(disk, 3 * np.exp(0.7j) * disk) == pytest.approx(1.0, abs=1e-12)
    assert probe_similarity(disk, defocused) == pytest.approx(probe_similarity(defocused, disk))
    assert probe_similarity(disk, defocused) < 0.5
    with pytest.raises(ValueError, match="different sizes"):
        probe_similarity(disk, make_probe(64, "disk"))


@pytest.fixture(scope="module")
def cross_probe(tmp_path_factory):
    """A model trained on a defocused-probe scan, and a scan of another object under a disk probe
    (with the same scan claiming the training probe: the stale probe of the predecessor's infer)."""
    trained_on = simulate("lines", probe="defocused", seed=1, **SCAN)
    other = simulate("grf", probe="disk", seed=2, **SCAN)
    model = train(trained_on, tmp_path_factory.mktemp("cross_probe"), overrides={
        "training": {"epochs": 5}, "data": {"gridsize": 1}, "model": {"n_filters_scale": 1}})
    return model, trained_on, other, dataclasses.replace(other, probe=trained_on.probe)


def test_a_model_reconstructs_with_the_scans_probe_and_does_better_than_with_the_stale_one(cross_probe):
    model, _, other, stale = cross_probe
    assert np.array_equal(with_scan_probe(model, other).probe, model.settings.physics.normalized_probe(other.probe))
    own_result, stale_result = reconstruct(model, other), reconstruct(model, stale)
    own_ssim, stale_ssim = (evaluate(r, other)["phase_ssim"] for r in (own_result, stale_result))
    # measured: 0.28 against 0.13 after 3 epochs, 0.40 against 0.13 after 10
    assert own_ssim > stale_ssim + 0.05
    assert data_fit(other, own_result).misfit < data_fit(other, stale_result).misfit


def test_inference_warns_when_the_scans_probe_is_unlike_the_training_probe(cross_probe, caplog):
    model, trained_on, other, _ = cross_probe
    with caplog.at_level(logging.INFO, logger="ptychopinn.api"):
        with_scan_probe(model, trained_on)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "similarity 1.000" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ptychopinn.api"):
        with_scan_probe(model, other)
    (warning,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    similarity = probe_similarity(trained_on.probe, other.probe)
    assert similarity < PROBE_SIMILARITY_WARN_BELOW and f"similarity {similarity:.2f}" in warning.getMessage()
