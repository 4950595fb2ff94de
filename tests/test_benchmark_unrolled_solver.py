"""benchmarks/unrolled_solver.py: its physics is refinement's (the adjoint, the PIE step), an untrained
solver is the plain PIE passes, training resumes where it stopped, and the evaluation writes every
method's scores."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import unrolled_solver  # noqa: E402

from ptychopinn.backends.torch.extract import extract_patches  # noqa: E402
from ptychopinn.simulation.simulate import simulate  # noqa: E402

TINY = ["--passes", "2", "--width", "4", "--depth", "2", "--patch-size", "32", "--scans-per-step", "1",
        "--threads", "1"]


@pytest.fixture(scope="module")
def scan_tensors():
    scan = simulate(object="lines", probe="disk", size=72, n=32, step=4.0, jitter=0.5, photons=1e6, seed=3)
    return scan, unrolled_solver.ScanTensors.of(scan)


def test_the_patch_adjoint_is_the_adjoint_of_the_extraction():
    rng = np.random.default_rng(0)
    canvas = torch.tensor(rng.normal(size=(40, 44)) + 1j * rng.normal(size=(40, 44)), dtype=torch.complex64)
    patches = torch.tensor(rng.normal(size=(3, 16, 16)) + 1j * rng.normal(size=(3, 16, 16)), dtype=torch.complex64)
    top_left = torch.tensor([[2.3, 5.7], [10.0, 1.5], [20.9, 25.2]], dtype=torch.float64)
    forward = torch.vdot(extract_patches(canvas, top_left, 16).flatten(), patches.flatten())
    adjoint = torch.vdot(canvas.flatten(), unrolled_solver.PatchAdjoint.apply(patches, top_left, (40, 44)).flatten())
    assert abs(complex(forward) - complex(adjoint)) < 1e-3 * abs(complex(forward))


def test_an_untrained_solver_is_the_plain_pie_passes_and_they_fit_the_data(scan_tensors):
    _, tensors = scan_tensors
    torch.manual_seed(0)
    untrained = unrolled_solver.UnrolledSolver(passes=4, width=4, depth=2)
    plain = unrolled_solver.UnrolledSolver(passes=4, learned=False)
    with torch.no_grad():
        ours, theirs = untrained(tensors)[-1], plain(tensors)[-1]
        start, end = unrolled_solver.misfit(tensors.start, tensors), unrolled_solver.misfit(theirs, tensors)
    assert torch.equal(ours, theirs)
    # four passes take the flat start's misfit down more than threefold (here 4.7-fold)
    assert float(end) < 0.3 * float(start)


@pytest.mark.parametrize("kind", sorted(unrolled_solver.CORRECTIONS))
def test_a_correction_starts_at_zero_on_a_canvas_of_any_size(kind):
    correction = unrolled_solver.CORRECTIONS[kind](width=4, depth=3)
    canvas = torch.randn(37, 42, dtype=torch.complex64)
    with torch.no_grad():
        out = correction(canvas, canvas, canvas.real.abs())
    assert out.shape == canvas.shape and out.dtype == torch.complex64
    assert float(out.abs().max()) == 0.0


def test_training_resumes_and_evaluation_scores_every_method(tmp_path):
    model_dir = tmp_path / "solver"
    unrolled_solver.main(["train", "--out-dir", str(model_dir), "--steps", "1", *TINY])
    with open(model_dir / "metrics.csv", "a") as metrics:  # a step logged after the checkpoint, then stopped
        metrics.write("1,-9.0,1.0\n")
    unrolled_solver.main(["train", "--out-dir", str(model_dir), "--steps", "2", *TINY])
    rows = (model_dir / "metrics.csv").read_text().splitlines()
    assert rows[0] == "step,loss,seconds" and [r.split(",")[0] for r in rows[1:]] == ["0", "1"]
    assert all(np.isfinite(float(r.split(",")[1])) for r in rows[1:])

    payload = unrolled_solver.main(["evaluate", "--model-dir", str(model_dir), "--quick", "--cases", "circuit-pupil",
                                    "*kb_mirror", "--results-dir", str(tmp_path / "results"), "--threads", "1"])
    assert payload["patch_size"] == 32 and payload["passes"] == 2
    assert {c["case"] for c in payload["cases"]} == {"circuit-pupil", "dead_leaves-kb_mirror",
                                                    "cells-kb_mirror", "natural-kb_mirror"}
    for case in payload["cases"]:
        for method in unrolled_solver.METHODS:
            assert -1.0 <= case[method]["phase_ssim"] <= 1.0 and case[method]["seconds"] > 0
    assert set(payload["medians"]) == {"held_out_objects", "held_out_probe"}
    written = json.loads((tmp_path / "results" / "unrolled_solver_quick_cpu.json").read_text())
    assert written["medians"] == payload["medians"]
    table = (tmp_path / "results" / "unrolled_solver_quick_cpu.md").read_text()
    assert table.count("| median phase SSIM") == 2 and "natural-kb_mirror" in table
