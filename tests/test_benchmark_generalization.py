"""benchmarks/generalization.py: its cases cover what issue 26 asks for, and --quick runs end to end
on a tiny pretrained model, writing every number to a temporary results directory."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import generalization  # noqa: E402

from ptychopinn.simulation import families  # noqa: E402

TINY_PRETRAINING = {"training": {"epochs": 1, "batch_size": 8},
                    "corpus": {"samples_per_epoch": 16, "validation_samples": 8, "workers": 0}}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    from ptychopinn.api import pretrain

    model_dir = tmp_path_factory.mktemp("tiny_general")
    summary = pretrain(model_dir, overrides=TINY_PRETRAINING, patch_size=32)
    results_dir = tmp_path_factory.mktemp("results")
    payload = generalization.main(["--model", str(summary.model_path), "--quick", "--results-dir", str(results_dir)])
    return payload, results_dir


def test_the_cases_cover_the_held_out_families_doses_overlap_and_scan_sizes():
    specs = generalization.case_specs()
    by_group = {g: [s for s in specs if s.group == g] for g in ("held_out_objects", "held_out_probe", "conditions")}
    assert {s.object_family for s in by_group["held_out_objects"]} == set(families.HELD_OUT_OBJECT_FAMILIES)
    assert all(s.probe_family in families.PROBE_FAMILIES for s in by_group["held_out_objects"])
    assert {s.probe_family for s in by_group["held_out_probe"]} == set(families.HELD_OUT_PROBE_FAMILIES)
    assert all(s.object_family in families.OBJECT_FAMILIES for s in by_group["held_out_probe"])
    assert {s.photons for s in specs} == {1e4, 1e6}
    assert max(s.step_per_diameter for s in specs) >= 0.5
    assert {s.patterns for s in specs} == {300, 3000}
    assert len({s.name for s in specs}) == len(specs)
    # a condition differs from its base case in the condition only: same draw, so the same probe
    bases = {s.name: s for s in specs if s.group != "conditions"}
    for variant in by_group["conditions"]:
        base = next(b for name, b in bases.items() if variant.name.startswith(name + "-"))
        assert variant.draw == base.draw and variant.object_family == base.object_family
    quick = generalization.case_specs(quick=True)
    assert {s.patterns for s in quick} == {generalization.QUICK_PATTERNS}
    assert {s.name for s in quick} == {s.name for s in specs if s.patterns != 3000}


def test_a_case_scan_has_about_the_asked_patterns_and_its_step_follows_the_probe():
    spec = next(s for s in generalization.case_specs() if s.name == "circuit-zone_plate-low_overlap")
    scan, geometry = generalization.build_scan(spec, 32)
    per_side = round(math.sqrt(spec.patterns))
    assert scan.n_patterns == geometry["patterns"] == per_side**2
    assert geometry["step_per_diameter"] == pytest.approx(generalization.LOW_OVERLAP_STEP_PER_DIAMETER, abs=1e-3)
    assert scan.object.shape == (geometry["object_size"],) * 2
    # the draws are reproducible and the probe is the base case's
    again, _ = generalization.build_scan(spec, 32)
    np.testing.assert_array_equal(scan.probe, again.probe)
    base_spec = next(s for s in generalization.case_specs() if s.name == "circuit-zone_plate")
    base, _ = generalization.build_scan(base_spec, 32)
    np.testing.assert_array_equal(scan.probe, base.probe)


def test_thresholds_are_read_from_the_curve_and_compared_in_wall_time():
    curve = [{"passes": 0, "seconds": 0.0, "phase_ssim": 0.5}, {"passes": 5, "seconds": 1.0, "phase_ssim": 0.92},
             {"passes": 10, "seconds": 2.0, "phase_ssim": 0.96}]
    assert generalization.to_threshold(curve, 0.9, offset_s=0.25) == {"passes": 5, "seconds": 1.25}
    assert generalization.to_threshold(curve, 0.95) == {"passes": 10, "seconds": 2.0}
    assert generalization.to_threshold(curve, 0.99) is None
    sooner = generalization.network_sooner
    assert sooner({"passes": 5, "seconds": 1.0}, {"passes": 20, "seconds": 3.0}) is True
    assert sooner({"passes": 5, "seconds": 4.0}, {"passes": 20, "seconds": 3.0}) is False
    assert sooner(None, {"passes": 20, "seconds": 3.0}) is False
    assert sooner({"passes": 5, "seconds": 4.0}, None) is True
    assert sooner(None, None) is None


def test_quick_run_records_every_case_with_sane_numbers(quick_run):
    payload, results_dir = quick_run
    (json_path,) = results_dir.glob("generalization_quick_*.json")
    recorded = json.loads(json_path.read_text())
    expected = [s.name for s in generalization.case_specs(quick=True)]
    assert [c["name"] for c in recorded["cases"]] == expected
    assert recorded["machine"]["cpu_count"] >= 1 and recorded["patch_size"] == 32
    config = generalization.QUICK_CONFIG
    for case in recorded["cases"]:
        one_pass = case["one_pass"]
        for key in ("phase_ssim", "amplitude_ssim"):
            assert math.isfinite(one_pass[key]) and -1 <= one_pass[key] <= 1, (case["name"], key)
        assert math.isfinite(one_pass["phase_psnr"]) and 0 <= one_pass["frc_0_5"] <= 1
        assert one_pass["patterns_per_second"] > 0 and case["patterns"] == generalization.QUICK_PATTERNS
        assert -1 <= case["backprojection_alone"]["phase_ssim"] <= 1 and 0 < case["phase_span"] <= 2 * math.pi
        for run, cap in ((case["from_network"], config.network_cap), (case["from_flat"], config.flat_cap)):
            points = run["curve"]
            assert all(-1 <= p["phase_ssim"] <= 1 for p in points)
            assert [p["seconds"] for p in points] == sorted(p["seconds"] for p in points)
            assert run["passes_run"] <= cap and run["final_phase_ssim"] == points[-1]["phase_ssim"]
        # the network's curve starts at the one pass; the flat run always goes to its cap
        assert case["from_network"]["curve"][0] == {"passes": 0, "seconds": 0.0,
                                                     **generalization.scores_only(one_pass)}
        assert case["from_flat"]["passes_run"] == config.flat_cap
        gap = one_pass["phase_ssim"] - case["from_flat"]["final_phase_ssim"]
        assert case["comparison"]["one_pass_minus_flat_at_cap"] == pytest.approx(gap, abs=1e-3)
    for threshold, counts in recorded["network_sooner"].items():
        verdicts = [c["comparison"][f"network_sooner_{threshold}"] for c in recorded["cases"]]
        assert counts == {"yes": verdicts.count(True), "no": verdicts.count(False),
                          "neither_reached": verdicts.count(None)}
    assert {g: m["cases"] for g, m in recorded["medians"].items()} == {"held_out_objects": 6, "held_out_probe": 3}
    held_out = [c["one_pass"]["phase_ssim"] for c in recorded["cases"] if c["group"] == "held_out_objects"]
    assert recorded["medians"]["held_out_objects"]["phase_ssim"] == pytest.approx(np.median(held_out), abs=1e-4)
    alone = [c["backprojection_alone"]["phase_ssim"] for c in recorded["cases"] if c["group"] == "held_out_probe"]
    assert recorded["medians"]["held_out_probe"]["backprojection_phase_ssim"] == pytest.approx(np.median(alone), abs=1e-4)


def test_the_back_projection_alone_has_no_phase_for_a_flat_object_and_the_object_s_for_a_phase_object():
    """A flat object's exit wave is the probe itself, whose far-field phase the back-projection
    borrows: every estimate is |P|²/(|P|² + δ·max|P|²), real and positive, so the stitched
    estimate has no phase at all. Under a phase object, it shows that object's phase."""
    from ptychopinn.config import InferenceConfig
    from ptychopinn.simulation.simulate import simulate

    inference = InferenceConfig(stitch_weighting="probe")
    probe = families.random_probe("zone_plate", 32, np.random.default_rng(0))
    flat = simulate(object=np.ones((64, 64), np.complex64), probe=probe, size=64, n=32, step=3.0,
                    photons=1e12, seed=0)
    estimate = generalization.backprojection_alone(inference, flat)
    covered = estimate.coverage > 0
    assert covered.sum() > 20**2
    # (not exactly 0: the probe's far-field phase fades out where that field is dark)
    assert np.abs(np.angle(estimate.object[covered])).max() < 0.01

    obj = families.random_object("siemens_star", 64, np.random.default_rng(1))
    scan = simulate(object=obj, probe=probe, size=64, n=32, step=3.0, photons=1e12, seed=0)
    scored = generalization.scores(generalization.backprojection_alone(inference, scan), scan)
    assert scored["phase_ssim"] > 0.1


def test_quick_run_writes_one_table_row_per_case_and_the_medians(quick_run):
    payload, results_dir = quick_run
    (md_path,) = results_dir.glob("generalization_quick_*.md")
    rows = [line for line in md_path.read_text().splitlines() if line.startswith("| ")]
    names = [row.split(" | ")[0].removeprefix("| ") for row in rows]
    assert names[0] == "case"  # the header
    assert names[1:-2] == [c["name"] for c in payload["cases"]]
    assert all(name.startswith("median, ") for name in names[-2:])
    # every row has the header's columns
    assert {row.count(" | ") for row in rows} == {rows[0].count(" | ")}
