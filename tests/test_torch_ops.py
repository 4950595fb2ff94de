"""PyTorch ops against the NumPy reference (atol stated per test), and batch independence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ptychopinn.physics import forward_amplitude, make_probe
from ptychopinn.physics import merge as ref
from ptychopinn.torch_backend import ops

ATOL = 1e-5  # float32 ops against the float64 reference


def complex_field(rng, shape):
    return (rng.uniform(0.5, 1, shape) * np.exp(1j * rng.uniform(-2, 2, shape))).astype(np.complex64)


@pytest.mark.parametrize("shift", [(0.0, 0.0), (3.0, -2.0), (2.4, 1.7), (-5.5, 0.25), (40.0, 0.0)])
def test_translate_matches_reference(rng, shift):
    image = complex_field(rng, (32, 32))
    got = ops.translate(torch.from_numpy(image)[None], torch.tensor([shift]))[0].numpy()
    np.testing.assert_allclose(got, ref.translate(image.astype(np.complex128), shift), atol=ATOL)


def test_translate_positive_shift_moves_content_right_and_down():
    image = torch.zeros(1, 16, 16)
    image[0, 5, 5] = 1
    moved = ops.translate(image, torch.tensor([[2.0, 3.0]]))[0]
    assert moved[8, 7] == pytest.approx(1.0)


def test_translate_is_differentiable():
    shifts = torch.tensor([[1.3, -0.4]], requires_grad=True)
    image = torch.rand(1, 16, 16, requires_grad=True)
    ops.translate(image, shifts).sum().backward()
    assert image.grad is not None and shifts.grad is not None


def test_far_field_amplitude_matches_reference(rng):
    obj = complex_field(rng, (5, 32, 32))
    probe = make_probe(32, defocus=1.0)
    got = ops.far_field_amplitude(ops.illuminate(torch.from_numpy(obj), torch.from_numpy(probe))).numpy()
    np.testing.assert_allclose(got, forward_amplitude(obj.astype(np.complex128), probe), atol=ATOL, rtol=1e-5)


@pytest.mark.parametrize("channels", [1, 4, 9])
def test_merge_matches_reference(rng, channels):
    n, size = 16, 28
    patches = complex_field(rng, (2, channels, n, n))
    offsets = rng.uniform(-4, 4, (2, channels, 2)).astype(np.float32)
    offsets -= offsets.mean(axis=1, keepdims=True)
    support = np.ones((n, n), dtype=np.float32)
    got, canvas = ops.merge_and_reextract(
        torch.from_numpy(patches), torch.from_numpy(offsets), torch.from_numpy(support), size
    )
    for b in range(2):
        want, want_canvas = ref.merge_and_reextract(patches[b].astype(np.complex128), offsets[b], support, size)
        np.testing.assert_allclose(got[b].numpy(), want, atol=ATOL)
        np.testing.assert_allclose(canvas[b].numpy(), want_canvas, atol=ATOL)


def test_merge_of_consistent_patches_returns_them():
    """Patches cut from one object at the members' offsets come back unchanged in the interior."""
    rng = np.random.default_rng(0)
    obj = complex_field(rng, (40, 40))
    n, size = 16, 24
    offsets = np.array([[[-2.0, -2.0], [2.0, -2.0], [-2.0, 2.0], [2.0, 2.0]]], dtype=np.float32)
    from ptychopinn.physics import extract_patches

    patches = extract_patches(obj, 20 + offsets[0], n)[None].astype(np.complex64)
    got, _ = ops.merge_and_reextract(torch.from_numpy(patches), torch.from_numpy(offsets),
                                     torch.ones(n, n), size)
    np.testing.assert_allclose(got.numpy()[..., 2:-2, 2:-2], patches[..., 2:-2, 2:-2], atol=1e-5)


def test_coverage_never_amplifies_edges():
    """A lone patch with a sub-pixel offset is not amplified where bilinear coverage < 1."""
    patches = torch.ones(1, 1, 8, 8, dtype=torch.complex64)
    _, canvas = ops.merge_and_reextract(patches, torch.tensor([[[0.5, 0.5]]]), torch.ones(8, 8), 12)
    assert canvas.abs().max() <= 1.0 + 1e-6


def test_canvas_size_covers_largest_offset():
    assert ops.canvas_size_for(64, 0.0) == 66
    assert ops.canvas_size_for(64, 3.2) == 74
    assert ops.canvas_size_for(64, 3.2) % 2 == 0


def test_pad_and_crop_are_inverse():
    x = torch.arange(16.0).reshape(4, 4)
    padded = ops.pad_to(x, 10)
    assert padded.shape == (10, 10) and torch.equal(ops.crop_centre(padded, 4), x)
    assert padded[5, 5] == x[2, 2]  # centre N/2 maps to S/2
