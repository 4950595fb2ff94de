"""The `cnn` generator and the PINN forward path (SPEC §5)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ptychopinn.config import AmplitudeActivation, GroupEncoding, HeadKind
from ptychopinn.physics import make_probe, normalize_probe
from ptychopinn.torch_backend.model import Architecture, PtychoPINN


def build(n=32, gridsize=2, head=HeadKind.full, object_big=None, scale=1, seed=0, **kw):
    torch.manual_seed(seed)
    channels = gridsize**2
    arch = Architecture(
        patch_size=n, channels=channels, n_filters_scale=scale,
        object_big=channels > 1 if object_big is None else object_big, head=head,
        canvas_size=n + 12, **kw,
    )
    probe = torch.from_numpy(normalize_probe(make_probe(n)))
    return PtychoPINN(arch, probe).eval()


def inputs(batch, channels, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, channels, n, n, generator=g) * 2
    offsets = (torch.rand(batch, channels, 2, generator=g) - 0.5) * 8
    return x, offsets - offsets.mean(dim=1, keepdim=True)


@pytest.mark.parametrize("n", [32, 64, 128, 256])
def test_encoder_reaches_8x8_for_every_supported_size(n):
    arch = Architecture(patch_size=n, channels=1, object_big=False)
    assert n // 2 ** len(arch.encoder_filters) == 8
    assert arch.decoder_filters[-1] == 32 * arch.n_filters_scale
    assert 8 * 2 ** len(arch.decoder_filters) == n // 2


@pytest.mark.parametrize("n,gridsize", [(32, 1), (32, 2), (32, 3), (64, 2), (128, 1)])
@pytest.mark.parametrize("head", list(HeadKind))
def test_output_shapes(n, gridsize, head):
    model = build(n, gridsize, head)
    x, offsets = inputs(2, gridsize**2, n)
    with torch.no_grad():
        out = model(x, offsets)
    assert out.amplitude.shape == (2, gridsize**2, n, n)
    assert out.object_patches.shape == (2, gridsize**2, n, n) and out.object_patches.is_complex()
    assert out.group_object.shape == (2, n, n)
    assert torch.all(out.amplitude >= 0)


def test_unsupported_patch_size_is_rejected():
    with pytest.raises(ValueError, match="unsupported"):
        Architecture(patch_size=48)


def test_full_head_covers_the_whole_field_central_does_not():
    x, offsets = inputs(1, 1, 32)
    with torch.no_grad():
        full = build(32, 1, HeadKind.full)(x, offsets).raw_patches.abs()[0, 0]
        central = build(32, 1, HeadKind.central)(x, offsets).raw_patches.abs()[0, 0]
        big = build(32, 1, HeadKind.probe_big)(x, offsets).raw_patches.abs()[0, 0]
    border = torch.ones(32, 32, dtype=torch.bool)
    border[8:24, 8:24] = False
    assert full[border].min() > 0.05
    assert central[border].max() == 0
    assert big[border].abs().max() > 0  # the outer branch fills the border


def test_amplitude_activation_headroom():
    assert 2 * torch.sigmoid(torch.tensor(3.0)) > 1.0
    model = build(32, 1, amplitude_activation=AmplitudeActivation.scaled_sigmoid)
    torch.nn.init.constant_(model.generator.amplitude.head.bias, 4.0)
    x, offsets = inputs(1, 1, 32)
    with torch.no_grad():
        amplitude = model(x, offsets).raw_patches.abs()
    assert amplitude.max() > 1.5
    capped = build(32, 1, amplitude_activation=AmplitudeActivation.sigmoid)
    torch.nn.init.constant_(capped.generator.amplitude.head.bias, 4.0)
    with torch.no_grad():
        assert capped(x, offsets).raw_patches.abs().max() <= 1.0


def test_phase_is_bounded_by_pi():
    model = build(32, 1)
    torch.nn.init.constant_(model.generator.phase.head.bias, 50.0)
    x, offsets = inputs(1, 1, 32)
    with torch.no_grad():
        phase = model(x, offsets).raw_patches.angle()
    assert phase.abs().max() <= math.pi + 1e-5


@pytest.mark.parametrize("gridsize", [1, 2])
def test_group_output_does_not_depend_on_batch(gridsize):
    """The predecessor collapsed whole batches into one canvas once batch·C reached 64."""
    model = build(32, gridsize)
    x, offsets = inputs(64, gridsize**2, 32, seed=3)
    with torch.no_grad():
        whole = model(x, offsets)
        for batch in (1, 3, 16, 64):
            for start in range(0, 64, batch):
                part = model(x[start : start + batch], offsets[start : start + batch])
                np.testing.assert_allclose(part.amplitude.numpy(), whole.amplitude[start : start + batch].numpy(),
                                           rtol=1e-4, atol=1e-4)
                np.testing.assert_allclose(part.group_object.numpy(),
                                           whole.group_object[start : start + batch].numpy(), atol=1e-5)
        # another group in the batch must not change this group's output
        swapped = x.clone()
        swapped[1:] = torch.flip(swapped[1:], dims=[0])
        other = model(swapped, offsets)
    np.testing.assert_allclose(other.amplitude[0].numpy(), whole.amplitude[0].numpy(), rtol=1e-4, atol=1e-4)


def test_object_big_merge_makes_members_consistent():
    """With object_big each member is re-extracted from one shared canvas."""
    model = build(32, 2, object_big=True)
    x, offsets = inputs(2, 4, 32)
    with torch.no_grad():
        out = model(x, offsets)
    assert out.canvas is not None and out.canvas.shape == (2, 44, 44)
    joint = build(32, 2, object_big=False, group_encoding=GroupEncoding.joint)
    per_pattern = build(32, 2, object_big=False, group_encoding=GroupEncoding.per_pattern)
    with torch.no_grad():
        shared, separate = joint(x, offsets), per_pattern(x, offsets)
    # joint without object_big: one patch at the group centre serves every member
    assert shared.canvas is None and shared.raw_patches.shape[1] == 1
    # per-pattern without object_big: every member keeps its own patch
    assert separate.canvas is None and separate.raw_patches.shape[1] == 4


@pytest.mark.parametrize("encoding", list(GroupEncoding))
def test_group_encodings_have_the_documented_input_channels(encoding):
    model = build(32, 2, group_encoding=encoding)
    first_conv = model.generator.encoder.blocks[0][0][0]
    assert first_conv.in_channels == (4 if encoding is GroupEncoding.joint else 1)


def test_per_pattern_network_is_equivariant_to_member_order():
    """Shuffling a group's members shuffles the raw patches the same way."""
    model = build(32, 2, group_encoding=GroupEncoding.per_pattern)
    x, offsets = inputs(2, 4, 32)
    order = torch.tensor([2, 0, 3, 1])
    with torch.no_grad():
        a = model(x, offsets).raw_patches
        b = model(x[:, order], offsets[:, order]).raw_patches
    torch.testing.assert_close(b, a[:, order], atol=1e-5, rtol=1e-5)


def test_probe_mask_blocks_the_border():
    model = build(32, 1, probe_mask=True)
    assert model.probe_mask is not None and model.probe_mask[16, 16] == 1 and model.probe_mask[0, 0] == 0
