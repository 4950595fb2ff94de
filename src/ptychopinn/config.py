"""Every setting of the tool, as one tree of pydantic models (no globals).

Precedence wherever settings are assembled: a command-line flag beats the config file, the file
beats these defaults (:func:`resolve_settings`). Defaults follow docs/design/spec.md#scaling to #stitching-and-refinement.
"""

from __future__ import annotations

import json
import math
from enum import Enum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ptychopinn.atomic import write_text_atomic


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_enum_values=False)


class LossKind(str, Enum):
    poisson = "poisson"
    mae = "mae"
    mse = "mse"


class HeadKind(str, Enum):
    """How the object heads cover the N × N patch (docs/design/spec.md#model)."""

    full = "full"  # decoders upsampled to N: the whole field is learned
    central = "central"  # predecessor default: N/2 × N/2 centre, zero outside
    probe_big = "probe_big"  # central head plus the predecessor's outer (border) branch


class GroupEncoding(str, Enum):
    """How the generator sees a group's C patterns (docs/design/spec.md#model leaves this open)."""

    per_pattern = "per_pattern"  # one shared network per pattern; groups couple only through the merge
    joint = "joint"  # predecessor: the C patterns are the input channels of one network


class InputMode(str, Enum):
    """What the generator is given for each pattern."""

    backprojection = "backprojection"  # amplitude + the back-projected object estimate (3 channels)
    amplitude = "amplitude"  # predecessor: the normalised amplitude alone


class AmplitudeActivation(str, Enum):
    scaled_sigmoid = "scaled_sigmoid"  # 2·sigmoid: headroom above 1
    sigmoid = "sigmoid"  # predecessor: capped at 1


class StitchWeighting(str, Enum):
    crop = "crop"  # central M × M crop, equal weights
    probe = "probe"  # weights |P_n|² over the whole patch


class Backend(str, Enum):
    torch = "torch"
    tensorflow = "tensorflow"


class DataConfig(StrictModel):
    gridsize: int = Field(2, ge=1, le=4, description="patches per group along one side; C = gridsize²")
    neighbor_count: int = Field(4, ge=1, description="K nearest neighbours a group is drawn from")
    n_groups: int | None = Field(None, ge=1, description="groups to draw; None = one per position")
    intensity: bool = Field(False, description="input files hold intensities (counts), not amplitudes")
    seed: int = Field(0, description="seed of the group draws")

    @model_validator(mode="after")
    def _enough_neighbours(self) -> DataConfig:
        if self.gridsize > 1 and self.neighbor_count < self.gridsize**2:
            raise ValueError(
                f"neighbor_count ({self.neighbor_count}) must be at least gridsize² ({self.gridsize**2})"
            )
        return self

    @property
    def channels(self) -> int:
        return self.gridsize**2


class PhysicsConfig(StrictModel):
    probe_scale: float = Field(4.0, gt=0, description="probe normalisation divisor (docs/design/spec.md#scaling)")
    probe_mask: bool = Field(False, description="multiply the exit wave by a disk of radius N/4")
    nphotons: float | None = Field(
        None, gt=0, description="mean counts per pattern, only for data not in counts"
    )


class ModelConfig(StrictModel):
    architecture: str = Field("cnn", pattern="^cnn$")
    n_filters_scale: int = Field(2, ge=1, le=8, description="filter multiplier s (32, 64, 128)·s")
    object_big: bool | None = Field(None, description="merge a group's patches; None = gridsize > 1")
    head: HeadKind = HeadKind.full
    group_encoding: GroupEncoding = GroupEncoding.per_pattern
    input_mode: InputMode = InputMode.backprojection
    amplitude_activation: AmplitudeActivation = AmplitudeActivation.scaled_sigmoid


AUTO_BATCH_SIZES = (16, 8, 4)
MIN_STEPS_PER_EPOCH = 64


