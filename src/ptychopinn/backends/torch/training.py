"""Training with Lightning: the Trainer owns devices, precision, logging and checkpoints."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import (
    Callback,
    EarlyStopping,
    LearningRateMonitor,
    ModelCheckpoint,
)
from lightning.pytorch.loggers import CSVLogger

from ptychopinn.atomic import atomic_path
from ptychopinn.backends.torch.data_module import GroupDataset, make_loader
from ptychopinn.backends.torch.lightning_module import PINNModule
from ptychopinn.backends.torch.model import PtychoPINN
from ptychopinn.backends.torch.probe import LearnedProbe
from ptychopinn.config import Settings, TrainingConfig
from ptychopinn.data.grouped import GroupedScan, split_groups
from ptychopinn.diagnostics.collapse import CollapseCheck, CollapseMonitor, illuminated_pixels
from ptychopinn.model.architecture import Architecture
from ptychopinn.physics.scaling import ScaleContract

log = logging.getLogger(__name__)


@dataclass
class TorchTrainingResult:
    model: PtychoPINN
    best_checkpoint: Path | None
    epochs_run: int
    metrics_csv: Path | None
    device: str
    learned_probe: np.ndarray | None = None  # (K, N, N) normalised modes of the best epoch
    collapse_checks: list[CollapseCheck] = field(default_factory=list)  # one per epoch


def build_trainer(settings: Settings, output_dir: Path, monitor: str, quiet: bool,
                  extra_callbacks: tuple = ()) -> pl.Trainer:
    config = settings.training
    callbacks = [
        *extra_callbacks,
        FinalDecay(config),  # before the monitor, which logs the rate the epoch uses
        EarlyStopping(monitor=monitor, patience=config.early_stopping_patience, mode="min"),
        ModelCheckpoint(dirpath=output_dir / "checkpoints", monitor=monitor, mode="min",
                        save_last=True, save_top_k=1, filename="best-{epoch}"),
        LearningRateMonitor(logging_interval="epoch"),
    ]
    if quiet:
        logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    return pl.Trainer(
        max_epochs=config.epochs,
        **device_options(config),
        callbacks=callbacks,
        logger=CSVLogger(output_dir, name="logs", version=""),
        enable_progress_bar=not quiet,
        enable_model_summary=not quiet,
        log_every_n_steps=1,
        default_root_dir=output_dir,
    )


def device_options(config: TrainingConfig) -> dict:
    """The Trainer's devices, processes and numerics, as ``config`` says (training and pretraining)."""
    return {"accelerator": config.accelerator, "devices": config.devices, "num_nodes": config.num_nodes,
            "strategy": config.strategy, "precision": resolved_precision(config),
            "deterministic": config.deterministic}


def resolved_precision(config: TrainingConfig) -> str:
    """``config.precision``, with "auto" resolved: bf16 mixed precision on GPUs that support it
    (the physics layer stays in float32 either way), full float32 elsewhere."""
    if config.precision != "auto":
        return config.precision
    wants_gpu = config.accelerator in ("auto", "gpu", "cuda")
    if wants_gpu and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


COLLAPSE_SAMPLE_GROUPS = 32  # groups whose predicted patches are judged after every epoch


class CollapseWatch(Callback):
    """After every training epoch, judges the predicted patches of a fixed sample of groups
    (:mod:`ptychopinn.diagnostics.collapse`) and warns when they have collapsed or saturated."""

    def __init__(self, diffraction: np.ndarray, illuminated: np.ndarray, arch: Architecture):
        self.diffraction = torch.from_numpy(diffraction)
        self.monitor = CollapseMonitor(illuminated, arch.amplitude_bound, arch.phase_bound)
        self.checks: list[CollapseCheck] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        was_training = pl_module.training
        pl_module.eval()
        with torch.no_grad():
            patches = pl_module.raw_patches(self.diffraction.to(pl_module.device))
        pl_module.train(was_training)
        self.monitor.update(patches.abs().cpu().numpy(), patches.angle().cpu().numpy())
        check = self.monitor.finish(trainer.current_epoch)
        self.checks.append(check)
        if not check.healthy and trainer.is_global_zero:
            log.warning("%s", check.message())


def collapse_watch(grouped: GroupedScan, train_idx: np.ndarray, probe: np.ndarray, arch: Architecture
                   ) -> CollapseWatch:
    sample = np.asarray(train_idx)[:COLLAPSE_SAMPLE_GROUPS]
    return CollapseWatch(grouped.diffraction(sample), illuminated_pixels(probe), arch)


