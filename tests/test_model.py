"""The `cnn` generator and the PINN forward path (docs/design/spec.md#model), for both backends: one suite,
parametrised over the backends by the ``backend`` fixture (tests/helpers.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from helpers import TorchAdapter, architecture
from helpers import model_inputs as inputs
from ptychopinn.config import AmplitudeActivation, GroupEncoding, HeadKind


@pytest.mark.parametrize("n", [32, 64, 128, 256])
def test_encoder_reaches_8x8_for_every_supported_size(n):
    arch = architecture(n, gridsize=1, object_big=False)
    assert n // 2 ** len(arch.encoder_filters) == 8
    assert arch.decoder_filters[-1] == 32 * arch.n_filters_scale
    assert 8 * 2 ** len(arch.decoder_filters) == n // 2


@pytest.mark.parametrize("n,gridsize", [(32, 1), (32, 2), (32, 3), (64, 2), (128, 1)])
@pytest.mark.parametrize("head", list(HeadKind))
def test_output_shapes(backend, n, gridsize, head):
    model = backend.build(n, gridsize, head)
    x, offsets = inputs(2, gridsize**2, n)
    out = model(x, offsets)
    assert out.amplitude.shape == (2, gridsize**2, n, n)
    assert out.object_patches.shape == (2, gridsize**2, n, n) and np.iscomplexobj(out.object_patches)
    assert out.group_object.shape == (2, n, n)
    assert np.all(out.amplitude >= 0)


def test_unsupported_patch_size_is_rejected():
    with pytest.raises(ValueError, match="unsupported"):
        architecture(48)


def test_full_head_covers_the_whole_field_central_does_not(backend):
    x, offsets = inputs(1, 1, 32)
    full = np.abs(backend.build(32, 1, HeadKind.full)(x, offsets).raw_patches)[0, 0]
    central = np.abs(backend.build(32, 1, HeadKind.central)(x, offsets).raw_patches)[0, 0]
    big = np.abs(backend.build(32, 1, HeadKind.probe_big)(x, offsets).raw_patches)[0, 0]
    border = np.ones((32, 32), dtype=bool)
    border[8:24, 8:24] = False
    assert full[border].min() > 0.05
    assert central[border].max() == 0
    assert big[border].max() > 0  # the outer branch fills the border


def test_amplitude_activation_headroom(backend):
    assert 2 / (1 + math.exp(-3.0)) > 1.0
    model = backend.build(32, 1, amplitude_activation=AmplitudeActivation.scaled_sigmoid)
    model.set_weight("generator.amplitude.head.bias", 4.0)
    x, offsets = inputs(1, 1, 32)
    assert np.abs(model(x, offsets).raw_patches).max() > 1.5
    capped = backend.build(32, 1, amplitude_activation=AmplitudeActivation.sigmoid)
    capped.set_weight("generator.amplitude.head.bias", 4.0)
    assert np.abs(capped(x, offsets).raw_patches).max() <= 1.0


def test_phase_is_bounded_by_pi(backend):
    model = backend.build(32, 1)
    model.set_weight("generator.phase.head.bias", 50.0)
    x, offsets = inputs(1, 1, 32)
    phase = np.angle(model(x, offsets).raw_patches)
    assert np.abs(phase).max() <= math.pi + 1e-5


@pytest.mark.parametrize("gridsize", [1, 2])
def test_group_output_does_not_depend_on_batch(backend, gridsize):
    """The predecessor collapsed whole batches into one canvas once batch·C reached 64."""
    model = backend.build(32, gridsize)
    x, offsets = inputs(64, gridsize**2, 32, seed=3)
    whole = model(x, offsets)
    for batch in (1, 3, 16, 64):
        for start in range(0, 64, batch):
            part = model(x[start : start + batch], offsets[start : start + batch])
            np.testing.assert_allclose(part.amplitude, whole.amplitude[start : start + batch],
                                       rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(part.group_object, whole.group_object[start : start + batch], atol=1e-5)
    # another group in the batch must not change this group's output
    swapped = x.copy()
    swapped[1:] = swapped[1:][::-1]
    other = model(swapped, offsets)
    np.testing.assert_allclose(other.amplitude[0], whole.amplitude[0], rtol=1e-4, atol=1e-4)


def test_object_big_merge_makes_members_consistent(backend):
    """With object_big each member is re-extracted from one shared canvas."""
    model = backend.build(32, 2, object_big=True)
    x, offsets = inputs(2, 4, 32)
    out = model(x, offsets)
    assert out.canvas is not None and out.canvas.shape == (2, 44, 44)
    joint = backend.build(32, 2, object_big=False, group_encoding=GroupEncoding.joint)
    per_pattern = backend.build(32, 2, object_big=False, group_encoding=GroupEncoding.per_pattern)
    shared, separate = joint(x, offsets), per_pattern(x, offsets)
    # joint without object_big: one patch at the group centre serves every member
    assert shared.canvas is None and shared.raw_patches.shape[1] == 1
    # per-pattern without object_big: every member keeps its own patch
    assert separate.canvas is None and separate.raw_patches.shape[1] == 4


@pytest.mark.parametrize("encoding", list(GroupEncoding))
def test_group_encodings_have_the_documented_input_channels(backend, encoding):
    model = backend.build(32, 2, group_encoding=encoding)
    assert model.input_channels == (4 if encoding is GroupEncoding.joint else 1)


def test_per_pattern_network_is_equivariant_to_member_order(backend):
    """Shuffling a group's members shuffles the raw patches the same way."""
    model = backend.build(32, 2, group_encoding=GroupEncoding.per_pattern)
    x, offsets = inputs(2, 4, 32)
    order = np.array([2, 0, 3, 1])
    a = model(x, offsets).raw_patches
    b = model(x[:, order], offsets[:, order]).raw_patches
    np.testing.assert_allclose(b, a[:, order], atol=1e-5, rtol=1e-5)


