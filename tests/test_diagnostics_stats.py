"""Diagnostics library (docs/design/spec.md#diagnostics): statistics, observers, file formats and comparisons, in process."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from helpers import STAT_KEYS, assert_real_png, strict_load
from ptychopinn.diagnostics import (
    DebugDump,
    PatchAccumulator,
    PatchStatsRecorder,
    canvas_statistics,
    compare_reconstructions,
    compare_stages,
    compare_stats,
    load_stages,
    load_stats,
    patch_statistics,
    save_stages,
    strict_json,
    var_zero_mean,
    write_strict_json,
)
from ptychopinn.diagnostics.stages import STAGE_NAMES
from ptychopinn.reconstruction.result import Reconstruction

# ---------------------------------------------------------------------------------------------
# statistics
# ---------------------------------------------------------------------------------------------


def test_var_zero_mean_is_the_mean_within_patch_variance(rng):
    patches = rng.random((5, 3, 8, 8)) * rng.random((5, 3, 1, 1)) * 4  # unequal patch means
    expected = np.mean((patches - patches.mean(axis=(-2, -1), keepdims=True)) ** 2)
    assert var_zero_mean(patches) == pytest.approx(expected, rel=1e-12)
    assert var_zero_mean(patches) < patches.var()  # the spread of patch means is excluded
    assert var_zero_mean(np.array([[[0.0, 2.0]], [[5.0, 5.0]]])) == 0.5
    complex_patches = patches * np.exp(1j * rng.uniform(-3, 3, patches.shape))
    assert var_zero_mean(complex_patches) == pytest.approx(expected, rel=1e-12)  # modulus taken
    assert var_zero_mean(np.full((4, 8, 8), 0.7)) < 1e-30  # flat patches: collapsed


def test_streaming_statistics_equal_the_one_shot_ones(rng):
    patches = 1e4 + rng.standard_normal((37, 16, 16)) * 1e-2  # large mean, tiny spread: stability
    accumulator = PatchAccumulator()
    for start in (0, 1, 9, 30):
        accumulator.update(patches[start: {0: 1, 1: 9, 9: 30, 30: 37}[start]])
    streamed, direct = accumulator.result(), patch_statistics(patches)
    assert streamed["n_patches"] == 37 and streamed["n_pixels"] == 37 * 256
    for key in STAT_KEYS:
        assert streamed[key] == pytest.approx(direct[key], rel=1e-9)
    assert direct["std"] == pytest.approx(patches.std(), rel=1e-6)
    assert direct["var_zero_mean"] == pytest.approx(
        np.mean(patches.var(axis=(-2, -1), dtype=np.float64)), rel=1e-6)
    assert patch_statistics(torch.from_numpy(patches)) == direct  # torch tensors accepted


def test_canvas_statistics_use_covered_pixels_only():
    amplitude = np.zeros((10, 10))
    amplitude[2:6, 2:6] = [[1.0, 2.0, 3.0, 4.0]] * 4
    stats = canvas_statistics(amplitude, amplitude > 0)
    assert stats["n_pixels"] == 16 and stats["mean"] == 2.5 and stats["min"] == 1.0
    assert stats["var_zero_mean"] == pytest.approx(1.25) and stats["std"] == pytest.approx(1.25**0.5)


def test_json_output_is_strict(tmp_path):
    payload = {"a": float("nan"), "b": [np.float32(1.5), np.inf], "c": np.arange(2), "d": -np.inf}
    assert strict_json(payload) == {"a": None, "b": [1.5, None], "c": [0, 1], "d": None}
    path = write_strict_json(tmp_path / "x.json", payload)
    assert strict_load(path)["a"] is None
    empty = PatchAccumulator().result()  # nothing seen: NaN in memory, null on disk
    write_strict_json(tmp_path / "empty.json", empty)
    assert strict_load(tmp_path / "empty.json")["var_zero_mean"] is None


# ---------------------------------------------------------------------------------------------
# observers
# ---------------------------------------------------------------------------------------------


def fake_output(rng, batch=3, channels=4, n=16, scale=1.0):
    """A ForwardOutput look-alike; the ground truth appears nowhere, only predicted patches."""
    patches = torch.from_numpy(scale * (0.5 + rng.random((batch, channels, n, n)))
                               * np.exp(1j * rng.uniform(-1, 1, (batch, channels, n, n))))
    patches = patches.to(torch.complex64).requires_grad_(True)  # as in a training step
    return SimpleNamespace(object_patches=patches, amplitude=patches.abs() * 7, raw_patches=patches * 2,
                           group_object=patches[:, 0] * 3, canvas=None)


def fake_batch(rng, batch=3, channels=4, n=16):
    return (torch.from_numpy(rng.random((batch, channels, n, n)).astype(np.float32)),
            torch.from_numpy(rng.uniform(-3, 3, (batch, channels, 2)).astype(np.float32)))


def test_patch_stats_recorder_schema_limit_and_phase(rng, tmp_path, caplog):
    recorder = PatchStatsRecorder(tmp_path / "analysis", "train", limit=2)
    outputs = [fake_output(rng) for _ in range(4)]
    recorder("val", 0, fake_batch(rng), outputs[0])  # Lightning's sanity check: ignored
    with caplog.at_level("INFO", logger="ptychopinn.diagnostics"):
        for index, output in enumerate(outputs[1:]):
            recorder("train", index, fake_batch(rng), output)
    records = strict_load(tmp_path / "analysis" / "patch_stats.json")
    assert isinstance(records, list) and len(records) == 2  # limit
    assert [r["batch_idx"] for r in records] == [0, 1]
    for record, output in zip(records, outputs[1:], strict=False):
        assert set(record) >= {"phase", "batch_idx", "batch_size", "global_mean", "global_std",
                               "var_zero_mean", "per_patch"}
        assert record["phase"] == "train" and record["batch_size"] == 3 and record["n_patches"] == 12
        predicted = np.abs(output.object_patches.detach().numpy()).astype(np.float64)
        assert record["global_mean"] == pytest.approx(predicted.mean(), rel=1e-6)
        assert record["var_zero_mean"] == pytest.approx(var_zero_mean(predicted), rel=1e-6)
        assert len(record["per_patch"]) == 4
        first = record["per_patch"][0]
        assert set(first) == {"patch_idx", "mean", "std", "min", "max"} and first["patch_idx"] == 0
        assert first["max"] == pytest.approx(predicted[0, 0].max(), rel=1e-6)
    assert sum("patch stats train batch" in m for m in caplog.messages) == 2
    assert_real_png(tmp_path / "analysis" / "patch_grid.png")


def test_no_observer_without_the_flags(tmp_path):
    from ptychopinn.cli.diagnostics import DiagnosticOptions, InferDiagnostics, train_observers

    options = DiagnosticOptions()
    assert train_observers(options, tmp_path) == [] and InferDiagnostics(options, tmp_path).observers == []
    assert not any(tmp_path.iterdir())


def fake_reconstruction(rng, shape=(40, 48), origin=(3.0, 5.0)):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    obj = (0.8 + 0.2 * np.sin(xx / 3.0) * np.cos(yy / 4.0)) * np.exp(1j * 0.5 * np.sin((xx + yy) / 5.0))
    coverage = np.zeros(shape, np.float32)
    coverage[4:-4, 3:-3] = 1.0
    return Reconstruction((obj * (coverage > 0)).astype(np.complex64), coverage, origin)


def test_debug_dump_files_and_schema(rng, tmp_path):
    dump = DebugDump(tmp_path / "dump")
    batches = [(fake_batch(rng, batch=b), fake_output(rng, batch=b)) for b in (3, 5, 2)]
    for index, (batch, output) in enumerate(batches):
        dump("infer", index, batch, output)
    recon = fake_reconstruction(rng)
    paths = dump.write(recon, patch_size=16)
    d = tmp_path / "dump"
    assert {p.name for p in d.iterdir()} == {"stats.json", "offsets.json", "canvas.json",
                                            "patch_grid_amp.png", "patch_grid_phase.png", "canvas.png"}
    assert set(paths) == {"stats", "offsets", "canvas", "patch_grid_amp", "patch_grid_phase", "canvas_png"}

    stats = strict_load(d / "stats.json")
    assert set(stats) == {"patch_amplitude", "canvas_amplitude"}
    assert STAT_KEYS <= set(stats["patch_amplitude"]) and STAT_KEYS <= set(stats["canvas_amplitude"])
    every_patch = np.concatenate([o.object_patches.detach().numpy() for _, o in batches], axis=0)
    direct = patch_statistics(every_patch)  # all patches of all batches, streamed = one shot
    for key in STAT_KEYS:
        assert stats["patch_amplitude"][key] == pytest.approx(direct[key], rel=1e-9)
    assert stats["patch_amplitude"]["n_patches"] == 10 * 4
    canvas = canvas_statistics(recon.amplitude, recon.mask)
    assert stats["canvas_amplitude"]["var_zero_mean"] == pytest.approx(canvas["var_zero_mean"])

    offsets = strict_load(d / "offsets.json")
    assert set(offsets) >= {"count", "first_offsets", "dx_mean", "dx_std", "dy_mean", "dy_std"}
    all_offsets = np.concatenate([b[1].numpy() for b, _ in batches]).astype(np.float64)
    assert offsets["count"] == 10 and offsets["channels"] == 4
    assert np.allclose(offsets["first_offsets"], all_offsets[:8])
    assert offsets["dx_mean"] == pytest.approx(all_offsets[..., 0].mean())
    assert offsets["dy_std"] == pytest.approx(all_offsets[..., 1].std())

    canvas_info = strict_load(d / "canvas.json")
    assert canvas_info["patch_size"] == 16 and canvas_info["canvas_shape"] == [40, 48]
    assert canvas_info["origin"] == {"x": 3.0, "y": 5.0} and canvas_info["n_patches"] == 10
    for name in ("patch_grid_amp.png", "patch_grid_phase.png", "canvas.png"):
        assert_real_png(d / name)


# ---------------------------------------------------------------------------------------------
# compare_stats
# ---------------------------------------------------------------------------------------------


def stats_dict(scale=1.0, vzm=0.01):
    block = {"mean": 0.8 * scale, "std": 0.1 * scale, "min": 0.1, "max": 1.2, "var_zero_mean": vzm}
    return {"patch_amplitude": dict(block), "canvas_amplitude": dict(block)}


def test_compare_stats_passes_within_tolerance():
    report = compare_stats(stats_dict(), stats_dict(scale=1.01, vzm=0.0102), tolerance=0.05)
    assert report["status"] == "ok" and report["diverged"] == []
    entry = report["metrics"]["patch_amplitude.mean"]
    assert entry["ratio"] == pytest.approx(1.01) and entry["difference"] == pytest.approx(0.008)
    assert set(report["metrics"]) == {f"{b}.{m}" for b in ("patch_amplitude", "canvas_amplitude")
                                      for m in ("mean", "std", "var_zero_mean")}


def test_compare_stats_flags_a_collapse():
    report = compare_stats(stats_dict(), stats_dict(vzm=0.001), tolerance=0.05)
    assert report["status"] == "diverged"
    assert set(report["diverged"]) == {"patch_amplitude.var_zero_mean", "canvas_amplitude.var_zero_mean"}
    assert report["metrics"]["patch_amplitude.var_zero_mean"]["ratio"] == pytest.approx(0.1)


def test_compare_stats_zero_baseline_and_missing_values():
    baseline, candidate = stats_dict(vzm=0.0), stats_dict(vzm=0.0)
    report = compare_stats(baseline, candidate)
    assert report["metrics"]["patch_amplitude.var_zero_mean"]["status"] == "baseline_zero"
    assert report["metrics"]["patch_amplitude.var_zero_mean"]["ratio"] is None
    assert report["status"] == "ok"  # an undefined ratio alone does not fail
    candidate["canvas_amplitude"]["std"] = None  # NaN written as null
    report = compare_stats(baseline, candidate)
    assert report["metrics"]["canvas_amplitude.std"]["status"] == "missing"
    assert report["status"] == "diverged"


def test_load_stats_checks_the_format(tmp_path):
    (tmp_path / "bad.json").write_text('{"patch_amplitude": {}}')
    with pytest.raises(ValueError, match="canvas_amplitude"):
        load_stats(tmp_path / "bad.json")
    (tmp_path / "d").mkdir()
    write_strict_json(tmp_path / "d" / "stats.json", stats_dict())
    assert load_stats(tmp_path / "d") == stats_dict()  # a dump directory is accepted


# ---------------------------------------------------------------------------------------------
# stages
# ---------------------------------------------------------------------------------------------


def fake_stages(rng, groups=4):
    shapes = {"normalized_input": (groups, 4, 16, 16), "raw_patches": (groups, 4, 16, 16),
              "merged_canvas": (groups, 24, 24), "object_patches": (groups, 4, 16, 16),
              "predicted_amplitude": (groups, 4, 16, 16), "group_object": (groups, 16, 16)}
    stages = {}
    for name, shape in shapes.items():
        real = rng.random(shape).astype(np.float32)
        complex_stage = name in ("raw_patches", "merged_canvas", "object_patches", "group_object")
        stages[name] = (real * np.exp(1j * real)).astype(np.complex64) if complex_stage else real
    return stages


def test_stage_file_round_trip_and_schema(rng, tmp_path):
    stages = fake_stages(rng)
    path = save_stages(tmp_path / "s.npz", stages, {"backend": "torch", "model": "m.pinn",
                                                     "group_indices": [[1, 2, 3, 4]]})
    with np.load(path, allow_pickle=False) as data:  # loadable without pickle
        assert set(data.files) == {"meta", *STAGE_NAMES}
        assert data["meta"].dtype.kind == "U" and data["meta"].shape == ()
        meta = json.loads(str(data["meta"]))
    assert meta["stage_order"] == list(STAGE_NAMES) and meta["backend"] == "torch"
    loaded, meta = load_stages(path)
    assert list(loaded) == list(STAGE_NAMES) and meta["group_indices"] == [[1, 2, 3, 4]]
    for name in STAGE_NAMES:
        assert loaded[name].dtype == stages[name].dtype and np.array_equal(loaded[name], stages[name])
    (tmp_path / "junk.npz").write_text("not an archive")
    with pytest.raises(ValueError, match="junk.npz"):
        load_stages(tmp_path / "junk.npz")
    np.savez(tmp_path / "nometa.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="meta"):
        load_stages(tmp_path / "nometa.npz")


def test_compare_stages_passes_on_identical_and_tiny_differences(rng):
    a = fake_stages(rng)
    b = {k: v.copy() for k, v in a.items()}
    b["object_patches"] = b["object_patches"] * np.float32(1 + 1e-6)
    report = compare_stages(a, b, rtol=1e-4)
    assert report["status"] == "ok" and report["first_divergent"] is None
    assert [e["stage"] for e in report["stages"]] == list(STAGE_NAMES)
    entry = next(e for e in report["stages"] if e["stage"] == "object_patches")
    assert 0 < entry["relative_diff"] < 1e-5 and entry["max_abs_diff"] > 0


def test_compare_stages_finds_the_first_divergent_stage(rng):
    a = fake_stages(rng)
    b = {k: v.copy() for k, v in a.items()}
    for name in ("object_patches", "predicted_amplitude", "group_object"):  # downstream all differ
        b[name] = b[name] * np.float32(1.01)
    report = compare_stages(a, b, rtol=1e-4)
    assert report["status"] == "diverged" and report["first_divergent"] == "object_patches"
    entry = next(e for e in report["stages"] if e["stage"] == "object_patches")
    assert entry["relative_diff"] == pytest.approx(0.01, rel=1e-3)
    assert compare_stages(a, b, rtol=0.02)["status"] == "ok"  # rtol matters
    del b["merged_canvas"]
    assert compare_stages(a, b, rtol=0.02)["first_divergent"] == "merged_canvas"  # missing stage
    b = {k: v.copy() for k, v in a.items()}
    b["raw_patches"] = b["raw_patches"][:2]
    assert compare_stages(a, b)["stages"][1]["status"] == "shape_mismatch"
    b = {k: v.copy() for k, v in a.items()}
    b["normalized_input"][0, 0, 0, 0] = np.nan
    assert compare_stages(a, b)["first_divergent"] == "normalized_input"


# ---------------------------------------------------------------------------------------------
# compare_reconstructions
# ---------------------------------------------------------------------------------------------


def test_compare_reconstructions_registers_by_origin(rng):
    b = fake_reconstruction(rng)
    # the same object one canvas pixel further right/down, recorded in the origin
    shifted = np.zeros_like(b.object)
    shifted[1:, 1:] = b.object[:-1, :-1]
    coverage = np.zeros_like(b.coverage)
    coverage[1:, 1:] = b.coverage[:-1, :-1]
    a = Reconstruction(shifted * np.exp(1j * 0.7), coverage, (b.origin_xy[0] - 1, b.origin_xy[1] - 1))
    report, aligned, reference = compare_reconstructions(a, b, tolerance=0.05)
    assert report["status"] == "ok", report["checks"]
    assert report["scores"]["phase_ssim"] > 0.99 and report["scores"]["amplitude_ssim"] > 0.99
    assert aligned.shape == reference.shape
    assert report["registration"]["compared_shape"][0] >= 20


def test_compare_reconstructions_detects_divergence(rng):
    b = fake_reconstruction(rng)
    noisy = b.object * np.exp(1j * rng.normal(0, 0.4, b.object.shape)).astype(np.complex64)
    report, _, _ = compare_reconstructions(Reconstruction(noisy, b.coverage, b.origin_xy), b)
    assert report["status"] == "diverged" and "phase_ssim" in report["diverged"]
    brighter = Reconstruction(b.object * np.float32(1.5), b.coverage, b.origin_xy)
    report, _, _ = compare_reconstructions(brighter, b)
    assert report["diverged"] == ["amplitude_scale"]  # SSIM is blind to the scale; the check is not
    disjoint = Reconstruction(b.object, b.coverage, (b.origin_xy[0] + 500, b.origin_xy[1]))
    with pytest.raises(ValueError, match="no covered pixel"):
        compare_reconstructions(disjoint, b)
