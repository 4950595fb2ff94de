"""The physics-informed model in Keras 3 / TensorFlow: the twin of
:mod:`ptychopinn.backends.torch.model` (docs/design/spec.md#model).

Same architecture (:class:`~ptychopinn.model.architecture.Architecture`), same options (heads
full/central/probe_big, group encodings per_pattern/joint, amplitude activations, object_big,
probe mask), same forward path, and weights that convert exactly to and from the torch ones
(:mod:`ptychopinn.backends.tensorflow.weights`). The public tensor layout is the torch one, (B, C, N, N);
the convolutions run in Keras's NHWC layout internally.

Keras classes need Keras, which is imported only when the TensorFlow backend is used, so they
are created on first use by :func:`_keras_classes`; build networks with :func:`build_network`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from ptychopinn.backends.tensorflow import ops
from ptychopinn.backends.tensorflow import weights as names
from ptychopinn.backends.tensorflow.features import input_features
from ptychopinn.backends.tensorflow.losses import data_loss
from ptychopinn.backends.tensorflow.runtime import keras as load_keras
from ptychopinn.backends.tensorflow.runtime import tensorflow
from ptychopinn.config import AmplitudeActivation, HeadKind, InputMode
from ptychopinn.model.architecture import Architecture
from ptychopinn.model.physics_layer import (
    ForwardOutput,
    central_square,
    head_support,
    physics_forward,
)
from ptychopinn.physics.backprojection import backprojection_filters
from ptychopinn.physics.probe import probe_mask as disk_mask


def build_network(arch: Architecture, probe: np.ndarray):
    """A built (weights created) Keras network for ``arch`` with the normalised ``probe``."""
    return _keras_classes().Network(arch, probe)


@functools.cache
def _keras_classes():
    """Define the Keras layer classes (once, when TensorFlow is first needed)."""
    tf = tensorflow()
    keras = load_keras()

    def conv(filters: int, in_channels: int, name: str, activation: str | None = "relu"):
        """3×3 'same' conv initialised like torch's ``Conv2d`` (U(±1/√fan_in) weights and biases)."""
        bound = 1 / math.sqrt(in_channels * 9)
        return keras.layers.Conv2D(
            filters, 3, padding="same", activation=activation, name=name,
            kernel_initializer=keras.initializers.VarianceScaling(1 / 3, "fan_in", "uniform"),
            bias_initializer=keras.initializers.RandomUniform(-bound, bound),
        )

    def pad_nhwc(value, size: int):
        n = value.shape[1]
        before = size // 2 - n // 2
        after = size - n - before
        return tf.pad(value, [[0, 0], [before, after], [before, after], [0, 0]])

    activations = {
        AmplitudeActivation.scaled_sigmoid: lambda x: 2 * tf.sigmoid(x),
        AmplitudeActivation.sigmoid: tf.sigmoid,
        "phase": lambda x: math.pi * tf.tanh(x),
    }

    class Encoder(keras.layers.Layer):
        def __init__(self, in_channels: int, filters: list[int]):
            super().__init__(name="encoder")
            self.convs, previous = [], in_channels
            for block, width in enumerate(filters):
                self.convs.append(conv(width, previous, names.encoder_conv(block, 0)))
                self.convs.append(conv(width, width, names.encoder_conv(block, 1)))
                previous = width
            self.pool = keras.layers.MaxPooling2D(2)

        def call(self, x):
            for first, second in zip(self.convs[::2], self.convs[1::2], strict=True):
                x = self.pool(second(first(x)))
            return x

    class Decoder(keras.layers.Layer):
        """[conv-ReLU, conv-ReLU, upsample ×2] blocks to N/2 (N for ``full``), then the head."""

        def __init__(self, arch: Architecture, branch: str, in_channels: int, activation):
            super().__init__(name=branch)
            self.head_kind, self.patch_size, self.activation = arch.head, arch.patch_size, activation
            widths = list(arch.decoder_filters)
            if arch.head is HeadKind.full:
                widths.append(arch.full_head_filters)
            self.convs, previous = [], in_channels
            for block, width in enumerate(widths):
                self.convs.append(conv(width, previous, names.decoder_conv(branch, block, 0)))
                self.convs.append(conv(width, width, names.decoder_conv(branch, block, 1)))
                previous = width
            self.upsample = keras.layers.UpSampling2D(2)
            self.head = conv(arch.output_channels, previous, names.head_conv(branch), activation=None)
            self.outer = None
            if arch.head is HeadKind.probe_big:
                self.outer = conv(arch.output_channels, previous, names.outer_conv(branch), activation=None)
                border = 1 - central_square(arch.patch_size)
                self.border = tf.constant(border[None, :, :, None])

        def named_convs(self) -> list:
            return [*self.convs, self.head] + ([self.outer] if self.outer is not None else [])

        def call(self, features):
            hidden = features
            for first, second in zip(self.convs[::2], self.convs[1::2], strict=True):
                hidden = self.upsample(second(first(hidden)))
            value = self.activation(self.head(hidden))
            if self.head_kind is HeadKind.full:
                return value
            value = pad_nhwc(value, self.patch_size)
            if self.outer is not None:
                value = value + self.border * tf.nn.silu(self.outer(self.upsample(hidden)))
            return value

    class Generator(keras.layers.Layer):
        """Normalised amplitudes (B, C, N, N) → complex object patches (B, C', N, N)."""

        def __init__(self, arch: Architecture):
            super().__init__(name="generator")
            self.arch = arch
            self.encoder = Encoder(arch.input_channels, arch.encoder_filters)
            bottleneck = arch.encoder_filters[-1]
            self.amplitude = Decoder(arch, "amplitude", bottleneck, activations[arch.amplitude_activation])
            self.phase = Decoder(arch, "phase", bottleneck, activations["phase"])

        def call(self, features):
            """(B, C, F, N, N) per-pattern features → (B, C', N, N) complex patches."""
            n = self.arch.patch_size
            channels, count = features.shape[1], features.shape[2]
            if self.arch.per_pattern:
                nchw = tf.reshape(features, (-1, count, n, n))
                patches = self._patches(tf.transpose(nchw, (0, 2, 3, 1)))
                return tf.reshape(patches, (-1, channels, n, n))
            nchw = tf.reshape(features, (-1, channels * count, n, n))
            patches = self._patches(tf.transpose(nchw, (0, 2, 3, 1)))
            return tf.transpose(patches, (0, 3, 1, 2))

        def _patches(self, nhwc):
            features = self.encoder(nhwc)
            amplitude, phase = self.amplitude(features), self.phase(features)
            return tf.complex(amplitude * tf.cos(phase), amplitude * tf.sin(phase))

    class Network(keras.Model):
        """Generator + physics layer (merge/re-extract, probe, far field), with the training
        step (loss of docs/design/spec.md#loss) for ``fit``."""

        def __init__(self, arch: Architecture, probe: np.ndarray):
            super().__init__(name="ptychopinn")
            self.arch = arch
            self.generator = Generator(arch)
            self.probe = tf.constant(np.asarray(probe, dtype=np.complex64))
            self.probe_mask = tf.constant(disk_mask(arch.patch_size)) if arch.probe_mask else None
            self.support = tf.constant(head_support(arch))
            self.backprojection = (
                tuple(tf.constant(f) for f in backprojection_filters(np.asarray(probe, dtype=np.complex64)))
                if arch.input_mode is InputMode.backprojection else None
            )
            self.photon_scale = 1.0
            self.loss_weights: dict = {}
            self.batch_observers: list = []
            self._observed_batches = {"train": 0, "val": 0}
            self.loss_tracker = keras.metrics.Mean(name="loss")
            c, n = arch.channels, arch.patch_size
            self.forward(tf.zeros((1, c, n, n)), tf.zeros((1, c, 2)))  # creates the weights
            self.built = True

        def named_convs(self) -> dict:
            """Canonical name prefix → Conv2D layer, for :mod:`ptychopinn.backends.tensorflow.weights`."""
            gen = self.generator
            layers = [*gen.encoder.convs, *gen.amplitude.named_convs(), *gen.phase.named_convs()]
            return {layer.name: layer for layer in layers}

        def call(self, inputs, training=False):
            diffraction, offsets = inputs
            return self.forward(diffraction, offsets).as_dict()

        def forward(self, diffraction, offsets_xy) -> ForwardOutput:
            arch = self.arch
            diffraction = tf.convert_to_tensor(diffraction, tf.float32)
            offsets_xy = tf.convert_to_tensor(offsets_xy, tf.float32)
            raw = self.generator(self.input_features(diffraction))
            return physics_forward(ops, arch, raw, offsets_xy, self.probe, self.probe_mask, self.support)

        def input_features(self, diffraction):
            """(B, C, N, N) normalised amplitudes → (B, C, F, N, N) generator input."""
            if self.backprojection is None:
                return diffraction[:, :, None]
            return input_features(diffraction, *self.backprojection)

        # -- training (Model.fit) --------------------------------------------------------------

        def configure_training(self, photon_scale: float, loss_weights: dict, observers=()) -> None:
            self.photon_scale = float(photon_scale)
            self.loss_weights = dict(loss_weights)
            self.batch_observers = list(observers)

        @property
        def metrics(self):
            return [self.loss_tracker]

        def loss_of(self, diffraction, offsets_xy):
            output = self.forward(diffraction, offsets_xy)
            return data_loss(output.amplitude, diffraction, self.photon_scale, self.loss_weights), output

        def train_step(self, data):
            diffraction, offsets = data
            with tf.GradientTape() as tape:
                loss, output = self.loss_of(diffraction, offsets)
            gradients = tape.gradient(loss, self.trainable_variables)
            self.optimizer.apply(gradients, self.trainable_variables)
            return self._track("train", loss, diffraction, offsets, output)

        def test_step(self, data):
            diffraction, offsets = data
            loss, output = self.loss_of(diffraction, offsets)
            return self._track("val", loss, diffraction, offsets, output)

        def _track(self, phase, loss, diffraction, offsets, output):
            batch = tf.cast(tf.shape(diffraction)[0], loss.dtype)
            self.loss_tracker.update_state(loss, sample_weight=batch)
            if self.batch_observers:  # eager only (fit runs eagerly when observers are given)
                index = self._observed_batches[phase]
                self._observed_batches[phase] += 1
                batch_np = (np.asarray(diffraction), np.asarray(offsets))
                for observe in self.batch_observers:
                    observe(phase, index, batch_np, output.numpy())
            return {"loss": self.loss_tracker.result()}

        def reset_observed_batches(self) -> None:
            self._observed_batches = {"train": 0, "val": 0}

    return _Classes(Network=Network, Generator=Generator, Decoder=Decoder, Encoder=Encoder)


@dataclass(frozen=True)
class _Classes:
    Network: type
    Generator: type
    Decoder: type
    Encoder: type
