"""A trained model's generator as an ONNX graph, for inference outside Python (edge devices).

The graph is the generator alone, one pattern per batch row:

* input ``features``, float32 (B, F, N, N), B dynamic: F = 3 for ``input_mode`` backprojection
  (normalised amplitude, Re Ô, Im Ô), F = 1 for ``amplitude`` (the normalised amplitude);
* outputs ``amplitude`` and ``phase`` (radians), float32 (B, 1, N, N): the object patch is
  amplitude · exp(i · phase). ONNX has no complex type, so the graph stops before the
  generator's ``torch.polar``.

The features stay outside the graph (they need FFTs of complex fields, which ONNX cannot express
portably): the caller computes them with
:func:`ptychopinn.physics.backprojection.input_features` from the normalised amplitudes
X_n = a · X (:func:`ptychopinn.physics.scaling.input_scale`) and the scan's probe normalised as the
model's settings say. The model's ``metadata_props`` state this contract (:func:`contract_metadata`).
The physics layer (merge, probe, far field) and the stitching are not part of the graph either.

onnx and onnxruntime are optional (``pip install 'ptychopinn[export]'``) and imported only here,
when an export runs.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from torch import nn

import ptychopinn
from ptychopinn.atomic import atomic_path
from ptychopinn.config import Backend, InputMode
from ptychopinn.model.trained import TrainedModel
from ptychopinn.physics import backprojection

INSTALL_HINT = "pip install 'ptychopinn[export]'"
DEFAULT_OPSET = 17
# 11: the first with the Resize the upsampling becomes; 20: the TorchScript exporter's newest
SUPPORTED_OPSETS = range(11, 21)
# float32 agreement between onnxruntime and PyTorch; measured differences are ~1e-7
DEFAULT_TOLERANCE = 1e-4
TRACE_BATCH = 2
# verified at batch sizes other than the traced one, so a batch axis frozen by the exporter shows
VERIFY_BATCHES = (1, 5)

INPUT_NAME = "features"
OUTPUT_NAMES = ("amplitude", "phase")
FEATURE_NAMES = {
    InputMode.backprojection: "normalised amplitude, Re O_hat, Im O_hat",
    InputMode.amplitude: "normalised amplitude",
}


class ExportDependencyError(ImportError, ValueError):
    """onnx or onnxruntime is missing (an ImportError, and a ValueError for the CLI)."""


class ExportMismatchError(ValueError):
    """onnxruntime's outputs disagree with PyTorch's beyond the tolerance."""


@dataclass(frozen=True)
class ExportReport:
    """What was written and how closely onnxruntime reproduces PyTorch (max absolute
    differences over the verification batches)."""

    path: Path
    size_bytes: int
    opset: int
    max_amplitude_difference: float  # onnxruntime against PyTorch, same graph
    max_phase_difference: float  # radians
    max_patch_difference: float  # |amplitude·exp(i·phase)| against the model's own complex patches
    tolerance: float
    batch_sizes: tuple[int, ...]

    @property
    def agrees(self) -> bool:
        return self.max_difference <= self.tolerance

    @property
    def max_difference(self) -> float:
        return max(self.max_amplitude_difference, self.max_phase_difference, self.max_patch_difference)

    def summary(self) -> str:
        return (f"onnxruntime vs PyTorch at batch sizes {', '.join(map(str, self.batch_sizes))}: "
                f"max |Δ amplitude| {self.max_amplitude_difference:.2g}, "
                f"max |Δ phase| {self.max_phase_difference:.2g} rad, "
                f"max |Δ patch| {self.max_patch_difference:.2g} (tolerance {self.tolerance:g})")


class AmplitudeAndPhase(nn.Module):
    """The generator for one pattern per row, its two decoder outputs kept apart:
    (B, F, N, N) features → amplitude, phase (B, 1, N, N). It is the generator's
    ``amplitude_and_phase``, the patches without the final ``torch.polar``; the verification
    checks it against the generator itself."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.generator.amplitude_and_phase(features)


def export_onnx(model: TrainedModel, path: str | Path, opset: int = DEFAULT_OPSET, *,
                tolerance: float = DEFAULT_TOLERANCE, seed: int = 0) -> ExportReport:
    """Write ``model``'s generator to ``path`` as ONNX (see the module docstring for the graph
    and its metadata) and check it: onnxruntime runs the written file on random patterns
    (features computed from them as the contract says) and must match PyTorch within
    ``tolerance``. Raises :class:`ExportMismatchError` (nothing written) when it does not,
    ``ValueError`` for a model that cannot be exported (joint group encoding) and
    :class:`ExportDependencyError` without onnx/onnxruntime."""
    if opset not in SUPPORTED_OPSETS:
        raise ValueError(f"ONNX opset {opset} unsupported; use {SUPPORTED_OPSETS.start} to "
                         f"{SUPPORTED_OPSETS.stop - 1} (default {DEFAULT_OPSET})")
    onnx, onnxruntime = import_export_dependencies()
    generator = exportable_generator(model)
    wrapper = AmplitudeAndPhase(generator).eval()
    graph = onnx.load_from_string(trace_to_onnx(wrapper, model, opset))
    for key, value in contract_metadata(model).items():
        graph.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(graph, full_check=True)
    serialised = graph.SerializeToString()
    path = Path(path)
    with atomic_path(path) as tmp:  # verified as written; renamed into place only if it agrees
        tmp.write_bytes(serialised)
        differences = verify(onnxruntime, tmp, wrapper, generator, model, seed)
        report = ExportReport(path, len(serialised), opset, *differences, tolerance, VERIFY_BATCHES)
        if not report.agrees:
            raise ExportMismatchError(f"{path}: not written, the ONNX graph disagrees with PyTorch: "
                                      f"{report.summary()}")
    return report


