"""Physics ops of both backends against the NumPy reference (atol stated per test), and batch
independence. One suite, parametrised over the backends by the ``backend`` fixture."""

from __future__ import annotations

import numpy as np
import pytest

from ptychopinn.model.architecture import canvas_size_for
from ptychopinn.physics import extract_patches, forward_amplitude, make_probe
from ptychopinn.physics import merge as ref

ATOL = 1e-5  # float32 ops against the float64 reference


def complex_field(rng, shape):
    return (rng.uniform(0.5, 1, shape) * np.exp(1j * rng.uniform(-2, 2, shape))).astype(np.complex64)


@pytest.mark.parametrize("shift", [(0.0, 0.0), (3.0, -2.0), (2.4, 1.7), (-5.5, 0.25), (40.0, 0.0)])
def test_translate_matches_reference(backend, rng, shift):
    image = complex_field(rng, (32, 32))
    got = backend.translate(image[None], [shift])[0]
    np.testing.assert_allclose(got, ref.translate(image.astype(np.complex128), shift), atol=ATOL)


def test_translate_positive_shift_moves_content_right_and_down(backend):
    image = np.zeros((1, 16, 16), dtype=np.float32)
    image[0, 5, 5] = 1
    moved = backend.translate(image, [[2.0, 3.0]])[0]
    assert moved[8, 7] == pytest.approx(1.0)


def test_translate_is_differentiable(backend):
    image = np.random.default_rng(0).random((1, 16, 16), dtype=np.float32)
    image_grad, shift_grad = backend.translate_gradients(image, [[1.3, -0.4]])
    assert image_grad is not None and shift_grad is not None
    assert np.isfinite(image_grad).all() and np.abs(shift_grad).sum() > 0


def test_far_field_amplitude_matches_reference(backend, rng):
    obj = complex_field(rng, (5, 32, 32))
    probe = make_probe(32, defocus=1.0)
    got = backend.far_field_amplitude(obj, probe)
    np.testing.assert_allclose(got, forward_amplitude(obj.astype(np.complex128), probe), atol=ATOL, rtol=1e-5)


@pytest.mark.parametrize("channels", [1, 4, 9])
def test_merge_matches_reference(backend, rng, channels):
    n, size = 16, 28
    patches = complex_field(rng, (2, channels, n, n))
    offsets = rng.uniform(-4, 4, (2, channels, 2)).astype(np.float32)
    offsets -= offsets.mean(axis=1, keepdims=True)
    support = np.ones((n, n), dtype=np.float32)
    got, canvas = backend.merge_and_reextract(patches, offsets, support, size)
    for b in range(2):
        want, want_canvas = ref.merge_and_reextract(patches[b].astype(np.complex128), offsets[b], support, size)
        np.testing.assert_allclose(got[b], want, atol=ATOL)
        np.testing.assert_allclose(canvas[b], want_canvas, atol=ATOL)


def test_merge_of_consistent_patches_returns_them(backend):
    """Patches cut from one object at the members' offsets come back unchanged in the interior."""
    rng = np.random.default_rng(0)
    obj = complex_field(rng, (40, 40))
    n, size = 16, 24
    offsets = np.array([[[-2.0, -2.0], [2.0, -2.0], [-2.0, 2.0], [2.0, 2.0]]], dtype=np.float32)
    patches = extract_patches(obj, 20 + offsets[0], n)[None].astype(np.complex64)
    got, _ = backend.merge_and_reextract(patches, offsets, np.ones((n, n), np.float32), size)
    np.testing.assert_allclose(got[..., 2:-2, 2:-2], patches[..., 2:-2, 2:-2], atol=1e-5)


def test_coverage_never_amplifies_edges(backend):
    """A lone patch with a sub-pixel offset is not amplified where bilinear coverage < 1."""
    patches = np.ones((1, 1, 8, 8), dtype=np.complex64)
    _, canvas = backend.merge_and_reextract(patches, np.array([[[0.5, 0.5]]], np.float32),
                                            np.ones((8, 8), np.float32), 12)
    assert np.abs(canvas).max() <= 1.0 + 1e-6


def test_canvas_size_covers_largest_offset():
    """Backend-neutral: both backends take the canvas size from ptychopinn.model.architecture."""
    assert canvas_size_for(64, 0.0) == 66
    assert canvas_size_for(64, 3.2) == 74
    assert canvas_size_for(64, 3.2) % 2 == 0


def test_pad_and_crop_are_inverse(backend):
    x = np.arange(16.0, dtype=np.float32).reshape(4, 4)
    padded = backend.pad_to(x, 10)
    assert padded.shape == (10, 10) and np.array_equal(backend.crop_centre(padded, 4), x)
    assert padded[5, 5] == x[2, 2]  # centre N/2 maps to S/2
