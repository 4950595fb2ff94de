"""CLI pieces of the TensorFlow backend: the ``--backend`` flag of ``train``/``infer`` and the
``parity`` command. Nothing here imports TensorFlow; the commands load it when they run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ptychopinn.cli.diagnostics import EXIT_DIVERGED
from ptychopinn.config import Backend


def add_backend_flag(parser: argparse.ArgumentParser, *, infer: bool = False) -> None:
    """``--backend torch|tensorflow``; None when not given (train: the settings, default torch;
    infer: the backend the model was trained with)."""
    default = "the backend the model was trained with" if infer else "torch, or the config file's"
    parser.add_argument(
        "--backend", choices=[b.value for b in Backend], default=None,
        help=f"PyTorch (Lightning) or TensorFlow (Keras 3); a model trained by either runs in either; "
        f"tensorflow needs pip install 'ptychopinn[tensorflow]' [{default}]",
    )


def add_parity_command(commands, common: argparse.ArgumentParser, formatter) -> None:
    p = commands.add_parser(
        "parity",
        parents=[common],
        help="run a model in PyTorch and in TensorFlow and compare (exit 1 beyond tolerance)",
        description="Feed the identical grouped, normalised batch (the first --groups groups of "
        "the scan, grouped with the model's settings) to the PyTorch and the TensorFlow backend "
        "and report, per forward stage, the max absolute and the relative difference max|a − b| / "
        "max|a| (PyTorch is the reference); then reconstruct the whole scan with each backend and "
        "compare the stats.json statistics and the stitched canvases (registered as in docs/design/spec.md#evaluation, "
        "scored with MAE/SSIM/FRC). Runs on the CPU. Exit status: 0 every stage, statistic and "
        "canvas within --rtol, 1 beyond it, 2 error.",
        formatter_class=formatter,
        allow_abbrev=False,
    )
    p.add_argument("--model", "--model_path", dest="model", type=Path, required=True,
                   help="model.pinn (trained by either backend), or the directory holding it")
    p.add_argument("--data", dest="data", type=Path, required=True, help="scan .npz")
    p.add_argument("--groups", type=int, default=64, help="groups in the compared batch [%(default)s]")
    p.add_argument("--output-dir", "--output_dir", dest="output_dir", type=Path, default=None,
                   help="write parity.json, stages_{torch,tensorflow}.npz, {torch,tensorflow}/stats.json "
                   "(debug dumps), {torch,tensorflow}/reconstruction.npz and compare_recon.png here")
    p.add_argument("--rtol", type=float, default=1e-4,
                   help="relative tolerance (float32 arithmetic gives ~1e-6) [%(default)s]")
    p.set_defaults(handler=_cmd_parity)


def _cmd_parity(args: argparse.Namespace) -> int:
    from ptychopinn.api import require_backend
    from ptychopinn.data import load_scan
    from ptychopinn.diagnostics.parity import backend_parity, format_parity_report
    from ptychopinn.model.trained import load_model

    if args.groups < 1:
        raise ValueError(f"--groups must be at least 1, got {args.groups}")
    require_backend("tensorflow")
    model = load_model(args.model)
    scan = load_scan(args.data, intensity=model.settings.data.intensity)
    result = backend_parity(model, scan, n_groups=args.groups, rtol=args.rtol, output_dir=args.output_dir)
    print(format_parity_report(result.report))
    if args.output_dir:
        print(f"report: {args.output_dir / 'parity.json'}")
    return 0 if result.ok else EXIT_DIVERGED