def import_export_dependencies() -> tuple[ModuleType, ModuleType]:
    """onnx and onnxruntime, or one clear error naming the install command."""
    try:
        import onnx
        import onnxruntime
    except ImportError as error:
        raise ExportDependencyError(f"ONNX export needs {error.name or 'onnx and onnxruntime'}: "
                                    f"{INSTALL_HINT}") from None
    return onnx, onnxruntime


def exportable_generator(model: TrainedModel) -> nn.Module:
    """The model's generator on the CPU in inference mode; refuses what the graph cannot hold."""
    arch = model.architecture()
    if not arch.per_pattern:
        raise ValueError("ONNX export needs per-pattern encoding (model.group_encoding: per_pattern); "
                         f"this model uses {arch.group_encoding.value}, which feeds a group's "
                         f"{arch.channels} patterns to the network together")
    return model.build_module(Backend.torch, device="cpu").generator.eval()


def trace_to_onnx(wrapper: AmplitudeAndPhase, model: TrainedModel, opset: int) -> bytes:
    """The wrapper as a serialised ONNX model (TorchScript exporter; the batch axis dynamic)."""
    example = torch.from_numpy(random_features(model, TRACE_BATCH, seed=0))
    batch_axis = {0: "batch"}
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # the TorchScript exporter is deprecated in favour of the dynamo one, which needs
        # onnxscript and more; this one handles the generator's plain convolutions fully
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            wrapper, (example,), buffer, dynamo=False, opset_version=opset,
            input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
            dynamic_axes={name: batch_axis for name in (INPUT_NAME, *OUTPUT_NAMES)},
        )
    return buffer.getvalue()


def random_features(model: TrainedModel, batch: int, seed: int) -> np.ndarray:
    """Generator input for ``batch`` random normalised patterns (X_n in [0, 2)), computed as
    the contract asks an edge user to: float32 (batch, F, N, N)."""
    n = model.patch_size
    amplitudes = np.random.default_rng(seed).uniform(0.0, 2.0, (batch, n, n))
    if model.architecture().input_mode is InputMode.backprojection:
        features = backprojection.input_features(amplitudes, model.probe)
    else:
        features = amplitudes[:, None]
    return features.astype(np.float32)


def verify(onnxruntime: ModuleType, onnx_file: Path, wrapper: AmplitudeAndPhase, generator: nn.Module,
           model: TrainedModel, seed: int) -> tuple[float, float, float]:
    """Run ``onnx_file`` in onnxruntime (CPU) and PyTorch on the same random batches of each of
    :data:`VERIFY_BATCHES`: the max absolute differences of amplitude, phase and complex patch."""
    session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    amplitude_gap = phase_gap = patch_gap = 0.0
    for offset, batch in enumerate(VERIFY_BATCHES):
        features = random_features(model, batch, seed + 1 + offset)
        amplitude, phase = session.run(list(OUTPUT_NAMES), {INPUT_NAME: features})
        with torch.no_grad():
            inputs = torch.from_numpy(features)
            torch_amplitude, torch_phase = (t.numpy() for t in wrapper(inputs))
            patches = generator(inputs[:, None]).numpy()  # (B, 1, N, N) complex: the model's own
        amplitude_gap = max(amplitude_gap, _max_abs(amplitude - torch_amplitude))
        phase_gap = max(phase_gap, _max_abs(phase - torch_phase))
        patch_gap = max(patch_gap, _max_abs(amplitude * np.exp(1j * phase.astype(np.float64)) - patches))
    return amplitude_gap, phase_gap, patch_gap


def _max_abs(difference: np.ndarray) -> float:
    """max |difference|, NaN propagating (a NaN output must not pass as agreement)."""
    value = float(np.max(np.abs(difference)))
    return value if np.isfinite(value) else float("inf")


def contract_metadata(model: TrainedModel) -> dict[str, str]:
    """What an edge user needs to feed the graph and read its outputs, as ONNX metadata_props."""
    arch = model.architecture()
    physics = model.settings.physics
    metadata = {
        "ptychopinn.package_version": ptychopinn.__version__,
        "ptychopinn.patch_size": str(arch.patch_size),
        "ptychopinn.input_mode": arch.input_mode.value,
        "ptychopinn.input": f"features float32 (batch, {arch.features_per_pattern}, N, N): "
                            f"{FEATURE_NAMES[arch.input_mode]}",
        "ptychopinn.feature_function": "ptychopinn.physics.backprojection.input_features"
                                       "(normalised amplitudes, normalised probe)",
        "ptychopinn.amplitude_normalization": "X_n = a*X, X = sqrt(counts), a = sqrt((N/2)^2 / mean over "
                                              "patterns of sum X^2) (ptychopinn.physics.scaling.input_scale)",
        "ptychopinn.probe_normalization": physics.probe_normalization,
        "ptychopinn.probe_scale": repr(physics.probe_scale),
        "ptychopinn.probe_mask": str(physics.probe_mask).lower(),
        "ptychopinn.outputs": "amplitude, phase (radians) float32 (batch, 1, N, N); "
                              "object patch = amplitude*exp(i*phase)",
        "ptychopinn.training_backend": model.backend,
    }
    digest = _model_file_sha256(model)
    if digest is not None:
        metadata["ptychopinn.model_sha256"] = digest
    return metadata


def _model_file_sha256(model: TrainedModel) -> str | None:
    """The sha256 of the model.pinn the model was loaded from (None for an unsaved model)."""
    source = model.source
    if source is None or not Path(source).is_file():
        return None
    digest = hashlib.sha256()
    with open(source, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
