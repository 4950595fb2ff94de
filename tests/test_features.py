"""The back-projected input features: NumPy reference, its meaning, and the torch op."""

from __future__ import annotations

import numpy as np
import torch

from helpers import architecture
from ptychopinn.backends import get_backend
from ptychopinn.backends.torch.features import backprojection_filters
from ptychopinn.backends.torch.features import input_features as torch_features
from ptychopinn.config import GroupEncoding, InputMode
from ptychopinn.physics import forward_amplitude, make_probe, normalize_probe
from ptychopinn.physics.backprojection import backproject, input_features


def test_flat_object_is_recovered_where_the_probe_is_bright():
    probe = normalize_probe(make_probe(32, "defocused"))
    amplitudes = forward_amplitude(np.ones((1, 32, 32)), probe)
    estimate = backproject(amplitudes, probe)[0]
    bright = np.abs(probe) ** 2 > 0.5 * (np.abs(probe) ** 2).max()
    # Wiener factor |P|²/(|P|² + 0.1 max|P|²) ≥ 0.83 where |P|² ≥ max/2
    assert np.all(np.abs(estimate[bright] - 1) < 0.2)
    assert np.abs(np.angle(estimate[bright])).max() < 1e-2


def test_features_stack_amplitude_and_estimate(rng):
    probe = normalize_probe(make_probe(16, defocus=1.0))
    amplitudes = rng.uniform(0, 2, (2, 3, 16, 16))
    features = input_features(amplitudes, probe)
    assert features.shape == (2, 3, 3, 16, 16)
    np.testing.assert_array_equal(features[:, :, 0], amplitudes)


def test_torch_features_match_reference(rng):
    probe = normalize_probe(make_probe(32, "defocused"))
    amplitudes = rng.uniform(0, 2, (2, 4, 32, 32)).astype(np.float32)
    phase, inverse = backprojection_filters(torch.from_numpy(probe))
    got = torch_features(torch.from_numpy(amplitudes), phase, inverse).numpy()
    np.testing.assert_allclose(got, input_features(amplitudes.astype(np.float64), probe), atol=1e-5)


def test_model_with_backprojection_input_has_three_features_per_pattern():
    probe = normalize_probe(make_probe(32, "defocused"))
    for encoding, expected in ((GroupEncoding.per_pattern, 3), (GroupEncoding.joint, 12)):
        arch = architecture(32, 2, group_encoding=encoding, input_mode=InputMode.backprojection)
        assert arch.canvas_size == 44 and arch.object_big
        model = get_backend("torch").build_module(arch, probe)
        assert model.generator.encoder.blocks[0][0][0].in_channels == expected
        x = torch.rand(2, 4, 32, 32)
        with torch.no_grad():
            features = model.input_features(x)
            out = model(x, torch.zeros(2, 4, 2))
        assert features.shape == (2, 4, 3, 32, 32) and torch.equal(features[:, :, 0], x)
        assert out.amplitude.shape == (2, 4, 32, 32)
