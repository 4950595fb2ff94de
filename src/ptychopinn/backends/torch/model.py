"""The physics-informed model: the `cnn` generator plus the differentiable physics layer (docs/design/spec.md#model).

``PtychoPINN.forward`` is the only forward path: training, validation, inference and the
diagnostics all call it, so training-time and inference-time patches are identical by design.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ptychopinn.backends.torch import ops
from ptychopinn.backends.torch.features import (
    backprojection_filters,
    input_features,
    per_sample_filters,
)
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
from ptychopinn.physics.probe import probe_mask as disk_mask


def _conv_pair(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, 3, padding=1),
        nn.ReLU(),
    )


class Encoder(nn.Module):
    def __init__(self, in_channels: int, filters: list[int]):
        super().__init__()
        blocks, previous = [], in_channels
        for width in filters:
            blocks.append(nn.Sequential(_conv_pair(previous, width), nn.MaxPool2d(2)))
            previous = width
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


class Decoder(nn.Module):
    """[conv-ReLU, conv-ReLU, upsample ×2] blocks to N/2, then the head (docs/design/spec.md#model).

    ``full`` adds one more block to reach N; ``probe_big`` adds the predecessor's outer branch
    (upsample to N, conv, swish) masked to the border outside the central N/2 square.
    """

    def __init__(self, arch: Architecture, in_channels: int, activation):
        super().__init__()
        self.head_kind = arch.head
        self.patch_size = arch.patch_size
        self.activation = activation
        blocks, previous = [], in_channels
        for width in arch.decoder_filters:
            blocks.append(nn.Sequential(_conv_pair(previous, width), nn.Upsample(scale_factor=2)))
            previous = width
        if arch.head is HeadKind.full:
            width = arch.full_head_filters
            blocks.append(nn.Sequential(_conv_pair(previous, width), nn.Upsample(scale_factor=2)))
            previous = width
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Conv2d(previous, arch.output_channels, 3, padding=1)
        if arch.head is HeadKind.probe_big:
            self.outer = nn.Sequential(
                nn.Upsample(scale_factor=2),
                nn.Conv2d(previous, arch.output_channels, 3, padding=1),
                nn.SiLU(),
            )
            border = torch.as_tensor(1 - central_square(arch.patch_size))
            self.register_buffer("border", border, persistent=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        hidden = self.blocks(features)
        value = self.activation(self.head(hidden))
        if self.head_kind is HeadKind.full:
            return value
        value = ops.pad_to(value, self.patch_size)
        if self.head_kind is HeadKind.probe_big:
            value = value + self.border * self.outer(hidden)
        return value


def _scaled_sigmoid(x: torch.Tensor) -> torch.Tensor:
    return 2 * torch.sigmoid(x)


def _pi_tanh(x: torch.Tensor) -> torch.Tensor:
    return math.pi * torch.tanh(x)


def _linear(x: torch.Tensor) -> torch.Tensor:
    return x


def amplitude_activation(arch: Architecture):
    return _scaled_sigmoid if arch.amplitude_activation is AmplitudeActivation.scaled_sigmoid else torch.sigmoid


def phase_activation(arch: Architecture):
    return _pi_tanh if arch.phase_activation is PhaseActivation.pi_tanh else _linear


class PatchGenerator(nn.Module):
    """What every generator shares: per-pattern input features (B, C, F, N, N) → complex object
    patches (B, C', N, N), one network pass per pattern or per group, on NHWC convolutions.
    A generator implements :meth:`amplitude_and_phase`."""

    # NHWC convolutions: training 1.2-1.8x and inference 1.4-1.9x faster on CPU (oneDNN) than
    # NCHW (benchmarks/train_infer.py); the weights' values and shapes are the same in either layout
    default_memory_format = torch.channels_last

    def __init__(self, arch: Architecture):
        super().__init__()
        self.per_pattern = arch.per_pattern
        self.memory_format = self.default_memory_format

    def use_memory_format(self, memory_format: torch.memory_format) -> PatchGenerator:
        """Lay weights and inputs out as ``memory_format`` (the same numbers either way)."""
        self.memory_format = memory_format
        return self.to(memory_format=memory_format)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        batch, channels, count, n, _ = features.shape
        if self.per_pattern:
            patches = self._patches(features.reshape(batch * channels, count, n, n))
            return patches.reshape(batch, channels, n, n)
        return self._patches(features.reshape(batch, channels * count, n, n))

    def _patches(self, diffraction: torch.Tensor) -> torch.Tensor:
        return torch.polar(*self.amplitude_and_phase(diffraction))

    def amplitude_and_phase(self, diffraction: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, F, N, N) features → the two heads' (B, C', N, N) outputs, float32 (also under
        mixed precision: the patches feed the float32 physics). ONNX export traces this."""
        raise NotImplementedError


class Generator(PatchGenerator):
    """The `cnn`: an encoder and two plain decoders (amplitude, phase)."""

    def __init__(self, arch: Architecture):
        super().__init__(arch)
        self.encoder = Encoder(arch.input_channels, arch.encoder_filters)
        bottleneck = arch.encoder_filters[-1]
        self.amplitude = Decoder(arch, bottleneck, amplitude_activation(arch))
        self.phase = Decoder(arch, bottleneck, phase_activation(arch))
        self.use_memory_format(self.default_memory_format)

    def amplitude_and_phase(self, diffraction: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.encoder(diffraction.contiguous(memory_format=self.memory_format))
        return self.amplitude(features).float(), self.phase(features).float()


def build_generator(arch: Architecture) -> nn.Module:
    """The generator ``arch.generator`` names."""
    if arch.generator is GeneratorKind.unet:
        # imported here: the unet module builds on this module's layers
        from ptychopinn.backends.torch.unet import UNetGenerator

        return UNetGenerator(arch)
    return Generator(arch)


class PtychoPINN(nn.Module):
    """Generator + physics layer (merge/re-extract, probe, far field).

    ``probe``: the normalised probe (N, N), or K incoherent modes (K, N, N) whose intensities
    add in the physics layer; mode 0 alone feeds the back-projected input and stands for the
    probe elsewhere. The probe is a buffer, never a weight: the bundle stores it separately."""

    def __init__(self, arch: Architecture, probe: torch.Tensor):
        super().__init__()
        self.arch = arch
        self.generator = build_generator(arch)
        modes = probe.to(torch.complex64).reshape(-1, *probe.shape[-2:])
        self.register_buffer("probe", modes[0], persistent=False)
        self.register_buffer("extra_modes", modes[1:] if len(modes) > 1 else None, persistent=False)
        mask = torch.as_tensor(disk_mask(arch.patch_size), device=probe.device) if arch.probe_mask else None
        self.register_buffer("probe_mask", mask, persistent=False)
        self.register_buffer("support", torch.as_tensor(head_support(arch), device=probe.device),
                             persistent=False)
        filters = backprojection_filters(self.probe) if arch.input_mode is InputMode.backprojection else (None, None)
        self.register_buffer("backprojection_phase", filters[0], persistent=False)
        self.register_buffer("backprojection_inverse", filters[1], persistent=False)

    def input_features(self, diffraction: torch.Tensor, probes: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C, N, N) normalised amplitudes → (B, C, F, N, N) generator input; ``probes``
        (B, 1, N, N): each sample's own normalised probe instead of the model's."""
        if self.arch.input_mode is not InputMode.backprojection:
            return diffraction[:, :, None]
        if probes is not None:
            return input_features(diffraction, *per_sample_filters(probes))
        return input_features(diffraction, self.backprojection_phase, self.backprojection_inverse)

    def forward(
        self,
        diffraction: torch.Tensor,
        offsets_xy: torch.Tensor,
        raw_patches: torch.Tensor | None = None,
        probes: torch.Tensor | None = None,
        modes: torch.Tensor | None = None,
    ) -> ForwardOutput:
        """``raw_patches``: the generator's patches for ``diffraction`` when the caller already
        has them (:class:`ScanPatchCache` at inference); the physics layer is the same either way.
        ``probes`` (B, 1, N, N): each sample's own normalised probe (pretraining on many probes),
        used by the input features and the physics layer; None = the model's probe.
        ``modes`` (K, N, N): the probe being learned (training with a learned probe), in place of
        the model's for every sample."""
        if modes is not None:
            if raw_patches is None:
                raw_patches = self.generate(diffraction, learned_probe=modes[0])
            probe, extra = modes[0], (modes[1:] if len(modes) > 1 else None)
        else:
            probe = self.probe if probes is None else probes.to(torch.complex64)
            extra = self.extra_modes if probes is None else None
        raw = self.generate(diffraction, probes) if raw_patches is None else raw_patches
        # the physics stays in float32 under mixed precision: FFTs and the Poisson rate need it
        with torch.autocast(diffraction.device.type, enabled=False):
            return physics_forward(ops, self.arch, raw.to(torch.complex64), offsets_xy.float(), probe,
                                   self.probe_mask, self.support, extra)

    def generate(self, diffraction: torch.Tensor, probes: torch.Tensor | None = None,
                 learned_probe: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C, N, N) normalised amplitudes → the generator's (B, C', N, N) object patches.
        ``learned_probe`` (N, N): the probe being learned, for the back-projected input."""
        if learned_probe is not None and self.arch.input_mode is InputMode.backprojection:
            # detached: the input features are a heuristic first estimate; the probe learns from
            # the physics alone, not from what makes the network's input convenient
            filters = per_sample_filters(learned_probe.detach()[None, None])
            return self.generator(input_features(diffraction, *filters))
        return self.generator(self.input_features(diffraction, probes))


class ScanPatchCache:
    """The generator's patches for the distinct patterns of the last inference batch, by scan index.

    With per-pattern encoding a patch depends on its pattern alone, and at gridsize > 1 the groups
    of a batch, and of consecutive batches, share members. Reusing them evaluates every pattern of
    a scan about once (a 19 × 19 scan at gridsize 2: 361 evaluations for 1 444 members, 534 when
    reuse stopped at the batch) while holding one batch of patches. One cache serves one scan:
    the patches are those of its normalised patterns.
    """

    def __init__(self, module: PtychoPINN):
        if not module.arch.per_pattern:
            raise ValueError("patches can be reused only with per-pattern encoding")
        self.module = module
        self._indices = np.empty(0, dtype=np.int64)
        self._patches: torch.Tensor | None = None

    def __call__(self, diffraction: torch.Tensor, members: np.ndarray) -> torch.Tensor:
        """(B, C, N, N) normalised amplitudes and their (B, C) scan indices → raw patches."""
        batch, channels, n, _ = diffraction.shape
        distinct, first, inverse = np.unique(np.asarray(members).ravel(), return_index=True,
                                             return_inverse=True)
        cached = np.isin(distinct, self._indices)
        patches = torch.empty((len(distinct), n, n), dtype=torch.complex64, device=diffraction.device)
        if cached.any():
            rows = np.searchsorted(self._indices, distinct[cached])
            patches[self._index(cached)] = self._patches[self._index(rows)]
        if not cached.all():
            fresh = diffraction.reshape(batch * channels, 1, n, n)[self._index(first[~cached])]
            patches[self._index(~cached)] = self.module.generate(fresh)[:, 0]
        self._indices, self._patches = distinct, patches
        return patches[self._index(inverse.ravel())].reshape(batch, channels, n, n)

    def _index(self, values: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(values)).to(self.module.probe.device)

