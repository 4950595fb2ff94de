"""``ptychopinn infer``: reconstruct a scan with a trained model (optionally fine-tuned on the scan
first and refined after), and the report that ``train --test-data`` shares.

Group the scan with the model's settings, normalise it with the scale contract's function, stream it
through the model and stitch the object in object pixel coordinates. Writes OUT/reconstruction.npz
(object, amplitude, phase, coverage, origin_xy), OUT/amplitude.png and OUT/phase.png; with
objectGuess in the scan also OUT/metrics.json and OUT/comparison.png. Settings are the model's, then
the inference and refinement sections of --config FILE, then the flags given.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ptychopinn.api import finetune, reconstruct
from ptychopinn.cli.common import (
    EXIT_OK,
    add_command,
    add_hidden,
    add_legacy,
    add_model_and_data,
    check_accelerator,
    check_backend,
    metrics_headline,
    new_outputs,
    read_input,
    read_model,
)
from ptychopinn.cli.diagnostics import (
    DiagnosticOptions,
    InferDiagnostics,
    add_infer_diagnostic_flags,
)
from ptychopinn.cli.flags import (
    INFER_SECTIONS,
    REFINE_FLAGS,
    add_setting_flags,
    flags_for,
    overrides_from,
    resolve,
)
from ptychopinn.cli.refine import report_data_fit, run_refinement
from ptychopinn.config import AUTO_INFERENCE_BATCH_TEXT, Settings
from ptychopinn.data import load_scan
from ptychopinn.data.product import write_reconstruction_product
from ptychopinn.evaluation.data_fit import POOR_FIT_EXCESS
from ptychopinn.plots import plot_reconstruction_channel

log = logging.getLogger(__name__)

FLAGS = flags_for(paths=INFER_SECTIONS, names=("--n-groups", "--refine-passes", *REFINE_FLAGS))
# infer refines only when asked: 0 passes unless --refine-passes or the config file says otherwise
COMMAND_DEFAULTS = {"refinement": {"passes": 0}}
CONFIG_SECTIONS = ("inference", "refinement")


@dataclass(frozen=True)
class ReportOptions:
    """How a scan is reconstructed and reported, beyond the model's settings."""

    data: Path
    output_dir: Path
    n_groups: int | None = None
    accelerator: str | None = None  # None: the model's
    backend: str | None = None  # None: the model's
    refine_passes: int | str = 0  # or "auto"
    finetune_epochs: int = 0
    save_model: bool = False
    diagnostics: DiagnosticOptions = field(default_factory=DiagnosticOptions)
    quiet: bool = False
    comparison_plot: bool = False  # the predecessor's switch: the figure needs the scan's objectGuess


@dataclass(frozen=True)
class InferOptions:
    model: Path
    config: Path | None
    overrides: dict[str, Any]
    report: ReportOptions

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> InferOptions:
        if args.finetune_epochs < 0:
            raise ValueError(f"--finetune-epochs must be 0 or more, got {args.finetune_epochs}")
        report = ReportOptions(
            data=args.data, output_dir=args.output_dir, accelerator=args.accelerator, backend=args.backend,
            finetune_epochs=args.finetune_epochs, save_model=args.save_model,
            diagnostics=DiagnosticOptions.from_args(args, args.output_dir), quiet=args.quiet,
            comparison_plot=args.comparison_plot)
        return cls(args.model, args.config, overrides_from(args, FLAGS), report)


def add_parser(commands) -> None:
    p = add_command(
        commands, "infer", run, help="reconstruct a scan with a trained model",
        doc=__doc__,
    )
    add_model_and_data(p, "model.pinn, or the training output directory holding it")
    add_legacy(p, "--test_data", "--data")
    p.add_argument("--output-dir", dest="output_dir", type=Path, required=True, help="output directory")
    add_legacy(p, "--output_dir", "--output-dir")
    p.add_argument("--config", type=Path, default=None,
                   help="YAML/JSON settings file (its inference and refinement sections)")
    # the predecessor's switch for the comparison figure, which is drawn whenever the scan has objectGuess
    add_hidden(p, "--comparison_plot", dest="comparison_plot", action="store_true")
    defaults = Settings().with_overrides(COMMAND_DEFAULTS)
    add_setting_flags(p, FLAGS, "settings (override the model's and --config)", defaults,
                      default_texts={"--backend": "the backend the model was trained with",
                                     "--n-groups": "the model's: one per scan position",
                                     "--batch-size": f"the model's, usually unset: {AUTO_INFERENCE_BATCH_TEXT}",
                                     "--accelerator": "the model's: auto",
                                     "--stitch-crop": "the model's: 20", "--stitch-weighting": "the model's: crop"})
    group = p.add_argument_group("self-supervised fine-tuning on the scan being reconstructed")
    group.add_argument("--finetune-epochs", dest="finetune_epochs", type=int, default=0,
                       help="continue training on this scan's own diffraction first, 0: off [%(default)s]")
    group.add_argument("--save-model", dest="save_model", action="store_true",
                       help="save the fine-tuned model to OUT/model_finetuned.pinn")
    add_infer_diagnostic_flags(p)


