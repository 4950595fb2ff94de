"""Training on real, partially coherent data (issue 27): bad pixels left out of every loss, the
probe learned with the network and kept in the bundle, incoherent probe modes in the physics, and
the warning when the predicted patches collapse."""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np
import pytest
import torch

from ptychopinn.api import (
    normalized_probe_modes,
    train_with_summary,
    training_inputs,
    uses_learned_probe,
    with_scan_probe,
)
from ptychopinn.backends.torch import losses as torch_losses
from ptychopinn.backends.torch.model import PtychoPINN
from ptychopinn.backends.torch.probe import LearnedProbe
from ptychopinn.config import LossKind, resolve_settings
from ptychopinn.diagnostics.collapse import CollapseMonitor, illuminated_pixels
from ptychopinn.model.architecture import Architecture, ModelGeometry
from ptychopinn.model.trained import load_model
from ptychopinn.physics.forward import extract_patches, forward_amplitude, incoherent_amplitude
from ptychopinn.physics.probe import make_probe, probe_similarity
from ptychopinn.simulation.simulate import make_probe_modes

N = 32
LOSS_WEIGHTS = ({LossKind.poisson: 1.0}, {LossKind.mae: 1.0}, {LossKind.mse: 1.0},
                {LossKind.poisson: 1.0, LossKind.mae: 0.1})


def garbage_case(seed: int = 0):
    """(predicted, clean measured, measured with garbage on the bad pixels, valid (N, N))."""
    rng = np.random.default_rng(seed)
    predicted = rng.random((3, 1, N, N), dtype=np.float32) * 2
    measured = rng.random((3, 1, N, N), dtype=np.float32) * 2
    bad = rng.random((N, N)) < 0.1
    bad[:, 5] = True
    garbage = measured.copy()
    garbage[:, :, bad] = rng.choice([0.0, 1e3], size=garbage[:, :, bad].shape).astype(np.float32)
    return predicted, measured, garbage, ~bad


def reference_masked_loss(predicted, measured, valid, weights, photon_scale):
    """The losses over the valid pixels alone, in float64 NumPy."""
    p, m = predicted[:, :, valid].astype(np.float64), measured[:, :, valid].astype(np.float64)
    rate, counts = (photon_scale * p) ** 2, (photon_scale * m) ** 2
    terms = {LossKind.poisson: np.mean(rate - counts * np.log(rate + 1e-12)),
             LossKind.mae: np.mean(np.abs(p - m)), LossKind.mse: np.mean((p - m) ** 2)}
    return sum(w * terms[k] for k, w in weights.items())


# -- bad pixels -------------------------------------------------------------------------------


@pytest.mark.parametrize("weights", LOSS_WEIGHTS, ids=lambda w: "+".join(k.value for k in w))
def test_the_torch_losses_ignore_garbage_on_bad_pixels(weights):
    predicted, measured, garbage, valid = garbage_case()
    valid_t = torch.from_numpy(valid.astype(np.float32))
    clean = torch_losses.data_loss(torch.from_numpy(predicted), torch.from_numpy(measured), 7.0, weights, valid_t)
    dirty = torch_losses.data_loss(torch.from_numpy(predicted), torch.from_numpy(garbage), 7.0, weights, valid_t)
    assert float(dirty) == float(clean)
    assert float(clean) == pytest.approx(reference_masked_loss(predicted, measured, valid, weights, 7.0), rel=1e-5)
    unmasked = torch_losses.data_loss(torch.from_numpy(predicted), torch.from_numpy(garbage), 7.0, weights)
    assert abs(float(unmasked) - float(clean)) > 1e-3 * abs(float(clean))  # the garbage matters unmasked


def test_the_gradient_of_a_bad_pixel_is_zero():
    predicted, _, garbage, valid = garbage_case()
    prediction = torch.from_numpy(predicted).requires_grad_()
    torch_losses.data_loss(prediction, torch.from_numpy(garbage), 7.0, {LossKind.poisson: 1.0},
                           torch.from_numpy(valid.astype(np.float32))).backward()
    assert torch.all(prediction.grad[:, :, torch.from_numpy(~valid)] == 0)
    assert torch.count_nonzero(prediction.grad[:, :, torch.from_numpy(valid)]) > 0


