"""Inference with the TensorFlow backend: one compiled forward function per model."""

from __future__ import annotations

import numpy as np

from ptychopinn.backends.tensorflow.runtime import default_jit_compile, device_scope, tensorflow
from ptychopinn.model.physics_layer import ForwardOutput


class Predictor:
    """``predict(x, offsets)`` → :class:`ForwardOutput` of NumPy arrays, for NumPy batches
    (B, C, N, N) float32 and (B, C, 2) float32.

    The forward pass is a ``tf.function`` traced once for any batch size (``None`` batch axis);
    ``jit_compile`` (None: on a GPU, not on CPU) compiles it with XLA, once per batch shape.
    """

    def __init__(self, network, accelerator: str = "auto", jit_compile: bool | None = None):
        tf = tensorflow()
        self.network = network
        self.accelerator = accelerator
        self.jit_compile = default_jit_compile() if jit_compile is None else bool(jit_compile)
        arch = network.arch
        signature = [
            tf.TensorSpec((None, arch.channels, arch.patch_size, arch.patch_size), tf.float32),
            tf.TensorSpec((None, arch.channels, 2), tf.float32),
        ]
        self._forward = tf.function(self._call, input_signature=signature, jit_compile=self.jit_compile)

    def _call(self, diffraction, offsets_xy):
        return self.network.forward(diffraction, offsets_xy).as_dict()

    def __call__(self, diffraction: np.ndarray, offsets_xy: np.ndarray) -> ForwardOutput:
        with device_scope(self.accelerator):
            values = self._forward(np.asarray(diffraction, np.float32), np.asarray(offsets_xy, np.float32))
        values = {k: v.numpy() for k, v in values.items()}
        return ForwardOutput(values["amplitude"], values["object_patches"], values["group_object"],
                             values["raw_patches"], values.get("canvas"))

