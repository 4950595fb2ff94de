"""Network input features in TensorFlow (see :mod:`ptychopinn.physics.backprojection`)."""

from __future__ import annotations

from ptychopinn.backends.tensorflow.runtime import tensorflow


def input_features(amplitudes, phase, inverse):
    """(B, C, N, N) amplitudes → (B, C, 3, N, N): amplitude, Re Ô, Im Ô.

    ``phase`` and ``inverse`` are the model's fixed filters from the NumPy reference."""
    tf = tensorflow()
    n = amplitudes.shape[-1]
    spectrum = tf.signal.ifftshift(tf.cast(amplitudes, tf.complex64) * phase, axes=(-2, -1))
    # ifft2d divides by N²; the unitary inverse divides by N
    field = tf.signal.ifft2d(spectrum) * tf.cast(n, tf.complex64)
    estimate = field * inverse
    return tf.stack([amplitudes, tf.math.real(estimate), tf.math.imag(estimate)], axis=2)
