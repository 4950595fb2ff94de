"""The LightningModule: the loss and the step. Devices, precision and logging belong to the
Trainer (see :mod:`ptychopinn.backends.torch.training`)."""

from __future__ import annotations

import lightning.pytorch as pl
import torch

from ptychopinn.backends.torch.losses import data_loss
from ptychopinn.backends.torch.model import PtychoPINN
from ptychopinn.config import LossKind, TrainingConfig
from ptychopinn.model.physics_layer import ForwardOutput


class PINNModule(pl.LightningModule):
    def __init__(
        self, model: PtychoPINN, photon_scale: float, training: TrainingConfig, monitor: str = "val_loss"
    ):
        super().__init__()
        self.monitor = monitor
        self.model = model
        self.photon_scale = float(photon_scale)
        self.loss_weights: dict[LossKind, float] = dict(training.loss)
        self.training_config = training
        self.batch_observers: list = []  # callables(phase, batch_idx, batch, output), e.g. patch stats

    def forward(self, diffraction: torch.Tensor, offsets_xy: torch.Tensor) -> ForwardOutput:
        return self.model(diffraction, offsets_xy)

    def _step(self, batch, batch_idx: int, phase: str) -> torch.Tensor:
        diffraction, offsets = batch
        output = self(diffraction, offsets)
        loss = data_loss(output.amplitude, diffraction, self.photon_scale, self.loss_weights)
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
        optimizer = torch.optim.Adam(self.parameters(), lr=config.learning_rate)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=config.lr_factor, patience=config.lr_patience,
            min_lr=config.min_lr,
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "monitor": self.monitor},
        }
