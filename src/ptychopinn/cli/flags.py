"""The one table from command-line flags to settings paths.

Each :class:`SettingFlag` names a flag, the dotted path(s) in :class:`~ptychopinn.config.Settings`
it sets and its hidden predecessor spellings. The table builds the parser's arguments (their help
shows the settings' defaults, so the two cannot drift) and turns the parsed arguments back into
the nested overrides of :meth:`Settings.with_overrides`. A flag that is not given (None) leaves
the value of the config file or the default.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ptychopinn.cli.common import ACCELERATORS, UserError, add_legacy, read_input
from ptychopinn.config import (
    ADAM_FLAT_CHECK_PASSES,
    AUTO_INFERENCE_BATCH_TEXT,
    MPIE_MIN_COUNTS,
    Backend,
    GeneratorKind,
    GroupEncoding,
    HeadKind,
    InputMode,
    PhaseActivation,
    RefineLoss,
    RefineOptimizer,
    Settings,
    StitchWeighting,
    read_settings_file,
)


def _devices(text: str) -> int | str:
    return int(text) if text.isdigit() else text


def passes_or_auto(text: str) -> int | str:
    """A number of refinement passes, or "auto"."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of passes or auto, got {text!r}") from None


def int_or_auto(text: str) -> int | str:
    """A whole number, or "auto"."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number or auto, got {text!r}") from None


def _choices(enum: type[Enum]) -> tuple[str, ...]:
    return tuple(member.value for member in enum)


@dataclass(frozen=True)
class SettingFlag:
    flag: str
    paths: tuple[str, ...]
    help: str
    type: Any = None
    legacy: tuple[str, ...] = ()
    choices: tuple[str, ...] | None = None
    action: Any = None  # "store_true" or argparse.BooleanOptionalAction
    metavar: str | None = None
    default_text: str | None = None  # the default as help states it, where the value is not self-explanatory
    kwargs: dict = field(default_factory=dict)

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    def argument_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"dest": self.dest, "default": None}
        if self.action is not None:
            options["action"] = self.action
        else:
            options["type"] = self.type or str
        if self.choices:
            options["choices"] = self.choices
        if self.metavar:
            options["metavar"] = self.metavar
        return options


def _flag(flag: str, paths: str | tuple[str, ...], help: str, **options: Any) -> SettingFlag:
    return SettingFlag(flag, (paths,) if isinstance(paths, str) else paths, help, **options)


SETTING_FLAGS: tuple[SettingFlag, ...] = (
    # data
    _flag("--gridsize", "data.gridsize", "C = gridsize² patches per group", type=int),
    _flag("--neighbor-count", "data.neighbor_count", "K nearest neighbours a group is drawn from",
          type=int, legacy=("--neighbor_count",)),
    _flag("--n-groups", "data.n_groups", "groups drawn from the scan", type=int,
          legacy=("--n_groups", "--n_images"), default_text="one per scan position"),
    _flag("--intensity", "data.intensity", "input files hold intensities (counts), not amplitudes",
          action="store_true"),
    _flag("--seed", ("data.seed", "training.seed", "refinement.seed"),
          "seed for grouping, split, initialisation and refinement's batch draws", type=int),
    # physics
    _flag("--probe-mask", "physics.probe_mask", "multiply exit waves by a disk of radius N/4",
          action=argparse.BooleanOptionalAction),
    _flag("--nphotons", "physics.nphotons", "mean counts per pattern, only for data that are not in counts",
          type=float, default_text="the data's own"),
    _flag("--probe-modes", "physics.probe_modes", "incoherent probe modes K in the training physics "
          "(intensities summed over modes); more than the scan's probe has adds modes started from it",
          type=int, default_text="the scan's own count"),
    # model
    _flag("--generator", "model.generator", "the network: cnn (encoder, two decoders) or unet (with skip "
          "connections and a residual bottleneck)", choices=_choices(GeneratorKind)),
    _flag("--n-filters-scale", "model.n_filters_scale", "filter multiplier s of the generator", type=int),
    _flag("--head", "model.head", "object head: full field, central N/2 (predecessor) or central + "
          "border branch", choices=_choices(HeadKind)),
    _flag("--input-mode", "model.input_mode", "generator input: amplitude + back-projected object "
          "estimate, or the amplitude alone (predecessor)", choices=_choices(InputMode)),
    _flag("--phase-activation", "model.phase_activation", "phase head: linear (unbounded; the patch "
          "A·exp(iφ) wraps it) or pi_tanh (bounded to ±π, where it can saturate; models trained before "
          "this setting existed)", choices=_choices(PhaseActivation)),
    _flag("--group-encoding", "model.group_encoding", "one shared network per pattern, or a group's "
          "patterns as channels (predecessor)", choices=_choices(GroupEncoding)),
    _flag("--object-big", "model.object_big", "merge each group's patches into one canvas",
          action=argparse.BooleanOptionalAction, default_text="on for gridsize > 1"),
    # training
    _flag("--epochs", "training.epochs", "maximum epochs", type=int, legacy=("--nepochs", "--max_epochs")),
    _flag("--curriculum", "training.curriculum_fraction", "when gridsize > 1 (per-pattern encoding), "
          "first train this fraction of --epochs at gridsize 1, in addition to the --epochs; 0 = none",
          type=float),
    _flag("--batch-size", "training.batch_size", "groups per batch", type=int, legacy=("--batch_size",),
          default_text="auto: 16, or 8 or 4 where 16 leaves an epoch fewer than 64 steps"),
    _flag("--lr", "training.learning_rate", "Adam learning rate", type=float),
    _flag("--learn-probe", "training.learn_probe", "learn the probe (its modes) jointly with the network, "
          "from the scan's probe; the model keeps the learned probe", action=argparse.BooleanOptionalAction),
    _flag("--probe-lr", "training.probe_learning_rate", "the learned probe's Adam step", type=float),
    _flag("--loss", "training.loss", "poisson | mae | mse, or a weighted sum such as poisson=1,mae=0.1",
          legacy=("--torch-loss-mode",)),
    _flag("--accelerator", "training.accelerator", " | ".join(ACCELERATORS),
          default_text="auto: GPU when present"),
    _flag("--devices", "training.devices", "devices per node for the Lightning Trainer (a count, auto, or "
          "a list such as 0,1)", type=_devices),
    _flag("--num-nodes", "training.num_nodes", "machines taking part in distributed training", type=int),
    _flag("--strategy", "training.strategy", "Lightning strategy, e.g. ddp (one process per device; gloo "
          "on CPUs, NCCL on GPUs)"),
    _flag("--precision", "training.precision", "Lightning precision, e.g. 32-true, bf16-mixed"),
    _flag("--deterministic", "training.deterministic", "deterministic algorithms", action="store_true"),
    _flag("--backend", "backend", "PyTorch (Lightning) or TensorFlow (Keras 3); a model trained by either "
          "runs in either; tensorflow needs pip install 'ptychopinn[tensorflow]'", choices=_choices(Backend)),
    # corpus (pretrain)
    _flag("--samples-per-epoch", "corpus.samples_per_epoch", "groups drawn per epoch (an epoch ends with "
          "validation and a checkpoint)", type=int),
    _flag("--validation-samples", "corpus.validation_samples", "groups in each held-out validation set",
          type=int),
    _flag("--workers", "corpus.workers", "data-loader processes generating the corpus (0 = in the training "
          "process)", type=int, default_text="auto: the CPU cores beyond two, at most 4"),
    # inference
    _flag("--batch-size", "inference.batch_size", "groups per forward pass", type=int, legacy=("--batch_size",),
          default_text=f"auto: {AUTO_INFERENCE_BATCH_TEXT}"),
    _flag("--accelerator", "inference.accelerator", " | ".join(ACCELERATORS)),
    _flag("--stitch-crop", "inference.stitch_crop", "side M of the central crop each patch contributes",
          type=int),
    _flag("--stitch-weighting", "inference.stitch_weighting", "hard central crop, or |probe|² weights",
          choices=_choices(StitchWeighting)),
    # refinement
    _flag("--passes", "refinement.passes", "passes over all scan positions, or auto: until the data "
          "misfit reaches the Poisson floor (or stops falling)", type=passes_or_auto, legacy=("--steps",)),
    _flag("--refine-passes", "refinement.passes", "refine the network's object for this many passes "
          "over all scan positions, or auto: until the data misfit reaches the Poisson floor (or stops "
          "falling); 0: no refinement", type=passes_or_auto, legacy=("--refine-steps",)),
    _flag("--refine-batch-size", "refinement.batch_size", "scan positions per step", type=int,
          default_text="32 for mpie, 16 for adam"),
    _flag("--refine-optimizer", "refinement.optimizer", "adam: per-pixel normalised steps (works with "
          "either loss, fewer passes at low dose); mpie: PIE-style steps (gradient over the batch's "
          "illumination) with momentum, fewer passes and a higher end at moderate and high dose, and keeps "
          f"a good start's lead; auto: mpie from {MPIE_MIN_COUNTS:g} mean counts per pattern with the "
          "amplitude loss, adam otherwise", choices=_choices(RefineOptimizer)),
    _flag("--refine-lr", "refinement.learning_rate", "initial step, cosine-decayed to 5 %% of it; needs "
          "--refine-optimizer adam or mpie", type=float,
          default_text="1.0 for mpie (the full PIE step), 0.03 for adam"),
    _flag("--refine-loss", "refinement.loss", "amplitude least squares (well conditioned) or Poisson NLL",
          choices=_choices(RefineLoss)),
    _flag("--refine-probe", "refinement.refine_probe", "refine the probe (all its modes) too, from the third "
          "pass: ePIE-like steps, its power held at what the counts imply", action=argparse.BooleanOptionalAction,
          default_text="auto: on for measured data (a scan without objectGuess), off for simulations"),
    _flag("--refine-positions", "refinement.refine_positions", "correct the scan positions too (stage drift, "
          "jitter of 0.5-3 px): a Gauss-Newton step per position after every pass from refinement.position_start_pass "
          "(5), at most refinement.max_position_step (0.5 px) a pass, the mean step removed; writes positions.npz "
          "and puts the refined positions in product.h5; off by default (exact positions gain nothing from it)",
          action=argparse.BooleanOptionalAction),
    _flag("--refine-probe-modes", "refinement.probe_modes", "incoherent probe modes refined (partially "
          "coherent beams; intensities summed over modes); more than the scan's start from its probe",
          type=int_or_auto, metavar="K", default_text="auto: the scan's own, at least 3 when the probe is refined"),
    _flag("--flat-check", "refinement.flat_check_passes", "refine a flat object alongside the given start "
          "for the first K passes and go on from whichever fits the data better (a network start can be "
          "worse than none for adam, e.g. with a real, centro-symmetric probe); 0: trust the start",
          type=int, metavar="K", default_text=f"{ADAM_FLAT_CHECK_PASSES} with adam, 0 with mpie"),
)

TRAIN_SECTIONS = ("data.", "physics.", "model.", "training.", "backend")
INFER_SECTIONS = ("inference.", "backend")
REFINE_FLAGS = ("--refine-batch-size", "--refine-optimizer", "--refine-lr", "--refine-loss",
                "--refine-probe", "--refine-probe-modes", "--refine-positions", "--flat-check")


def flags_for(*, paths: tuple[str, ...] = (), names: tuple[str, ...] = (),
              exclude: tuple[str, ...] = ()) -> tuple[SettingFlag, ...]:
    """The table's flags whose paths start with one of ``paths`` or whose flag is in ``names``."""
    return tuple(f for f in SETTING_FLAGS
                 if (f.flag in names or any(p.startswith(paths) for p in f.paths)) and f.flag not in exclude)


