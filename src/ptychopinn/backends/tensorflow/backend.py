"""The TensorFlow backend behind :class:`~ptychopinn.backends.base.ModelBackend`.

Creating it loads TensorFlow (:func:`~ptychopinn.backends.tensorflow.runtime.tensorflow`), so a
missing installation is reported, with the install command, when the backend is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ptychopinn.backends.base import BatchRunner, TrainingResult, TrainingRun
from ptychopinn.backends.tensorflow.inference import Predictor
from ptychopinn.backends.tensorflow.model import build_network
from ptychopinn.backends.tensorflow.runtime import describe_device, device_scope, tensorflow
from ptychopinn.backends.tensorflow.training import check_settings, train_tf
from ptychopinn.backends.tensorflow.weights import load_canonical
from ptychopinn.config import Settings
from ptychopinn.model.architecture import Architecture

if TYPE_CHECKING:
    from ptychopinn.model.trained import TrainedModel


@dataclass(frozen=True)
class TensorFlowBackend:
    """``jit_compile``: XLA for training and inference; None: on a GPU, not on CPU."""

    jit_compile: bool | None = None
    name = "tensorflow"

    def __post_init__(self) -> None:
        tensorflow()  # BackendUnavailableError (with the install command) when it is missing

    def check(self, settings: Settings, *, resume: Path | None = None) -> None:
        if resume:
            raise ValueError("--resume continues a Lightning checkpoint: it needs --backend torch")
        check_settings(settings)
        device_scope(settings.training.accelerator)  # refuses a GPU that TensorFlow does not see

    def train(self, run: TrainingRun) -> TrainingResult:
        self.check(run.settings, resume=run.resume)
        result = train_tf(run.grouped, run.settings, run.scales, run.probe, run.arch, Path(run.output_dir),
                          quiet=run.quiet, batch_observers=run.batch_observers,
                          initial_weights=run.initial_weights, jit_compile=self.jit_compile)
        return TrainingResult(result.weights, result.epochs_run, result.device, result.metrics_csv,
                              collapse_warnings=[c.message() for c in result.collapse_checks if not c.healthy])

    def build_module(
        self,
        arch: Architecture,
        probe: np.ndarray,
        weights: dict[str, np.ndarray] | None = None,
        *,
        device: str | None = None,
        source: str = "weights",
    ):
        """A built Keras network; the bundle's canonical (torch-layout) weights are converted by
        :mod:`ptychopinn.backends.tensorflow.weights`. ``device``: an accelerator setting."""
        with device_scope(device or "auto"):
            network = build_network(arch, probe)
            if weights is not None:
                load_canonical(network, weights, source=source)
        return network

    def predictor(self, model: TrainedModel, accelerator: str) -> BatchRunner:
        """One compiled forward function for the model (:class:`Predictor`), NumPy in and out."""
        predict = Predictor(model.build_module(self), accelerator, self.jit_compile)

        def run_batch(x: np.ndarray, offsets: np.ndarray, members: np.ndarray | None = None):
            output = predict(x, offsets)
            return (x, offsets), output, output.group_object

        return run_batch

    def runs_on_gpu(self, accelerator: str) -> bool:
        return describe_device(accelerator).startswith("gpu")
