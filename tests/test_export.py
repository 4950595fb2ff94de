"""``ptychopinn export --onnx``: the generator as ONNX, run by onnxruntime, reproduces PyTorch for
any batch size; the documented feature recipe is the model's own; the metadata states the contract;
models the graph cannot hold and bad paths are one clear line (exit 2) with nothing written."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from ptychopinn.backends import get_backend
from ptychopinn.backends.torch import onnx_export
from ptychopinn.backends.torch.onnx_export import ExportMismatchError, export_onnx
from ptychopinn.cli import export as export_command
from ptychopinn.cli import main
from ptychopinn.config import resolve_settings
from ptychopinn.data import save_scan
from ptychopinn.model.architecture import Architecture, ModelGeometry
from ptychopinn.model.trained import MODEL_FILE, TrainedModel, load_model
from ptychopinn.physics.backprojection import input_features
from ptychopinn.physics.scaling import ScaleContract, input_scale, normalize_diffraction

N = 32
GUIDE = Path(__file__).resolve().parents[1] / "docs" / "guides" / "export.md"
# onnxruntime against PyTorch, float32: measured ~2e-7 on amplitude, phase and complex patch (also
# through the NumPy features); the untrained networks barely react to their input, so a wrong
# normalisation moves their patches by only ~2e-4 and the bound must stay well below that
TIGHT = 1e-5


def random_model(n: int = N, *, gridsize: int = 1, seed: int = 0, **model_settings) -> TrainedModel:
    """An untrained model (random initial weights, filter scale 1) with the scan-free pieces a
    bundle needs; ``model_settings``: the ``model`` section (group_encoding, input_mode, head)."""
    settings = resolve_settings(None, {
        "data": {"gridsize": gridsize, "neighbor_count": max(4, gridsize**2)},
        "model": {"n_filters_scale": 1, **model_settings},
    })
    geometry = ModelGeometry(patch_size=n, canvas_size=n + 12)
    probe = settings.physics.normalized_probe(_disk_probe(n))
    torch.manual_seed(seed)
    module = get_backend("torch").build_module(Architecture.from_settings(settings, geometry), probe)
    weights = {name: value.detach().numpy().copy() for name, value in module.state_dict().items()}
    scales = ScaleContract(patch_size=n, probe_scale=settings.physics.probe_scale, probe_mask=False,
                           input_scale=1.0, mean_counts=(n / 2) ** 2, photon_scale=1.0)
    return TrainedModel(settings, geometry, scales, probe, weights)


def _disk_probe(n: int) -> np.ndarray:
    """A soft disk with a quadratic phase (not centro-symmetric in phase, like a real probe)."""
    y, x = np.mgrid[:n, :n] - n / 2
    r2 = (x**2 + y**2) / (n / 4) ** 2
    return (np.exp(-(r2**2)) * np.exp(1j * (0.3 * r2 + 0.2 * x / n))).astype(np.complex64)


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """A per-pattern backprojection model saved as a run directory, loaded back as the CLI does."""
    run = tmp_path_factory.mktemp("run")
    random_model().save(run / MODEL_FILE)
    return load_model(run)


def run_onnx(path, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    amplitude, phase = session.run(["amplitude", "phase"], {"features": features})
    return amplitude, phase


def test_export_reports_agreement_and_writes_a_valid_model(saved_model, tmp_path):
    path = tmp_path / "generator.onnx"
    report = export_onnx(saved_model, path)
    assert report.agrees and report.path == path and report.opset == 17
    assert report.size_bytes == path.stat().st_size > 100_000  # the weights are in the file
    assert report.batch_sizes == (1, 5)
    assert max(report.max_amplitude_difference, report.max_phase_difference,
               report.max_patch_difference) < TIGHT
    graph = onnx.load(path)
    onnx.checker.check_model(graph, full_check=True)
    assert graph.opset_import[0].version == 17
    assert [i.name for i in graph.graph.input] == ["features"]
    assert [o.name for o in graph.graph.output] == ["amplitude", "phase"]
    assert not list(tmp_path.glob(".*.part"))  # the temporary file was renamed, not left


def normalised_scan(model: TrainedModel, scan) -> tuple[np.ndarray, np.ndarray]:
    """The scan's normalised amplitudes X_n and probe P_n, by the library's functions."""
    amplitudes = normalize_diffraction(scan.diffraction, input_scale(scan.diffraction))
    return amplitudes, model.settings.physics.normalized_probe(scan.probe)


def torch_patches(model: TrainedModel, probe: np.ndarray, amplitudes: np.ndarray) -> np.ndarray:
    """(B, N, N) normalised patterns → the model's complex patches (B, N, N) with the scan's probe
    (PtychoPINN.generate, the features computed in torch, as ``infer`` runs it)."""
    module = dataclasses.replace(model, probe=probe).build_module(device="cpu")
    with torch.no_grad():
        return module.generate(torch.from_numpy(amplitudes[:, None])).numpy()[:, 0]


def test_the_documented_recipe_reproduces_the_models_patches(saved_model, tiny_scan, tmp_path):
    """Features computed with NumPy from a real scan (input_features), through onnxruntime: the
    model's own complex patches for batches of 1 and 5 (the batch axis is dynamic; the export
    traced 2)."""
    path = export_onnx(saved_model, tmp_path / "g.onnx").path
    amplitudes, probe = normalised_scan(saved_model, tiny_scan)
    for batch in (1, 5):
        patterns = amplitudes[10:10 + batch]
        amplitude, phase = run_onnx(path, input_features(patterns, probe).astype(np.float32))
        assert amplitude.shape == phase.shape == (batch, 1, N, N)
        assert amplitude.dtype == phase.dtype == np.float32
        assert np.all(np.abs(phase) <= np.pi)
        expected = torch_patches(saved_model, probe, patterns)
        assert np.abs(expected).max() > 0.1  # a patch worth comparing
        assert np.abs(amplitude[:, 0] * np.exp(1j * phase[:, 0]) - expected).max() < TIGHT


def test_amplitude_input_mode_takes_one_feature_per_pattern_at_any_gridsize(tmp_path):
    """gridsize 2 with per-pattern encoding: one network per pattern, so the graph is the same."""
    model = random_model(gridsize=2, input_mode="amplitude", head="central", seed=1)
    report = export_onnx(model, tmp_path / "g.onnx", opset=13)
    assert report.agrees and report.max_difference < TIGHT
    features = np.random.default_rng(0).uniform(0, 2, (3, 1, N, N)).astype(np.float32)
    amplitude, _ = run_onnx(report.path, features)
    assert amplitude.shape == (3, 1, N, N)
    # the central head: zero outside the N/2 × N/2 centre
    assert np.abs(amplitude[..., : N // 4, :]).max() == 0 and np.abs(amplitude[..., N // 4 : 3 * N // 4,
                                                                     N // 4 : 3 * N // 4]).min() > 0


def guide_snippet() -> str:
    """The Python block the export guide says this file runs."""
    text = GUIDE.read_text(encoding="utf-8")
    found = re.search(r"<!-- tests/test_export.py runs this block -->\n```python\n(.*?)```", text, re.DOTALL)
    assert found, f"{GUIDE}: the tested snippet is missing"
    return found.group(1)


def test_the_guides_numpy_snippet_reproduces_the_model(saved_model, tiny_scan, tmp_path, monkeypatch):
    """The guide's NumPy-only recipe (its own features and normalisations) on a scan file gives
    the patches the model computes for that scan in PyTorch."""
    export_onnx(saved_model, tmp_path / "generator.onnx")
    save_scan(tiny_scan, tmp_path / "scan.npz")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(guide_snippet(), str(GUIDE), "exec"), namespace)
    amplitudes, probe = normalised_scan(saved_model, tiny_scan)
    expected = torch_patches(saved_model, probe, amplitudes[:64])
    assert namespace["patches"].shape == expected.shape == (64, N, N)
    assert np.abs(namespace["patches"] - expected).max() < TIGHT  # a wrong probe scale: 2e-4


def test_metadata_states_the_contract(saved_model, tmp_path):
    path = export_onnx(saved_model, tmp_path / "g.onnx").path
    metadata = {p.key: p.value for p in onnx.load(path).metadata_props}
    assert metadata["ptychopinn.patch_size"] == str(N)
    assert metadata["ptychopinn.input_mode"] == "backprojection"
    assert "(batch, 3, N, N)" in metadata["ptychopinn.input"]
    assert "ptychopinn.physics.backprojection.input_features" in metadata["ptychopinn.feature_function"]
    assert metadata["ptychopinn.probe_normalization"] == "mean_amplitude"
    assert float(metadata["ptychopinn.probe_scale"]) == saved_model.settings.physics.probe_scale
    assert metadata["ptychopinn.package_version"] == __import__("ptychopinn").__version__
    bundle_digest = hashlib.sha256(saved_model.source.read_bytes()).hexdigest()
    assert metadata["ptychopinn.model_sha256"] == bundle_digest


def test_an_unsaved_model_has_no_sha256(tmp_path):
    path = export_onnx(random_model(), tmp_path / "g.onnx").path
    keys = {p.key for p in onnx.load(path).metadata_props}
    assert "ptychopinn.model_sha256" not in keys and "ptychopinn.patch_size" in keys


def test_a_disagreeing_graph_is_refused_and_not_written(saved_model, tmp_path, monkeypatch):
    monkeypatch.setattr(onnx_export, "verify", lambda *args: (0.5, 0.0, 0.0))
    with pytest.raises(ExportMismatchError, match="disagrees"):
        export_onnx(saved_model, tmp_path / "g.onnx")
    assert list(tmp_path.iterdir()) == []


def test_a_unet_exports_and_agrees_with_pytorch(tmp_path):
    report = export_onnx(random_model(generator="unet"), tmp_path / "unet.onnx")
    assert report.agrees and report.max_difference < 1e-4


def test_library_refuses_what_the_graph_cannot_hold(saved_model, tmp_path):
    with pytest.raises(ValueError, match="per_pattern"):
        export_onnx(random_model(gridsize=2, group_encoding="joint"), tmp_path / "g.onnx")
    with pytest.raises(ValueError, match="opset 9"):
        export_onnx(saved_model, tmp_path / "g.onnx", opset=9)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# the command
# ---------------------------------------------------------------------------------------------


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if "error:" in line]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_cli_round_trip(saved_model, tmp_path, capsys):
    path = tmp_path / "out" / "generator.onnx"
    assert main(["export", "--model", str(saved_model.source.parent), "--onnx", str(path)]) == 0
    out = capsys.readouterr().out
    assert "onnxruntime vs PyTorch at batch sizes 1, 5" in out and str(path) in out
    onnx.checker.check_model(onnx.load(path), full_check=True)
    amplitude, phase = run_onnx(path, np.zeros((2, 3, N, N), np.float32))
    assert amplitude.shape == phase.shape == (2, 1, N, N)


def test_cli_refuses_a_joint_model(tmp_path, capsys):
    model_file = random_model(gridsize=2, group_encoding="joint").save(tmp_path / MODEL_FILE)
    code = main(["export", "--model", str(model_file), "--onnx", str(tmp_path / "g.onnx")])
    assert code == 2
    assert "per_pattern" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "g.onnx").exists()


def test_cli_refuses_an_output_under_a_file(saved_model, tmp_path, capsys):
    (tmp_path / "text.txt").write_text("not a directory")
    code = main(["export", "--model", str(saved_model.source), "--onnx", str(tmp_path / "text.txt" / "g.onnx")])
    assert code == 2
    assert "text.txt" in one_error_line(capsys.readouterr().err)


def test_cli_reports_a_disagreement_in_one_line(saved_model, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(onnx_export, "verify", lambda *args: (0.0, 0.0, 2e-4))
    code = main(["export", "--model", str(saved_model.source), "--onnx", str(tmp_path / "g.onnx")])
    assert code == 2
    line = one_error_line(capsys.readouterr().err)
    assert "disagrees" in line and "0.0002" in line
    assert not (tmp_path / "g.onnx").exists()


def test_cli_without_onnxruntime_names_the_install(saved_model, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now fails
    code = main(["export", "--model", str(saved_model.source), "--onnx", str(tmp_path / "g.onnx")])
    assert code == 2
    line = one_error_line(capsys.readouterr().err)
    assert "onnxruntime" in line and "pip install 'ptychopinn[export]'" in line


def test_cli_defaults_are_the_librarys():
    assert export_command.DEFAULT_OPSET == onnx_export.DEFAULT_OPSET
    assert export_command.DEFAULT_TOLERANCE == onnx_export.DEFAULT_TOLERANCE
