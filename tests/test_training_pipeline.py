"""Training, the bundle round trip, forward parity and streaming reconstruction (PyTorch)."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch

from helpers import assert_real_png
from ptychopinn.api import reconstruct, train_with_summary
from ptychopinn.backends.torch.data_module import GroupDataset, make_loader
from ptychopinn.backends.torch.device import resolve_device
from ptychopinn.config import resolve_settings
from ptychopinn.data.grouped import GroupedScan, split_groups
from ptychopinn.model.bundle import BundleError, load_bundle, save_bundle
from ptychopinn.model.trained import load_model

# the plain training path; the curriculum over gridsize has its own test
TINY = {"model": {"n_filters_scale": 1}, "training": {"epochs": 2, "batch_size": 16, "curriculum_fraction": 0.0}}


def tiny_settings(gridsize=2, **extra):
    overrides = {"data": {"gridsize": gridsize}, **TINY}
    for section, values in extra.items():
        overrides.setdefault(section, {}).update(values)
    return resolve_settings(None, overrides)


@pytest.fixture(scope="module")
def trained(tiny_scan, tmp_path_factory):
    out = tmp_path_factory.mktemp("train")
    return train_with_summary(tiny_scan, out, tiny_settings())


def test_training_writes_every_output(trained):
    out = trained.output_dir
    assert trained.epochs_run == 2
    assert torch.device(trained.device).type == resolve_device("auto").type  # the GPU where there is one
    assert (out / "model.pinn").is_file()
    assert resolve_settings(out / "config.yaml") == trained.model.settings
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    train_losses = [float(r["train_loss"]) for r in rows if r.get("train_loss")]
    val_losses = [float(r["val_loss"]) for r in rows if r.get("val_loss")]
    assert len(train_losses) == 2 and len(val_losses) == 2 and all(np.isfinite(train_losses))
    assert list((out / "checkpoints").glob("*.ckpt"))
    assert_real_png(out / "training_curves.png")


def test_training_reduces_the_loss(trained):
    rows = list(csv.DictReader(open(trained.output_dir / "metrics.csv")))
    losses = [float(r["train_loss"]) for r in rows if r.get("train_loss")]
    assert losses[-1] < losses[0]


def _train_losses(metrics_csv) -> list[float]:
    return [float(r["train_loss"]) for r in csv.DictReader(open(metrics_csv)) if r.get("train_loss")]


def test_the_curriculum_trains_single_patterns_first_and_the_groups_start_from_there(tiny_scan, tmp_path):
    settings = tiny_settings(training={"epochs": 1, "curriculum_fraction": 2.0})
    summary = train_with_summary(tiny_scan, tmp_path / "curriculum", settings)
    assert (summary.epochs_run, summary.curriculum_epochs_run) == (3, 2)
    assert summary.model.settings == settings and summary.model.architecture().channels == 4
    first_stage = _train_losses(tmp_path / "curriculum" / "curriculum" / "metrics.csv")
    assert len(first_stage) == 2 and first_stage[1] < first_stage[0]
    # the gridsize-2 stage starts from the trained gridsize-1 network, not from scratch
    scratch = train_with_summary(tiny_scan, tmp_path / "scratch",
                                 tiny_settings(training={"epochs": 1, "curriculum_fraction": 0.0}))
    assert _train_losses(summary.output_dir / "metrics.csv")[0] < _train_losses(scratch.output_dir / "metrics.csv")[0]


def test_the_auto_batch_size_is_resolved_for_the_scan_and_recorded(tiny_scan, tmp_path):
    settings = tiny_settings(gridsize=1, training={"epochs": 1, "batch_size": None})
    summary = train_with_summary(tiny_scan, tmp_path / "auto", settings)
    n_train = len(split_groups(tiny_scan.n_patterns, 0.05, 0)[0])
    assert 64 <= n_train < 4 * 64  # too few groups for 64 steps at 8: batches of 4
    assert summary.model.settings.training.batch_size == 4
    assert resolve_settings(tmp_path / "auto" / "config.yaml").training.batch_size == 4
    rows = [r for r in csv.DictReader(open(tmp_path / "auto" / "metrics.csv")) if r.get("train_loss")]
    assert int(rows[0]["step"]) + 1 == -(-n_train // 4)  # optimiser steps in the epoch


def test_the_final_decay_takes_the_learning_rate_down_to_min_lr(tiny_scan, tmp_path):
    """Three epochs, the last two in the decay: 1e-3, then geometric steps to min_lr 1e-4."""
    settings = tiny_settings(gridsize=1, training={"epochs": 3, "final_decay_fraction": 0.7})
    train_with_summary(tiny_scan, tmp_path / "decay", settings)
    rates = [float(r["lr-Adam"]) for r in csv.DictReader(open(tmp_path / "decay" / "metrics.csv")) if r.get("lr-Adam")]
    assert rates == pytest.approx([1e-3, 1e-3 * 0.1**0.5, 1e-4])


def test_a_run_directory_loads_its_model(trained):
    from_directory = load_model(trained.output_dir)
    assert from_directory.source == trained.model_path
    assert all(np.array_equal(from_directory.weights[k], v) for k, v in trained.model.weights.items())


def test_bundle_round_trip_gives_identical_outputs(trained, tiny_scan, tmp_path):
    model = trained.model
    copy_path = model.save(tmp_path / "copy.pinn")
    again = load_model(copy_path)
    assert again.scales == model.scales and again.settings == model.settings
    grouped = GroupedScan.build(tiny_scan, model.settings.data)
    x = torch.from_numpy(grouped.diffraction(slice(0, 8)))
    offsets = torch.from_numpy(grouped.offsets(slice(0, 8)))
    with torch.no_grad():
        a = model.build_module()(x, offsets).amplitude
        b = again.build_module()(x, offsets).amplitude
    assert torch.equal(a, b)
    assert load_bundle(copy_path).backend == "torch"


def test_a_bundle_from_before_the_phase_activation_setting_keeps_pi_tanh(trained, tiny_scan, tmp_path):
    """Bundles that do not name model.phase_activation were trained with π·tanh, no longer the default."""
    bundle = load_bundle(trained.model_path)
    assert trained.model.settings.model.phase_activation.value == "linear"  # today's default
    config = dict(bundle.config)
    old_model = {k: v for k, v in config["settings"]["model"].items() if k != "phase_activation"}
    config["settings"] = {**config["settings"], "model": old_model}
    path = save_bundle(tmp_path / "old.pinn", config=config, scales=bundle.scales, probe=bundle.probe,
                       weights=bundle.weights, backend="torch")
    old = load_model(path)
    assert old.settings.model.phase_activation.value == "pi_tanh"
    grouped = GroupedScan.build(tiny_scan, old.settings.data)
    x = torch.from_numpy(grouped.diffraction(slice(0, 4)))
    offsets = torch.from_numpy(grouped.offsets(slice(0, 4)))
    with torch.no_grad():
        linear_phase = trained.model.build_module()(x, offsets).raw_patches.angle()
        tanh_phase = old.build_module()(x, offsets).raw_patches.angle()
    expected = torch.angle(torch.polar(torch.ones_like(linear_phase), math.pi * torch.tanh(linear_phase)))
    assert torch.allclose(tanh_phase, expected, atol=1e-4)


def test_bundle_with_wrong_architecture_is_refused(trained, tmp_path):
    bundle = load_bundle(trained.model_path)
    config = dict(bundle.config)
    config["settings"] = {**config["settings"], "model": {**config["settings"]["model"], "n_filters_scale": 2}}
    path = save_bundle(tmp_path / "bad.pinn", config=config, scales=bundle.scales, probe=bundle.probe,
                       weights=bundle.weights, backend="torch")
    with pytest.raises(BundleError, match="shape"):
        load_model(path)
    missing = {k: v for i, (k, v) in enumerate(bundle.weights.items()) if i}
    path = save_bundle(tmp_path / "missing.pinn", config=bundle.config, scales=bundle.scales,
                       probe=bundle.probe, weights=missing, backend="torch")
    with pytest.raises(BundleError, match="missing"):
        load_model(path)


def test_forward_parity_training_and_inference_paths(trained, tiny_scan):
    """The batch the Lightning step sees and the batch inference streams give the same patches."""
    model = trained.model
    grouped = GroupedScan.build(tiny_scan, model.settings.data)
    selection = np.arange(0, 12)
    loader = make_loader(GroupDataset(grouped, selection), batch_size=12, shuffle=False, seed=0)
    train_x, train_offsets = next(iter(loader))
    infer_x = torch.from_numpy(grouped.diffraction(slice(0, 12)))
    infer_offsets = torch.from_numpy(grouped.offsets(slice(0, 12)))
    assert torch.equal(train_x, infer_x) and torch.equal(train_offsets, infer_offsets)

    from ptychopinn.backends.torch.lightning_module import PINNModule

    module = PINNModule(model.build_module(), model.scales.photon_scale, model.settings.training)
    captured = {}
    module.batch_observers.append(lambda phase, i, batch, out: captured.update(out=out))
    module.log = lambda *a, **k: None  # outside a Trainer
    with torch.no_grad():
        module.training_step((train_x, train_offsets), 0)
        inference = model.build_module()(infer_x, infer_offsets)
    # equal to float32 rounding: bitwise on 2 cores, not always on a 16-core machine (oneDNN
    # may split a convolution's sums differently between calls)
    for name in ("object_patches", "amplitude"):
        torch.testing.assert_close(getattr(captured["out"], name), getattr(inference, name), rtol=1e-5, atol=1e-6)


def test_batch_observers_run_on_rank_zero_only(trained, tiny_scan):
    """Observers write files, so under multi-device training the other ranks must not call them."""
    from types import SimpleNamespace

    from ptychopinn.backends.torch.lightning_module import PINNModule

    model = trained.model
    grouped = GroupedScan.build(tiny_scan, model.settings.data)
    batch = (torch.from_numpy(grouped.diffraction(slice(0, 4))), torch.from_numpy(grouped.offsets(slice(0, 4))))
    calls = []
    module = PINNModule(model.build_module(), model.scales.photon_scale, model.settings.training)
    module.batch_observers.append(lambda phase, i, b, out: calls.append(i))
    module.log = lambda *a, **k: None
    with torch.no_grad():
        module.training_step(batch, 0)  # outside a Trainer: its own rank 0
        for index, rank in ((1, 1), (2, 0)):
            module._trainer = SimpleNamespace(global_rank=rank)  # what Lightning's global_rank reads
            module.training_step(batch, index)
    assert calls == [0, 2]


def test_reconstruction_is_in_object_coordinates(trained, tiny_scan, backend):
    """Streaming reconstruction and stitching through either backend (``backend`` fixture)."""
    result = reconstruct(trained.model, tiny_scan, batch_size=7, backend=backend.name)
    centers = GroupedScan.build(tiny_scan, trained.model.settings.data).groups.centers_xy
    ox, oy = result.origin_xy
    # the covered pixels span the group centres ± crop/2 in object coordinates
    rows, cols = np.nonzero(result.mask)
    assert cols.min() + ox == pytest.approx(centers[:, 0].min() - 10, abs=1.5)
    assert rows.max() + oy == pytest.approx(centers[:, 1].max() + 10, abs=1.5)
    assert np.isfinite(result.object).all() and not result.object[~result.mask].any()
    same = reconstruct(trained.model, tiny_scan, batch_size=64, backend=backend.name)
    # batching does not matter (to 1e-5 on a CPU; cuDNN picks kernels by batch size: 2.4e-5 on an H100)
    np.testing.assert_allclose(same.object, result.object, atol=1e-4)


def test_reconstruction_batches_16_groups_on_a_cpu_unless_told(trained, tiny_scan, backend):
    """The inference batch size left unset (a bundle's default) is the device's choice:
    AUTO_INFERENCE_BATCH, 16 groups per forward pass on a CPU."""
    groups = len(GroupedScan.build(tiny_scan, trained.model.settings.data))
    assert trained.model.settings.inference.batch_size is None
    for given, expected in ((None, 16), (40, 40)):
        calls = []
        reconstruct(trained.model, tiny_scan, batch_size=given, backend=backend.name, accelerator="cpu",
                    batch_observers=[lambda phase, index, inputs, output, seen=calls: seen.append(index)])
        assert len(calls) == -(-groups // expected)


def test_validation_split_is_seeded_and_disjoint():
    train_a, val_a = split_groups(100, 0.05, seed=1)
    train_b, val_b = split_groups(100, 0.05, seed=1)
    assert len(val_a) == 5 and not set(train_a) & set(val_a)
    np.testing.assert_array_equal(val_a, val_b)
    assert not np.array_equal(val_a, split_groups(100, 0.05, seed=2)[1])
    assert len(split_groups(10, 0.01, seed=0)[1]) == 0


def test_resume_continues_from_a_checkpoint(trained, tiny_scan, tmp_path):
    last = trained.output_dir / "checkpoints" / "last.ckpt"
    settings = tiny_settings(training={"epochs": 3})
    resumed = train_with_summary(tiny_scan, tmp_path, settings, resume=last)
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    epochs = sorted({int(r["epoch"]) for r in rows if r.get("train_loss")})
    assert epochs == [2]  # only the third epoch was run
    assert resumed.epochs_run == 3


@pytest.mark.parametrize("loss", ["mae", "poisson=1,mae=0.5"])
def test_loss_option_changes_the_objective(tiny_scan, tmp_path, loss):
    settings = tiny_settings(gridsize=1, training={"epochs": 1, "loss": loss}, data={"n_groups": 64})
    summary = train_with_summary(tiny_scan, tmp_path, settings)
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    value = [float(r["train_loss"]) for r in rows if r.get("train_loss")][0]
    # Poisson NLL of counts ~1e5 is large and negative; an amplitude MAE is small and positive
    assert (0 < value < 10) if loss == "mae" else (value < -100)
    assert summary.model.settings.training.loss


def test_training_warns_when_the_probe_is_its_own_twin(caplog):
    from ptychopinn.api import warn_if_twin_symmetric
    from ptychopinn.physics.probe import make_probe

    with caplog.at_level("WARNING", logger="ptychopinn.api"):
        assert warn_if_twin_symmetric(make_probe(32, "disk"))
        assert not warn_if_twin_symmetric(make_probe(32, "defocused"))
    assert len(caplog.records) == 1 and "cannot tell them apart" in caplog.text


def test_finetuning_warns_when_the_new_scans_probe_is_its_own_twin(trained, tiny_scan, tmp_path, caplog):
    from ptychopinn.api import finetune

    with caplog.at_level("WARNING", logger="ptychopinn.api"):
        tuned = finetune(trained.model, tiny_scan, 1, tmp_path)
    assert "cannot tell them apart" in caplog.text
    assert any(not np.array_equal(tuned.weights[k], trained.model.weights[k]) for k in tuned.weights)
