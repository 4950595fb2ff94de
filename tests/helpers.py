"""The tests' shared helpers: the console-script runner, strict JSON and PNG checks, and one
interface over both backends for the parametrised op/model suites (NumPy in, NumPy out).

The ``backend`` fixture (conftest.py) yields a :class:`TorchAdapter` or a :class:`TensorFlowAdapter`;
tests call ``backend.translate(...)``, ``backend.build(...)`` and so on and assert the same things
of both. Networks are built as the tool builds them: an :class:`Architecture` from settings
(:func:`architecture`) and the backend's ``build_module``. TensorFlow is imported only when its
adapter is first used.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ptychopinn.backends import get_backend
from ptychopinn.config import HeadKind, InputMode, resolve_settings
from ptychopinn.model.architecture import Architecture, ModelGeometry
from ptychopinn.physics import make_probe, normalize_probe

STAT_KEYS = {"mean", "std", "min", "max", "var_zero_mean"}  # of every stats.json entry


def run_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """The console script in a subprocess; ``check``: fail the test unless it exits 0."""
    exe = shutil.which("ptychopinn") or str(Path(sys.executable).parent / "ptychopinn")
    result = subprocess.run([exe, *args], capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"ptychopinn {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def strict_load(path):
    """json.load that refuses NaN/Infinity tokens (strict JSON)."""
    def refuse(token):
        raise AssertionError(f"non-strict JSON token {token} in {path}")

    return json.loads(path.read_text(), parse_constant=refuse)


def assert_real_png(path, min_std=5.0):
    """A PNG with content (grey-level spread above ``min_std``), not a blank canvas."""
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert np.asarray(image.convert("L"), dtype=float).std() > min_std


@dataclass
class Output:
    """A forward output as NumPy arrays (the attributes of ``ForwardOutput``)."""

    amplitude: np.ndarray
    object_patches: np.ndarray
    group_object: np.ndarray
    raw_patches: np.ndarray
    canvas: np.ndarray | None


def architecture(n=32, gridsize=2, head=HeadKind.full, object_big=None, scale=1, *,
                 input_mode=InputMode.amplitude, probe_mask=False, **model) -> Architecture:
    """The test networks' architecture, from settings as the tool makes it: N = ``n``, a canvas
    12 px wider, filter scale ``scale``, amplitude input unless asked; ``object_big`` None follows
    the gridsize; ``model`` holds further ``model`` settings (group_encoding, amplitude_activation)."""
    settings = resolve_settings(None, {
        "data": {"gridsize": gridsize, "neighbor_count": max(4, gridsize**2)},
        "model": {"n_filters_scale": scale, "object_big": object_big, "head": head, "input_mode": input_mode,
                  **model},
        "physics": {"probe_mask": probe_mask},
    })
    return Architecture.from_settings(settings, ModelGeometry(patch_size=n, canvas_size=n + 12))


def normalised_probe(n: int) -> np.ndarray:
    return normalize_probe(make_probe(n))


def model_inputs(batch, channels, n, seed=0):
    """The test batch of the model suites: X_n in [0, 2), centred offsets within ±4 px."""
    import torch

    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, channels, n, n, generator=g) * 2
    offsets = (torch.rand(batch, channels, 2, generator=g) - 0.5) * 8
    return x.numpy(), (offsets - offsets.mean(dim=1, keepdim=True)).numpy()


class BackendAdapter:
    """One backend's ops and networks, NumPy in and NumPy out; subclasses say how an array
    becomes the backend's tensor and how a build is seeded."""

    name: str

    def __init__(self, ops):
        self.ops = ops
        self.backend = get_backend(self.name)

    def tensor(self, array):
        raise NotImplementedError

    def translate(self, images, shifts):
        return self.ops.translate(self.tensor(images), self.tensor(np.asarray(shifts, np.float32))).numpy()

    def far_field_amplitude(self, obj, probe):
        return self.ops.far_field_amplitude(self.ops.illuminate(self.tensor(obj), self.tensor(probe))).numpy()

    def merge_and_reextract(self, patches, offsets, support, size):
        got, canvas = self.ops.merge_and_reextract(self.tensor(patches), self.tensor(offsets),
                                                   self.tensor(support), size)
        return got.numpy(), canvas.numpy()

    def pad_to(self, x, size):
        return self.ops.pad_to(self.tensor(x), size).numpy()

    def crop_centre(self, x, n):
        return self.ops.crop_centre(self.tensor(x), n).numpy()

    def build(self, n=32, gridsize=2, head=HeadKind.full, object_big=None, scale=1, seed=0, **kw):
        """A network of :func:`architecture` (``kw``: its options), initialised from ``seed``."""
        self.seed(seed)
        arch = architecture(n, gridsize, head, object_big, scale, **kw)
        return self.model_adapter(self.backend.build_module(arch, normalised_probe(n)))


