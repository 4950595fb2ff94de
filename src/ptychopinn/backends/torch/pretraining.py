"""Pretraining a general model on the procedural corpus, with Lightning (docs/design/corpus.md).

Every sample carries its own probe and dose: the input features and the physics layer use the
sample's probe, and the loss is each sample's Poisson NLL divided by its S² (with S the photon
scale, that is the NLL at S = 1), so that a 1e8-photon sample does not outweigh a 1e3-photon one
by 1e5 while each pattern keeps its Poisson weighting (docs/design/spec.md#loss).

Distributed training: ``batch_size`` is the global batch. Sample indices are laid out so that
rank r of W takes the r-th of W equal slices of every global batch; W processes therefore see, step
for step, the same samples as one process with the same global batch, which is what the DDP test
checks.
"""

from __future__ import annotations

import csv
import logging
import math
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, LearningRateMonitor
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader, Dataset, Sampler

from ptychopinn.atomic import atomic_path
from ptychopinn.backends.torch.device import release_process_group
from ptychopinn.backends.torch.losses import data_loss
from ptychopinn.backends.torch.model import PtychoPINN
from ptychopinn.backends.torch.training import _publish_metrics, describe_device, device_options
from ptychopinn.config import Settings
from ptychopinn.model.architecture import Architecture
from ptychopinn.simulation.corpus import Corpus, Split

log = logging.getLogger(__name__)

VALIDATION_SETS = (Split.held_out_objects, Split.held_out_probes)
WARMUP_STEPS = 200
CHECKPOINT_EVERY = timedelta(minutes=5)  # a session can end at any moment: lose at most this
LAST_CHECKPOINT = "last.ckpt"


class CorpusDataset(Dataset):
    """Item i: sample i of the corpus, as float32 tensors (complex fields as (…, 2) real pairs,
    which every DataLoader worker can pass through shared memory)."""

    def __init__(self, corpus: Corpus):
        self.corpus = corpus

    def __len__(self) -> int:  # the stream is endless; the samplers choose the indices
        return 2**62

    def __getitem__(self, index: int):
        sample = self.corpus.sample(index)
        return (
            torch.from_numpy(sample.diffraction),
            torch.from_numpy(sample.offsets),
            torch.view_as_real(torch.from_numpy(sample.probe)),
            torch.tensor(sample.photon_scale, dtype=torch.float32),
            torch.view_as_real(torch.from_numpy(sample.truth)),
        )


class RankSlices(Sampler):
    """Rank ``rank``'s share of an epoch of global batches: at step t it takes indices
    base + t·B + rank·b … + b − 1 (b = B/W), with base = epoch · steps · B for training (a new
    stream every epoch) and 0 for validation (the same held-out samples every time)."""

    def __init__(self, steps: int, global_batch: int, rank: int, world: int, fresh_each_epoch: bool):
        if global_batch % world:
            raise ValueError(f"the global batch size ({global_batch}) must be divisible by the number of "
                             f"processes ({world})")
        self.steps, self.global_batch, self.rank, self.world = steps, global_batch, rank, world
        self.fresh_each_epoch, self.epoch = fresh_each_epoch, 0

    @property
    def local_batch(self) -> int:
        return self.global_batch // self.world

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        base = self.epoch * self.steps * self.global_batch if self.fresh_each_epoch else 0
        for step in range(self.steps):
            start = base + step * self.global_batch + self.rank * self.local_batch
            yield from range(start, start + self.local_batch)

    def __len__(self) -> int:
        return self.steps * self.local_batch


