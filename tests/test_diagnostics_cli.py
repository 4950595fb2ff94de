"""The forward-parity toolkit through the real console script: train/infer diagnostic flags and
the compare-stats, compare-recon and compare-stages commands (exit 0 ok, 1 diverged, 2 error)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import STAT_KEYS, assert_real_png, run_cli, strict_load
from ptychopinn.data import save_scan
from ptychopinn.diagnostics import load_stages, save_stages, write_strict_json
from ptychopinn.diagnostics.stages import STAGE_NAMES
from ptychopinn.reconstruction.result import Reconstruction

N_GROUPS = 48


@pytest.fixture(scope="module")
def workspace(tiny_scan, tmp_path_factory):
    root = tmp_path_factory.mktemp("diagnostics_cli")
    save_scan(tiny_scan, root / "scan.npz")
    return root


@pytest.fixture(scope="module")
def trained(workspace):
    out = workspace / "run"
    result = run_cli("train", "--train-data", str(workspace / "scan.npz"), "--output-dir", str(out),
                     "--gridsize", "2", "--n-groups", str(N_GROUPS), "--epochs", "1", "--batch-size", "8",
                     "--n-filters-scale", "1", "--seed", "0", "--log-patch-stats", "--patch-stats-limit", "3")
    return out, result


@pytest.fixture(scope="module")
def inferred(workspace, trained):
    """Two inferences of the same model and scan with different batch sizes: one with every
    diagnostic (default dump location), one with only a dump in a chosen directory."""
    run_dir, _ = trained
    full = workspace / "infer_full"
    first = run_cli("infer", "--model", str(run_dir), "--data", str(workspace / "scan.npz"),
                    "--output-dir", str(full), "--batch-size", "16", "--debug-dump", "--log-patch-stats",
                    "--patch-stats-limit", "2", "--capture-stages", str(full / "stages.npz"),
                    "--capture-groups", "4")
    plain = workspace / "infer_plain"
    second = run_cli("infer", "--model", str(run_dir / "model.pinn"), "--data", str(workspace / "scan.npz"),
                     "--output-dir", str(plain), "--batch-size", "7", "--debug-dump",
                     str(workspace / "dump_elsewhere"), "-q")
    return full, first, plain, second


def test_train_records_predicted_patch_statistics(trained):
    out, result = trained
    records = strict_load(out / "analysis" / "patch_stats.json")
    assert len(records) == 3  # --patch-stats-limit
    assert [r["phase"] for r in records] == ["train"] * 3 and [r["batch_idx"] for r in records] == [0, 1, 2]
    for record in records:
        assert record["batch_size"] == 8 and record["n_patches"] == 8 * 4  # gridsize 2: C = 4
        assert 0 < record["global_mean"] < 2 and record["var_zero_mean"] > 0  # 2·sigmoid range
        assert [p["patch_idx"] for p in record["per_patch"]] == [0, 1, 2, 3]
        for patch in record["per_patch"]:
            assert patch["min"] <= patch["mean"] <= patch["max"] and patch["std"] >= 0
    assert_real_png(out / "analysis" / "patch_grid.png")
    assert result.stderr.count("patch stats train batch") == 3  # one INFO line per batch


def test_infer_writes_the_debug_dump(inferred):
    full, result, _, _ = inferred
    dump = full / "debug_dump"
    stats = strict_load(dump / "stats.json")
    assert set(stats) == {"patch_amplitude", "canvas_amplitude"}
    for block in stats.values():
        assert STAT_KEYS <= set(block)
        assert block["min"] <= block["mean"] <= block["max"] and block["var_zero_mean"] > 0
    assert stats["patch_amplitude"]["n_patches"] == N_GROUPS * 4  # every patch of every group
    recon = Reconstruction.load(full / "reconstruction.npz")
    assert stats["canvas_amplitude"]["n_pixels"] == int(recon.mask.sum())
    offsets = strict_load(dump / "offsets.json")
    assert offsets["count"] == N_GROUPS and offsets["channels"] == 4
    assert np.asarray(offsets["first_offsets"]).shape == (8, 4, 2)
    assert abs(offsets["dx_mean"]) < 1e-6 and offsets["dx_std"] > 0  # offsets are centred per group
    canvas = strict_load(dump / "canvas.json")
    assert canvas["patch_size"] == 32 and canvas["n_patches"] == N_GROUPS
    assert canvas["canvas_shape"] == list(recon.object.shape)
    assert [canvas["origin"]["x"], canvas["origin"]["y"]] == list(recon.origin_xy)
    for name in ("patch_grid_amp.png", "patch_grid_phase.png", "canvas.png"):
        assert_real_png(dump / name)
    assert "debug dump:" in result.stdout


def test_infer_records_patch_statistics(inferred):
    full, result, plain, _ = inferred
    records = strict_load(full / "analysis" / "patch_stats.json")
    assert [(r["phase"], r["batch_idx"], r["batch_size"]) for r in records] == [("infer", 0, 16), ("infer", 1, 16)]
    assert result.stderr.count("patch stats infer batch") == 2
    assert not (plain / "analysis").exists() and not (plain / "debug_dump").exists()  # off by default


def test_capture_stages_file(inferred):
    full, result, _, _ = inferred
    with np.load(full / "stages.npz", allow_pickle=False) as data:
        assert set(data.files) == {"meta", *STAGE_NAMES}  # gridsize 2 with object_big: all stages
        meta = json.loads(str(data["meta"]))
    assert meta["backend"] == "torch" and meta["model"].endswith("model.pinn")
    assert meta["stage_order"] == list(STAGE_NAMES) and meta["n_groups"] == 4
    assert np.asarray(meta["group_indices"]).shape == (4, 4)
    stages, _ = load_stages(full / "stages.npz")
    assert stages["normalized_input"].shape == (4, 4, 32, 32)
    assert stages["object_patches"].dtype == np.complex64 and stages["object_patches"].shape == (4, 4, 32, 32)
    assert stages["predicted_amplitude"].dtype == np.float32
    assert "stages of 4 groups" in result.stdout


def test_dump_location_and_batching_do_not_change_the_statistics(workspace, inferred, tmp_path):
    full, _, _, _ = inferred
    elsewhere = workspace / "dump_elsewhere"
    assert (elsewhere / "stats.json").is_file()  # --debug-dump DIR
    result = run_cli("compare-stats", str(full / "debug_dump" / "stats.json"), str(elsewhere),
                     "--label-reference", "batch16", "--label-candidate", "batch7",
                     "--out-dir", str(tmp_path))
    assert "batch16" in result.stdout and "→ ok" in result.stdout
    report = strict_load(tmp_path / "compare_stats.json")
    assert report["status"] == "ok"
    for entry in report["metrics"].values():  # streamed statistics do not depend on the batching
        assert entry["relative"] < 1e-6


def test_compare_stats_exit_code_on_divergence(inferred, tmp_path):
    full, _, _, _ = inferred
    stats = strict_load(full / "debug_dump" / "stats.json")
    stats["patch_amplitude"]["var_zero_mean"] *= 0.9  # 10 % less within-patch variance
    write_strict_json(tmp_path / "candidate.json", stats)
    result = run_cli("compare-stats", str(full / "debug_dump"), str(tmp_path / "candidate.json"),
                     "--out-dir", str(tmp_path / "r"), check=False)
    assert result.returncode == 1, result.stderr
    assert "DIVERGED: patch_amplitude.var_zero_mean" in result.stdout
    assert strict_load(tmp_path / "r" / "compare_stats.json")["diverged"] == ["patch_amplitude.var_zero_mean"]
    relaxed = run_cli("compare-stats", str(full / "debug_dump"), str(tmp_path / "candidate.json"),
                      "--tolerance", "0.15", check=False)
    assert relaxed.returncode == 0  # --tolerance takes effect


def test_comparison_errors_exit_2(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    for args in (("compare-stats", str(tmp_path / "missing.json"), str(tmp_path / "bad.json")),
                 ("compare-stats", str(tmp_path / "bad.json"), str(tmp_path / "bad.json")),
                 ("compare-stages", str(tmp_path / "bad.json"), str(tmp_path / "bad.json")),
                 ("compare-recon", str(tmp_path / "x.npz"), str(tmp_path / "y.npz"))):
        result = run_cli(*args, check=False)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr and str(tmp_path) in result.stderr


def test_compare_stages(inferred, tmp_path):
    full, _, _, _ = inferred
    capture = full / "stages.npz"
    same = run_cli("compare-stages", str(capture), str(capture), "--out-dir", str(tmp_path / "same"))
    assert "all stages agree" in same.stdout
    assert strict_load(tmp_path / "same" / "compare_stages.json")["status"] == "ok"
    stages, meta = load_stages(capture)
    stages["object_patches"] = stages["object_patches"] * np.float32(1.001)  # a slip after the merge
    stages["predicted_amplitude"] = stages["predicted_amplitude"] * np.float32(1.001)
    save_stages(tmp_path / "slipped.npz", stages, meta)
    result = run_cli("compare-stages", str(capture), str(tmp_path / "slipped.npz"), check=False)
    assert result.returncode == 1 and "first divergent stage: object_patches" in result.stdout
    assert run_cli("compare-stages", str(capture), str(tmp_path / "slipped.npz"), "--tolerance", "0.01",
                   check=False).returncode == 0  # --tolerance takes effect


def test_compare_recon(inferred, tmp_path):
    full, _, plain, _ = inferred
    same = run_cli("compare-recon", str(plain / "reconstruction.npz"), str(full / "reconstruction.npz"),
                   "--out-dir", str(tmp_path / "cmp"))
    assert "→ ok" in same.stdout and "infer_full vs infer_plain" in same.stdout
    report = strict_load(tmp_path / "cmp" / "compare_recon.json")
    assert report["status"] == "ok" and report["scores"]["phase_ssim"] > 0.999
    assert_real_png(tmp_path / "cmp" / "compare_recon.png")
    recon = Reconstruction.load(plain / "reconstruction.npz")
    rng = np.random.default_rng(0)
    noisy = recon.object * np.exp(1j * rng.normal(0, 0.3, recon.object.shape)).astype(np.complex64)
    Reconstruction(noisy, recon.coverage, recon.origin_xy).save(tmp_path / "noisy" / "reconstruction.npz")
    result = run_cli("compare-recon", str(plain / "reconstruction.npz"),
                     str(tmp_path / "noisy" / "reconstruction.npz"), "--label-candidate", "noisy", check=False)
    assert result.returncode == 1 and "DIVERGED" in result.stdout and "noisy vs" in result.stdout


@pytest.mark.parametrize("command", ["compare-stats", "compare-recon", "compare-stages"])
def test_help(command):
    out = run_cli(command, "--help").stdout
    assert "usage: ptychopinn" in out and "Exit status" in out
