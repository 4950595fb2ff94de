"""Training with Keras ``Model.fit``: the TensorFlow twin of :mod:`ptychopinn.backends.torch.training`.

Equal to the torch backend by construction wherever that is possible:

* the same groups (:func:`ptychopinn.data.grouped.split_groups`) and the same batches in the same order
  (:func:`ptychopinn.data.grouped.epoch_order`, which the torch loader uses too);
* the same loss (:mod:`ptychopinn.backends.tensorflow.losses`), and the epoch loss is the batch-size
  weighted mean of the step losses, as Lightning logs it;
* Adam with torch's update rule (:class:`TorchAdam` below: lr, β = (0.9, 0.999), ε = 1e-8
  added to the bias-corrected √v̂; Keras's own Adam adds ε to √v, which moves parameters whose
  gradients are ~ε — e.g. the phase-head bias, whose gradient is almost zero — differently);
* reduce-on-plateau with torch's rule (:class:`ReduceLROnPlateau` below), the same final decay
  (``TrainingConfig.decayed_learning_rate``, set at each epoch's start), early stopping
  (``keras.callbacks.EarlyStopping``, improvement = strictly lower, as Lightning's), and the
  weights of the best epoch restored at the end (Lightning restores its best checkpoint);
* initial weights drawn from torch's distributions (U(±1/√fan_in)), or given.

Outputs: ``metrics.csv`` with the columns Lightning's CSV logger writes (epoch, step, lr-Adam,
train_loss, val_loss). No checkpoints are written (``--resume`` is a torch feature).
"""

from __future__ import annotations

import csv
import functools
import io
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ptychopinn.atomic import write_text_atomic
from ptychopinn.backends.tensorflow.model import build_network
from ptychopinn.backends.tensorflow.runtime import (
    default_jit_compile,
    describe_device,
    device_scope,
    tensorflow,
)
from ptychopinn.backends.tensorflow.runtime import keras as load_keras
from ptychopinn.backends.tensorflow.weights import load_canonical, to_canonical
from ptychopinn.config import Settings
from ptychopinn.data.grouped import GroupedScan, epoch_order, split_groups
from ptychopinn.diagnostics.collapse import CollapseMonitor, illuminated_pixels
from ptychopinn.model.architecture import Architecture
from ptychopinn.physics.scaling import ScaleContract

log = logging.getLogger(__name__)

COLLAPSE_SAMPLE_GROUPS = 32  # = ptychopinn.backends.torch.training.COLLAPSE_SAMPLE_GROUPS
ADAM_EPSILON = 1e-8  # torch.optim.Adam's default (Keras's is 1e-7)
SUPPORTED_PRECISION = ("32-true", "32", "32-bit", "auto")  # auto: float32 here, as on a CPU


@dataclass
class TFTrainingResult:
    weights: dict[str, np.ndarray]  # canonical names and layouts
    epochs_run: int
    metrics_csv: Path | None
    device: str
    history: dict[str, list[float]]
    collapse_checks: list = field(default_factory=list)  # CollapseCheck per epoch


def check_settings(settings: Settings) -> None:
    """Refuse training settings the TensorFlow backend cannot honour (rather than ignore them)."""
    config = settings.training
    if str(config.precision) not in SUPPORTED_PRECISION:
        raise ValueError(f"precision {config.precision!r} is not available with the tensorflow backend "
                         "(it trains in float32: use 32-true, or --backend torch)")
    if config.learn_probe:
        raise ValueError("--learn-probe needs the torch backend (the tensorflow backend trains with the "
                         "scan's probe fixed)")
    if str(config.devices) not in ("1", "auto") or config.num_nodes != 1 or config.strategy != "auto":
        raise ValueError(f"devices={config.devices!r}, num_nodes={config.num_nodes}, strategy={config.strategy!r}: "
                         "the tensorflow backend trains on one device (distributed training needs --backend torch)")


