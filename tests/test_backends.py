"""Both backends behind one interface (``get_backend``), the architecture taken from the
settings alone, and fine-tuning that records the backend that trained."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import zipfile

import pytest

from helpers import architecture, normalised_probe
from ptychopinn.api import finetune, train
from ptychopinn.backends import get_backend
from ptychopinn.config import (
    GeneratorKind,
    GroupEncoding,
    HeadKind,
    InputMode,
    Settings,
    resolve_settings,
)
from ptychopinn.model.architecture import Architecture, ModelGeometry

TINY = {"data": {"gridsize": 1, "n_groups": 24}, "model": {"n_filters_scale": 1},
        "training": {"epochs": 1, "batch_size": 8, "validation_fraction": 0.25}}


def test_importing_the_backends_package_imports_no_framework():
    code = ("import sys, ptychopinn.backends\n"
            "print(sorted(m for m in ('torch', 'lightning', 'tensorflow', 'keras') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("name", ["torch", "tensorflow"])
def test_each_backend_has_the_same_protocol(name):
    backend = get_backend(name)
    assert backend.name == name and get_backend(backend) is backend
    for method in ("check", "train", "build_module", "predictor"):
        assert callable(getattr(backend, method))
    arch = architecture(32, 2)
    module = backend.build_module(arch, normalised_probe(32))
    assert module.arch == arch


def test_an_unknown_backend_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown backend 'jax': use one of torch, tensorflow"):
        get_backend("jax")


def test_asking_the_torch_backend_for_a_missing_gpu_fails_before_training(tiny_scan, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    settings = resolve_settings(None, {**TINY, "training": {**TINY["training"], "accelerator": "gpu"}})
    with pytest.raises(ValueError, match="no CUDA device"):
        train(tiny_scan, tmp_path / "run", settings)
    assert not (tmp_path / "run").exists()


# -- the architecture comes from the settings ------------------------------------------------------


def test_the_architecture_has_no_defaults_of_its_own():
    assert all(f.default is dataclasses.MISSING for f in dataclasses.fields(Architecture))
    arch = Architecture.from_settings(Settings(), ModelGeometry(patch_size=64, canvas_size=80))
    assert arch.input_mode is InputMode.backprojection  # the settings' default, not amplitude
    assert (arch.patch_size, arch.canvas_size, arch.channels, arch.object_big) == (64, 80, 4, True)


@pytest.mark.parametrize("section,key,value,field,expected", [
    ("data", "gridsize", 1, "channels", 1),
    ("model", "generator", "unet", "generator", GeneratorKind.unet),
    ("model", "n_filters_scale", 3, "n_filters_scale", 3),
    ("model", "object_big", False, "object_big", False),
    ("model", "head", "central", "head", HeadKind.central),
    ("model", "group_encoding", "joint", "group_encoding", GroupEncoding.joint),
    ("model", "input_mode", "amplitude", "input_mode", InputMode.amplitude),
    ("model", "amplitude_activation", "sigmoid", "amplitude_activation", "sigmoid"),
    ("physics", "probe_mask", True, "probe_mask", True),
])
def test_every_architecture_value_follows_its_setting(section, key, value, field, expected):
    settings = resolve_settings(None, {section: {key: value}})
    arch = Architecture.from_settings(settings, ModelGeometry(patch_size=32, canvas_size=44))
    assert getattr(arch, field) == expected


# -- fine-tuning records the backend that trained ----------------------------------------------------


def _bundle_backend(path) -> str:
    return json.loads(zipfile.ZipFile(path).read("manifest.json"))["backend"]


def test_finetuning_records_the_backend_that_trained(tiny_scan, tmp_path):
    model = train(tiny_scan, tmp_path / "torch", resolve_settings(None, TINY))
    assert model.backend == "torch"

    by_tensorflow = finetune(model, tiny_scan, 1, tmp_path / "tuned_tf", backend="tensorflow")
    assert by_tensorflow.backend == "tensorflow" and by_tensorflow.settings.backend.value == "tensorflow"
    assert _bundle_backend(by_tensorflow.save(tmp_path / "tuned_tf.pinn")) == "tensorflow"
    assert (tmp_path / "tuned_tf" / "metrics.csv").is_file()  # Keras's log, not Lightning's
    assert not (tmp_path / "tuned_tf" / "checkpoints").exists()

    again = finetune(by_tensorflow, tiny_scan, 1, tmp_path / "tuned_again")  # the model's own backend
    assert again.backend == "tensorflow"
    back = finetune(by_tensorflow, tiny_scan, 1, tmp_path / "tuned_torch", backend="torch")
    assert back.backend == "torch" and back.settings.backend.value == "torch"
    assert _bundle_backend(back.save(tmp_path / "tuned_torch.pinn")) == "torch"
    assert (tmp_path / "tuned_torch" / "checkpoints").is_dir()
