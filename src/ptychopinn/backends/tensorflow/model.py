"""The physics-informed model in Keras 3 / TensorFlow: the twin of
:mod:`ptychopinn.backends.torch.model` (docs/design/spec.md#model).

Same architecture (:class:`~ptychopinn.model.architecture.Architecture`), same generators
(`cnn` here, `unet` in :mod:`ptychopinn.backends.tensorflow.unet`), same options (heads
full/central/probe_big, group encodings per_pattern/joint, amplitude activations, object_big,
probe mask), same forward path, and weights that convert exactly to and from the torch ones
(:mod:`ptychopinn.backends.tensorflow.weights`). The public tensor layout is the torch one, (B, C, N, N);
the convolutions run in Keras's NHWC layout internally.

Keras classes need Keras, which is imported only when the TensorFlow backend is used, so they
are created on first use by :func:`keras_classes`; build networks with :func:`build_network`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ptychopinn.backends.tensorflow import ops
from ptychopinn.backends.tensorflow import weights as names
from ptychopinn.backends.tensorflow.features import input_features
from ptychopinn.backends.tensorflow.losses import data_loss
from ptychopinn.backends.tensorflow.runtime import keras as load_keras
from ptychopinn.backends.tensorflow.runtime import tensorflow
from ptychopinn.config import (
    AmplitudeActivation,
    GeneratorKind,
    HeadKind,
    InputMode,
    PhaseActivation,
)
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
    return keras_classes().Network(arch, probe)


def build_generator(arch: Architecture):
    """The Keras generator ``arch.generator`` names (the twin of the torch backend's)."""
    if arch.generator is GeneratorKind.unet:
        # imported here: the unet module builds on this module's layers
        from ptychopinn.backends.tensorflow.unet import unet_classes

        return unet_classes().Generator(arch)
    return keras_classes().Generator(arch)


@functools.cache
def keras_classes():
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
        PhaseActivation.pi_tanh: lambda x: math.pi * tf.tanh(x),
        PhaseActivation.linear: tf.identity,
    }

    class Encoder(keras.layers.Layer):
        """[conv-ReLU, conv-ReLU, max-pool 2] blocks down to 8 × 8."""

        def __init__(self, in_channels: int, filters: list[int]):
            super().__init__(name="encoder")
            self.convs, previous = [], in_channels
            for block, width in enumerate(filters):
                self.convs.append(conv(width, previous, names.encoder_conv(block, 0)))
                self.convs.append(conv(width, width, names.encoder_conv(block, 1)))
                previous = width
            self.pool = keras.layers.MaxPooling2D(2)

        def call(self, x):
            """→ the 8 × 8 features and every block's features before its pool, largest first
            (the `unet`'s skip connections)."""
            skips = []
            for first, second in zip(self.convs[::2], self.convs[1::2], strict=True):
                x = second(first(x))
                skips.append(x)
                x = self.pool(x)
            return x, skips

    class HeadedDecoder(keras.layers.Layer):
        """A decoder's head (``model.head``) and activation; subclasses append their blocks' conv
        pairs to ``self.convs``, then call :meth:`build_head` with the last block's width."""

        def __init__(self, arch: Architecture, branch: str, activation):
            super().__init__(name=branch)
            self.head_kind, self.patch_size, self.activation = arch.head, arch.patch_size, activation
            self.upsample = keras.layers.UpSampling2D(2)
            self.convs: list = []

        def build_head(self, arch: Architecture, branch: str, head_input: int) -> None:
            self.head = conv(arch.output_channels, head_input, names.head_conv(branch), activation=None)
            self.outer = None
            if arch.head is HeadKind.probe_big:
                self.outer = conv(arch.output_channels, head_input, names.outer_conv(branch), activation=None)
                border = 1 - central_square(arch.patch_size)
                self.border = tf.constant(border[None, :, :, None])

        def named_convs(self) -> list:
            return [*self.convs, self.head] + ([self.outer] if self.outer is not None else [])

        def conv_pairs(self):
            return zip(self.convs[::2], self.convs[1::2], strict=True)

        def head_output(self, hidden):
            """The last block's features → the activated (B, N, N, C') head, padded for ``central``."""
            value = self.activation(self.head(hidden))
            if self.head_kind is HeadKind.full:
                return value
            value = pad_nhwc(value, self.patch_size)
            if self.outer is not None:
                value = value + self.border * tf.nn.silu(self.outer(self.upsample(hidden)))
            return value

    class Decoder(HeadedDecoder):
        """[conv-ReLU, conv-ReLU, upsample ×2] blocks to N/2 (N for ``full``), then the head."""

        def __init__(self, arch: Architecture, branch: str, in_channels: int, activation):
            super().__init__(arch, branch, activation)
            previous = in_channels
            for block, width in enumerate(arch.decoder_block_filters):
                self.convs.append(conv(width, previous, names.decoder_conv(branch, block, 0)))
                self.convs.append(conv(width, width, names.decoder_conv(branch, block, 1)))
                previous = width
            self.build_head(arch, branch, previous)

        def call(self, features):
            hidden = features
            for first, second in self.conv_pairs():
                hidden = self.upsample(second(first(hidden)))
            return self.head_output(hidden)

    class GeneratorLayout(keras.layers.Layer):
        """(B, C, F, N, N) features → (B, C', N, N) complex patches around a network on NHWC
        input; subclasses give ``amplitude_and_phase`` and ``named_convs``."""

        def __init__(self, arch: Architecture):
            super().__init__(name="generator")
            self.arch = arch

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
            amplitude, phase = self.amplitude_and_phase(nhwc)
            return tf.complex(amplitude * tf.cos(phase), amplitude * tf.sin(phase))

    class Generator(GeneratorLayout):
        """The `cnn`: encoder and two plain decoders."""

        def __init__(self, arch: Architecture):
            super().__init__(arch)
            self.encoder = Encoder(arch.input_channels, arch.encoder_filters)
            self.amplitude = Decoder(arch, "amplitude", arch.bottleneck_filters,
                                     activations[arch.amplitude_activation])
            self.phase = Decoder(arch, "phase", arch.bottleneck_filters, activations[arch.phase_activation])

        def named_convs(self) -> list:
            return [*self.encoder.convs, *self.amplitude.named_convs(), *self.phase.named_convs()]

        def amplitude_and_phase(self, nhwc):
            features, _ = self.encoder(nhwc)
            return self.amplitude(features), self.phase(features)

    class Network(keras.Model):
        """Generator + physics layer (merge/re-extract, probe, far field), with the training
        step (loss of docs/design/spec.md#loss) for ``fit``."""

        def __init__(self, arch: Architecture, probe: np.ndarray):
            super().__init__(name="ptychopinn")
            self.arch = arch
            self.generator = build_generator(arch)
            # (N, N), or K incoherent modes (K, N, N): mode 0 feeds the back-projected input and
            # the others add their intensities in the physics layer, as in the torch network
            modes = np.asarray(probe, dtype=np.complex64).reshape(-1, *np.shape(probe)[-2:])
            self.probe = tf.constant(modes[0])
            self.extra_modes = tf.constant(modes[1:]) if len(modes) > 1 else None
            self.probe_mask = tf.constant(disk_mask(arch.patch_size)) if arch.probe_mask else None
            self.support = tf.constant(head_support(arch))
            self.backprojection = (
                tuple(tf.constant(f) for f in backprojection_filters(modes[0]))
                if arch.input_mode is InputMode.backprojection else None
            )
            self.photon_scale = 1.0
            self.loss_weights: dict = {}
            self.valid_pixels = None  # (N, N) float32, 1 where the detector measured; None: all
            self.batch_observers: list = []
            self._observed_batches = {"train": 0, "val": 0}
            self.loss_tracker = keras.metrics.Mean(name="loss")
            c, n = arch.channels, arch.patch_size
            self.forward(tf.zeros((1, c, n, n)), tf.zeros((1, c, 2)))  # creates the weights
            self.built = True

        def named_convs(self) -> dict:
            """Canonical name prefix → Conv2D layer, for :mod:`ptychopinn.backends.tensorflow.weights`."""
            return {layer.name: layer for layer in self.generator.named_convs()}

        def call(self, inputs, training=False):
            diffraction, offsets = inputs
            return self.forward(diffraction, offsets).as_dict()

        def forward(self, diffraction, offsets_xy) -> ForwardOutput:
            arch = self.arch
            diffraction = tf.convert_to_tensor(diffraction, tf.float32)
            offsets_xy = tf.convert_to_tensor(offsets_xy, tf.float32)
            raw = self.generator(self.input_features(diffraction))
            return physics_forward(ops, arch, raw, offsets_xy, self.probe, self.probe_mask, self.support,
                                   self.extra_modes)

        def input_features(self, diffraction):
            """(B, C, N, N) normalised amplitudes → (B, C, F, N, N) generator input."""
            if self.backprojection is None:
                return diffraction[:, :, None]
            return input_features(diffraction, *self.backprojection)

        # -- training (Model.fit) --------------------------------------------------------------

        def configure_training(self, photon_scale: float, loss_weights: dict, observers=(),
                               valid_pixels=None) -> None:
            """``valid_pixels`` (N, N) bool: the detector pixels the loss compares (None: all)."""
            self.photon_scale = float(photon_scale)
            self.loss_weights = dict(loss_weights)
            self.batch_observers = list(observers)
            self.valid_pixels = (None if valid_pixels is None
                                 else tf.constant(np.asarray(valid_pixels, dtype=np.float32)))

        @property
        def metrics(self):
            return [self.loss_tracker]

        def loss_of(self, diffraction, offsets_xy):
            output = self.forward(diffraction, offsets_xy)
            loss = data_loss(output.amplitude, diffraction, self.photon_scale, self.loss_weights,
                             self.valid_pixels)
            return loss, output

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

    return _Classes(Network=Network, Generator=Generator, Decoder=Decoder, Encoder=Encoder,
                    HeadedDecoder=HeadedDecoder, GeneratorLayout=GeneratorLayout, conv=conv,
                    activations=activations)


@dataclass(frozen=True)
class _Classes:
    """The Keras classes, and the conv factory and activations the `unet` shares with them."""

    Network: type
    Generator: type
    Decoder: type
    Encoder: type
    HeadedDecoder: type
    GeneratorLayout: type
    conv: Callable
    activations: dict
