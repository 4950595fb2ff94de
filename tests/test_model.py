"""The generators (`cnn`, `unet`) and the PINN forward path (docs/design/spec.md#model), for both
backends: one suite, parametrised over the backends by the ``backend`` fixture (tests/helpers.py) and
over the generators where the network is under test; the `unet`'s own checks (skips, gradients,
training, size) run in torch."""

from __future__ import annotations

import math

import numpy as np
import pytest

from helpers import TorchAdapter, architecture
from helpers import model_inputs as inputs
from ptychopinn.config import (
    AmplitudeActivation,
    GeneratorKind,
    GroupEncoding,
    HeadKind,
    PhaseActivation,
)

GENERATORS = pytest.mark.parametrize("generator", list(GeneratorKind), ids=lambda kind: kind.value)


@pytest.mark.parametrize("n", [32, 64, 128, 256])
def test_encoder_reaches_8x8_for_every_supported_size(n):
    arch = architecture(n, gridsize=1, object_big=False)
    assert n // 2 ** len(arch.encoder_filters) == 8
    assert arch.decoder_filters[-1] == 32 * arch.n_filters_scale
    assert 8 * 2 ** len(arch.decoder_filters) == n // 2


@pytest.mark.parametrize("n,gridsize", [(32, 1), (32, 2), (32, 3), (64, 2), (128, 1)])
@pytest.mark.parametrize("head", list(HeadKind))
@GENERATORS
def test_output_shapes(backend, n, gridsize, head, generator):
    model = backend.build(n, gridsize, head, generator=generator)
    x, offsets = inputs(2, gridsize**2, n)
    out = model(x, offsets)
    assert out.amplitude.shape == (2, gridsize**2, n, n)
    assert out.object_patches.shape == (2, gridsize**2, n, n) and np.iscomplexobj(out.object_patches)
    assert out.group_object.shape == (2, n, n)
    assert np.all(out.amplitude >= 0)


def test_unsupported_patch_size_is_rejected():
    with pytest.raises(ValueError, match="unsupported"):
        architecture(48)


@GENERATORS
def test_full_head_covers_the_whole_field_central_does_not(backend, generator):
    x, offsets = inputs(1, 1, 32)
    full, central, big = (np.abs(backend.build(32, 1, head, generator=generator)(x, offsets).raw_patches)[0, 0]
                          for head in (HeadKind.full, HeadKind.central, HeadKind.probe_big))
    border = np.ones((32, 32), dtype=bool)
    border[8:24, 8:24] = False
    assert full[border].min() > 0.05
    assert central[border].max() == 0
    assert big[border].max() > 0  # the outer branch fills the border


@GENERATORS
def test_amplitude_activation_headroom(backend, generator):
    assert 2 / (1 + math.exp(-3.0)) > 1.0
    model = backend.build(32, 1, amplitude_activation=AmplitudeActivation.scaled_sigmoid, generator=generator)
    model.set_weight("generator.amplitude.head.bias", 4.0)
    x, offsets = inputs(1, 1, 32)
    assert np.abs(model(x, offsets).raw_patches).max() > 1.5
    capped = backend.build(32, 1, amplitude_activation=AmplitudeActivation.sigmoid, generator=generator)
    capped.set_weight("generator.amplitude.head.bias", 4.0)
    assert np.abs(capped(x, offsets).raw_patches).max() <= 1.0


def _phase_of_constant_head(backend, generator, activation, bias):
    """The patches' phase with the phase head's kernel zeroed and its bias set: the activation of ``bias``."""
    model = backend.build(32, 1, generator=generator, phase_activation=activation)
    model.set_weight("generator.phase.head.weight", 0.0)
    model.set_weight("generator.phase.head.bias", bias)
    x, offsets = inputs(1, 1, 32)
    return np.angle(model(x, offsets).raw_patches)


@GENERATORS
def test_the_pi_tanh_phase_head_is_bounded_and_flat_at_its_bound(backend, generator):
    phase = _phase_of_constant_head(backend, generator, PhaseActivation.pi_tanh, 50.0)
    assert np.allclose(np.abs(phase), math.pi, atol=1e-5)  # π·tanh(50) (angle gives ±π): saturated, its gradient gone
    phase = _phase_of_constant_head(backend, generator, PhaseActivation.pi_tanh, 0.5)
    assert np.allclose(phase, math.pi * math.tanh(0.5), atol=1e-5)