class FinalDecay(Callback):
    """The final learning-rate decay (:meth:`TrainingConfig.decayed_learning_rate`), set at the
    start of each epoch; in those epochs it overrides the plateau rule."""

    def __init__(self, config: TrainingConfig):
        self.config = config
        self.rate_at_decay_start: float | None = None
        # every other parameter group (the learned probe) follows the network's group in proportion
        self.group_ratios: list[float] | None = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch
        if epoch < self.config.final_decay_start():
            return
        for optimizer in trainer.optimizers:
            groups = optimizer.param_groups
            if self.rate_at_decay_start is None:
                self.rate_at_decay_start = float(groups[0]["lr"])
            if self.group_ratios is None:
                self.group_ratios = [float(g["lr"]) / self.rate_at_decay_start for g in groups]
            rate = self.config.decayed_learning_rate(epoch, self.rate_at_decay_start)
            for group, ratio in zip(groups, self.group_ratios, strict=False):
                group["lr"] = rate * ratio

    def state_dict(self) -> dict:
        return {"rate_at_decay_start": self.rate_at_decay_start, "group_ratios": self.group_ratios}

    def load_state_dict(self, state_dict: dict) -> None:
        self.rate_at_decay_start = state_dict.get("rate_at_decay_start")
        self.group_ratios = state_dict.get("group_ratios")


def train_torch(
    grouped: GroupedScan,
    settings: Settings,
    scales: ScaleContract,
    probe: torch.Tensor,
    arch: Architecture,
    output_dir: Path,
    resume: Path | None = None,
    quiet: bool = False,
    batch_observers: list | None = None,
    initial_weights: dict | None = None,
) -> TorchTrainingResult:
    config = settings.training
    pl.seed_everything(config.seed, workers=True, verbose=False)
    train_idx, val_idx = split_groups(len(grouped), config.validation_fraction, config.seed)
    monitor = "val_loss" if len(val_idx) else "train_loss"
    network = PtychoPINN(arch, probe)
    if initial_weights is not None:
        network.load_state_dict({k: torch.as_tensor(v) for k, v in initial_weights.items()})
    learned = LearnedProbe(probe) if config.learn_probe else None
    module = PINNModule(network, scales.photon_scale, config, monitor=monitor,
                        valid_pixels=grouped.scan.valid_pixels, learned_probe=learned)
    module.batch_observers.extend(batch_observers or ())
    batch_size = config.resolved_batch_size(len(train_idx))
    train_loader = make_loader(GroupDataset(grouped, train_idx), batch_size, True, config.seed)
    val_loader = (
        make_loader(GroupDataset(grouped, val_idx), batch_size, False, config.seed)
        if len(val_idx) else None
    )
    watch = collapse_watch(grouped, train_idx, probe.numpy(), arch)
    trainer = build_trainer(settings, output_dir, monitor, quiet, extra_callbacks=(watch,))
    device = describe_device(trainer)
    log.info("training on %s: %d training groups, %d validation groups", device, len(train_idx), len(val_idx))
    trainer.fit(module, train_loader, val_loader, ckpt_path=resume, weights_only=True)
    best = _best_checkpoint(trainer)
    if best is not None:
        state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state)
    module.model.cpu().eval()
    learned_probe = None if learned is None else learned.constrained().cpu().numpy()
    return TorchTrainingResult(
        model=module.model,
        best_checkpoint=best,
        epochs_run=trainer.current_epoch,
        metrics_csv=_publish_metrics(output_dir),
        device=device,
        learned_probe=learned_probe,
        collapse_checks=watch.checks,
    )


def describe_device(trainer: pl.Trainer) -> str:
    root = trainer.strategy.root_device
    return f"{root.type}:{root.index}" if root.index is not None else root.type


def _best_checkpoint(trainer: pl.Trainer) -> Path | None:
    checkpoint = trainer.checkpoint_callback
    path = getattr(checkpoint, "best_model_path", "") if checkpoint else ""
    return Path(path) if path else None


def _publish_metrics(output_dir: Path) -> Path | None:
    """Copy Lightning's CSV log to DIR/metrics.csv (atomically)."""
    source = output_dir / "logs" / "metrics.csv"
    if not source.exists():
        return None
    destination = output_dir / "metrics.csv"
    with atomic_path(destination) as tmp:
        shutil.copyfile(source, tmp)
    return destination