@pytest.mark.parametrize("weights", LOSS_WEIGHTS, ids=lambda w: "+".join(k.value for k in w))
def test_the_tensorflow_losses_ignore_garbage_on_bad_pixels_as_torch_does(weights):
    pytest.importorskip("tensorflow")
    import tensorflow as tf

    from ptychopinn.backends.tensorflow import losses as tf_losses

    predicted, measured, garbage, valid = garbage_case(1)
    valid32 = valid.astype(np.float32)
    dirty = tf_losses.data_loss(tf.constant(predicted), tf.constant(garbage), 7.0, weights, tf.constant(valid32))
    torch_value = torch_losses.data_loss(torch.from_numpy(predicted), torch.from_numpy(garbage), 7.0, weights,
                                         torch.from_numpy(valid32))
    assert float(dirty) == pytest.approx(float(torch_value), rel=1e-6)
    assert float(dirty) == pytest.approx(reference_masked_loss(predicted, measured, valid, weights, 7.0), rel=1e-5)


def test_training_leaves_bad_pixels_out_of_the_input_and_the_scales(tiny_scan):
    rng = np.random.default_rng(0)
    bad = rng.random((N, N)) < 0.05
    garbage = tiny_scan.diffraction.copy()
    garbage[:, bad] = 1e4  # hot pixels: would set the input scale if they counted
    dirty = dataclasses.replace(tiny_scan, diffraction=garbage, bad_pixels=bad)
    cleaned = dataclasses.replace(tiny_scan, diffraction=np.where(bad, 0, tiny_scan.diffraction).astype(np.float32))
    settings = resolve_settings(None, {"data": {"gridsize": 1}})
    grouped, scales, _ = training_inputs(dirty, settings)
    _, clean_scales, _ = training_inputs(cleaned, settings)
    assert scales == clean_scales
    assert np.all(grouped.diffraction(np.arange(4))[:, :, bad] == 0)


def test_inference_leaves_bad_pixels_out_as_training_does(tiny_scan, tmp_path):
    """Garbage on the bad pixels (hot pixels, as ``simulate`` writes them and an npz keeps them)
    changes neither the input scale nor what the network sees when it reconstructs: in memory,
    and read lazily from the file."""
    from ptychopinn.api import reconstruct
    from ptychopinn.data import save_scan
    from ptychopinn.data.grouped import GroupedScan

    bad = np.random.default_rng(1).random((N, N)) < 0.05
    garbage = tiny_scan.diffraction.copy()
    garbage[:, bad] = 1e4
    dirty = dataclasses.replace(tiny_scan, diffraction=garbage, bad_pixels=bad)
    cleaned = dataclasses.replace(dirty, diffraction=np.where(bad, 0, tiny_scan.diffraction).astype(np.float32))
    settings = resolve_settings(None, {"data": {"gridsize": 1}})
    grouped, clean_grouped = GroupedScan.build(dirty, settings.data), GroupedScan.build(cleaned, settings.data)
    assert grouped.input_scale == clean_grouped.input_scale
    np.testing.assert_array_equal(grouped.diffraction(np.arange(8)), clean_grouped.diffraction(np.arange(8)))

    model = train_with_summary(cleaned, tmp_path / "run", overrides={
        "data": {"gridsize": 1, "n_groups": 32}, "model": {"n_filters_scale": 1},
        "training": {"epochs": 1, "batch_size": 16}}).model
    expected = reconstruct(model, cleaned).object
    np.testing.assert_array_equal(reconstruct(model, dirty).object, expected)
    save_scan(dirty, tmp_path / "dirty.npz")
    np.testing.assert_allclose(reconstruct(model, tmp_path / "dirty.npz").object, expected, rtol=1e-5, atol=1e-6)


# -- incoherent probe modes -------------------------------------------------------------------