@GENERATORS
def test_the_linear_phase_head_is_unbounded_and_periodic(backend, generator):
    phase = _phase_of_constant_head(backend, generator, PhaseActivation.linear, 0.5)
    assert np.allclose(phase, 0.5, atol=1e-5)
    wrapped = _phase_of_constant_head(backend, generator, PhaseActivation.linear, 0.5 + 4 * math.pi)
    assert np.allclose(wrapped, 0.5, atol=1e-4)  # the patch A·e^{iφ} is the same 2π on


@pytest.mark.parametrize("gridsize", [1, 2])
@GENERATORS
def test_group_output_does_not_depend_on_batch(backend, gridsize, generator):
    """The predecessor collapsed whole batches into one canvas once batch·C reached 64."""
    model = backend.build(32, gridsize, generator=generator)
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


@GENERATORS
def test_object_big_merge_makes_members_consistent(backend, generator):
    """With object_big each member is re-extracted from one shared canvas."""
    model = backend.build(32, 2, object_big=True, generator=generator)
    x, offsets = inputs(2, 4, 32)
    out = model(x, offsets)
    assert out.canvas is not None and out.canvas.shape == (2, 44, 44)
    joint = backend.build(32, 2, object_big=False, group_encoding=GroupEncoding.joint, generator=generator)
    per_pattern = backend.build(32, 2, object_big=False, group_encoding=GroupEncoding.per_pattern,
                                generator=generator)
    shared, separate = joint(x, offsets), per_pattern(x, offsets)
    # joint without object_big: one patch at the group centre serves every member
    assert shared.canvas is None and shared.raw_patches.shape[1] == 1
    # per-pattern without object_big: every member keeps its own patch
    assert separate.canvas is None and separate.raw_patches.shape[1] == 4


@pytest.mark.parametrize("encoding", list(GroupEncoding))
@GENERATORS
def test_group_encodings_have_the_documented_input_channels(backend, encoding, generator):
    model = backend.build(32, 2, group_encoding=encoding, generator=generator)
    assert model.input_channels == (4 if encoding is GroupEncoding.joint else 1)


@GENERATORS
def test_per_pattern_network_is_equivariant_to_member_order(backend, generator):
    """Shuffling a group's members shuffles the raw patches the same way."""
    model = backend.build(32, 2, group_encoding=GroupEncoding.per_pattern, generator=generator)
    x, offsets = inputs(2, 4, 32)
    order = np.array([2, 0, 3, 1])
    a = model(x, offsets).raw_patches
    b = model(x[:, order], offsets[:, order]).raw_patches
    np.testing.assert_allclose(b, a[:, order], atol=1e-5, rtol=1e-5)


def test_probe_mask_blocks_the_border(backend):
    model = backend.build(32, 1, probe_mask=True)
    mask = model.probe_mask
    assert mask is not None and mask[16, 16] == 1 and mask[0, 0] == 0


@GENERATORS
def test_inference_evaluates_each_pattern_once_across_batches_with_the_same_result(generator):
    """Per-pattern encoding: a pattern shared by groups of one batch, or of consecutive batches,
    goes through the generator once (ScanPatchCache), and every output is unchanged."""
    import torch

    from ptychopinn.backends.torch.model import ScanPatchCache

    module = TorchAdapter().build(32, 2, generator=generator).network
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


# -- the unet's own checks (torch; the suites above hold both backends to the same numbers) --------


