"""The `unet` generator in Keras 3: the twin of :mod:`ptychopinn.backends.torch.unet`
(docs/design/spec.md#model).

It shares the `cnn`'s encoder, heads, activations and layout handling
(:func:`ptychopinn.backends.tensorflow.model.keras_classes`) and adds the skip connections and the
residual bottleneck; every conv carries its canonical (torch) name from
:mod:`ptychopinn.backends.tensorflow.weights`, so a bundle's weights load into either backend.
The classes need Keras and are created on first use by :func:`unet_classes`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from ptychopinn.backends.tensorflow import weights as names
from ptychopinn.backends.tensorflow.model import keras_classes
from ptychopinn.backends.tensorflow.runtime import keras as load_keras
from ptychopinn.backends.tensorflow.runtime import tensorflow
from ptychopinn.model.architecture import Architecture


@functools.cache
def unet_classes():
    """Define the `unet`'s Keras layer classes (once, when TensorFlow is first needed)."""
    tf = tensorflow()
    keras = load_keras()
    shared = keras_classes()
    conv = shared.conv

    class ResidualBottleneck(keras.layers.Layer):
        """x + ReLU(conv(ReLU(conv(x)))) at 8 × 8."""

        def __init__(self, width: int):
            super().__init__(name="bottleneck")
            self.convs = [conv(width, width, names.bottleneck_conv(index)) for index in (0, 1)]

        def call(self, x):
            first, second = self.convs
            return x + second(first(x))

    class Decoder(shared.HeadedDecoder):
        """[upsample ×2, concatenate the encoder's features of that size, conv pair] blocks, then
        the `cnn`'s head."""

        def __init__(self, arch: Architecture, branch: str, activation):
            super().__init__(arch, branch, activation)
            previous = arch.bottleneck_filters
            blocks = zip(arch.decoder_block_filters, arch.unet_skip_filters, strict=True)
            for block, (width, skip) in enumerate(blocks):
                self.convs.append(conv(width, previous + skip, names.unet_decoder_conv(branch, block, 0)))
                self.convs.append(conv(width, width, names.unet_decoder_conv(branch, block, 1)))
                previous = width
            self.build_head(arch, branch, previous)

        def call(self, bottom, skips):
            """``skips``: the encoder's pre-pool features, largest first."""
            hidden = bottom
            pairs = list(self.conv_pairs())
            deepest_first = skips[::-1][: len(pairs)]
            for (first, second), skip in zip(pairs, deepest_first, strict=True):
                hidden = second(first(tf.concat([self.upsample(hidden), skip], axis=-1)))
            return self.head_output(hidden)

    class Generator(shared.GeneratorLayout):
        """Shared encoder, residual bottleneck, two decoders with skip connections."""

        def __init__(self, arch: Architecture):
            super().__init__(arch)
            self.encoder = shared.Encoder(arch.input_channels, arch.encoder_filters)
            self.bottleneck = ResidualBottleneck(arch.bottleneck_filters)
            self.amplitude = Decoder(arch, "amplitude", shared.activations[arch.amplitude_activation])
            self.phase = Decoder(arch, "phase", shared.activations[arch.phase_activation])

        def named_convs(self) -> list:
            return [*self.encoder.convs, *self.bottleneck.convs, *self.amplitude.named_convs(),
                    *self.phase.named_convs()]

        def amplitude_and_phase(self, nhwc):
            bottom, skips = self.encoder(nhwc)
            bottom = self.bottleneck(bottom)
            return self.amplitude(bottom, skips), self.phase(bottom, skips)

    return _UNetClasses(Generator=Generator, Decoder=Decoder, ResidualBottleneck=ResidualBottleneck)


@dataclass(frozen=True)
class _UNetClasses:
    Generator: type
    Decoder: type
    ResidualBottleneck: type
