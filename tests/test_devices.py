"""Device choice: 'auto' must pick a GPU when one exists (the predecessor silently used the CPU)."""

from __future__ import annotations

import pytest
import torch

from ptychopinn.backends.torch.device import resolve_device
from ptychopinn.backends.torch.training import build_trainer, describe_device
from ptychopinn.config import resolve_settings


def test_auto_is_cpu_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto").type == "cpu"


def test_auto_prefers_cuda_when_present(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto").type == "cuda"
    assert resolve_device("gpu").type == "cuda"


def test_asking_for_a_missing_gpu_is_an_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA device"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="unknown accelerator"):
        resolve_device("tpu-ish")


def test_trainer_receives_accelerator_devices_and_precision(tmp_path):
    settings = resolve_settings(None, {"training": {"accelerator": "cpu", "devices": 1,
                                                    "precision": "bf16-mixed", "deterministic": True}})
    trainer = build_trainer(settings, tmp_path, "train_loss", quiet=True)
    assert describe_device(trainer) == "cpu"
    assert "bf16" in str(trainer.precision)
    assert trainer.max_epochs == settings.training.epochs
    assert not trainer.progress_bar_callback  # --quiet turns the progress bar off


def test_auto_accelerator_follows_lightning(tmp_path, monkeypatch):
    from lightning.pytorch.accelerators import CUDAAccelerator

    settings = resolve_settings(None, {"training": {"accelerator": "auto"}})
    trainer = build_trainer(settings, tmp_path, "train_loss", quiet=True)
    expected = "cuda" if CUDAAccelerator.is_available() else "cpu"
    assert describe_device(trainer).startswith(expected)