def train_tf(
    grouped: GroupedScan,
    settings: Settings,
    scales: ScaleContract,
    probe: np.ndarray,
    arch: Architecture,
    output_dir: Path,
    *,
    quiet: bool = False,
    batch_observers: list | None = None,
    initial_weights: dict[str, np.ndarray] | None = None,
    jit_compile: bool | None = None,
) -> TFTrainingResult:
    """Train with ``Model.fit``; returns the best epoch's weights in canonical form.

    ``jit_compile`` None: XLA on a GPU, not on CPU. ``batch_observers`` (called as
    ``observe(phase, batch_idx, (x, offsets), output)`` with NumPy arrays) make fit run eagerly.
    """
    check_settings(settings)
    tf = tensorflow()
    keras = load_keras()
    config = settings.training
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    train_idx, val_idx = split_groups(len(grouped), config.validation_fraction, config.seed)
    monitor = "val_loss" if len(val_idx) else "loss"
    device = describe_device(config.accelerator)
    jit = default_jit_compile() if jit_compile is None else bool(jit_compile)
    log.info("training on %s (tensorflow, XLA %s): %d training groups, %d validation groups",
             device, "on" if jit else "off", len(train_idx), len(val_idx))
    classes = keras_training_classes()
    output_dir = Path(output_dir)
    metrics_csv = output_dir / "metrics.csv"
    with device_scope(config.accelerator):
        network = build_network(arch, probe)
        if initial_weights is not None:
            load_canonical(network, initial_weights, source="initial weights")
        network.configure_training(scales.photon_scale, config.loss, batch_observers or (),
                                   valid_pixels=grouped.scan.valid_pixels)
        network.compile(
            optimizer=classes.TorchAdam(learning_rate=config.learning_rate, epsilon=ADAM_EPSILON),
            jit_compile=jit and not batch_observers, run_eagerly=bool(batch_observers),
        )
        batch_size = config.resolved_batch_size(len(train_idx))
        train_data = classes.GroupBatches(grouped, train_idx, batch_size, True, config.seed)
        val_data = (classes.GroupBatches(grouped, val_idx, batch_size, False, config.seed)
                    if len(val_idx) else None)
        watch = classes.CollapseWatch(network, grouped.diffraction(np.asarray(train_idx)[:COLLAPSE_SAMPLE_GROUPS]),
                                      illuminated_pixels(probe), arch)
        callbacks = [
            watch,
            classes.FinalDecay(config),  # before MetricsCSV, which records the rate the epoch uses
            classes.MetricsCSV(metrics_csv, network),
            classes.ReduceLROnPlateau(monitor, config.lr_factor, config.lr_patience, config.min_lr),
            keras.callbacks.EarlyStopping(monitor=monitor, patience=config.early_stopping_patience,
                                          mode="min", min_delta=0.0, restore_best_weights=True),
        ]
        history = network.fit(train_data, validation_data=val_data, epochs=config.epochs,
                              shuffle=False, verbose=0 if quiet else 2, callbacks=callbacks)
    return TFTrainingResult(
        weights=to_canonical(network),
        epochs_run=len(history.epoch),
        metrics_csv=metrics_csv if metrics_csv.exists() else None,
        device=device,
        history={k: [float(v) for v in values] for k, values in history.history.items()},
        collapse_checks=watch.checks,
    )


@dataclass(frozen=True)
class _TrainingClasses:
    GroupBatches: type
    CollapseWatch: type
    FinalDecay: type
    ReduceLROnPlateau: type
    MetricsCSV: type
    TorchAdam: type


