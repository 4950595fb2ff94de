"""The protocol both backends implement, and what their training returns.

:func:`ptychopinn.backends.get_backend` returns an object with this protocol; the API, the
diagnostics and the parity checks talk to a backend only through it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ptychopinn.config import Settings
from ptychopinn.data.grouped import GroupedScan
from ptychopinn.model.architecture import Architecture
from ptychopinn.physics.scaling import ScaleContract

if TYPE_CHECKING:  # the trained model builds its network through a backend
    from ptychopinn.model.trained import TrainedModel

# (x (B, C, N, N), offsets (B, C, 2)[, members (B, C) scan indices]) NumPy → (the inputs as the
# backend holds them, its ForwardOutput, group_object (B, N, N) NumPy)
BatchRunner = Callable[..., tuple[Any, Any, np.ndarray]]


@dataclass
class TrainingRun:
    """What one training run needs, whichever backend runs it."""

    grouped: GroupedScan
    settings: Settings
    scales: ScaleContract
    probe: np.ndarray  # normalised, complex64, (N, N) or (K, N, N) incoherent modes
    arch: Architecture
    output_dir: Path  # receives metrics.csv (and the backend's logs, checkpoints)
    quiet: bool = True
    batch_observers: list | None = None  # observe(phase, batch_idx, batch, output) after every batch
    initial_weights: dict[str, np.ndarray] | None = None  # canonical; None: the backend's initialisation
    resume: Path | None = None  # a checkpoint to continue (torch only)


@dataclass
class TrainingResult:
    """One training run, whichever backend ran it."""

    weights: dict[str, np.ndarray]  # the best epoch's, canonical names and layouts
    epochs_run: int
    device: str  # e.g. "cpu", "cuda:0", "gpu:0"
    metrics_csv: Path | None  # DIR/metrics.csv: epoch, step, lr-Adam, train_loss, val_loss
    learned_probe: np.ndarray | None = None  # (K, N, N) normalised modes when the probe was learned
    collapse_warnings: list[str] = field(default_factory=list)  # one line per epoch whose patches collapsed


class ModelBackend(Protocol):
    """A backend: training, the network with given weights, and a per-batch inference runner."""

    name: str  # "torch" or "tensorflow", as recorded in the bundle

    def check(self, settings: Settings, *, resume: Path | None = None) -> None:
        """Raise ValueError for settings this backend cannot honour (called before anything is
        written)."""

    def train(self, run: TrainingRun) -> TrainingResult:
        """Train as ``run`` says; the result holds the best epoch's weights."""

    def build_module(
        self,
        arch: Architecture,
        probe: np.ndarray,
        weights: dict[str, np.ndarray] | None = None,
        *,
        device: Any = None,
        source: str = "weights",
    ) -> Any:
        """The backend's network for ``arch`` and the normalised ``probe``, holding ``weights``
        (canonical; refused with a BundleError naming ``source`` when they do not fit) or its
        own initialisation, in inference mode."""

    def predictor(self, model: TrainedModel, accelerator: str) -> BatchRunner:
        """The function :func:`ptychopinn.api.reconstruct` calls on every batch of one scan."""

    def runs_on_gpu(self, accelerator: str) -> bool:
        """Whether inference with this accelerator setting runs on a GPU (it sizes the batches)."""
