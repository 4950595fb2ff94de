"""The physics layer of the forward pass, written once for both backends (docs/design/spec.md#model).

The generator's raw patches become predicted far-field amplitudes the same way in PyTorch and in
TensorFlow: merge and re-extract a group's patches (object_big), or keep each member's own patch
(per-pattern, unmerged), or move one shared patch to every member; then illuminate with the
probe and take the far-field amplitude. :func:`physics_forward` states that once over ``ops``,
the backend's differentiable operations (:mod:`ptychopinn.backends.torch.ops`,
:mod:`ptychopinn.backends.tensorflow.ops`), so the two backends cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Protocol

import numpy as np

from ptychopinn.config import HeadKind
from ptychopinn.model.architecture import Architecture


class PhysicsOps(Protocol):
    """The operations :func:`physics_forward` needs, on the backend's tensors (each backend's
    ``ops`` module provides them). Layouts: images (B, H, W), patches (B, C, N, N), offsets
    (B, C, 2) in [x, y]."""

    def translate(self, images: Any, shifts_xy: Any) -> Any: ...

    def merge_and_reextract(self, patches: Any, offsets_xy: Any, support: Any, canvas_size: int
                            ) -> tuple[Any, Any]: ...

    def crop_centre(self, images: Any, n: int) -> Any: ...

    def illuminate(self, object_patches: Any, probe: Any, mask: Any | None = None) -> Any: ...

    def far_field_amplitude(self, exit_wave: Any) -> Any: ...

    def repeat_members(self, patch: Any, channels: int) -> Any: ...

    def add_incoherent_modes(self, amplitude: Any, object_patches: Any, extra_modes: Any,
                             mask: Any | None = None) -> Any: ...

    def reshape(self, tensor: Any, shape: tuple[int, ...]) -> Any: ...


@dataclass
class ForwardOutput:
    """One forward pass, in either backend's tensors: predicted normalised amplitudes
    (B, C, N, N), the object patches that produced them (B, C, N, N), each group's object patch
    centred on the group centre (B, N, N), the generator's raw patches (B, C', N, N) and the
    merged canvas (B, S, S) or None."""

    amplitude: Any
    object_patches: Any
    group_object: Any
    raw_patches: Any
    canvas: Any | None

    def numpy(self) -> ForwardOutput:
        """The same output with every tensor as a NumPy array."""
        return ForwardOutput(*(None if v is None else np.asarray(v) for v in self._values()))

    def as_dict(self) -> dict[str, Any]:
        return {f.name: v for f, v in zip(fields(self), self._values(), strict=True) if v is not None}

    def _values(self) -> list[Any]:
        return [getattr(self, f.name) for f in fields(self)]


def physics_forward(
    ops: PhysicsOps,
    arch: Architecture,
    raw_patches: Any,
    offsets_xy: Any,
    probe: Any,
    probe_mask: Any | None,
    support: Any,
    extra_modes: Any | None = None,
) -> ForwardOutput:
    """Raw patches (B, C', N, N) of a batch of groups → the :class:`ForwardOutput`.

    ``extra_modes`` (K − 1, N, N): incoherent probe modes beside ``probe`` (mode 0); their
    intensities add to mode 0's, Â = √(Σ_k |F(P_k · O)|²) (``physics.forward.incoherent_amplitude``)."""
    if arch.object_big and arch.channels > 1:
        patches, canvas = ops.merge_and_reextract(raw_patches, offsets_xy, support, arch.canvas_size)
        group_object = ops.crop_centre(canvas, arch.patch_size)
    elif arch.per_pattern:
        # unmerged: every member keeps its own patch; member 0, moved into the group frame,
        # stands for the group
        patches, canvas = raw_patches, None
        group_object = (ops.translate(raw_patches[:, 0], offsets_xy[:, 0]) if raw_patches.shape[1] > 1
                        else raw_patches[:, 0])
    else:
        patches, canvas = shared_patch(ops, raw_patches, offsets_xy, arch.patch_size), None
        group_object = raw_patches[:, 0]
    amplitude = ops.far_field_amplitude(ops.illuminate(patches, probe, probe_mask))
    if extra_modes is not None:
        amplitude = ops.add_incoherent_modes(amplitude, patches, extra_modes, probe_mask)
    return ForwardOutput(amplitude, patches, group_object, raw_patches, canvas)


def shared_patch(ops: PhysicsOps, raw_patches: Any, offsets_xy: Any, n: int) -> Any:
    """Without object_big one patch serves the group: member c sees it moved by −offset_c."""
    channels = offsets_xy.shape[1]
    if channels == 1:
        return raw_patches
    repeated = ops.reshape(ops.repeat_members(raw_patches[:, :1], channels), (-1, n, n))
    moved = ops.translate(repeated, -ops.reshape(offsets_xy, (-1, 2)))
    return ops.reshape(moved, (-1, channels, n, n))


def head_support(arch: Architecture) -> np.ndarray:
    """Support indicator of the heads (N, N) float32: the central N/2 square for ``central``,
    else the whole patch (the coverage the merge divides by)."""
    n = arch.patch_size
    return central_square(n) if arch.head is HeadKind.central else np.ones((n, n), dtype=np.float32)


def central_square(n: int) -> np.ndarray:
    """(N, N) float32 indicator of the central N/2 × N/2 square."""
    square = np.zeros((n, n), dtype=np.float32)
    start = n // 2 - n // 4
    square[start : start + n // 2, start : start + n // 2] = 1
    return square