@pytest.mark.parametrize("n", [32, 64, 128, 256])
@pytest.mark.parametrize("head", list(HeadKind))
def test_unet_skips_join_encoder_levels_of_the_same_size(n, head):
    """Decoder block k works at 16·2^k px and joins the encoder level of that size; only the
    ``full`` head's extra block reaches the full-size level."""
    arch = architecture(n, gridsize=1, head=head, generator=GeneratorKind.unet)
    level_sizes = [n // 2**i for i in range(len(arch.encoder_filters))]
    block_sizes = [16 * 2**k for k in range(len(arch.decoder_block_filters))]
    assert block_sizes[-1] == (n if head is HeadKind.full else n // 2)
    for size, skip in zip(block_sizes, arch.unet_skip_filters, strict=True):
        assert skip == arch.encoder_filters[level_sizes.index(size)]
    assert arch.bottleneck_filters == arch.encoder_filters[-1]


def _unet(n=32, gridsize=1, head=HeadKind.full, **kw):
    return TorchAdapter().build(n, gridsize, head, generator=GeneratorKind.unet, **kw).network


def _patches_without_skip(module, x, level: int):
    """The generator's patches with encoder level ``level``'s skip features set to zero."""
    import torch

    def drop(_module, _args, output):
        bottom, skips = output
        skips = list(skips)
        skips[level] = torch.zeros_like(skips[level])
        return bottom, skips

    handle = module.generator.encoder.register_forward_hook(drop)
    try:
        with torch.no_grad():
            return module.generate(x)
    finally:
        handle.remove()


def test_unet_decoders_read_the_encoder_features_of_their_size():
    """The full head reads the full-size level; the central head stops at N/2 and does not."""
    import torch

    x = torch.from_numpy(inputs(2, 1, 32)[0])
    full, central = _unet(head=HeadKind.full), _unet(head=HeadKind.central)
    with torch.no_grad():
        plain_full, plain_central = full.generate(x), central.generate(x)
    assert (plain_full - _patches_without_skip(full, x, 0)).abs().max() > 1e-3
    assert torch.equal(plain_central, _patches_without_skip(central, x, 0))
    assert (plain_central - _patches_without_skip(central, x, 1)).abs().max() > 1e-3


def test_unet_stays_small():
    """N = 64, s = 1: a few MB of float32 weights (measured 4.26 MB; the cnn 2.31 MB)."""
    sizes = {kind: sum(p.numel() for p in TorchAdapter().build(64, 1, generator=kind).network.parameters()) * 4
             for kind in GeneratorKind}
    assert sizes[GeneratorKind.cnn] < sizes[GeneratorKind.unet] < 5e6


@pytest.mark.parametrize("head", list(HeadKind))
@pytest.mark.parametrize("encoding", list(GroupEncoding))
def test_unet_gradients_reach_every_parameter(head, encoding):
    import torch

    from ptychopinn.backends.torch.losses import data_loss
    from ptychopinn.config import LossKind

    module = _unet(32, 2, head, group_encoding=encoding)
    x, offsets = (torch.from_numpy(a) for a in inputs(3, 4, 32, seed=1))
    data_loss(module(x, offsets).amplitude, x, 30.0, {LossKind.poisson: 1.0}).backward()
    for name, parameter in module.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().max() > 0, name


def test_unet_memory_formats_give_the_same_patches():
    import torch

    module = _unet(32, 2)
    x = torch.from_numpy(inputs(3, 4, 32)[0])
    with torch.no_grad():
        nhwc = module.generate(x)
        module.generator.use_memory_format(torch.contiguous_format)
        nchw = module.generate(x)
    torch.testing.assert_close(nhwc, nchw, rtol=1e-5, atol=1e-5)


def test_unet_training_steps_lower_the_loss(tiny_scan):
    """10 Adam steps on one batch of 8 of the tiny scan's patterns (Poisson loss, gridsize 1) cut
    the loss's excess over its floor (predicted = measured) at least threefold (measured 42.9 → 6.4)."""
    import torch

    from ptychopinn.api import training_inputs
    from ptychopinn.backends import get_backend
    from ptychopinn.backends.torch.losses import data_loss
    from ptychopinn.config import LossKind, resolve_settings
    from ptychopinn.model.architecture import Architecture, ModelGeometry

    settings = resolve_settings(None, {"data": {"gridsize": 1, "n_groups": 16},
                                       "model": {"generator": "unet", "n_filters_scale": 1}})
    grouped, scales, probe = training_inputs(tiny_scan, settings)
    arch = Architecture.from_settings(settings, ModelGeometry(patch_size=32, canvas_size=44))
    torch.manual_seed(0)
    module = get_backend("torch").build_module(arch, probe).train()
    x, offsets = (torch.from_numpy(a) for a in (grouped.diffraction(slice(0, 8)), grouped.offsets(slice(0, 8))))

    def loss_of(amplitude):
        return data_loss(amplitude, x, scales.photon_scale, {LossKind.poisson: 1.0})

    floor = loss_of(x).item()
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    excess = []
    for _ in range(10):
        optimizer.zero_grad()
        loss = loss_of(module(x, offsets).amplitude)
        loss.backward()
        optimizer.step()
        excess.append(loss.item() - floor)
    assert excess[0] > 0 and excess[-1] < excess[0] / 3, excess
