"""``ptychopinn export``: write a trained model's generator as ONNX, for inference outside Python.

The graph maps input features float32 (B, F, N, N) to the object patch's amplitude and phase,
float32 (B, 1, N, N) each, B any batch size; F is 3 for input_mode backprojection (normalised
amplitude, Re and Im of the back-projected estimate) and 1 for amplitude. The features, the physics
and the stitching stay outside the graph: compute the features with
ptychopinn.physics.backprojection.input_features(normalised amplitudes, normalised probe). The
file's metadata states this contract (patch size, input mode, normalisations, package version, the
model's sha256). Per-pattern models only (model.group_encoding per_pattern). Before the file is
kept, onnxruntime runs it on random patterns and must match PyTorch (max absolute difference within
--tolerance); exit status 2 and nothing written when it does not. Needs onnx and onnxruntime:
pip install 'ptychopinn[export]'.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from ptychopinn.cli.common import EXIT_OK, add_command, add_legacy, new_outputs, read_model

DEFAULT_OPSET = 17  # the library's default (backends.torch.onnx_export), kept here so --help needs no torch
DEFAULT_TOLERANCE = 1e-4


@dataclass(frozen=True)
class ExportOptions:
    model: Path
    onnx: Path
    opset: int
    tolerance: float

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ExportOptions:
        if not args.tolerance > 0:
            raise ValueError(f"--tolerance must be positive, got {args.tolerance}")
        return cls(args.model, args.onnx, args.opset, args.tolerance)


def add_parser(commands) -> None:
    p = add_command(commands, "export", run, help="write a trained model's generator as ONNX (edge inference)",
                    doc=__doc__)
    p.add_argument("--model", dest="model", type=Path, required=True,
                   help="model.pinn, or the training output directory holding it; or 'general', "
                   "the model shipped with the package")
    add_legacy(p, "--model_path", "--model")
    p.add_argument("--onnx", type=Path, required=True, help="the ONNX file to write, e.g. generator.onnx")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset, 11 to 20 [%(default)s]")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                   help="largest accepted |onnxruntime − PyTorch| on amplitude and phase [%(default)g]")


def run(args: argparse.Namespace) -> int:
    options = ExportOptions.from_args(args)
    from ptychopinn.backends.torch.onnx_export import export_onnx, import_export_dependencies

    import_export_dependencies()  # a missing install fails before the model is read
    model = read_model(options.model)
    with new_outputs(files=(options.onnx,)):
        report = export_onnx(model, options.onnx, options.opset, tolerance=options.tolerance)
    print(report.summary())
    print(f"ONNX generator (opset {report.opset}, {report.size_bytes / 1e6:.1f} MB): {report.path}")
    return EXIT_OK
