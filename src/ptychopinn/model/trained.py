"""A trained model independent of any backend: settings, architecture, scales, probe, weights.

It is what ``model.pinn`` holds (:mod:`ptychopinn.model.bundle`); either backend builds its
network from it (:meth:`TrainedModel.build_module`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ptychopinn.backends import ModelBackend, get_backend
from ptychopinn.config import Backend, PhaseActivation, Settings
from ptychopinn.model.architecture import Architecture, ModelGeometry
from ptychopinn.model.bundle import Bundle, BundleError, load_bundle, save_bundle
from ptychopinn.model.general import shipped_model_path
from ptychopinn.physics.scaling import ScaleContract

MODEL_FILE = "model.pinn"  # the bundle's name inside a training run directory
SETTINGS_FILE = "config.yaml"  # the resolved settings beside it (human-readable, reloadable)


@dataclass
class TrainedModel:
    settings: Settings
    geometry: ModelGeometry
    scales: ScaleContract
    probe: np.ndarray  # normalised probe P_n, complex64
    weights: dict[str, np.ndarray]
    backend: str = "torch"
    source: Path | None = None
    # general models: the range of the training probes' statistics (ptychopinn.model.general)
    training_probes: dict[str, list[float]] | None = None
    # (K, N, N) normalised incoherent modes, mode 0 = ``probe``; None for a single coherent probe
    probe_modes: np.ndarray | None = None
    # a probe learned in training: sha256 of the normalised guess it started from
    # (ptychopinn.api.probe_digest); inference keeps the learned probe for a scan with that guess
    probe_guess_digest: str | None = None

    @property
    def probes(self) -> np.ndarray:
        """(K, N, N) every probe mode, K = 1 for a coherent probe."""
        return self.probe_modes if self.probe_modes is not None else np.asarray(self.probe)[np.newaxis]

    @property
    def patch_size(self) -> int:
        return self.geometry.patch_size

    def architecture(self) -> Architecture:
        """The backend-neutral :class:`~ptychopinn.model.architecture.Architecture` of this model."""
        return Architecture.from_settings(self.settings, self.geometry)

    def build_module(self, backend: Backend | str | ModelBackend = Backend.torch, device=None):
        """The ``backend``'s network holding these weights, in inference mode: a torch
        ``PtychoPINN`` on ``device``, or a built Keras network. The bundle holds canonical
        (torch-layout) weights whichever backend trained it; the backend converts them."""
        backend = get_backend(backend)
        # either backend's network adds the modes' intensities in its physics layer
        probe = self.probes if self.probe_modes is not None else self.probe
        return backend.build_module(self.architecture(), probe, self.weights,
                                    device=device, source=str(self.source or "model"))

    def save(self, path: str | Path) -> Path:
        config = {"settings": self.settings.to_plain(), "geometry": asdict(self.geometry)}
        if self.training_probes is not None:
            config["training_probes"] = self.training_probes
        if self.probe_guess_digest is not None:
            config["probe_guess_sha256"] = self.probe_guess_digest
        return save_bundle(
            path, config=config, scales=self.scales, probe=self.probe, weights=self.weights,
            backend=self.backend, probe_modes=self.probe_modes,
        )

    @classmethod
    def from_bundle(cls, bundle: Bundle) -> TrainedModel:
        try:
            settings = Settings.model_validate(_with_stored_phase_activation(bundle.config["settings"]))
            geometry = ModelGeometry(**bundle.config["geometry"])
        except (KeyError, TypeError, ValueError) as error:
            raise BundleError(f"bundle {bundle.path}: config.json is not a valid model config: {error}") from None
        return cls(settings, geometry, bundle.scales, bundle.probe, bundle.weights,
                   bundle.backend, bundle.path, bundle.config.get("training_probes"),
                   bundle.probe_modes, bundle.config.get("probe_guess_sha256"))


def _with_stored_phase_activation(settings: dict) -> dict:
    """Bundles written before ``model.phase_activation`` existed all used π·tanh, which is no longer
    the default: their settings say so explicitly, so the weights meet the activation they learned with."""
    model = settings.get("model") if isinstance(settings, dict) else None
    if not isinstance(model, dict) or "phase_activation" in model:
        return settings
    return {**settings, "model": {**model, "phase_activation": PhaseActivation.pi_tanh.value}}


def load_model(path: str | Path) -> TrainedModel:
    """Load ``model.pinn`` (verified, nothing unpickled), or the one in the run directory ``path``,
    or a model shipped with the package by name ("general"), and check its weights fit its
    architecture."""
    shipped = shipped_model_path(str(path)) if not Path(path).exists() else None
    if shipped is not None and not shipped.is_file():
        raise FileNotFoundError(f"the shipped model {path!r} is not in this installation ({shipped})")
    path = shipped or Path(path)
    model = TrainedModel.from_bundle(load_bundle(path / MODEL_FILE if path.is_dir() else path))
    model.build_module()  # refuses weights that disagree with the recorded architecture
    return model
