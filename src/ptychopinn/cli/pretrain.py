"""``ptychopinn pretrain``: train a general model on an endless procedural corpus.

Pretrain a general model: no scan is needed. Every sample is a small overlapping scan simulated
on the fly in the data loader (an object from one of many families, a probe from another, a dose
between 1e3 and 1e8 photons, a random scan step and jitter; docs/design/corpus.md), so nothing
large is stored and the stream never repeats. The network reads each sample's own probe.
Validation runs after every epoch on two fixed held-out sets: object families and images never
trained on, and a probe family never trained on (val_fidelity: 1 = the object up to its global
phase and scale).

Writes DIR/model.pinn (a general model: infer --model DIR uses each scan's own probe),
DIR/config.yaml, DIR/metrics.csv, DIR/training_curves.png and DIR/checkpoints/last.ckpt (every
epoch and every 5 minutes); --resume DIR/checkpoints/last.ckpt continues an interrupted run.
--batch-size is the global batch: with --devices 2 --strategy ddp each of the two processes
takes half of it.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ptychopinn.api import pretrain
from ptychopinn.cli import common
from ptychopinn.cli.flags import add_setting_flags, flags_for, overrides_from, resolve
from ptychopinn.model.architecture import SUPPORTED_PATCH_SIZES
from ptychopinn.model.general import pretraining_settings

log = logging.getLogger("ptychopinn")

FLAGS = flags_for(paths=("model.", "training.", "corpus."), names=("--seed",),
                  exclude=("--curriculum", "--object-big", "--group-encoding", "--lr-patience"))


@dataclass(frozen=True)
class PretrainOptions:
    output_dir: Path
    patch_size: int
    config: Path | None
    resume: Path | None
    overrides: dict[str, Any]
    quiet: bool

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> PretrainOptions:
        return cls(args.output_dir, args.patch_size, args.config, args.resume, overrides_from(args, FLAGS),
                   args.quiet)


def add_parser(commands) -> None:
    p = common.add_command(commands, "pretrain", run, help="pretrain a general model on a procedural corpus",
                           doc=__doc__)
    p.add_argument("--output-dir", dest="output_dir", type=Path, required=True, help="output directory")
    p.add_argument("--patch-size", dest="patch_size", type=int, default=64, choices=SUPPORTED_PATCH_SIZES,
                   help="detector side N the model is for [64]")
    p.add_argument("--config", type=Path, default=None, help="YAML/JSON settings file (may hold a corpus section)")
    p.add_argument("--resume", type=Path, default=None,
                   help="continue from a checkpoint, e.g. DIR/checkpoints/last.ckpt")
    add_setting_flags(p, FLAGS, "settings (override --config)", defaults=pretraining_settings())


def run(args: argparse.Namespace) -> int:
    options = PretrainOptions.from_args(args)
    settings = resolve(options.overrides, FLAGS, config=options.config, base=pretraining_settings())
    common.check_accelerator(settings.training.accelerator)
    if options.resume is not None and not options.resume.is_file():
        raise FileNotFoundError(f"{options.resume}: no such checkpoint (--resume)")
    with common.new_outputs(options.output_dir):
        summary = pretrain(options.output_dir, settings, patch_size=options.patch_size, resume=options.resume,
                           quiet=options.quiet)
    if summary.model_path is not None:
        ranks = f" on {summary.world_size} processes" if summary.world_size > 1 else ""
        print(f"pretrained {summary.epochs_run} epochs ({summary.steps_run} steps) on {summary.device}{ranks} "
              f"in {summary.wall_seconds / 60:.1f} min; model: {summary.model_path}")
    return common.EXIT_OK
