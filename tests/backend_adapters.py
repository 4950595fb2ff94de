"""One interface over both backends for the parametrised op/model suites (NumPy in, NumPy out).

The ``backend`` fixture (conftest.py) yields a :class:`TorchBackend` or a :class:`TensorFlowBackend`;
tests call ``backend.translate(...)``, ``backend.build(...)`` and so on and assert the same things
of both. TensorFlow is imported only when its adapter is first used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ptychopinn.config import HeadKind
from ptychopinn.model.architecture import Architecture
from ptychopinn.physics import make_probe, normalize_probe


@dataclass
class Output:
    """A forward output as NumPy arrays (the attributes of ``ForwardOutput``)."""

    amplitude: np.ndarray
    object_patches: np.ndarray
    group_object: np.ndarray
    raw_patches: np.ndarray
    canvas: np.ndarray | None


def architecture(n=32, gridsize=2, head=HeadKind.full, object_big=None, scale=1, **kw) -> Architecture:
    channels = gridsize**2
    return Architecture(
        patch_size=n, channels=channels, n_filters_scale=scale,
        object_big=channels > 1 if object_big is None else object_big, head=head,
        canvas_size=n + 12, **kw,
    )


def model_inputs(batch, channels, n, seed=0):
    """The test batch of the model suites: X_n in [0, 2), centred offsets within ±4 px."""
    import torch

    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, channels, n, n, generator=g) * 2
    offsets = (torch.rand(batch, channels, 2, generator=g) - 0.5) * 8
    return x.numpy(), (offsets - offsets.mean(dim=1, keepdim=True)).numpy()


class TorchBackend:
    name = "torch"

    def __init__(self):
        import torch

        from ptychopinn.backends.torch import ops

        self.torch, self.ops = torch, ops

    def _t(self, array):
        return self.torch.from_numpy(np.ascontiguousarray(array))

    def translate(self, images, shifts):
        return self.ops.translate(self._t(images), self._t(np.asarray(shifts, np.float32))).numpy()

    def translate_gradients(self, images, shifts):
        """d sum(translate) / d images, d shifts."""
        image = self._t(images).requires_grad_(True)
        shift = self._t(np.asarray(shifts, np.float32)).requires_grad_(True)
        self.ops.translate(image, shift).sum().backward()
        return image.grad.numpy(), shift.grad.numpy()

    def far_field_amplitude(self, obj, probe):
        return self.ops.far_field_amplitude(self.ops.illuminate(self._t(obj), self._t(probe))).numpy()

    def merge_and_reextract(self, patches, offsets, support, size):
        got, canvas = self.ops.merge_and_reextract(self._t(patches), self._t(offsets), self._t(support), size)
        return got.numpy(), canvas.numpy()

    def pad_to(self, x, size):
        return self.ops.pad_to(self._t(x), size).numpy()

    def crop_centre(self, x, n):
        return self.ops.crop_centre(self._t(x), n).numpy()

    def build(self, n=32, gridsize=2, head=HeadKind.full, object_big=None, scale=1, seed=0, **kw):
        from ptychopinn.backends.torch.model import PtychoPINN

        self.torch.manual_seed(seed)
        arch = architecture(n, gridsize, head, object_big, scale, **kw)
        return TorchModel(PtychoPINN(arch, self._t(normalize_probe(make_probe(n)))).eval())


class TorchModel:
    def __init__(self, module):
        self.module = module

    def __call__(self, x, offsets) -> Output:
        import torch

        with torch.no_grad():
            out = self.module(torch.from_numpy(x), torch.from_numpy(offsets))
        return Output(*(None if v is None else v.numpy() for v in
                        (out.amplitude, out.object_patches, out.group_object, out.raw_patches, out.canvas)))

    def set_weight(self, name: str, value: float) -> None:
        import torch

        torch.nn.init.constant_(self.module.get_parameter(name), value)

    @property
    def input_channels(self) -> int:
        return self.module.generator.encoder.blocks[0][0][0].in_channels

    @property
    def probe_mask(self):
        mask = self.module.probe_mask
        return None if mask is None else mask.numpy()

    def weights(self) -> dict[str, np.ndarray]:
        from ptychopinn.model.trained import torch_weights

        return torch_weights(self.module)


class TensorFlowBackend:
    name = "tensorflow"

    def __init__(self):
        from ptychopinn.backends.tensorflow import ops
        from ptychopinn.backends.tensorflow.runtime import tensorflow

        self.tf, self.ops = tensorflow(), ops

    def translate(self, images, shifts):
        return self.ops.translate(images, np.asarray(shifts, np.float32)).numpy()

    def translate_gradients(self, images, shifts):
        tf = self.tf
        image = tf.constant(images)
        shift = tf.constant(np.asarray(shifts, np.float32))
        with tf.GradientTape() as tape:
            tape.watch([image, shift])
            total = tf.reduce_sum(self.ops.translate(image, shift))
        grads = tape.gradient(total, [image, shift])
        return grads[0].numpy(), grads[1].numpy()

    def far_field_amplitude(self, obj, probe):
        return self.ops.far_field_amplitude(self.ops.illuminate(self.tf.constant(obj), probe)).numpy()

    def merge_and_reextract(self, patches, offsets, support, size):
        tf = self.tf
        got, canvas = self.ops.merge_and_reextract(tf.constant(patches), tf.constant(offsets),
                                                   tf.constant(support), size)
        return got.numpy(), canvas.numpy()

    def pad_to(self, x, size):
        return self.ops.pad_to(self.tf.constant(x), size).numpy()

    def crop_centre(self, x, n):
        return self.ops.crop_centre(self.tf.constant(x), n).numpy()

    def build(self, n=32, gridsize=2, head=HeadKind.full, object_big=None, scale=1, seed=0, **kw):
        import keras

        from ptychopinn.backends.tensorflow.model import build_network

        keras.utils.set_random_seed(seed)
        arch = architecture(n, gridsize, head, object_big, scale, **kw)
        return TensorFlowModel(build_network(arch, normalize_probe(make_probe(n))))


class TensorFlowModel:
    def __init__(self, network):
        self.network = network

    def __call__(self, x, offsets) -> Output:
        out = self.network.forward(x, offsets).numpy()
        return Output(out.amplitude, out.object_patches, out.group_object, out.raw_patches, out.canvas)

    def set_weight(self, name: str, value: float) -> None:
        from ptychopinn.backends.tensorflow.weights import load_canonical, to_canonical

        weights = to_canonical(self.network)
        weights[name] = np.full_like(weights[name], value)
        load_canonical(self.network, weights)

    @property
    def input_channels(self) -> int:
        return int(self.network.generator.encoder.convs[0].kernel.shape[2])

    @property
    def probe_mask(self):
        mask = self.network.probe_mask
        return None if mask is None else mask.numpy()

    def weights(self) -> dict[str, np.ndarray]:
        from ptychopinn.backends.tensorflow.weights import to_canonical

        return to_canonical(self.network)

    def load(self, weights: dict[str, Any]) -> None:
        from ptychopinn.backends.tensorflow.weights import load_canonical

        load_canonical(self.network, weights)


ADAPTERS = {"torch": TorchBackend, "tensorflow": TensorFlowBackend}