def default_of(path: str, defaults: Settings) -> Any:
    value: Any = defaults
    for key in path.split("."):
        value = getattr(value, key)
    return value


def _default_text(flag: SettingFlag, defaults: Settings) -> str:
    if flag.default_text is not None:
        return flag.default_text
    value = default_of(flag.paths[0], defaults)
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):  # the loss: {term: weight}
        return ",".join(k.value if w == 1 else f"{k.value}={w:g}" for k, w in value.items())
    return str(value)


def add_setting_flags(parser: argparse.ArgumentParser, flags: tuple[SettingFlag, ...], title: str,
                      defaults: Settings | None = None, default_texts: dict[str, str] | None = None) -> None:
    """The ``flags`` as one argument group; help states ``defaults`` (the settings' own), or
    ``default_texts[flag]`` where the command's default is not a setting's (e.g. the model's)."""
    defaults = defaults or Settings()
    default_texts = default_texts or {}
    group = parser.add_argument_group(title)
    for flag in flags:
        options = flag.argument_options()
        default = default_texts.get(flag.flag) or _default_text(flag, defaults)
        group.add_argument(flag.flag, help=f"{flag.help} [{default}]", **options)
        for spelling in flag.legacy:
            add_legacy(parser, spelling, flag.flag)


def overrides_from(args: argparse.Namespace, flags: tuple[SettingFlag, ...]) -> dict[str, Any]:
    """The nested overrides of the ``flags`` given on the command line."""
    overrides: dict[str, Any] = {}
    for flag in flags:
        value = getattr(args, flag.dest, None)
        if value is None:
            continue
        for path in flag.paths:
            *sections, key = path.split(".")
            node = overrides
            for section in sections:
                node = node.setdefault(section, {})
            node[key] = value
    return overrides


