"""The LightningModule: the loss and the step. Devices, precision and logging belong to the
Trainer (see :mod:`ptychopinn.backends.torch.training`)."""

from __future__ import annotations

import lightning.pytorch as pl
import torch

from ptychopinn.backends.torch.losses import data_loss
from ptychopinn.backends.torch.model import PtychoPINN
from ptychopinn.backends.torch.probe import LearnedProbe
from ptychopinn.config import LossKind, TrainingConfig
from ptychopinn.model.physics_layer import ForwardOutput


class PINNModule(pl.LightningModule):
    def __init__(
        self, model: PtychoPINN, photon_scale: float, training: TrainingConfig, monitor: str = "val_loss",
        valid_pixels: torch.Tensor | None = None, learned_probe: LearnedProbe | None = None,
    ):
        """``valid_pixels`` (N, N) bool: the detector pixels the losses compare (None: all);
        ``learned_probe``: the probe modes learned with the network (training.learn_probe)."""
        super().__init__()
        self.monitor = monitor
        self.model = model
        self.learned_probe = learned_probe
        self.photon_scale = float(photon_scale)
        self.loss_weights: dict[LossKind, float] = dict(training.loss)
        self.training_config = training
        valid = None if valid_pixels is None else torch.as_tensor(valid_pixels, dtype=torch.float32)
        self.register_buffer("valid_pixels", valid, persistent=False)
        self.batch_observers: list = []  # callables(phase, batch_idx, batch, output), e.g. patch stats

    def forward(self, diffraction: torch.Tensor, offsets_xy: torch.Tensor) -> ForwardOutput:
        modes = self.learned_probe() if self.learned_probe is not None else None
        return self.model(diffraction, offsets_xy, modes=modes)

    def raw_patches(self, diffraction: torch.Tensor) -> torch.Tensor:
        """The generator's patches for ``diffraction`` with the probe training currently uses."""
        if self.learned_probe is None:
            return self.model.generate(diffraction)
        return self.model.generate(diffraction, learned_probe=self.learned_probe.constrained()[0])

    def _step(self, batch, batch_idx: int, phase: str) -> torch.Tensor:
        diffraction, offsets = batch
        output = self(diffraction, offsets)
        loss = data_loss(output.amplitude, diffraction, self.photon_scale, self.loss_weights, self.valid_pixels)
        self.log(f"{phase}_loss", loss, prog_bar=True, on_epoch=True, on_step=False,
                 batch_size=diffraction.shape[0])
        if self._is_global_zero():
            for observe in self.batch_observers:
                observe(phase, batch_idx, batch, output)
        return loss

    def _is_global_zero(self) -> bool:
        """Observers write files: under multi-device training only rank 0 calls them (the others
        would race it for the same paths). Outside a Trainer the module is its own rank 0."""
        return self.global_rank == 0

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, batch_idx, "train")

    def validation_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, batch_idx, "val")

    def configure_optimizers(self):
        config = self.training_config
        groups = [{"params": list(self.model.parameters()), "lr": config.learning_rate}]
        if self.learned_probe is not None:
            # its own rate: the probe's pixels are O(1) values with a gradient of another scale
            groups.append({"params": list(self.learned_probe.parameters()), "lr": config.probe_learning_rate})
        optimizer = torch.optim.Adam(groups, lr=config.learning_rate)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=config.lr_factor, patience=config.lr_patience,
            min_lr=config.min_lr,
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "monitor": self.monitor},
        }
