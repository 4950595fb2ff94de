"""benchmarks/quality.py --reuse: a saved network is reused only when it was trained with exactly
the settings the benchmark asks for (a wrong reuse would silently score another network)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from quality import reusable_model  # noqa: E402

from ptychopinn.api import train_with_summary  # noqa: E402
from ptychopinn.model.trained import MODEL_FILE, SETTINGS_FILE  # noqa: E402

OVERRIDES = {"data": {"gridsize": 1}, "training": {"epochs": 1, "curriculum_fraction": 0.0},
             "model": {"n_filters_scale": 1}}


@pytest.fixture(scope="module")
def run_dir(tiny_scan, tmp_path_factory):
    out = tmp_path_factory.mktemp("reuse")
    train_with_summary(tiny_scan, out, overrides=OVERRIDES, quiet=True)
    return out


def test_a_model_trained_with_the_same_settings_is_reused(run_dir):
    model = reusable_model(run_dir, OVERRIDES)
    assert model is not None
    assert model.settings.training.epochs == 1 and model.settings.data.gridsize == 1


def test_other_settings_train_again(run_dir):
    assert reusable_model(run_dir, {**OVERRIDES, "training": {"epochs": 2, "curriculum_fraction": 0.0}}) is None
    assert reusable_model(run_dir, {**OVERRIDES, "model": {"n_filters_scale": 2}}) is None


def test_a_setting_missing_from_the_record_trains_again(run_dir, tmp_path):
    """A setting added since the model was trained is not in its config.yaml: the bundle would
    load it with today's default, which the model was not trained with."""
    copy = tmp_path / "older"
    copy.mkdir()
    (copy / MODEL_FILE).write_bytes((run_dir / MODEL_FILE).read_bytes())
    recorded = yaml.safe_load((run_dir / SETTINGS_FILE).read_text())
    del recorded["training"]["curriculum_fraction"]
    (copy / SETTINGS_FILE).write_text(yaml.safe_dump(recorded))
    assert reusable_model(copy, OVERRIDES) is None


def test_a_directory_without_a_model_trains_again(run_dir, tmp_path):
    (tmp_path / SETTINGS_FILE).write_text((run_dir / SETTINGS_FILE).read_text())
    assert reusable_model(tmp_path, OVERRIDES) is None
