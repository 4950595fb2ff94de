"""The `unet` generator: the `cnn`'s encoder, heads and activations, with skip connections from
every encoder level to the decoder block of the same size and a residual bottleneck
(docs/design/spec.md#model).

The state-dict names are the canonical weight names of a `unet` bundle
(:mod:`ptychopinn.backends.tensorflow.weights` names the TensorFlow twin's convs after them):
``generator.encoder.blocks.{i}.0.{0|2}`` (as the `cnn`), ``generator.bottleneck.convs.{0|2}``,
``generator.{amplitude|phase}.blocks.{k}.{0|2}``, ``.head`` and, for ``probe_big``, ``.outer.1``.
"""

from __future__ import annotations

import torch
from torch import nn

from ptychopinn.backends.torch import ops
from ptychopinn.backends.torch.model import (
    PatchGenerator,
    _conv_pair,
    amplitude_activation,
    phase_activation,
)
from ptychopinn.config import HeadKind
from ptychopinn.model.architecture import Architecture
from ptychopinn.model.physics_layer import central_square


class UNetEncoder(nn.Module):
    """The `cnn` encoder's blocks [conv pair, max-pool], keeping each level's features before
    its pool for the skip connections."""

    def __init__(self, in_channels: int, filters: list[int]):
        super().__init__()
        blocks, previous = [], in_channels
        for width in filters:
            blocks.append(nn.Sequential(_conv_pair(previous, width), nn.MaxPool2d(2)))
            previous = width
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """→ the 8 × 8 features and every level's pre-pool features, largest first."""
        skips = []
        for convs, pool in self.blocks:
            x = convs(x)
            skips.append(x)
            x = pool(x)
        return x, skips


class ResidualBottleneck(nn.Module):
    """x + ReLU(conv(ReLU(conv(x)))) at 8 × 8: two more convolutions where the receptive field
    covers the whole pattern, with an identity path that keeps the gradient's way to the encoder short."""

    def __init__(self, width: int):
        super().__init__()
        self.convs = _conv_pair(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.convs(x)


class UNetDecoder(nn.Module):
    """[upsample ×2, concatenate the encoder's features of that size, conv pair] blocks, then
    the `cnn`'s head (``full``, ``central`` or ``probe_big``, docs/design/spec.md#model)."""

    def __init__(self, arch: Architecture, activation):
        super().__init__()
        self.head_kind = arch.head
        self.patch_size = arch.patch_size
        self.activation = activation
        blocks, previous = [], arch.bottleneck_filters
        for width, skip in zip(arch.decoder_block_filters, arch.unet_skip_filters, strict=True):
            blocks.append(_conv_pair(previous + skip, width))
            previous = width
        self.blocks = nn.ModuleList(blocks)
        self.upsample = nn.Upsample(scale_factor=2)
        self.head = nn.Conv2d(previous, arch.output_channels, 3, padding=1)
        if arch.head is HeadKind.probe_big:
            self.outer = nn.Sequential(
                nn.Upsample(scale_factor=2),
                nn.Conv2d(previous, arch.output_channels, 3, padding=1),
                nn.SiLU(),
            )
            border = torch.as_tensor(1 - central_square(arch.patch_size))
            self.register_buffer("border", border, persistent=False)

    def forward(self, bottom: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        """``skips``: the encoder's pre-pool features, largest first (:class:`UNetEncoder`)."""
        hidden = bottom
        deepest_first = skips[::-1][: len(self.blocks)]
        for convs, skip in zip(self.blocks, deepest_first, strict=True):
            hidden = convs(torch.cat([self.upsample(hidden), skip], dim=1))
        value = self.activation(self.head(hidden))
        if self.head_kind is HeadKind.full:
            return value
        value = ops.pad_to(value, self.patch_size)
        if self.head_kind is HeadKind.probe_big:
            value = value + self.border * self.outer(hidden)
        return value


class UNetGenerator(PatchGenerator):
    """The `unet`: the cnn's encoder with skip connections to the decoders and a residual
    bottleneck; the contract of :class:`~ptychopinn.backends.torch.model.PatchGenerator`."""

    def __init__(self, arch: Architecture):
        super().__init__(arch)
        self.encoder = UNetEncoder(arch.input_channels, arch.encoder_filters)
        self.bottleneck = ResidualBottleneck(arch.bottleneck_filters)
        self.amplitude = UNetDecoder(arch, amplitude_activation(arch))
        self.phase = UNetDecoder(arch, phase_activation(arch))
        self.use_memory_format(self.default_memory_format)

    def amplitude_and_phase(self, diffraction: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        bottom, skips = self.encoder(diffraction.contiguous(memory_format=self.memory_format))
        bottom = self.bottleneck(bottom)
        return self.amplitude(bottom, skips).float(), self.phase(bottom, skips).float()
