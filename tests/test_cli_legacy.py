"""Predecessor spellings of the command line keep working, hidden from --help: they parse as
today's spellings, and its users' command lines run as they are."""

from __future__ import annotations

import re

import pytest

from helpers import run_cli
from ptychopinn.cli import build_parser, main
from ptychopinn.data import save_scan

# (command, the predecessor's command line, today's)
SPELLINGS = [
    ("train", ["--train_data_file", "A.npz", "--test_data_file", "B.npz", "--output_dir", "D"],
     ["--train-data", "A.npz", "--test-data", "B.npz", "--output-dir", "D"]),
    ("train", ["--train-data", "A", "--output-dir", "D", "--n_images", "64", "--batch_size", "4",
               "--neighbor_count", "7", "--max_epochs", "1", "--torch-loss-mode", "mae"],
     ["--train-data", "A", "--output-dir", "D", "--n-groups", "64", "--batch-size", "4",
      "--neighbor-count", "7", "--epochs", "1", "--loss", "mae"]),
    ("train", ["--train-data", "A", "--output-dir", "D", "--nepochs", "3", "--n_groups", "9"],
     ["--train-data", "A", "--output-dir", "D", "--epochs", "3", "--n-groups", "9"]),
    ("infer", ["--model_path", "M", "--test_data", "B", "--output_dir", "E", "--debug_dump", "E/dump",
               "--refine-steps", "3", "--n_images", "128"],
     ["--model", "M", "--data", "B", "--output-dir", "E", "--debug-dump", "E/dump", "--refine-passes", "3",
      "--n-groups", "128"]),
    ("refine", ["--data", "S", "--output_dir", "R", "--steps", "5"], ["--data", "S", "--output-dir", "R", "--passes", "5"]),
    ("evaluate", ["--recon", "R", "--truth", "S", "--output_dir", "E"],
     ["--recon", "R", "--truth", "S", "--output-dir", "E"]),
    ("parity", ["--model_path", "M", "--data", "S", "--output_dir", "P"],
     ["--model", "M", "--data", "S", "--output-dir", "P"]),
    ("demo", ["--output_dir", "D"], ["--output-dir", "D"]),
    ("compare-stats", ["R", "C", "--label-baseline", "old"], ["R", "C", "--label-reference", "old"]),
    ("compare-recon", ["R", "C", "--label-a", "new", "--label-b", "old", "--out", "O"],
     ["R", "C", "--label-candidate", "new", "--label-reference", "old", "--out-dir", "O"]),
    ("compare-stages", ["R", "C", "--rtol", "0.01"], ["R", "C", "--tolerance", "0.01"]),
]

HIDDEN = {
    "train": ["--train_data_file", "--test_data_file", "--output_dir", "--n_images", "--n_groups", "--nepochs",
              "--max_epochs", "--batch_size", "--neighbor_count", "--torch-loss-mode", "--do_stitching"],
    "infer": ["--model_path", "--test_data", "--output_dir", "--debug_dump", "--comparison_plot",
              "--refine-steps", "--n_images", "--batch_size"],
    "refine": ["--steps", "--output_dir"],
    "compare-stats": ["--label-baseline", "--out"],
    "compare-recon": ["--label-a", "--label-b", "--out"],
    "compare-stages": ["--rtol", "--out"],
}


def _parsed(command: str, arguments: list[str]) -> dict:
    namespace = vars(build_parser().parse_args([command, *arguments]))
    namespace.pop("run")
    return namespace


@pytest.mark.parametrize(("command", "legacy", "today"), SPELLINGS)
def test_a_predecessor_spelling_means_todays(command, legacy, today):
    assert _parsed(command, legacy) == _parsed(command, today)


@pytest.mark.parametrize("command", sorted(HIDDEN))
def test_predecessor_spellings_are_hidden_from_help(command, capsys):
    assert main([command, "--help"]) == 0
    text = capsys.readouterr().out
    for spelling in HIDDEN[command]:
        assert not re.search(rf"(?<![\w-]){re.escape(spelling)}(?![\w-])", text), spelling