class CorpusData(pl.LightningDataModule):
    def __init__(self, settings: Settings, patch_size: int):
        super().__init__()
        self.settings, self.patch_size = settings, patch_size

    def _corpus(self, split: Split) -> Corpus:
        return Corpus(self.settings.corpus, self.patch_size, self.settings.data.gridsize,
                      self.settings.training.seed, split)

    def _loader(self, split: Split, steps: int, fresh: bool) -> DataLoader:
        trainer, workers = self.trainer, self.settings.corpus.resolved_workers()
        sampler = RankSlices(steps, self.settings.training.batch_size, trainer.global_rank,
                             trainer.world_size, fresh)
        return DataLoader(CorpusDataset(self._corpus(split)), batch_size=sampler.local_batch, sampler=sampler,
                          num_workers=workers, persistent_workers=workers > 0,
                          prefetch_factor=4 if workers else None)

    def train_dataloader(self) -> DataLoader:
        return self._loader(Split.train, steps_per_epoch(self.settings), fresh=True)

    def val_dataloader(self) -> list[DataLoader]:
        steps = max(1, self.settings.corpus.validation_samples // self.settings.training.batch_size)
        return [self._loader(split, steps, fresh=False) for split in VALIDATION_SETS]


def steps_per_epoch(settings: Settings) -> int:
    return max(1, settings.corpus.samples_per_epoch // settings.training.batch_size)


def fidelity(estimate: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """|⟨Ô − mean Ô, O − mean O⟩| / (‖Ô − mean Ô‖ ‖O − mean O‖) over each patch's central N/2
    square (B,): 1 when the object's structure is right up to the global phase and scale the data
    cannot fix; near 0 for a featureless patch (the means are removed, or a weak object's nearly
    uniform transmission would score high whatever the network produced)."""
    n = truth.shape[-1]
    centre = slice(n // 4, n // 4 + n // 2)
    a, b = (t[:, centre, centre].flatten(1) for t in (estimate, truth))
    a, b = a - a.mean(dim=1, keepdim=True), b - b.mean(dim=1, keepdim=True)
    inner = (a.conj() * b).sum(dim=1).abs()
    return inner / (a.abs().pow(2).sum(dim=1).sqrt() * b.abs().pow(2).sum(dim=1).sqrt() + 1e-12)


class PretrainModule(pl.LightningModule):
    def __init__(self, model: PtychoPINN, settings: Settings):
        super().__init__()
        self.model, self.settings = model, settings
        self.loss_weights = dict(settings.training.loss)

    def _forward(self, batch):
        diffraction, offsets, probes, _photon_scale, truth = batch
        probes = torch.view_as_complex(probes.contiguous())[:, None]
        output = self.model(diffraction, offsets, probes=probes)
        # each sample's loss divided by its S²: the NLL at photon scale 1 (see the module docstring)
        loss = data_loss(output.amplitude, diffraction, 1.0, self.loss_weights)
        return output, loss, torch.view_as_complex(truth.contiguous())

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        _, loss, _ = self._forward(batch)
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=True, sync_dist=True,
                 batch_size=batch[0].shape[0])
        return loss

    def validation_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        output, loss, truth = self._forward(batch)
        name = VALIDATION_SETS[dataloader_idx].value
        size = batch[0].shape[0]
        self.log(f"val_loss_{name}", loss, sync_dist=True, batch_size=size, add_dataloader_idx=False)
        self.log(f"val_fidelity_{name}", fidelity(output.group_object, truth).mean(), prog_bar=True,
                 sync_dist=True, batch_size=size, add_dataloader_idx=False)

    def configure_optimizers(self):
        config = self.settings.training
        optimizer = torch.optim.Adam(self.parameters(), lr=config.learning_rate)
        total = max(1, config.epochs * steps_per_epoch(self.settings))
        floor = config.min_lr / config.learning_rate

        def rate(step: int) -> float:  # linear warm-up, then a cosine down to min_lr
            if step < WARMUP_STEPS:
                return (step + 1) / WARMUP_STEPS
            progress = min(1.0, (step - WARMUP_STEPS) / max(1, total - WARMUP_STEPS))
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, rate)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class EpochReport(Callback):
    """One log line per epoch: the losses, the held-out fidelity, elapsed time and the ETA."""

    def __init__(self):
        self.started = time.monotonic()
        self.first_epoch: int | None = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.first_epoch is None:
            self.first_epoch, self.started = trainer.current_epoch, time.monotonic()

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or self.first_epoch is None:
            return
        done = trainer.current_epoch + 1 - self.first_epoch
        elapsed = time.monotonic() - self.started
        left = (trainer.max_epochs - trainer.current_epoch - 1) * elapsed / max(done, 1)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(("train_loss", "val_"))}
        shown = ", ".join(f"{k} {v:.4g}" for k, v in sorted(metrics.items()))
        log.info("epoch %d/%d: %s; %s elapsed, about %s left", trainer.current_epoch + 1, trainer.max_epochs,
                 shown, _duration(elapsed), _duration(left))


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m{int(seconds % 60):02d}s"


class LastCheckpoint(Callback):
    """DIR/checkpoints/last.ckpt after every epoch and every ``every`` of training, replaced
    atomically: a session that ends mid-write leaves the previous checkpoint whole."""

    def __init__(self, path: Path, every: timedelta):
        self.path, self.every = path, every.total_seconds()
        self.saved_at = time.monotonic()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        due = time.monotonic() - self.saved_at >= self.every
        if trainer.strategy.broadcast(due):  # rank 0's clock decides, so that all ranks save together
            self._save(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module) -> None:
        self._save(trainer)

    def _save(self, trainer: pl.Trainer) -> None:
        partial = self.path.with_name(self.path.name + ".partial")
        trainer.save_checkpoint(partial)
        if trainer.is_global_zero:
            partial.replace(self.path)
        trainer.strategy.barrier()
        self.saved_at = time.monotonic()


class RankWeightDigests(Callback):
    """At the end of training, every rank's weights reduced to one float64 number, gathered on
    all ranks: identical numbers mean the ranks hold identical weights (what DDP promises)."""

    def __init__(self):
        self.digests: list[float] = []

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        digest = weight_digest(pl_module.model).to(pl_module.device)
        gathered = trainer.strategy.all_gather(digest)
        self.digests = [float(v) for v in torch.as_tensor(gathered).reshape(-1).cpu()]


def weight_digest(module: torch.nn.Module) -> torch.Tensor:
    """Σ_i w_i · sin(i + 1) over all parameters in order, float64: differs for any differing weight."""
    flat = torch.cat([p.detach().double().reshape(-1) for p in module.parameters()])
    return (flat * torch.sin(torch.arange(1, flat.numel() + 1, dtype=torch.float64))).sum()


@dataclass
class PretrainingResult:
    model: PtychoPINN
    epochs_run: int
    steps_run: int
    device: str
    world_size: int
    metrics_csv: Path | None
    rank_weight_digests: list[float]
    wall_seconds: float


def pretrain_torch(settings: Settings, arch: Architecture, reference_probe: np.ndarray, output_dir: Path,
                   resume: Path | None = None, quiet: bool = False) -> PretrainingResult:
    """Train ``arch`` on the corpus of ``settings``; returns the final (annealed) network."""
    started = time.monotonic()
    pl.seed_everything(settings.training.seed, workers=True, verbose=False)
    network = PtychoPINN(arch, torch.from_numpy(reference_probe))
    module = PretrainModule(network, settings)
    digests = RankWeightDigests()
    trainer = _trainer(settings, output_dir, quiet, digests)
    # Lightning's CSV log starts afresh in every run: keep the rows of the runs being continued
    earlier = read_rows(output_dir / METRICS_FILE) if resume is not None else []
    trainer.fit(module, datamodule=CorpusData(settings, arch.patch_size), ckpt_path=resume, weights_only=True)
    # one fit per process here (train's curriculum fits twice and keeps its group)
    release_process_group()
    module.model.cpu().eval()
    if trainer.is_global_zero and earlier:
        prepend_rows(output_dir / "logs" / METRICS_FILE, earlier)
    return PretrainingResult(
        model=module.model,
        epochs_run=trainer.current_epoch,
        steps_run=trainer.global_step,
        device=describe_device(trainer),
        world_size=trainer.world_size,
        metrics_csv=_publish_metrics(output_dir) if trainer.is_global_zero else None,
        rank_weight_digests=digests.digests,
        wall_seconds=time.monotonic() - started,
    )


METRICS_FILE = "metrics.csv"


def read_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def prepend_rows(path: Path, earlier: list[dict[str, str]]) -> None:
    """Rewrite the CSV at ``path`` (atomically) with ``earlier`` rows before its own, over the
    union of both sets of columns."""
    rows = earlier + read_rows(path)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def _trainer(settings: Settings, output_dir: Path, quiet: bool, digests: RankWeightDigests) -> pl.Trainer:
    config = settings.training
    checkpoints = output_dir / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    callbacks = [
        LastCheckpoint(checkpoints / LAST_CHECKPOINT, CHECKPOINT_EVERY),
        LearningRateMonitor(logging_interval="step"),
        EpochReport(),
        digests,
    ]
    if quiet:
        logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    return pl.Trainer(
        max_epochs=config.epochs,
        **device_options(config),
        callbacks=callbacks,
        logger=CSVLogger(output_dir, name="logs", version=""),
        enable_checkpointing=False,  # LastCheckpoint writes them
        enable_progress_bar=not quiet,
        enable_model_summary=not quiet,
        log_every_n_steps=1,
        use_distributed_sampler=False,  # RankSlices lays out the ranks' samples itself
        default_root_dir=output_dir,
    )