def tiny_arch(**model) -> Architecture:
    settings = resolve_settings(None, {"data": {"gridsize": 1}, "model": {"n_filters_scale": 1, **model}})
    return Architecture.from_settings(settings, ModelGeometry(N, N))


def object_patches(seed: int = 0, count: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    obj = (1 + 0.3 * rng.random((3 * N, 3 * N))) * np.exp(1j * rng.random((3 * N, 3 * N)))
    positions = np.column_stack([rng.uniform(N, 2 * N, count), rng.uniform(N, 2 * N, count)])
    return extract_patches(obj, positions, N).astype(np.complex64)


def test_the_modes_intensities_add_as_the_numpy_reference_says():
    modes = make_probe_modes(make_probe(N, "defocused"), 3)
    patches = object_patches()
    reference = incoherent_amplitude(patches, modes)
    expected = np.sqrt(sum(forward_amplitude(patches, mode) ** 2 for mode in modes))
    np.testing.assert_allclose(reference, expected, rtol=1e-10)
    network = PtychoPINN(tiny_arch(), torch.from_numpy(modes))
    output = network(torch.zeros(4, 1, N, N), torch.zeros(4, 1, 2), raw_patches=torch.from_numpy(patches[:, None]))
    np.testing.assert_allclose(output.amplitude[:, 0].numpy(), reference, rtol=2e-4, atol=2e-5 * reference.max())
    # one mode alone is the coherent model, exactly
    single = PtychoPINN(tiny_arch(), torch.from_numpy(modes[0]))
    one = single(torch.zeros(4, 1, N, N), torch.zeros(4, 1, 2), raw_patches=torch.from_numpy(patches[:, None]))
    np.testing.assert_allclose(one.amplitude[:, 0].numpy(), forward_amplitude(patches, modes[0]),
                               rtol=2e-4, atol=2e-5 * reference.max())


def test_modes_are_normalised_together_and_a_multi_mode_probe_is_never_cut(tiny_scan):
    modes = make_probe_modes(tiny_scan.probe, 3)
    settings = resolve_settings(None, {})
    normalized = normalized_probe_modes(settings, modes)
    single = settings.physics.normalized_probe(modes[0])
    assert np.sum(np.abs(normalized) ** 2) == pytest.approx(np.sum(np.abs(single) ** 2), rel=1e-5)
    ratios = np.sum(np.abs(normalized) ** 2, axis=(1, 2)) / np.sum(np.abs(normalized[0]) ** 2)
    np.testing.assert_allclose(ratios, [1, 0.3, 0.09], rtol=1e-4)
    scan = dataclasses.replace(tiny_scan, probe_modes=modes)
    assert training_inputs(scan, settings)[2].shape == (3, N, N)
    with pytest.raises(ValueError, match="3 incoherent modes.*--probe-modes 1"):
        training_inputs(scan, settings.with_overrides({"physics": {"probe_modes": 1}}))
    extended = training_inputs(tiny_scan, settings.with_overrides({"physics": {"probe_modes": 2}}))[2]
    assert extended.shape == (2, N, N) and probe_similarity(extended[0], tiny_scan.probe) == pytest.approx(1, abs=1e-6)


# -- the learned probe ------------------------------------------------------------------------


def test_the_learned_probe_moves_toward_the_truth_and_keeps_its_power():
    """The object fixed at the truth, the probe alone learns from a blurred start: the physics
    layer's gradient must pull it toward the probe that made the data."""
    torch.manual_seed(0)
    truth = make_probe(N, "defocused") * 2
    blurred = np.fft.ifft2(np.fft.fft2(truth) * np.exp(1j * 2.0 * (np.fft.fftfreq(N)[:, None] ** 2
                                                              + np.fft.fftfreq(N)[None, :] ** 2) * N**2 / 64))
    start = (blurred * np.linalg.norm(truth) / np.linalg.norm(blurred)).astype(np.complex64)
    patches = torch.from_numpy(object_patches(count=16)[:, None])
    measured = torch.from_numpy(forward_amplitude(patches[:, 0].numpy(), truth)[:, None].astype(np.float32))
    network = PtychoPINN(tiny_arch(input_mode="amplitude"), torch.from_numpy(start))
    learned = LearnedProbe(torch.from_numpy(start))
    optimizer = torch.optim.Adam(learned.parameters(), lr=0.01)
    before = probe_similarity(start, truth)
    for _ in range(150):
        optimizer.zero_grad()
        output = network(measured, torch.zeros(16, 1, 2), raw_patches=patches, modes=learned())
        torch_losses.data_loss(output.amplitude, measured, 1.0, {LossKind.mse: 1.0}).backward()
        optimizer.step()
    after = learned.constrained()
    assert probe_similarity(after[0].numpy(), truth) > before + 0.5 * (1 - before)
    assert float((after.abs() ** 2).sum()) == pytest.approx(float(np.sum(np.abs(start) ** 2)), rel=1e-5)


def test_train_learns_the_probe_keeps_it_in_the_bundle_and_uses_it_on_its_own_scan(tiny_scan, tmp_path):
    settings = resolve_settings(None, {"data": {"gridsize": 1, "n_groups": 96},
                                       "model": {"n_filters_scale": 1},
                                       "physics": {"probe_modes": 2},
                                       "training": {"epochs": 1, "learn_probe": True, "probe_learning_rate": 0.01}})
    summary = train_with_summary(tiny_scan, tmp_path / "run", settings)
    guess = normalized_probe_modes(settings, make_probe_modes(tiny_scan.probe, 2))
    model = summary.model
    assert model.probes.shape == (2, N, N)
    assert not np.allclose(model.probes, guess, atol=1e-4)  # it moved
    assert np.sum(np.abs(model.probes) ** 2) == pytest.approx(np.sum(np.abs(guess) ** 2), rel=1e-4)
    loaded = load_model(summary.model_path)
    np.testing.assert_array_equal(loaded.probes, model.probes)
    assert loaded.probe_guess_digest == model.probe_guess_digest is not None
    # its own scan (the same guess): the learned probe; another scan: that scan's own probe
    assert uses_learned_probe(loaded, tiny_scan)
    np.testing.assert_array_equal(with_scan_probe(loaded, tiny_scan).probes, model.probes)
    other = dataclasses.replace(tiny_scan, probe=make_probe(N, "defocused"))
    assert not uses_learned_probe(loaded, other)
    other_model = with_scan_probe(loaded, other)
    assert other_model.probe_modes is None
    assert probe_similarity(other_model.probe, other.probe) == pytest.approx(1, abs=1e-6)


def test_tensorflow_refuses_to_learn_the_probe_but_trains_modes():
    pytest.importorskip("tensorflow")
    from ptychopinn.backends.tensorflow.training import check_settings

    with pytest.raises(ValueError, match="--learn-probe needs the torch backend"):
        check_settings(resolve_settings(None, {"training": {"learn_probe": True}}))
    check_settings(resolve_settings(None, {"physics": {"probe_modes": 2}}))  # tests/test_tensorflow_backend.py


# -- collapse warning -------------------------------------------------------------------------


def test_the_collapse_check_flags_flat_and_saturated_patches_not_structured_ones():
    probe = make_probe(N, "defocused")
    patches = object_patches(count=8)
    structured = CollapseMonitor(illuminated_pixels(probe), 2.0).update(np.abs(patches), np.angle(patches)).finish(0)
    assert structured.healthy and structured.message() == ""
    flat = CollapseMonitor(illuminated_pixels(probe), 2.0)
    flat_check = flat.update(np.full((8, N, N), 0.7), np.full((8, N, N), 0.1)).finish(3)
    assert flat_check.collapsed and not flat_check.saturated
    assert flat_check.message().startswith("epoch 3: the predicted patches have collapsed")
    assert "--phase-activation" not in flat_check.message()  # nothing saturated: the head is not the remedy
    pinned = CollapseMonitor(illuminated_pixels(probe), 2.0)
    pinned_check = pinned.update(np.abs(patches), np.full((8, N, N), -math.pi * 0.999)).finish(1)
    assert pinned_check.saturated and pinned_check.phase_saturated_fraction == 1.0
    assert "(100% of the phase at ±π)" in pinned_check.message()  # the amplitude, at no bound, unmentioned


def test_the_collapse_check_measures_the_phase_about_each_patchs_own_global_phase():
    """The global phase is free: patches turned by π (their phase straddling the ±π cut) have the
    spread they had, and under the unbounded (linear) phase head ±π is no bound at all."""
    probe = make_probe(N, "defocused")
    patches = object_patches(count=8)
    turned = patches * np.exp(1j * (math.pi - np.angle(patches.mean())))  # centred on the cut

    def check(values, phase_bound):
        return CollapseMonitor(illuminated_pixels(probe), 2.0, phase_bound).update(np.abs(values), np.angle(values)).finish(0)

    assert np.angle(turned).max() - np.angle(turned).min() > math.pi  # wrapped across the cut
    assert check(turned, None).phase_variance == pytest.approx(check(patches, None).phase_variance, rel=1e-5)
    assert check(turned, None).healthy and check(turned, None).phase_saturated_fraction == 0
    flat_at_the_cut = np.full((8, N, N), 0.7) * np.exp(1j * math.pi * np.where(np.arange(N) % 2, 0.999, -0.999))
    flat = check(flat_at_the_cut, None)
    assert flat.collapsed and flat.phase_variance < 1e-4 and not flat.saturated



@pytest.mark.parametrize("activation", ["pi_tanh", "linear"])
def test_a_phase_head_started_at_minus_20_learns_only_when_unbounded(tiny_scan, tmp_path, activation):
    """The same start, φ_raw = −20 everywhere: π·tanh is flat there, so its head gets no gradient
    and stays where it started; the linear head (φ = −20 rad, a global phase) learns."""
    settings = resolve_settings(None, {"data": {"gridsize": 1, "n_groups": 64},
                                       "model": {"n_filters_scale": 1, "phase_activation": activation},
                                       "training": {"epochs": 1, "batch_size": 16, "validation_fraction": 0}})
    arch = Architecture.from_settings(settings, ModelGeometry(N, N))
    weights = {k: v.detach().numpy().copy() for k, v in PtychoPINN(arch, torch.from_numpy(tiny_scan.probe)).state_dict().items()}
    weights["generator.phase.head.weight"][:] = 0
    weights["generator.phase.head.bias"][:] = -20
    from ptychopinn.api import _train_stage

    _, result = _train_stage(tiny_scan, settings, tmp_path / activation, initial_weights=weights)
    moved = np.abs(result.weights["generator.phase.head.weight"]).max()
    if activation == "pi_tanh":
        assert moved < 1e-6 and result.collapse_warnings
    else:
        assert moved > 1e-4 and not any("saturated" in w for w in result.collapse_warnings)


def test_training_warns_when_the_phase_head_is_pinned_at_minus_pi(tiny_scan, tmp_path, caplog):
    """A forced collapse: the phase head's weights zeroed and its bias at −20, so φ = π·tanh(−20)
    = −π everywhere and its gradient vanishes, as on the real scan of issue 27."""
    settings = resolve_settings(None, {"data": {"gridsize": 1, "n_groups": 64},
                                       "model": {"n_filters_scale": 1, "phase_activation": "pi_tanh"},
                                       "training": {"epochs": 1, "batch_size": 16}})
    arch = Architecture.from_settings(settings, ModelGeometry(N, N))
    weights = {k: v.detach().numpy().copy() for k, v in PtychoPINN(arch, torch.from_numpy(tiny_scan.probe)).state_dict().items()}
    weights["generator.phase.head.weight"][:] = 0
    weights["generator.phase.head.bias"][:] = -20
    from ptychopinn.api import _train_stage

    with caplog.at_level(logging.WARNING):
        _, result = _train_stage(tiny_scan, settings, tmp_path / "pinned", initial_weights=weights)
    assert result.collapse_warnings and "phase at ±π" in result.collapse_warnings[0]
    assert "--phase-activation linear" in result.collapse_warnings[0]
    assert any("the activations are saturated" in r.getMessage() for r in caplog.records)
