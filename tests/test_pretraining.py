"""Pretraining a general model: the corpus, per-sample probes, the pretrain command and DDP."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from helpers import architecture, model_inputs, run_cli
from ptychopinn import physics
from ptychopinn.backends.torch.features import per_sample_filters
from ptychopinn.backends.torch.model import PtychoPINN
from ptychopinn.backends.torch.pretraining import RankSlices, fidelity
from ptychopinn.config import CorpusConfig
from ptychopinn.model.general import effective_area_fraction, probe_outside, probe_statistics
from ptychopinn.physics.backprojection import backprojection_filters
from ptychopinn.physics.forward import far_field, illuminate
from ptychopinn.simulation.corpus import Corpus, Split


def test_per_sample_filters_match_the_numpy_reference_probe_by_probe():
    probes = np.stack([physics.normalize_probe(physics.make_probe(32, kind, radius=r), mode="energy")
                       for kind, r in (("disk", 5), ("defocused", 9), ("disk", 12))])
    phase, inverse = per_sample_filters(torch.from_numpy(probes)[:, None])
    for i, probe in enumerate(probes):
        ref_phase, ref_inverse = backprojection_filters(probe)
        np.testing.assert_allclose(phase[i, 0].numpy(), ref_phase, atol=2e-5)  # float32 FFTs
        np.testing.assert_allclose(inverse[i, 0].numpy(), ref_inverse, atol=2e-5 * np.abs(ref_inverse).max())


def test_forward_with_each_samples_probe_equals_the_models_probe_when_they_are_the_same():
    arch = architecture(n=32, gridsize=2)
    probe = torch.from_numpy(physics.normalize_probe(physics.make_probe(32, "defocused"), mode="energy"))
    model = PtychoPINN(arch, probe).eval()
    x, offsets = (torch.from_numpy(a) for a in model_inputs(3, 4, 32))
    with torch.no_grad():
        own = model(x, offsets)
        per_sample = model(x, offsets, probes=probe.expand(3, 1, 32, 32))
    np.testing.assert_allclose(per_sample.amplitude.numpy(), own.amplitude.numpy(), rtol=1e-5, atol=1e-6)


def test_a_forward_with_another_probe_gives_other_patterns():
    arch = architecture(n=32, gridsize=1)
    probe = torch.from_numpy(physics.normalize_probe(physics.make_probe(32, "disk"), mode="energy"))
    other = torch.from_numpy(physics.normalize_probe(physics.make_probe(32, "defocused", radius=10), mode="energy"))
    model = PtychoPINN(arch, probe).eval()
    x, offsets = (torch.from_numpy(a) for a in model_inputs(2, 1, 32))
    with torch.no_grad():
        a = model(x, offsets).amplitude
        b = model(x, offsets, probes=other.expand(2, 1, 32, 32)).amplitude
    assert float((a - b).abs().mean()) > 0.05 * float(a.abs().mean())


def test_energy_normalisation_gives_every_probe_the_energy_of_a_normalised_pattern():
    for radius in (3, 8, 14):
        probe = physics.normalize_probe(physics.make_probe(64, "disk", radius=radius), mode="energy")
        assert np.sum(np.abs(probe.astype(np.complex128)) ** 2) == pytest.approx(32**2, rel=1e-5)


@pytest.fixture(scope="module")
def corpus():
    return Corpus(CorpusConfig(), 32, 2, seed=3)


def test_a_sample_is_a_function_of_seed_split_and_index(corpus):
    a, b, c = corpus.sample(5), corpus.sample(5), corpus.sample(6)
    np.testing.assert_array_equal(a.diffraction, b.diffraction)
    np.testing.assert_array_equal(a.probe, b.probe)
    assert not np.array_equal(a.diffraction, c.diffraction)
    held_out = Corpus(CorpusConfig(), 32, 2, seed=3, split=Split.held_out_probes).sample(5)
    assert not np.array_equal(a.probe, held_out.probe)
    assert a.diffraction.shape == (4, 32, 32) and a.offsets.shape == (4, 2) and a.probe.shape == (32, 32)


def test_held_out_splits_draw_only_their_held_out_families():
    from ptychopinn.simulation import families

    objects = Corpus(CorpusConfig(), 32, 2, seed=0, split=Split.held_out_objects)
    probes = Corpus(CorpusConfig(), 32, 2, seed=0, split=Split.held_out_probes)
    drawn = [objects.sample(i) for i in range(12)]
    assert {s.object_family for s in drawn} <= set(families.HELD_OUT_OBJECT_FAMILIES)
    assert {s.probe_family for s in drawn} <= set(families.PROBE_FAMILIES)
    assert {probes.sample(i).probe_family for i in range(6)} <= set(families.HELD_OUT_PROBE_FAMILIES)


def test_offsets_stay_within_what_the_merge_canvas_holds(corpus):
    largest = max(np.abs(corpus.sample(i).offsets).max() for i in range(40))
    assert largest <= corpus.max_offset + 1e-4


def test_the_truth_reproduces_a_high_dose_sample_through_the_physics():
    """At 1e8 photons the normalised patterns are |F(P_n · O)| of the stored truth: the units the
    network is trained to produce are the units its physics layer turns back into the data."""
    config = CorpusConfig(dose_range=(1e8, 1e8), step_range=(0.2, 0.2), jitter=0)
    sample = Corpus(config, 32, 1, seed=1).sample(0)
    predicted = np.abs(far_field(illuminate(sample.truth, sample.probe)))
    measured = sample.diffraction[0]
    assert np.linalg.norm(predicted - measured) / np.linalg.norm(measured) < 0.01


def test_normalised_patterns_carry_the_scan_energy_on_average(corpus):
    energies = [float(np.sum(corpus.sample(i).diffraction.astype(np.float64) ** 2, axis=(-2, -1)).mean())
                for i in range(40)]
    assert np.median(energies) == pytest.approx(16**2, rel=0.3)


def test_rank_slices_give_each_step_the_single_process_batch():
    single = list(RankSlices(steps=3, global_batch=8, rank=0, world=1, fresh_each_epoch=True))
    ranks = [list(RankSlices(steps=3, global_batch=8, rank=r, world=2, fresh_each_epoch=True)) for r in (0, 1)]
    for step in range(3):
        union = ranks[0][step * 4:(step + 1) * 4] + ranks[1][step * 4:(step + 1) * 4]
        assert sorted(union) == single[step * 8:(step + 1) * 8]
    later = RankSlices(steps=3, global_batch=8, rank=0, world=1, fresh_each_epoch=True)
    later.set_epoch(1)
    assert min(later) == 24  # a fresh stream every epoch
    with pytest.raises(ValueError, match="divisible"):
        RankSlices(steps=3, global_batch=9, rank=0, world=2, fresh_each_epoch=True)


def test_fidelity_ignores_global_phase_and_scale_and_sees_errors():
    rng = np.random.default_rng(0)
    truth = torch.from_numpy((rng.normal(size=(2, 16, 16)) + 1j * rng.normal(size=(2, 16, 16))).astype(np.complex64))
    assert torch.allclose(fidelity(truth * 3 * np.exp(1j), truth), torch.ones(2), atol=1e-5)
    assert float(fidelity(torch.flip(truth, (-1,)), truth).max()) < 0.5
    flat = torch.ones_like(truth) + 0.01 * truth  # a nearly featureless patch on a strong mean
    assert float(fidelity(flat + 0.0, truth + 5).min()) > 0.99  # the structure, not the mean, counts
    assert float(fidelity(torch.ones_like(truth) + 0.01 * torch.flip(truth, (-1,)), truth + 5).max()) < 0.5


def test_probe_statistics_flag_a_probe_outside_the_training_range():
    probes = [physics.make_probe(64, "disk", radius=r) for r in np.linspace(6, 14, 20)]
    statistics = probe_statistics(probes)
    assert probe_outside(statistics, physics.make_probe(64, "disk", radius=10)) is None
    assert "lights" in probe_outside(statistics, physics.make_probe(64, "disk", radius=2.5))
    assert effective_area_fraction(np.ones((8, 8))) == pytest.approx(1.0)


TINY = ("--patch-size", "32", "--samples-per-epoch", "16", "--validation-samples", "8", "--batch-size", "8",
        "--workers", "0", "--accelerator", "cpu", "--seed", "4", "--quiet")


def _step_losses(run_dir) -> list[float]:
    with open(run_dir / "metrics.csv") as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("train_loss_step")]
    return [float(r["train_loss_step"]) for r in rows]


def test_pretrain_writes_a_general_model_that_resumes_and_reconstructs_a_scan(tmp_path):
    from ptychopinn import load_model, reconstruct, simulate

    run = tmp_path / "run"
    run_cli("pretrain", "--output-dir", str(run), "--epochs", "1", *TINY)
    first = _step_losses(run)
    assert len(first) == 2 and all(np.isfinite(first))
    run_cli("pretrain", "--output-dir", str(run), "--epochs", "2", "--resume", str(run / "checkpoints" / "last.ckpt"),
            *TINY)
    assert len(_step_losses(run)) == 4  # the second epoch continued the first; it did not start over
    model = load_model(run)
    assert model.settings.corpus is not None and model.settings.physics.probe_normalization == "energy"
    assert model.settings.data.gridsize == 1 and model.training_probes["effective_area_fraction"][0] > 0
    scan = simulate("grf", size=64, n=32, probe="defocused", step=4, photons=1e5, seed=2)
    result = reconstruct(model, scan)
    assert np.isfinite(result.object).all() and result.object.shape[0] >= 40


def test_ddp_on_two_cpu_processes_matches_one_process_on_the_same_global_batch(tmp_path):
    """Two gloo processes, each taking half of every global batch of 8: identical weights on both
    ranks, and the same losses as one process (float32 reductions in another order: 1e-4)."""
    one, two = tmp_path / "one", tmp_path / "two"
    args = ("--epochs", "1", "--samples-per-epoch", "24", *TINY)
    run_cli("pretrain", "--output-dir", str(one), *args)
    result = run_cli("pretrain", "--output-dir", str(two), "--devices", "2", "--strategy", "ddp", *args)
    assert "on 2 processes" in result.stdout
    np.testing.assert_allclose(_step_losses(two), _step_losses(one), rtol=1e-4)
    summary = (two / "pretraining.json").read_text()
    import json

    digests = json.loads(summary)["rank_weight_digests"]
    assert len(digests) == 2 and digests[0] == digests[1]
    from ptychopinn import load_model

    a, b = load_model(one).weights, load_model(two).weights
    assert max(float(np.abs(a[k] - b[k]).max()) for k in a) < 1e-4
