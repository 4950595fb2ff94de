"""Every setting of the tool, as one tree of pydantic models (no globals).

Precedence wherever settings are assembled: a command-line flag beats the config file, the file
beats these defaults (:func:`resolve_settings`). Defaults follow docs/design/spec.md#scaling to #stitching-and-refinement.
"""

from __future__ import annotations

import json
import logging
import math
import os
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ptychopinn.atomic import write_text_atomic
from ptychopinn.physics.probe import normalize_probe
from ptychopinn.physics.scaling import mean_total_counts

if TYPE_CHECKING:
    from ptychopinn.data.scan import Scan

log = logging.getLogger(__name__)


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


class PhaseActivation(str, Enum):
    """The phase head's output function (docs/design/spec.md#model)."""

    # φ = x, unbounded: the patch A·e^{iφ} is periodic in φ, so a free global phase has no bound to stick to
    linear = "linear"
    # φ = π·tanh(x): the predecessor's, and every bundle's written before the setting existed
    pi_tanh = "pi_tanh"


class GeneratorKind(str, Enum):
    """The network that maps a pattern's input features to its object patch (docs/design/spec.md#model)."""

    cnn = "cnn"  # encoder and two plain decoders (amplitude, phase)
    unet = "unet"  # the same with skip connections from encoder to decoders and a residual bottleneck


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
    probe_normalization: Literal["mean_amplitude", "energy"] = Field(
        "mean_amplitude",
        description="mean_amplitude: P / (probe_scale · mean |P|) (per-scan models); energy: Σ|P_n|² = (N/2)², "
        "independent of the probe's size (general models; docs/design/spec.md#scaling)",
    )

    probe_modes: int | None = Field(
        None, ge=1, le=8,
        description="incoherent probe modes in the training physics (intensities summed over modes); "
        "None = as many as the scan's probe has; more than the scan has adds modes started from its probe",
    )

    def normalized_probe(self, probe: Any) -> Any:
        """``probe`` normalised as these settings say (the scale contract's function): what the
        physics layer, the back-projected input and the stitching weights use."""
        return normalize_probe(probe, self.probe_scale, self.probe_mask, self.probe_normalization)