def test_the_predecessors_compare_report_files(tmp_path, capsys):
    """compare-stats and compare-stages --out FILE.json wrote the report to that file."""
    from ptychopinn.diagnostics import write_strict_json

    block = {"mean": 1.0, "std": 0.5, "var_zero_mean": 0.25, "min": 0.0, "max": 2.0}
    stats = write_strict_json(tmp_path / "stats.json", {"patch_amplitude": block, "canvas_amplitude": block})
    assert main(["compare-stats", str(stats), str(stats), "--out", str(tmp_path / "mine.json")]) == 0
    assert (tmp_path / "mine.json").is_file()
    assert main(["compare-stats", str(stats), str(stats), "--out-dir", str(tmp_path / "dir")]) == 0
    assert (tmp_path / "dir" / "compare_stats.json").is_file()


@pytest.fixture(scope="module")
def predecessor_run(tiny_scan, tmp_path_factory):
    """The predecessor's train and infer command lines, run as its users ran them."""
    root = tmp_path_factory.mktemp("legacy")
    save_scan(tiny_scan, root / "A.npz")
    save_scan(tiny_scan, root / "B.npz")
    trained = run_cli("train", "--backend", "tensorflow", "--train_data_file", str(root / "A.npz"),
                      "--test_data_file", str(root / "B.npz"), "--output_dir", str(root / "D"),
                      "--n_images", "64", "--n_groups", "32", "--batch_size", "4", "--gridsize", "2",
                      "--neighbor_count", "7", "--max_epochs", "1", "--do_stitching", "--quiet")
    inferred = run_cli("infer", "--backend", "tensorflow", "--model_path", str(root / "D"),
                       "--test_data", str(root / "B.npz"), "--output_dir", str(root / "E"),
                       "--n_images", "128", "--debug_dump", str(root / "E" / "dump"), "--comparison_plot")
    return root, trained, inferred


def test_the_predecessors_train_command_line_runs(predecessor_run):
    root, trained, _ = predecessor_run
    from ptychopinn.config import Settings

    settings = Settings.load(root / "D" / "config.yaml")
    assert settings.backend.value == "tensorflow" and settings.training.epochs == 1
    assert (settings.data.n_groups, settings.data.neighbor_count, settings.training.batch_size) == (32, 7, 4)
    assert (root / "D" / "model.pinn").is_file()
    assert (root / "D" / "test" / "reconstruction.npz").is_file()  # --do_stitching: the test data stitched
    assert "trained 1 epochs" in trained.stdout


def test_the_predecessors_infer_command_line_runs(predecessor_run):
    root, _, inferred = predecessor_run
    from ptychopinn.diagnostics import load_stats

    assert (root / "E" / "reconstruction.npz").is_file()
    assert load_stats(root / "E" / "dump")["patch_amplitude"]["n_patches"] == 128 * 4  # --n_images 128
    assert (root / "E" / "comparison.png").stat().st_size > 0  # --comparison_plot
    assert "phase SSIM" in inferred.stdout


def test_comparison_plot_says_when_there_is_nothing_to_compare_against(predecessor_run, tiny_scan):
    root, _, _ = predecessor_run
    import dataclasses

    save_scan(dataclasses.replace(tiny_scan, object=None), root / "no_truth.npz")
    args = ("infer", "--model_path", str(root / "D"), "--test_data", str(root / "no_truth.npz"))
    asked = run_cli(*args, "--output_dir", str(root / "F"), "--comparison_plot")
    plain = run_cli(*args, "--output_dir", str(root / "G"))
    assert "--comparison_plot: the scan has no objectGuess" in asked.stderr
    assert "--comparison_plot" not in plain.stderr
    assert not (root / "F" / "comparison.png").exists()
