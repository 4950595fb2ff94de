"""Every command against a corpus of bad inputs: exit status 2, one line naming the culprit (the
file, setting or flag), no traceback, and no partial output."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from helpers import run_cli
from ptychopinn.cli import main
from ptychopinn.data import save_scan
from ptychopinn.diagnostics import write_strict_json
from ptychopinn.reconstruction.result import Reconstruction
from ptychopinn.simulation.simulate import simulate

NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")


@pytest.fixture(scope="module")
def ws(tiny_scan, tmp_path_factory):
    """Valid and broken inputs side by side; every command's output would go to ws/new."""
    from ptychopinn.api import train
    from ptychopinn.config import resolve_settings

    root = tmp_path_factory.mktemp("bad_inputs")
    save_scan(tiny_scan, root / "scan.npz")
    save_scan(dataclasses.replace(simulate("dots", size=64, n=32, step=6.0, photons=1e5, seed=2), object=None),
              root / "noref.npz")
    (root / "text.txt").write_text("not what you think")
    (root / "adir").mkdir()
    (root / "bad.yaml").write_text("training:\n  epochs: [1\n")
    (root / "unknown.yaml").write_text("training:\n  epoch: 3\n")
    (root / "list.yaml").write_text("- 1\n- 2\n")
    (root / "infer_data.yaml").write_text("data:\n  gridsize: 3\n")
    (root / "bad_corpus.yaml").write_text("corpus:\n  dose_range: [1.0e+6, 1.0e+3]\n")
    recon = Reconstruction(tiny_scan.object, np.ones(tiny_scan.object.shape, np.float32), (0.0, 0.0))
    recon.save(root / "recon.npz")
    block = {"mean": 1.0, "std": 0.5, "var_zero_mean": 0.25, "min": 0.0, "max": 2.0}
    write_strict_json(root / "stats.json", {"patch_amplitude": block, "canvas_amplitude": block})
    settings = resolve_settings(overrides={"data": {"gridsize": 1, "n_groups": 16}, "model": {"n_filters_scale": 1},
                                           "training": {"epochs": 1, "batch_size": 8}})
    train(tiny_scan, root / "run", settings)
    return root


TRAIN = ["train", "--train-data", "{ws}/scan.npz", "--output-dir", "{ws}/new"]
INFER = ["infer", "--model", "{ws}/run", "--data", "{ws}/scan.npz", "--output-dir", "{ws}/new"]
REFINE = ["refine", "--data", "{ws}/scan.npz", "--output-dir", "{ws}/new"]
EVALUATE = ["evaluate", "--recon", "{ws}/recon.npz", "--truth", "{ws}/scan.npz", "--output-dir", "{ws}/new"]
PRETRAIN = ["pretrain", "--output-dir", "{ws}/new", "--epochs", "1"]
PARITY = ["parity", "--model", "{ws}/run", "--data", "{ws}/scan.npz", "--output-dir", "{ws}/new", "--groups", "2"]


def replaced(arguments: list[str], **changes: str) -> list[str]:
    """``arguments`` with the value of each ``--flag`` in ``changes`` (key: flag without dashes,
    underscores for dashes) replaced."""
    out = list(arguments)
    for key, value in changes.items():
        out[out.index("--" + key.replace("_", "-")) + 1] = value
    return out