def test_probe_mask_blocks_the_border(backend):
    model = backend.build(32, 1, probe_mask=True)
    mask = model.probe_mask
    assert mask is not None and mask[16, 16] == 1 and mask[0, 0] == 0


def test_inference_evaluates_each_pattern_once_across_batches_with_the_same_result():
    """Per-pattern encoding: a pattern shared by groups of one batch, or of consecutive batches,
    goes through the generator once (ScanPatchCache), and every output is unchanged."""
    import torch

    from ptychopinn.backends.torch.model import ScanPatchCache

    module = TorchAdapter().build(32, 2).network
    patterns, _ = inputs(7, 1, 32, seed=5)
    batches = [np.array([[0, 1, 2, 3], [1, 2, 3, 4]]), np.array([[2, 3, 4, 5], [3, 4, 5, 6]])]
    offsets = torch.from_numpy(inputs(2, 4, 32, seed=6)[1])
    evaluated = []
    module.generator.register_forward_hook(lambda _m, args, _o: evaluated.append(int(args[0].shape[0])))
    cache = ScanPatchCache(module)
    for members in batches:
        x = torch.from_numpy(patterns[members, 0])
        with torch.no_grad():
            plain = module(x, offsets)
            reused = module(x, offsets, cache(x, members))
        for name in ("amplitude", "object_patches", "group_object", "raw_patches", "canvas"):
            np.testing.assert_allclose(getattr(reused, name).numpy(), getattr(plain, name).numpy(),
                                       rtol=1e-5, atol=1e-6)
    # plain passes see 2 groups × 4 members; the cache evaluates 5 new patterns, then 2 (5 and 6)
    assert evaluated == [2, 5, 2, 2]


def test_patch_reuse_refuses_joint_encoding():
    from ptychopinn.backends.torch.model import ScanPatchCache

    with pytest.raises(ValueError, match="per-pattern"):
        ScanPatchCache(TorchAdapter().build(32, 2, group_encoding=GroupEncoding.joint).network)
