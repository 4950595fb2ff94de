"""A trained model independent of any backend: settings, architecture, scales, probe, weights.

It is what ``model.pinn`` holds (:mod:`ptychopinn.model.bundle`); backends build their network from it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ptychopinn.config import AmplitudeActivation, GroupEncoding, HeadKind, InputMode, Settings
from ptychopinn.model.architecture import Architecture
from ptychopinn.model.bundle import Bundle, BundleError, check_weights, load_bundle, save_bundle
from ptychopinn.physics.scaling import ScaleContract

MODEL_FILE = "model.pinn"  # the bundle's name inside a training run directory
SETTINGS_FILE = "config.yaml"  # the resolved settings beside it (human-readable, reloadable)


@dataclass(frozen=True)
class ModelGeometry:
    """The architecture fields that are not plain settings (fixed at training time)."""

    patch_size: int
    canvas_size: int


@dataclass
class TrainedModel:
    settings: Settings
    geometry: ModelGeometry
    scales: ScaleContract
    probe: np.ndarray  # normalised probe P_n, complex64
    weights: dict[str, np.ndarray]
    backend: str = "torch"
    source: Path | None = None

    @property
    def patch_size(self) -> int:
        return self.geometry.patch_size

    def architecture(self) -> Architecture:
        """The backend-neutral :class:`~ptychopinn.model.architecture.Architecture` of this model."""
        s = self.settings
        return Architecture(
            patch_size=self.geometry.patch_size,
            channels=s.data.channels,
            n_filters_scale=s.model.n_filters_scale,
            object_big=s.object_big,
            head=HeadKind(s.model.head),
            amplitude_activation=AmplitudeActivation(s.model.amplitude_activation),
            group_encoding=GroupEncoding(s.model.group_encoding),
            input_mode=InputMode(s.model.input_mode),
            probe_mask=s.physics.probe_mask,
            canvas_size=self.geometry.canvas_size,
        )

    def torch_module(self, device=None):
        """A :class:`PtychoPINN` with these weights, in eval mode."""
        import torch

        from ptychopinn.backends.torch.model import PtychoPINN

        device = torch.device(device or "cpu")
        # built where it runs: moving a CPU-built module took 35 ms of every reconstruction on an
        # H100 (cProfile, 361 patterns), 7 ms built in place
        with device:
            module = PtychoPINN(self.architecture(), torch.from_numpy(self.probe).to(device))
        expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
        check_weights(self.weights, expected, source=str(self.source or "model"))
        module.load_state_dict({k: torch.from_numpy(v) for k, v in self.weights.items()})
        return module.eval()

    def tf_model(self):
        """A built Keras network (:mod:`ptychopinn.backends.tensorflow.model`) with these weights.

        The bundle holds canonical (torch-layout) weights whichever backend trained it;
        :mod:`ptychopinn.backends.tensorflow.weights` converts them. TensorFlow is imported here, lazily.
        """
        from ptychopinn.backends.tensorflow.model import build_network
        from ptychopinn.backends.tensorflow.weights import load_canonical

        network = build_network(self.architecture(), self.probe)
        load_canonical(network, self.weights, source=str(self.source or "model"))
        return network

    def save(self, path: str | Path) -> Path:
        config = {"settings": self.settings.to_plain(), "geometry": asdict(self.geometry)}
        return save_bundle(
            path, config=config, scales=self.scales, probe=self.probe, weights=self.weights,
            backend=self.backend,
        )

    @classmethod
    def from_bundle(cls, bundle: Bundle) -> TrainedModel:
        try:
            settings = Settings.model_validate(bundle.config["settings"])
            geometry = ModelGeometry(**bundle.config["geometry"])
        except (KeyError, TypeError, ValueError) as error:
            raise BundleError(f"bundle {bundle.path}: config.json is not a valid model config: {error}") from None
        return cls(settings, geometry, bundle.scales, bundle.probe, bundle.weights,
                   bundle.backend, bundle.path)


def load_model(path: str | Path) -> TrainedModel:
    """Load ``model.pinn`` (verified, nothing unpickled), or the one in the run directory ``path``,
    and check its weights fit its architecture."""
    path = Path(path)
    model = TrainedModel.from_bundle(load_bundle(path / MODEL_FILE if path.is_dir() else path))
    model.torch_module()  # refuses weights that disagree with the recorded architecture
    return model


def torch_weights(module) -> dict[str, np.ndarray]:
    """Canonical weights of a torch module (its ``state_dict`` is the canonical form)."""
    return {k: np.ascontiguousarray(v.detach().cpu().numpy(), dtype=np.float32)
            for k, v in module.state_dict().items()}