# (id, command line with {ws} for the workspace, what the message must name)
CASES = [
    ("simulate-into-a-directory", ["simulate", "{ws}/adir"], "adir"),
    ("simulate-under-a-file", ["simulate", "{ws}/text.txt/x.npz"], "text.txt"),
    ("simulate-size-0", ["simulate", "{ws}/new/x.npz", "--size", "0"], "--size"),
    ("simulate-negative-photons", ["simulate", "{ws}/new/x.npz", "--photons", "-1"], "--photons"),
    ("simulate-unknown-object", ["simulate", "{ws}/new/x.npz", "--object", "nosuch"], "nosuch"),
    ("inspect-missing", ["inspect", "{ws}/missing.npz"], "missing.npz"),
    ("inspect-corrupt", ["inspect", "{ws}/text.txt"], "text.txt"),
    ("inspect-plot-under-a-file", ["inspect", "{ws}/scan.npz", "--plot", "{ws}/text.txt/p.png"], "text.txt"),
    ("train-malformed-yaml", [*TRAIN, "--config", "{ws}/bad.yaml"], "bad.yaml"),
    ("train-unknown-key", [*TRAIN, "--config", "{ws}/unknown.yaml"], "training.epoch"),
    ("train-config-not-a-mapping", [*TRAIN, "--config", "{ws}/list.yaml"], "list.yaml"),
    ("train-config-missing", [*TRAIN, "--config", "{ws}/nope.yaml"], "nope.yaml"),
    ("train-negative-epochs", [*TRAIN, "--epochs", "-1"], "--epochs"),
    ("train-gridsize-0", [*TRAIN, "--gridsize", "0"], "--gridsize"),
    ("train-unknown-loss", [*TRAIN, "--loss", "bogus"], "loss"),
    ("train-output-is-a-file", replaced(TRAIN, output_dir="{ws}/text.txt"), "text.txt"),
    ("train-output-under-a-file", replaced(TRAIN, output_dir="{ws}/text.txt/run"), "text.txt"),
    ("train-missing-data", replaced(TRAIN, train_data="{ws}/missing.npz"), "missing.npz"),
    ("train-corrupt-data", replaced(TRAIN, train_data="{ws}/text.txt"), "text.txt"),
    ("train-corrupt-test-data", [*TRAIN, "--test-data", "{ws}/text.txt"], "text.txt"),
    ("train-missing-checkpoint", [*TRAIN, "--resume", "{ws}/last.ckpt"], "last.ckpt"),
    ("train-unknown-accelerator", [*TRAIN, "--accelerator", "tpu"], "--accelerator"),
    pytest.param("train-no-gpu", [*TRAIN, "--accelerator", "gpu"], "no GPU", marks=NO_GPU),
    ("train-too-many-groups", [*TRAIN, "--n-groups", "100000", "--epochs", "1"], "n_groups"),
    ("infer-missing-model", replaced(INFER, model="{ws}/nope.pinn"), "nope.pinn"),
    ("infer-corrupt-model", replaced(INFER, model="{ws}/text.txt"), "text.txt"),
    ("infer-directory-without-model", replaced(INFER, model="{ws}/adir"), "adir"),
    ("infer-corrupt-data", replaced(INFER, data="{ws}/text.txt"), "text.txt"),
    ("infer-negative-refine-passes", [*INFER, "--refine-passes", "-1"], "passes"),
    ("infer-stitch-crop-0", [*INFER, "--stitch-crop", "0"], "--stitch-crop"),
    ("infer-batch-size-0", [*INFER, "--batch-size", "0"], "--batch-size"),
    ("infer-config-with-model-settings", [*INFER, "--config", "{ws}/infer_data.yaml"], "data"),
    ("infer-malformed-config", [*INFER, "--config", "{ws}/bad.yaml"], "bad.yaml"),
    ("infer-output-is-a-file", replaced(INFER, output_dir="{ws}/text.txt"), "text.txt"),
    ("infer-capture-groups-0", [*INFER, "--capture-stages", "{ws}/new/s.npz", "--capture-groups", "0"],
     "--capture-groups"),
    ("infer-negative-finetune", [*INFER, "--finetune-epochs", "-1"], "--finetune-epochs"),
    pytest.param("infer-no-gpu", [*INFER, "--accelerator", "cuda"], "no GPU", marks=NO_GPU),
    ("evaluate-missing-recon", replaced(EVALUATE, recon="{ws}/missing.npz"), "missing.npz"),
    ("evaluate-corrupt-recon", replaced(EVALUATE, recon="{ws}/text.txt"), "text.txt"),
    ("evaluate-scan-as-recon", replaced(EVALUATE, recon="{ws}/scan.npz"), "scan.npz"),
    ("evaluate-truth-without-object", replaced(EVALUATE, truth="{ws}/noref.npz"), "noref.npz"),
    ("evaluate-corrupt-truth", replaced(EVALUATE, truth="{ws}/text.txt"), "text.txt"),
    ("evaluate-output-is-a-file", replaced(EVALUATE, output_dir="{ws}/text.txt"), "text.txt"),
    ("refine-zero-passes", [*REFINE, "--passes", "0"], "--passes"),
    ("refine-negative-flat-check", [*REFINE, "--flat-check", "-1"], "flat_check_passes"),
    ("refine-step-without-optimiser", [*REFINE, "--refine-lr", "0.1"], "--refine-optimizer"),
    ("refine-mpie-poisson", [*REFINE, "--refine-optimizer", "mpie", "--refine-loss", "poisson"], "Poisson"),
    ("refine-missing-init", [*REFINE, "--init", "{ws}/missing.npz"], "missing.npz"),
    ("refine-corrupt-init", [*REFINE, "--init", "{ws}/text.txt"], "text.txt"),
    ("refine-corrupt-data", replaced(REFINE, data="{ws}/text.txt"), "text.txt"),
    ("refine-unknown-key", [*REFINE, "--config", "{ws}/unknown.yaml"], "training"),
    ("refine-output-is-a-file", replaced(REFINE, output_dir="{ws}/text.txt"), "text.txt"),
    pytest.param("refine-no-gpu", [*REFINE, "--accelerator", "gpu"], "no GPU", marks=NO_GPU),
    ("demo-output-is-a-file", ["demo", "--output-dir", "{ws}/text.txt"], "text.txt"),
    ("demo-epochs-0", ["demo", "--output-dir", "{ws}/new", "--epochs", "0"], "--epochs"),
    ("demo-gridsize-0", ["demo", "--output-dir", "{ws}/new", "--gridsize", "0"], "--gridsize"),
    ("parity-missing-model", replaced(PARITY, model="{ws}/nope.pinn"), "nope.pinn"),
    ("parity-corrupt-data", replaced(PARITY, data="{ws}/text.txt"), "text.txt"),
    ("parity-groups-0", replaced(PARITY, groups="0"), "--groups"),
    ("compare-stats-missing", ["compare-stats", "{ws}/missing.json", "{ws}/stats.json"], "missing.json"),
    ("compare-stats-corrupt", ["compare-stats", "{ws}/stats.json", "{ws}/text.txt"], "text.txt"),
    ("compare-stats-out-dir-is-a-file",
     ["compare-stats", "{ws}/stats.json", "{ws}/stats.json", "--out-dir", "{ws}/text.txt"], "text.txt"),
    ("compare-stats-negative-tolerance",
     ["compare-stats", "{ws}/stats.json", "{ws}/stats.json", "--tolerance", "-1"], "--tolerance"),
    ("compare-recon-corrupt", ["compare-recon", "{ws}/recon.npz", "{ws}/text.txt"], "text.txt"),
    ("compare-recon-out-dir-is-a-file",
     ["compare-recon", "{ws}/recon.npz", "{ws}/recon.npz", "--out-dir", "{ws}/text.txt"], "text.txt"),
    ("compare-stages-corrupt", ["compare-stages", "{ws}/text.txt", "{ws}/text.txt"], "text.txt"),
    ("compare-stages-not-a-capture", ["compare-stages", "{ws}/scan.npz", "{ws}/scan.npz"], "scan.npz"),
    ("pretrain-missing-checkpoint", PRETRAIN + ["--resume", "{ws}/nope.ckpt"], "nope.ckpt"),
    ("pretrain-output-is-a-file", replaced(PRETRAIN, output_dir="{ws}/text.txt"), "text.txt"),
    ("pretrain-negative-workers", PRETRAIN + ["--workers", "-1"], "--workers"),
    ("pretrain-reversed-dose-range", PRETRAIN + ["--config", "{ws}/bad_corpus.yaml"], "dose_range"),
    ("pretrain-unsupported-patch-size", PRETRAIN + ["--patch-size", "48"], "--patch-size"),
    ("infer-unknown-model-name", replaced(INFER, model="generall"), "generall"),
    ("export-missing-model", ["export", "--model", "{ws}/nope.pinn", "--onnx", "{ws}/new/g.onnx"], "nope.pinn"),
    ("export-onnx-under-a-file", ["export", "--model", "{ws}/run", "--onnx", "{ws}/text.txt/g.onnx"], "text.txt"),
    ("export-onnx-is-a-directory", ["export", "--model", "{ws}/run", "--onnx", "{ws}/adir"], "adir"),
]

# run through the console script in a subprocess; the others in-process (the same main())
IN_A_SUBPROCESS = {"train-malformed-yaml", "infer-output-is-a-file", "refine-zero-passes", "compare-stats-corrupt"}


def snapshot(root):
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else None
            for p in root.rglob("*")}


@pytest.mark.parametrize(("case", "command_line", "culprit"), CASES, ids=[
    c.values[0] if hasattr(c, "values") else c[0] for c in CASES])
def test_bad_input_is_one_clear_line_and_leaves_no_output(ws, case, command_line, culprit, capsys):
    arguments = [a.format(ws=ws) for a in command_line]
    before = snapshot(ws)
    if case in IN_A_SUBPROCESS:
        result = run_cli(*arguments, check=False)
        code, stderr = result.returncode, result.stderr
    else:
        code = main(arguments)
        stderr = capsys.readouterr().err
    assert code == 2, stderr
    assert "Traceback" not in stderr
    error_lines = [line for line in stderr.splitlines() if "error:" in line]
    assert len(error_lines) == 1, stderr
    assert culprit in error_lines[0], error_lines[0]
    assert snapshot(ws) == before  # nothing written, nothing left behind