def run(args: argparse.Namespace) -> int:
    options = InferOptions.from_args(args)

    report = options.report
    check_accelerator(report.accelerator)
    check_backend(report.backend)
    model = read_model(options.model)
    settings = resolve(options.overrides, FLAGS, config=options.config, base=model.settings,
                       command_defaults=COMMAND_DEFAULTS, config_sections=CONFIG_SECTIONS)
    # lazily: the patterns stay on disk and stream through the network a batch at a time
    scan = read_input(report.data, "scan file",
                      lambda p: load_scan(p, intensity=model.settings.data.intensity, lazy=True))
    report = replace(report, n_groups=settings.data.n_groups, refine_passes=settings.refinement.passes)
    with new_outputs(report.output_dir, files=(report.diagnostics.capture_stages,)):
        reconstruct_and_report(model, scan, settings, report)
    return EXIT_OK


def maybe_finetune(model, scan, options: ReportOptions):
    if not options.finetune_epochs:
        return model

    tuned = finetune(model, scan, options.finetune_epochs, options.output_dir / "finetune",
                     quiet=options.quiet, backend=options.backend)
    if options.save_model:
        path = tuned.save(options.output_dir / "model_finetuned.pinn")
        print(f"fine-tuned model: {path}")
    return tuned


def reconstruct_and_report(model, scan, settings: Settings, options: ReportOptions):
    """Reconstruct ``scan`` with ``model`` (``settings``: its settings with the run's overrides),
    write the reconstruction, its figures and its data fit, refine it when asked, and evaluate it
    against the scan's objectGuess when there is one."""

    output_dir = options.output_dir
    model = maybe_finetune(model, scan, options)
    inference = settings.inference
    diagnostics = InferDiagnostics(options.diagnostics, output_dir, options.accelerator, options.backend)
    result = reconstruct(
        model, scan, batch_size=inference.batch_size, n_groups=options.n_groups,
        accelerator=options.accelerator or inference.accelerator, stitch_crop=inference.stitch_crop,
        stitch_weighting=inference.stitch_weighting, show_progress=not options.quiet,
        batch_observers=diagnostics.observers, backend=options.backend,
    )
    output_dir.mkdir(parents=True, exist_ok=True)
    result.save(output_dir / "reconstruction.npz")
    # the same object for ptychodus (refinement, when it follows, rewrites both files)
    write_reconstruction_product(output_dir / "product.h5", scan, result)
    plot_reconstruction_channel(result, "amplitude", output_dir / "amplitude.png")
    plot_reconstruction_channel(result, "phase", output_dir / "phase.png")
    print(f"reconstruction {result.object.shape[0]}×{result.object.shape[1]} "
          f"(origin x={result.origin_xy[0]:g}, y={result.origin_xy[1]:g}): "
          f"{output_dir / 'reconstruction.npz'}")
    diagnostics.finish(model, scan, result)
    network_result = result
    accelerator = options.accelerator or "auto"
    # the trust map describes reconstruction.npz: the refined object's, when refinement follows
    fit = report_data_fit(scan, result, "network object", accelerator,
                          None if options.refine_passes else output_dir)
    if fit.excess > POOR_FIT_EXCESS and not options.refine_passes:
        print(f"the network's object does not explain these patterns ({fit.excess:.0f}× the noise); refine it: "
              f"ptychopinn refine --data {options.data} --init {output_dir / 'reconstruction.npz'} --passes auto "
              f"--output-dir {output_dir / 'refined'}  (or infer with --refine-passes auto)")
    if options.refine_passes:
        result.save(output_dir / "network_reconstruction.npz")
        refinement, fit = run_refinement(scan, result, output_dir, settings.refinement, accelerator,
                                         quiet=options.quiet)
        result = refinement.reconstruction
    if scan.object is None and options.comparison_plot:
        log.info("--comparison_plot: the scan has no objectGuess to compare against")
    if scan.object is not None:
        from ptychopinn.evaluation.truth import evaluate_and_plot

        others = {"network": network_result} if result is not network_result else None
        metrics = evaluate_and_plot(result, scan, output_dir, others=others, fit=fit)  # fit: of ``result``
        print(metrics_headline(metrics))
    return result
