"""The generators' architecture (`cnn`, `unet`), backend-neutral (docs/design/spec.md#model).

Both backends build their network from one :class:`Architecture`, made by
:meth:`Architecture.from_settings` from the settings and the geometry the bundle persists: every
value comes from the settings tree, so the two cannot disagree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ptychopinn.config import (
    AmplitudeActivation,
    GeneratorKind,
    GroupEncoding,
    HeadKind,
    InputMode,
    PhaseActivation,
    Settings,
)

SUPPORTED_PATCH_SIZES = (32, 64, 128, 256)
BOTTLENECK = 8


@dataclass(frozen=True)
class ModelGeometry:
    """The architecture values that are not settings: fixed by the training data."""

    patch_size: int  # N
    canvas_size: int  # S, the merge canvas (:func:`canvas_size_for`)


@dataclass(frozen=True)
class Architecture:
    """Everything needed to rebuild the network; build it with :meth:`from_settings`."""

    patch_size: int
    channels: int  # C = gridsize²
    generator: GeneratorKind
    n_filters_scale: int
    object_big: bool
    head: HeadKind
    amplitude_activation: AmplitudeActivation
    phase_activation: PhaseActivation
    group_encoding: GroupEncoding
    input_mode: InputMode
    probe_mask: bool
    canvas_size: int

    @classmethod
    def from_settings(cls, settings: Settings, geometry: ModelGeometry) -> Architecture:
        """The architecture of ``settings`` (model, data.gridsize, physics.probe_mask) at ``geometry``."""
        model = settings.model
        return cls(
            patch_size=geometry.patch_size,
            channels=settings.data.channels,
            generator=GeneratorKind(model.generator),
            n_filters_scale=model.n_filters_scale,
            object_big=settings.object_big,
            head=HeadKind(model.head),
            amplitude_activation=AmplitudeActivation(model.amplitude_activation),
            phase_activation=PhaseActivation(model.phase_activation),
            group_encoding=GroupEncoding(model.group_encoding),
            input_mode=InputMode(model.input_mode),
            probe_mask=settings.physics.probe_mask,
            canvas_size=geometry.canvas_size,
        )

    def __post_init__(self) -> None:
        if self.patch_size not in SUPPORTED_PATCH_SIZES:
            raise ValueError(f"patch size {self.patch_size} unsupported; use one of {SUPPORTED_PATCH_SIZES}")

    @property
    def per_pattern(self) -> bool:
        return self.group_encoding is GroupEncoding.per_pattern

    @property
    def amplitude_bound(self) -> float:
        """The amplitude activation's upper bound: 2 for 2 · sigmoid, 1 for sigmoid."""
        return 2.0 if self.amplitude_activation is AmplitudeActivation.scaled_sigmoid else 1.0

    @property
    def phase_bound(self) -> float | None:
        """|φ| ≤ π under π · tanh; the linear head has no bound (None)."""
        return math.pi if self.phase_activation is PhaseActivation.pi_tanh else None

    @property
    def features_per_pattern(self) -> int:
        """Amplitude alone, or amplitude + real and imaginary back-projected estimate."""
        return 3 if self.input_mode is InputMode.backprojection else 1

    @property
    def input_channels(self) -> int:
        return self.features_per_pattern * (1 if self.per_pattern else self.channels)

    @property
    def output_channels(self) -> int:
        """C' of the heads: C for a merged group (joint), else one patch per network pass."""
        return self.channels if self.object_big and not self.per_pattern else 1

    @property
    def encoder_filters(self) -> list[int]:
        blocks = int(math.log2(self.patch_size // BOTTLENECK))
        return [32 * 2**i * self.n_filters_scale for i in range(blocks)]

    @property
    def decoder_filters(self) -> list[int]:
        """Decoder blocks from the bottleneck up to N/2 (…, 64, 32)·s."""
        blocks = int(math.log2(self.patch_size // 2 // BOTTLENECK))
        return [32 * 2 ** (blocks - 1 - i) * self.n_filters_scale for i in range(blocks)]

    @property
    def full_head_filters(self) -> int:
        """Width of the extra decoder block that takes the ``full`` head from N/2 to N."""
        return 32 * self.n_filters_scale // 2

    @property
    def decoder_block_filters(self) -> list[int]:
        """Every decoder block's width: :attr:`decoder_filters`, then the ``full`` head's extra block."""
        extra = [self.full_head_filters] if self.head is HeadKind.full else []
        return [*self.decoder_filters, *extra]

    @property
    def bottleneck_filters(self) -> int:
        """Channels at the 8 × 8 bottleneck (the deepest encoder block's width)."""
        return self.encoder_filters[-1]

    @property
    def unet_skip_filters(self) -> list[int]:
        """`unet`: the width of the encoder level each decoder block concatenates, in decoder order.

        Decoder block k upsamples to 16 · 2^k px and joins the encoder's features of that size
        (taken before its max-pool): the deepest levels first, the full-size level only for the
        ``full`` head's extra block."""
        return list(reversed(self.encoder_filters))[: len(self.decoder_block_filters)]


def canvas_size_for(patch_size: int, max_offset: float) -> int:
    """Smallest even canvas holding a patch moved by up to ``max_offset`` px (plus bilinear margin)."""
    size = patch_size + 2 * (math.ceil(max_offset) + 1)
    return size + (size % 2)
