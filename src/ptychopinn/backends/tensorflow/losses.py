"""Data losses on far-field amplitudes (docs/design/spec.md#loss), the formulas of
:mod:`ptychopinn.backends.torch.losses` in TensorFlow."""

from __future__ import annotations

from ptychopinn.backends.tensorflow.runtime import tensorflow
from ptychopinn.config import LossKind

POISSON_EPSILON = 1e-12  # = ptychopinn.backends.torch.losses.POISSON_EPSILON (a test checks)


def poisson_nll(predicted, measured, photon_scale: float):
    """Per pixel λ̂ − k·log(λ̂ + ε) with λ̂ = (S·Â_n)², k = (S·X_n)² (counts when the data are counts)."""
    tf = tensorflow()
    rate = (photon_scale * predicted) ** 2
    counts = (photon_scale * measured) ** 2
    return rate - counts * tf.math.log(rate + POISSON_EPSILON)


def amplitude_mae(predicted, measured, photon_scale: float):
    tf = tensorflow()
    return tf.abs(predicted - measured)


def amplitude_mse(predicted, measured, photon_scale: float):
    return (predicted - measured) ** 2


LOSSES = {LossKind.poisson: poisson_nll, LossKind.mae: amplitude_mae, LossKind.mse: amplitude_mse}


def masked_mean(per_pixel, valid):
    """Mean over the measured pixels (``valid`` (N, N): 1 measured, 0 bad; None: every pixel),
    as :func:`ptychopinn.backends.torch.losses.masked_mean`."""
    tf = tensorflow()
    if valid is None:
        return tf.reduce_mean(per_pixel)
    return tf.reduce_mean(per_pixel * valid) / tf.reduce_mean(valid)


def data_loss(predicted, measured, photon_scale: float, weights: dict[LossKind, float], valid=None):
    """The configured loss: one term, or the weighted sum of several, each a mean over the
    ``valid`` pixels (N, N) (all when None)."""
    tf = tensorflow()
    terms = [w * masked_mean(LOSSES[LossKind(kind)](predicted, measured, photon_scale), valid)
             for kind, w in weights.items() if w]
    return tf.add_n(terms) if len(terms) > 1 else terms[0]