@functools.cache
def keras_training_classes() -> _TrainingClasses:
    """The Keras classes training uses (defined once, when TensorFlow is first needed): the batch
    source, the final decay, torch's plateau rule and Adam, and the metrics.csv writer."""
    keras = load_keras()

    class GroupBatches(keras.utils.PyDataset):
        """Batches (X_n (B, C, N, N), offsets (B, C, 2)) of ``selection`` in
        :func:`~ptychopinn.data.grouped.epoch_order`; epoch e starts at Keras's e-th
        ``on_epoch_begin``, before the epoch's iterator draws its first batch."""

        def __init__(self, grouped: GroupedScan, selection, batch_size: int, shuffle: bool, seed: int):
            super().__init__(workers=1, use_multiprocessing=False)
            self.grouped, self.selection = grouped, np.asarray(selection)
            self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
            self.epoch = 0
            self._begun = 0

        def __len__(self) -> int:
            return math.ceil(len(self.selection) / self.batch_size)

        def on_epoch_begin(self) -> None:
            self.epoch = self._begun
            self._begun += 1

        def __getitem__(self, index: int):
            order = epoch_order(len(self.selection), self.epoch, self.seed, self.shuffle)
            chosen = self.selection[order[index * self.batch_size : (index + 1) * self.batch_size]]
            return self.grouped.diffraction(chosen), self.grouped.offsets(chosen)

    class FinalDecay(keras.callbacks.Callback):
        """The final learning-rate decay (``TrainingConfig.decayed_learning_rate``), set at the
        start of each epoch as the torch backend's ``FinalDecay`` callback sets it."""

        def __init__(self, config):
            super().__init__()
            self.config, self.rate_at_decay_start = config, None

        def on_epoch_begin(self, epoch, logs=None):
            if epoch < self.config.final_decay_start():
                return
            if self.rate_at_decay_start is None:
                self.rate_at_decay_start = float(np.asarray(self.model.optimizer.learning_rate))
            self.model.optimizer.learning_rate = self.config.decayed_learning_rate(epoch, self.rate_at_decay_start)

    class ReduceLROnPlateau(keras.callbacks.Callback):
        """``torch.optim.lr_scheduler.ReduceLROnPlateau`` (mode min, relative threshold 1e-4,
        no cooldown) as a Keras callback. Keras's own callback reduces one epoch earlier (it
        fires at ``wait >= patience``, torch at ``bad epochs > patience``) and compares with
        an absolute ``min_delta``; this one follows torch so both backends schedule alike."""

        threshold = 1e-4
        eps = 1e-8

        def __init__(self, monitor: str, factor: float, patience: int, min_lr: float):
            super().__init__()
            self.monitor, self.factor, self.patience, self.min_lr = monitor, factor, patience, min_lr
            self.best, self.bad_epochs = math.inf, 0

        def on_epoch_end(self, epoch, logs=None):
            current = (logs or {}).get(self.monitor)
            if current is None:
                return
            if current < self.best * (1 - self.threshold):
                self.best, self.bad_epochs = float(current), 0
            else:
                self.bad_epochs += 1
            if self.bad_epochs > self.patience:
                old = float(np.asarray(self.model.optimizer.learning_rate))
                new = max(old * self.factor, self.min_lr)
                if old - new > self.eps:
                    self.model.optimizer.learning_rate = new
                    log.info("epoch %d: learning rate %.3g → %.3g", epoch, old, new)
                self.bad_epochs = 0

    class MetricsCSV(keras.callbacks.Callback):
        """DIR/metrics.csv, rewritten atomically after every epoch: epoch, step (optimizer steps
        so far), lr-Adam (the rate used during the epoch), train_loss, val_loss."""

        columns = ("epoch", "step", "lr-Adam", "train_loss", "val_loss")

        def __init__(self, path: Path, network):
            super().__init__()
            self.path, self.network, self.rows, self.lr = Path(path), network, [], math.nan

        def on_epoch_begin(self, epoch, logs=None):
            self.lr = float(np.asarray(self.network.optimizer.learning_rate))
            self.network.reset_observed_batches()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            self.rows.append({
                "epoch": epoch, "step": int(self.network.optimizer.iterations.numpy()) - 1,
                "lr-Adam": float(f"{self.lr:.8g}"), "train_loss": logs.get("loss", ""), "val_loss": logs.get("val_loss", ""),
            })
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=self.columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(self.rows)
            write_text_atomic(self.path, buffer.getvalue())

    class TorchAdam(keras.optimizers.Optimizer):
        """Adam exactly as ``torch.optim.Adam`` (no weight decay, no amsgrad) updates:

            m ← m + (1 − β1)(g − m),   v ← β2·v + (1 − β2)·g²,
            θ ← θ − lr / (1 − β1^t) · m / (√v / √(1 − β2^t) + ε).
        """

        def __init__(self, learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=ADAM_EPSILON,
                     name="torch_adam", **kwargs):
            super().__init__(learning_rate=learning_rate, name=name, **kwargs)
            self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon

        def build(self, var_list):
            if self.built:
                return
            super().build(var_list)
            self._momentums, self._velocities = self.add_optimizer_variables(var_list, ["momentum", "velocity"])

        def update_step(self, gradient, variable, learning_rate):
            ops = keras.ops
            dtype = variable.dtype
            gradient = ops.cast(gradient, dtype)
            step = ops.cast(self.iterations + 1, dtype)
            bias_1 = 1 - ops.power(ops.cast(self.beta_1, dtype), step)
            bias_2 = 1 - ops.power(ops.cast(self.beta_2, dtype), step)
            index = self._get_variable_index(variable)
            m, v = self._momentums[index], self._velocities[index]
            self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
            self.assign(v, ops.add(ops.multiply(v, self.beta_2), ops.multiply(ops.square(gradient), 1 - self.beta_2)))
            denominator = ops.add(ops.divide(ops.sqrt(v), ops.sqrt(bias_2)), self.epsilon)
            step_size = ops.divide(ops.cast(learning_rate, dtype), bias_1)
            self.assign_sub(variable, ops.multiply(ops.divide(m, denominator), step_size))

        def get_config(self):
            return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}

    class CollapseWatch(keras.callbacks.Callback):
        """The torch backend's ``CollapseWatch``: after every epoch, the predicted patches of a
        fixed sample of groups are judged (:mod:`ptychopinn.diagnostics.collapse`)."""

        def __init__(self, network, diffraction, illuminated, arch: Architecture):
            super().__init__()
            self.network, self.diffraction = network, diffraction
            self.monitor = CollapseMonitor(illuminated, arch.amplitude_bound, arch.phase_bound)
            self.checks: list = []

        def on_epoch_end(self, epoch, logs=None):
            patches = np.asarray(self.network.generator(self.network.input_features(self.diffraction)))
            self.monitor.update(np.abs(patches), np.angle(patches))
            check = self.monitor.finish(epoch)
            self.checks.append(check)
            if not check.healthy:
                log.warning("%s", check.message())

    return _TrainingClasses(GroupBatches, CollapseWatch, FinalDecay, ReduceLROnPlateau, MetricsCSV, TorchAdam)
