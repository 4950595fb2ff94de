"""TensorFlow backend (Keras 3 on TensorFlow): the same physics ops, `cnn` generator, training and
inference as :mod:`ptychopinn.backends.torch`, numerically equivalent to it.

Importing this package imports nothing heavy; TensorFlow is loaded by
:func:`ptychopinn.backends.tensorflow.runtime.tensorflow` on first use (install with
``pip install 'ptychopinn[tensorflow]'``).
"""