class TrainingConfig(StrictModel):
    epochs: int = Field(50, ge=1)
    batch_size: int | None = Field(
        None, ge=1,
        description="groups per batch; None = auto: 16, or 8 or 4 where the scan has too few training "
        f"groups for {MIN_STEPS_PER_EPOCH} optimiser steps per epoch at 16",
    )
    learning_rate: float = Field(1e-3, gt=0)
    loss: dict[LossKind, float] = Field(
        default_factory=lambda: {LossKind.poisson: 1.0},
        description="loss terms and their weights; one term is a plain loss, several a weighted sum",
    )
    validation_fraction: float = Field(0.05, ge=0, lt=1)
    early_stopping_patience: int = Field(5, ge=1)
    lr_patience: int = Field(2, ge=1)
    lr_factor: float = Field(0.5, gt=0, lt=1)
    min_lr: float = Field(1e-4, ge=0)
    final_decay_fraction: float = Field(
        0.25, ge=0, lt=1,
        description="over this last fraction of the epochs the learning rate falls geometrically from "
        "where the plateau rule left it to min_lr; 0 = none (the plateau rule alone rarely fires on the "
        "noisy validation loss of small batches, and the network then ends at its full rate)",
    )
    curriculum_fraction: float = Field(
        0.5, ge=0, le=4,
        description="when gridsize > 1 with per-pattern encoding (the network is the same), train "
        "this fraction of `epochs` at gridsize 1 first, in addition to the `epochs`; 0 = none",
    )
    seed: int = 0
    accelerator: str = "auto"
    devices: int | str = 1
    precision: str = "32-true"
    deterministic: bool = False

    @model_validator(mode="after")
    def _decay_has_a_floor(self) -> TrainingConfig:
        if self.final_decay_fraction > 0 and self.min_lr <= 0:
            raise ValueError("the final learning-rate decay ends at min_lr: set min_lr above 0, "
                             "or final_decay_fraction to 0")
        return self

    @field_validator("loss", mode="before")
    @classmethod
    def _parse_loss(cls, value: Any) -> Any:
        return parse_loss(value) if isinstance(value, str) else value

    @field_validator("loss")
    @classmethod
    def _positive_loss(cls, value: dict[LossKind, float]) -> dict[LossKind, float]:
        if not value or any(w < 0 for w in value.values()) or not any(w > 0 for w in value.values()):
            raise ValueError("loss needs at least one term with a positive weight, none negative")
        return value

    def resolved_batch_size(self, n_train_groups: int) -> int:
        """``batch_size``, or the auto choice: the largest of AUTO_BATCH_SIZES that still gives
        MIN_STEPS_PER_EPOCH optimiser steps per epoch (the smallest where none does). On small scans
        the number of steps, not of epochs, limits learning (README, reconstruction quality)."""
        if self.batch_size is not None:
            return self.batch_size
        fitting = [b for b in AUTO_BATCH_SIZES if n_train_groups / b >= MIN_STEPS_PER_EPOCH]
        return fitting[0] if fitting else AUTO_BATCH_SIZES[-1]

    def final_decay_start(self) -> int:
        """The first epoch (0-based) of the final decay; ``epochs`` when there is none."""
        return self.epochs - math.floor(self.final_decay_fraction * self.epochs)

    def decayed_learning_rate(self, epoch: int, rate_at_decay_start: float) -> float | None:
        """The learning rate of ``epoch`` in the final decay, or None before it: geometric steps
        from ``rate_at_decay_start`` that reach ``min_lr`` (or stay, if the rate is already
        lower) in the last epoch. Both backends set it at the start of each epoch."""
        start = self.final_decay_start()
        if epoch < start:
            return None
        floor = min(self.min_lr, rate_at_decay_start)
        progress = (epoch - start + 1) / (self.epochs - start)
        return rate_at_decay_start * (floor / rate_at_decay_start) ** progress

    def curriculum_epochs(self, gridsize: int, per_pattern: bool) -> int:
        """Epochs of the gridsize-1 stage that precedes the ``epochs`` at ``gridsize``."""
        if gridsize == 1 or not per_pattern:
            return 0
        return round(self.epochs * self.curriculum_fraction)


class InferenceConfig(StrictModel):
    batch_size: int = Field(64, ge=1)
    stitch_crop: int = Field(20, ge=1, description="side M of the central crop each patch stitches")
    stitch_weighting: StitchWeighting = StitchWeighting.crop
    accelerator: str = "auto"


class Settings(StrictModel):
    """The complete, resolved settings of a run; saved next to every output."""

    data: DataConfig = Field(default_factory=DataConfig)
    physics: PhysicsConfig = Field(default_factory=PhysicsConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    inference: InferenceConfig = Field(default_factory=InferenceConfig)
    backend: Backend = Backend.torch

    @property
    def object_big(self) -> bool:
        explicit = self.model.object_big
        return self.data.gridsize > 1 if explicit is None else explicit

    def to_plain(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        payload = self.to_plain()
        if path.suffix.lower() == ".json":
            text = json.dumps(payload, indent=2) + "\n"
        else:
            text = yaml.safe_dump(payload, sort_keys=False)
        return write_text_atomic(path, text)

    @classmethod
    def load(cls, path: str | Path) -> Settings:
        return cls.model_validate(read_settings_file(path))


def parse_loss(text: str) -> dict[str, float]:
    """``"poisson"`` → {poisson: 1}; ``"poisson=1,mae=0.1"`` → a weighted sum."""
    terms: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, weight = part.partition("=")
        terms[name.strip().lower()] = float(weight) if weight else 1.0
    return terms


def read_settings_file(path: str | Path) -> dict[str, Any]:
    """A YAML or JSON settings file as a plain dict (YAML is read with the safe loader)."""
    path = Path(path)
    text = path.read_text()
    payload = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    if payload is None:
        return {}
    if not isinstance(payload, dict):
        raise ValueError(f"{path}: settings file must hold a mapping, got {type(payload).__name__}")
    return payload


def deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def resolve_settings(
    config_file: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> Settings:
    """Defaults, then the file, then the overrides (nested dict, None values ignored)."""
    payload = read_settings_file(config_file) if config_file else {}
    return Settings.model_validate(deep_merge(payload, _drop_none(overrides or {})))


def _drop_none(tree: dict[str, Any]) -> dict[str, Any]:
    cleaned: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            value = _drop_none(value)
            if value:
                cleaned[key] = value
        elif value is not None:
            cleaned[key] = value
    return cleaned