class ModelConfig(StrictModel):
    generator: GeneratorKind = Field(GeneratorKind.cnn, description="the network architecture: cnn or unet")
    n_filters_scale: int = Field(2, ge=1, le=8, description="filter multiplier s (32, 64, 128)·s")
    object_big: bool | None = Field(None, description="merge a group's patches; None = gridsize > 1")
    head: HeadKind = HeadKind.full
    group_encoding: GroupEncoding = GroupEncoding.per_pattern
    input_mode: InputMode = InputMode.backprojection
    amplitude_activation: AmplitudeActivation = AmplitudeActivation.scaled_sigmoid
    phase_activation: PhaseActivation = Field(
        PhaseActivation.linear,
        description="phase head: linear (unbounded; e^{iφ} wraps it) or pi_tanh (bounded to ±π; it can saturate "
        "there when the object's free global phase drifts to the bound)",
    )

    @model_validator(mode="before")
    @classmethod
    def _drop_the_only_architecture(cls, values: Any) -> Any:
        """Settings files and bundles written before ``architecture`` was removed hold
        ``architecture: cnn``, the one value it could take: accepted and dropped."""
        if isinstance(values, dict) and "architecture" in values:
            values = dict(values)
            architecture = values.pop("architecture")
            if architecture != "cnn":
                raise ValueError(f"model.architecture: only 'cnn' existed under that key, got {architecture!r}; "
                                 "choose the network with model.generator")
            log.info("model.architecture: cnn was the only architecture; the key is no longer needed")
        return values


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
    learn_probe: bool = Field(
        False,
        description="learn the probe (all its modes) jointly with the network, started from the scan's "
        "probe, its total power held fixed; the bundle keeps the learned probe",
    )
    # 1e-3 left a rough guess where it was in 6 epochs; 1e-2 (refinement's probe step) moved it from
    # similarity 0.76 to 0.85 with the truth (benchmarks/network_partial_coherence.py, gridsize 2)
    probe_learning_rate: float = Field(1e-2, gt=0, description="the probe's Adam step (--learn-probe)")
    seed: int = 0
    accelerator: str = "auto"
    devices: int | str = Field(1, description="devices per node (Lightning): a count, 'auto', or a list such as '0,1'")
    num_nodes: int = Field(1, ge=1, description="machines taking part in distributed training")
    strategy: str = Field(
        "auto", description="Lightning strategy: auto, ddp (one process per device), ddp_spawn, …")
    precision: str = Field(
        "32-true", description="Lightning precision; 'auto' = bf16-mixed on GPUs that support it, else 32-true")
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
        the number of steps, not of epochs, limits learning (docs/lab-notes/2026-11-25-network-quality.md)."""
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


# Groups per forward pass when inference.batch_size is unset. On CPU a batch of 16 keeps a
# generator's activations in cache: the shipped general model streamed 1.4x more patterns/s at 16
# than at 64 on 2 cores (benchmarks/inference_batch.py); a GPU wants large batches to stay busy.
AUTO_INFERENCE_BATCH = {"cpu": 16, "gpu": 512}
AUTO_INFERENCE_BATCH_TEXT = f"{AUTO_INFERENCE_BATCH['cpu']} on a CPU, {AUTO_INFERENCE_BATCH['gpu']} on a GPU"


class InferenceConfig(StrictModel):
    batch_size: int | None = Field(None, ge=1, description=f"groups per forward pass; None: {AUTO_INFERENCE_BATCH_TEXT}")
    stitch_crop: int = Field(20, ge=1, description="side M of the central crop each patch stitches")
    stitch_weighting: StitchWeighting = StitchWeighting.crop
    accelerator: str = "auto"

    def resolved_batch_size(self, on_gpu: bool) -> int:
        """``batch_size``, or the auto choice for the device (:data:`AUTO_INFERENCE_BATCH`)."""
        if self.batch_size is not None:
            return self.batch_size
        return AUTO_INFERENCE_BATCH["gpu" if on_gpu else "cpu"]


class RefineOptimizer(str, Enum):
    # per-pixel normalised steps of about lr, whatever the gradient: robust, and the faster at low
    # dose; but from a good start its small gradients are amplified into noise, which costs a
    # network start its lead (docs/lab-notes/2026-11-25-network-quality.md)
    adam = "adam"
    # step = gradient / (batch illumination Σ|P|², floored at its average, + 0.1 · its maximum),
    # with momentum: the amplitude loss's Gauss-Newton step, scaled as ePIE scales its update; it
    # moves every pixel in proportion to the misfit it explains, so a good start is not scrambled
    mpie = "mpie"
    # mpie from MPIE_MIN_COUNTS counts per pattern up with the amplitude loss, Adam otherwise
    auto = "auto"


class RefineLoss(str, Enum):
    amplitude = "amplitude"  # least squares on |Ψ| against the measured amplitudes
    poisson = "poisson"  # Poisson NLL of the counts


# Mean counts per pattern from which ``auto`` refines with mpie. Over eight scans (N = 64, step 5,
# flat start) mpie needed more passes to phase SSIM 0.9 than Adam on 4 of 8 at 1e4 and 3e4 counts,
# and fewer on 4, 5, 6 of 8 at 1e5, 3e5, 1e6, ending as high or higher (benchmarks/refine_dose.py);
# at N = 128 (four scans, `--n 128`) the crossover lay at the same counts per pattern, not per pixel
MPIE_MIN_COUNTS = 5e4

# Passes of the flat rival that checks a given start under Adam (RefineOptions.flat_check_passes)
ADAM_FLAT_CHECK_PASSES = 2

# Incoherent probe modes refined by default when the probe is refined (RefineOptions.probe_modes auto),
# and the most a refinement accepts
AUTO_PROBE_MODES = 3
MAX_PROBE_MODES = 8
# Passes when the probe is refined and ``passes`` is left at its default: a probe refined from a
# rough guess needs more passes than the object alone. Zone-plate scans with 3 modes, lines object:
# at N = 64 phase SSIM 0.944 after 20 passes, 0.958 after 40, 0.957 after 80; at N = 128 (484
# patterns, the same dose per object pixel) 0.917 after 40, 0.950 after 80
# (benchmarks/results/partial_coherence_cpu.md, docs/lab-notes/2026-12-05-positions-network.md)
PROBE_REFINED_PASSES = 80


class RefineOptions(StrictModel):
    """Physics-based refinement (docs/design/spec.md#stitching-and-refinement); the device it
    runs on is a runtime choice, not a setting."""

    passes: int | Literal["auto"] = Field(
        20, description="passes over all scan positions (left unset: 80 when the probe is refined); "
        "0: no refinement; auto: until the data misfit "
        "reaches the Poisson floor (auto_target_excess) or stops falling, at most auto_max_passes")
    # The discrepancy principle: an object that explains the patterns to their noise has nothing
    # left to learn from them but the noise. Refined objects settle at 1.0-1.2× (the demo: 1.1×
    # after 10 passes), so 1.1 stops where the data say little more
    auto_target_excess: float = Field(
        1.1, gt=0, description="passes auto: stop once the misfit is at most this many times the floor")
    auto_max_passes: int = Field(50, ge=1, description="passes auto: the most passes it runs")
    optimizer: RefineOptimizer = Field(
        RefineOptimizer.auto,
        description=f"adam, mpie, or auto: mpie from {MPIE_MIN_COUNTS:g} mean counts per pattern "
        "with the amplitude loss, adam otherwise",
    )
    # None: the optimiser's own. mpie: 32 positions per step (16 stalled below phase SSIM 0.96 on
    # the defocused-probe lines scan, 64 slowed the network start on the star) and the full PIE
    # step 1.0; Adam: 16 and 0.03 (0.1 and 0.01 needed more passes on most scans); docs/lab-notes/2026-11-25-network-quality.md
    batch_size: int | None = Field(
        None, description="scan positions per step; None: 32 for mpie, 16 for adam")
    learning_rate: float | None = Field(
        None, description="initial object step, cosine-decayed to final_lr_fraction of it; "
        "None: 1.0 for mpie (the full PIE step), 0.03 for adam")
    # mpie only; 0.5 needed more passes, 0.9 did not converge (docs/lab-notes/2026-11-25-network-quality.md)
    momentum: float = Field(0.8, description="heavy-ball momentum of the mpie step")
    final_lr_fraction: float = Field(0.05, description="the step's final fraction of its initial size")
    loss: RefineLoss = Field(RefineLoss.amplitude, description="amplitude least squares or Poisson NLL")
    # auto: on for a scan without a reference object (measured data: a probe from a file is rarely
    # exact, real beams are partially coherent, and a probe's guess or an earlier solver's result is
    # blurred or mis-scaled); off for a simulation, which carries its object and the true probe
    # (refining an exact probe cost 0.01-0.03 phase SSIM on the N = 32 test scan; benchmarks/partial_coherence.py)
    refine_probe: bool | Literal["auto"] = Field(
        "auto", description="refine the probe (all its modes) too; auto: on for scans without a reference "
        "object (measured data), off for simulations (their probe is the true one)")
    # the step of the probe's ePIE-like update: the batch's gradient over max |O|² of the lit canvas.
    # A batch's averaged correction moves the probe less than ePIE's one position at a time: on a
    # zone-plate scan with 3 modes from a rough guess, 1 reached phase SSIM 0.80 in 20 passes, 2 0.89,
    # 4 0.94, 8 0.92 (benchmarks/partial_coherence.py)
    probe_learning_rate: float = Field(
        4.0, description="the probe's step, as a fraction of the full ePIE probe step (normalised by the "
        "object's largest illumination |O|²)")
    probe_start_pass: int = Field(2, description="the first pass (0-based) that moves the probe")
    probe_modes: int | Literal["auto"] = Field(
        "auto", description="incoherent probe modes refined (intensities summed over modes); modes beyond "
        f"the scan's start from its probe at low power; auto: the scan's own, at least {AUTO_PROBE_MODES} "
        "when the probe is refined")
    # Off by default: exact positions gain nothing (they wander by ~0.1 px, phase SSIM -0.004 at most)
    # and each pass costs about twice as much; random errors of 0.5-2 px fall to 0.1-0.4 px and the
    # object recovers (lines, N = 64, 1 px: phase SSIM 0.674 -> 0.921; benchmarks/position_refinement.py)
    refine_positions: bool = Field(
        False, description="correct the scan positions too: a Gauss-Newton step per position once per pass, "
        "the mean step removed (a common shift is the object's); the canvas gains 4 px of margin")
    # the object must have formed before its gradient can say where a pattern belongs: from pass 2 or
    # 10 the errors left were larger on most cases (docs/guides/refinement.md#position-refinement)
    position_start_pass: int = Field(5, description="the first pass (0-based) after which the positions move")
    # 1 or 1.5 px left the same or larger errors (N = 32 grf, N = 64 lines with a drift)
    max_position_step: float = Field(
        0.5, description="the most a position moves in one pass, in object pixels")
    seed: int = Field(0, description="seed of the batch draws")
    margin: int = Field(2, description="canvas pixels beyond the outermost probe footprints")
    # A given start is refined alongside a flat one for this many passes and the start that
    # then fits the data better goes on. A network start can be worse than none: with a real,
    # centro-symmetric probe a pattern and its twin give the same diffraction, and patches that
    # mix the two set Adam back (docs/lab-notes/2026-11-25-network-quality.md); mpie refines such a start about as fast as a
    # flat one, so there the flat rival's passes cost more than they save.
    flat_check_passes: int | None = Field(
        None, description="refine a flat start alongside a given one for this many passes and go "
        f"on from the better; 0: trust the start; None: {ADAM_FLAT_CHECK_PASSES} with adam, 0 with mpie")

    @model_validator(mode="after")
    def _possible(self) -> RefineOptions:
        counts = {"passes": None if self.passes == "auto" else self.passes,
                  "flat_check_passes": self.flat_check_passes,
                  "probe_start_pass": self.probe_start_pass, "margin": self.margin,
                  "position_start_pass": self.position_start_pass}
        for name, value in counts.items():
            if value is not None and value < 0:
                raise ValueError(f"refinement {name} must be 0 or more, got {value}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"refinement batch size must be at least 1, got {self.batch_size}")
        if self.probe_modes != "auto" and not 1 <= self.probe_modes <= MAX_PROBE_MODES:
            raise ValueError(f"refinement probe_modes must be from 1 to {MAX_PROBE_MODES} or auto, "
                             f"got {self.probe_modes}")
        if self.optimizer is RefineOptimizer.auto and self.learning_rate is not None:
            raise ValueError("a refinement step size is in its optimiser's units (mpie: 1 is the full "
                             "PIE step; adam: object amplitude units); choose --refine-optimizer adam or mpie")
        if not ((self.learning_rate is None or self.learning_rate > 0) and self.probe_learning_rate > 0):
            raise ValueError("refinement step sizes must be positive, got "
                             f"{self.learning_rate} (object) and {self.probe_learning_rate} (probe)")
        if not self.max_position_step > 0:
            raise ValueError(f"refinement max_position_step must be positive (pixels), got {self.max_position_step}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"refinement momentum must be in [0, 1), got {self.momentum}")
        if self.optimizer is RefineOptimizer.mpie and self.loss is not RefineLoss.amplitude:
            raise ValueError("the mpie step is scaled for the amplitude loss; use --refine-optimizer adam "
                             "with the Poisson loss")
        if not 0 < self.final_lr_fraction <= 1:
            raise ValueError(f"final_lr_fraction must be in (0, 1], got {self.final_lr_fraction}")
        return self

    def for_scan(self, scan: Scan) -> RefineOptions:
        """These options with the defaults that depend on the scan resolved: ``auto`` becomes
        mpie from MPIE_MIN_COUNTS mean counts per pattern with the amplitude loss and Adam
        otherwise, and an unset ``flat_check_passes`` follows the optimiser."""
        optimizer = self.optimizer
        if optimizer is RefineOptimizer.auto:
            counts = mean_total_counts(scan.diffraction, scan.valid_pixels)  # a hot pixel is no signal
            mpie = counts >= MPIE_MIN_COUNTS and self.loss is RefineLoss.amplitude
            optimizer = RefineOptimizer.mpie if mpie else RefineOptimizer.adam
            log.info("refinement: %s steps (%.3g mean counts per pattern, %s loss)",
                     optimizer.value, counts, self.loss.value)
        check = self.flat_check_passes
        if check is None:
            check = ADAM_FLAT_CHECK_PASSES if optimizer is RefineOptimizer.adam else 0
        if self.probe_modes != "auto":
            self.mode_count(scan.n_probe_modes)  # warns where it drops some of the scan's modes
        return self.with_probe_resolved(scan).model_copy(
            update={"optimizer": optimizer, "flat_check_passes": check})

    def with_probe_resolved(self, scan: Scan, own_modes: int | None = None) -> RefineOptions:
        """These options with ``refine_probe`` and ``probe_modes`` auto resolved for ``scan``, whose
        probe has ``own_modes`` modes (default: the scan's own count)."""
        if self.refine_probe != "auto" and self.probe_modes != "auto":
            return self
        refined = scan.object is None if self.refine_probe == "auto" else bool(self.refine_probe)
        update = {"refine_probe": refined}
        if refined and "passes" not in self.model_fields_set:
            update["passes"] = PROBE_REFINED_PASSES
        resolved = self.model_copy(update=update)
        own = scan.n_probe_modes if own_modes is None else own_modes
        return resolved.model_copy(update={"probe_modes": resolved.mode_count(own)})

    @property
    def resolved(self) -> bool:
        """Whether every scan-dependent default is already resolved (:meth:`for_scan`)."""
        return (self.optimizer is not RefineOptimizer.auto and self.flat_check_passes is not None
                and self.refine_probe != "auto" and self.probe_modes != "auto")

    @property
    def probe_refined(self) -> bool:
        """Whether the probe is refined; resolve auto first (:meth:`with_probe_resolved`)."""
        if self.refine_probe == "auto":
            raise ValueError("refine_probe auto depends on the scan: resolve it with for_scan(scan) first")
        return bool(self.refine_probe)

    def mode_count(self, own: int) -> int:
        """The incoherent probe modes refined from a probe of ``own`` modes: ``probe_modes``, or for
        auto ``own``, raised to AUTO_PROBE_MODES when the probe is refined (a real beam is partially
        coherent; a coherent one leaves the extra modes with little power). Fewer modes than the scan
        carries drops the weakest, with a warning: the physics is then only approximate."""
        if self.probe_modes == "auto":
            return max(own, AUTO_PROBE_MODES if self.probe_refined else 1)
        if self.probe_modes < own:
            log.warning("refinement: the probe has %d incoherent modes but probe_modes=%d: refining "
                        "with its %d strongest only, so the predicted patterns miss the other modes' intensity",
                        own, self.probe_modes, self.probe_modes)
        return self.probe_modes

    @property
    def until_fitted(self) -> bool:
        """passes auto: refine until the data misfit reaches the noise floor."""
        return self.passes == "auto"

    @property
    def pass_budget(self) -> int:
        """The passes the schedule spans: ``passes``, or at most ``auto_max_passes`` for auto."""
        return self.auto_max_passes if self.until_fitted else self.passes

    @property
    def step_size(self) -> float:
        """The object's initial step: ``learning_rate``, or the optimiser's default."""
        if self.learning_rate is not None:
            return self.learning_rate
        return 1.0 if self._resolved() is RefineOptimizer.mpie else 0.03

    @property
    def positions_per_step(self) -> int:
        """``batch_size``, or the optimiser's default."""
        if self.batch_size is not None:
            return self.batch_size
        return 32 if self._resolved() is RefineOptimizer.mpie else 16

    def _resolved(self) -> RefineOptimizer:
        if self.optimizer is RefineOptimizer.auto:
            raise ValueError("the auto optimiser depends on the scan: resolve it with for_scan(scan) first")
        return self.optimizer


class CorpusConfig(StrictModel):
    """The procedural pretraining corpus (docs/design/corpus.md): every sample is drawn afresh
    from its seed and index, so nothing large is stored and the stream never repeats."""

    object_families: list[str] | None = Field(None, description="object families to draw; None = all training families")
    probe_families: list[str] | None = Field(None, description="probe families to draw; None = all training families")
    gridsize: int = Field(2, ge=1, le=4, description="each sample is a gridsize × gridsize group, merged as in training")
    dose_range: tuple[float, float] = Field((1e3, 1e8), description="photons per pattern, drawn log-uniformly")
    step_range: tuple[float, float] = Field(
        (0.08, 0.4), description="scan step as a fraction of N, drawn uniformly (overlap from high to low)")
    jitter: float = Field(0.15, ge=0, le=0.5, description="position jitter, as a fraction of the step")
    samples_per_epoch: int = Field(4096, ge=1, description="groups per epoch (an epoch is a checkpoint interval)")
    validation_samples: int = Field(128, ge=1, description="held-out groups in each validation set")
    workers: int | None = Field(
        None, ge=0, description="data-loader processes generating samples (0 = in the training process); "
        "None = auto: the CPU cores beyond two, at most 4 (on a 2-core machine a worker process takes the "
        "core the training would use, twice the time a sample costs in the training process)")

    def resolved_workers(self) -> int:
        if self.workers is not None:
            return self.workers
        return min(4, max(0, (os.cpu_count() or 1) - 2))

    @model_validator(mode="after")
    def _ordered_ranges(self) -> CorpusConfig:
        for name in ("dose_range", "step_range"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(f"{name} must be (low, high) with 0 < low <= high, got {(low, high)}")
        return self


class Settings(StrictModel):
    """The complete, resolved settings of a run; saved next to every output."""

    data: DataConfig = Field(default_factory=DataConfig)
    physics: PhysicsConfig = Field(default_factory=PhysicsConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    inference: InferenceConfig = Field(default_factory=InferenceConfig)
    refinement: RefineOptions = Field(default_factory=RefineOptions)
    corpus: CorpusConfig | None = Field(None, description="the pretraining corpus of a general model (None: trained on one scan)")
    backend: Backend = Backend.torch

    @property
    def object_big(self) -> bool:
        explicit = self.model.object_big
        return self.data.gridsize > 1 if explicit is None else explicit

    def to_plain(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def with_overrides(self, overrides: dict[str, Any]) -> Settings:
        """These settings with ``overrides`` (a nested dict, possibly partial) deep-merged in and
        validated: ``{"training": {"epochs": 8}}`` changes the epochs and keeps every other
        training setting. A None value sets the setting to None."""
        return Settings.model_validate(_merged(self, overrides))

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
    try:
        payload = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})") \
            from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ValueError(f"{path}: not valid YAML: {getattr(error, 'problem', None) or error}{where}") from None
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


def _merged(model: BaseModel, overrides: dict[str, Any]) -> dict[str, Any]:
    """``model`` as a plain dict with ``overrides`` merged in section by section: a nested dict
    merges into a settings section and replaces any other value (e.g. the loss's terms)."""
    merged = model.model_dump(mode="json")
    for key, value in overrides.items():
        current = getattr(model, key, None) if key in type(model).model_fields else None
        if isinstance(current, BaseModel) and isinstance(value, dict):
            merged[key] = _merged(current, value)
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