class ModelAdapter:
    """A built network of either backend, called with NumPy arrays."""

    def __init__(self, network):
        self.network = network

    @property
    def probe_mask(self):
        mask = self.network.probe_mask
        return None if mask is None else np.asarray(mask)


class TorchAdapter(BackendAdapter):
    name = "torch"

    def __init__(self):
        import torch

        from ptychopinn.backends.torch import ops

        super().__init__(ops)
        self.torch = torch

    def tensor(self, array):
        return self.torch.from_numpy(np.ascontiguousarray(array))

    def seed(self, seed: int) -> None:
        self.torch.manual_seed(seed)

    def model_adapter(self, network) -> TorchModel:
        return TorchModel(network)

    def translate_gradients(self, images, shifts):
        """d sum(translate) / d images, d shifts."""
        image = self.tensor(images).requires_grad_(True)
        shift = self.tensor(np.asarray(shifts, np.float32)).requires_grad_(True)
        self.ops.translate(image, shift).sum().backward()
        return image.grad.numpy(), shift.grad.numpy()


class TorchModel(ModelAdapter):
    def __call__(self, x, offsets) -> Output:
        import torch

        with torch.no_grad():
            out = self.network(torch.from_numpy(x), torch.from_numpy(offsets))
        return Output(*(None if v is None else v.numpy() for v in
                        (out.amplitude, out.object_patches, out.group_object, out.raw_patches, out.canvas)))

    def set_weight(self, name: str, value: float) -> None:
        import torch

        torch.nn.init.constant_(self.network.get_parameter(name), value)

    @property
    def input_channels(self) -> int:
        return self.network.generator.encoder.blocks[0][0][0].in_channels

    def weights(self) -> dict[str, np.ndarray]:
        from ptychopinn.backends.torch.backend import torch_weights

        return torch_weights(self.network)


class TensorFlowAdapter(BackendAdapter):
    name = "tensorflow"

    def __init__(self):
        from ptychopinn.backends.tensorflow import ops
        from ptychopinn.backends.tensorflow.runtime import tensorflow

        super().__init__(ops)
        self.tf = tensorflow()

    def tensor(self, array):
        return self.tf.constant(array)

    def seed(self, seed: int) -> None:
        import keras

        keras.utils.set_random_seed(seed)

    def model_adapter(self, network) -> TensorFlowModel:
        return TensorFlowModel(network)

    def translate_gradients(self, images, shifts):
        tf = self.tf
        image = tf.constant(images)
        shift = tf.constant(np.asarray(shifts, np.float32))
        with tf.GradientTape() as tape:
            tape.watch([image, shift])
            total = tf.reduce_sum(self.ops.translate(image, shift))
        grads = tape.gradient(total, [image, shift])
        return grads[0].numpy(), grads[1].numpy()


class TensorFlowModel(ModelAdapter):
    def __call__(self, x, offsets) -> Output:
        out = self.network.forward(x, offsets).numpy()
        return Output(out.amplitude, out.object_patches, out.group_object, out.raw_patches, out.canvas)

    def set_weight(self, name: str, value: float) -> None:
        weights = self.weights()
        weights[name] = np.full_like(weights[name], value)
        self.load(weights)

    @property
    def input_channels(self) -> int:
        return int(self.network.generator.encoder.convs[0].kernel.shape[2])

    def weights(self) -> dict[str, np.ndarray]:
        from ptychopinn.backends.tensorflow.weights import to_canonical

        return to_canonical(self.network)

    def load(self, weights: dict[str, Any]) -> None:
        from ptychopinn.backends.tensorflow.weights import load_canonical

        load_canonical(self.network, weights)


ADAPTERS = {"torch": TorchAdapter, "tensorflow": TensorFlowAdapter}