def resolve(overrides: dict[str, Any], flags: tuple[SettingFlag, ...], *, config: Path | None = None,
            base: Settings | None = None, command_defaults: dict[str, Any] | None = None,
            config_sections: tuple[str, ...] | None = None) -> Settings:
    """``base`` (default: the defaults), then the command's own defaults, then the ``config`` file
    (only its ``config_sections`` when given), then the ``overrides`` of the flags given. A setting
    that fails validation is one line naming its path, its flag and the file it came from."""
    settings = (base or Settings()).with_overrides(command_defaults or {})
    if config is not None:
        payload = read_input(config, "settings file (YAML or JSON)", read_settings_file)
        foreign = [key for key in payload if config_sections is not None and key not in config_sections]
        if foreign:
            raise UserError(f"{config}: {', '.join(foreign)}: only the {' and '.join(config_sections)} "
                            "sections apply here (the others are the model's)")
        settings = _validated(settings, payload, flags, source=f"{config}: ")
    return _validated(settings, overrides, flags, source="")


def _validated(settings: Settings, overrides: dict[str, Any], flags: tuple[SettingFlag, ...],
               source: str) -> Settings:
    try:
        return settings.with_overrides(overrides)
    except ValidationError as error:
        raise UserError(source + describe_validation_error(error, flags)) from None


def describe_validation_error(error: ValidationError, flags: tuple[SettingFlag, ...] = ()) -> str:
    """pydantic's errors as ``setting.path (--flag): message``, joined on one line."""
    flag_of = {path: flag.flag for flag in flags for path in flag.paths}
    parts = []
    for problem in error.errors():
        path = ".".join(str(part) for part in problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = "unknown setting"
        where = f"{path} ({flag_of[path]})" if path in flag_of else path or "settings"
        parts.append(f"{where}: {message}")
    return "; ".join(parts)

