"""Differentiable physics ops in TensorFlow (docs/design/spec.md#forward-model, #model), the twins of
:mod:`ptychopinn.backends.torch.ops`, tested against the NumPy reference and against torch.

Layouts are those of the torch ops: images (B, H, W), patches (B, C, N, N), offsets (B, C, 2)
in [x, y]. Every op acts per sample, works eagerly, inside ``tf.function`` and under XLA
(``jit_compile=True``), and is differentiable with respect to its image inputs.
"""

from __future__ import annotations

from ptychopinn.backends.tensorflow.runtime import tensorflow


def translate(images, shifts_xy):
    """Move image content by ``shifts_xy`` pixels, bilinear, zero-filled.

    ``images`` (B, H, W) real or complex; ``shifts_xy`` (B, 2) in [x, y]: output pixel (r, c) =
    input at (r − dy, c − dx), so a positive shift moves content right/down.

    The semantics are those of torch ``grid_sample(mode="bilinear", padding_mode="zeros",
    align_corners=True)`` as used by the torch backend: the source coordinate of output pixel
    (r, c) is (r − dy, c − dx) in float; each of the four bilinear taps that falls outside the
    image contributes zero (the others keep their weights). Bilinear interpolation with a
    uniform shift is separable, so rows and then columns are resampled with two gathers.
    (torch maps coordinates through grid_sample's normalised [−1, 1] grid and back; the float32
    round trip it adds is below 1e-6 px, which is the level at which the two backends differ.)
    """
    tf = tensorflow()
    images = tf.convert_to_tensor(images)
    if images.dtype.is_complex:
        stacked = tf.stack([tf.math.real(images), tf.math.imag(images)], axis=-1)
        moved = _shift(stacked, shifts_xy)
        return tf.complex(moved[..., 0], moved[..., 1])
    return _shift(images[..., None], shifts_xy)[..., 0]


def _shift(images, shifts_xy):
    """(B, H, W, K) real images shifted by (B, 2) pixel offsets [x, y]."""
    tf = tensorflow()
    dtype = images.dtype
    height, width = images.shape[1], images.shape[2]
    shifts = tf.cast(shifts_xy, dtype)
    source_y = tf.range(height, dtype=dtype)[None, :] - shifts[:, 1:2]  # (B, H)
    source_x = tf.range(width, dtype=dtype)[None, :] - shifts[:, 0:1]  # (B, W)
    rows = _resample_axis(images, source_y, height, axis=1)
    return _resample_axis(rows, source_x, width, axis=2)


def _resample_axis(images, source, size: int, axis: int):
    """Linear interpolation of (B, H, W, K) ``images`` along ``axis`` (1: rows, 2: columns) at
    the (B, size) fractional ``source`` coordinates; taps outside [0, size) count as zero."""
    tf = tensorflow()
    low = tf.floor(source)
    frac = source - low
    low = tf.cast(low, tf.int32)
    result = None
    for step, weight in ((0, 1 - frac), (1, frac)):
        index = low + step
        inside = tf.logical_and(index >= 0, index < size)
        weight = tf.where(inside, weight, tf.zeros_like(weight))
        taps = tf.gather(images, tf.clip_by_value(index, 0, size - 1), axis=axis, batch_dims=1)
        weight = weight[:, :, None, None] if axis == 1 else weight[:, None, :, None]
        term = weight * taps
        result = term if result is None else result + term
    return result


def far_field_amplitude(exit_wave):
    """Â = |fftshift(FFT2_ortho(ψ))| over the last two axes (DC at N/2, N/2)."""
    tf = tensorflow()
    height, width = exit_wave.shape[-2], exit_wave.shape[-1]
    field = tf.signal.fft2d(exit_wave) * tf.cast(1.0 / (height * width) ** 0.5, exit_wave.dtype)
    return tf.abs(tf.signal.fftshift(field, axes=(-2, -1)))


def illuminate(object_patches, probe, mask=None):
    """ψ = P · O (· M)."""
    tf = tensorflow()
    wave = object_patches * tf.cast(probe, object_patches.dtype)
    return wave * tf.cast(mask, wave.dtype) if mask is not None else wave


def pad_to(patches, size: int):
    """Zero-pad (..., N, N) centred to (..., size, size); centre N/2 maps to size/2."""
    tf = tensorflow()
    n = patches.shape[-1]
    before = size // 2 - n // 2
    after = size - n - before
    paddings = [[0, 0]] * (len(patches.shape) - 2) + [[before, after], [before, after]]
    return tf.pad(patches, paddings)


def crop_centre(images, n: int):
    """Central (..., n, n) of (..., S, S); the inverse of :func:`pad_to`."""
    size = images.shape[-1]
    start = size // 2 - n // 2
    return images[..., start : start + n, start : start + n]


def merge_and_reextract(patches, offsets_xy, support, canvas_size: int):
    """Merge each group's C patches into one canvas and re-extract them (object_big, docs/design/spec.md#model).

    The twin of :func:`ptychopinn.backends.torch.ops.merge_and_reextract`: patch c is translated
    by +offset_c on a (canvas_size)² canvas centred on the group centre, the sum is divided by
    max(coverage, 1) (coverage: the equally translated ``support`` (N, N) indicator), and patch c
    is re-extracted by translating by −offset_c. Returns (re-extracted (B, C, N, N), canvas
    (B, S, S)).
    """
    tf = tensorflow()
    channels, n = patches.shape[1], patches.shape[-1]
    size = canvas_size
    flat_shifts = tf.reshape(offsets_xy, (-1, 2))
    placed = translate(tf.reshape(pad_to(patches, size), (-1, size, size)), flat_shifts)
    indicator = pad_to(tf.cast(support, placed.dtype.real_dtype), size)
    indicator = tf.broadcast_to(indicator, tf.stack([tf.shape(flat_shifts)[0], size, size]))
    coverage = translate(indicator, flat_shifts)
    placed = tf.reduce_sum(tf.reshape(placed, (-1, channels, size, size)), axis=1)
    coverage = tf.maximum(tf.reduce_sum(tf.reshape(coverage, (-1, channels, size, size)), axis=1), 1.0)
    canvas = tf.complex(tf.math.real(placed) / coverage, tf.math.imag(placed) / coverage)
    repeated = tf.reshape(tf.repeat(canvas[:, None], channels, axis=1), (-1, size, size))
    extracted = crop_centre(translate(repeated, -flat_shifts), n)
    return tf.reshape(extracted, (-1, channels, n, n)), canvas


def repeat_members(patch, channels: int):
    """(B, 1, N, N) → (B, channels, N, N): one patch for every member of its group."""
    return tensorflow().repeat(patch, channels, axis=1)


def reshape(tensor, shape: tuple[int, ...]):
    return tensorflow().reshape(tensor, shape)


INTENSITY_FLOOR = 1e-12  # = ptychopinn.backends.torch.ops.INTENSITY_FLOOR


def add_incoherent_modes(amplitude, object_patches, extra_modes, mask=None):
    """Mode 0's amplitude (B, C, N, N) with the intensities of the incoherent ``extra_modes``
    (K − 1, N, N) added, as the torch op. (Training with modes needs the torch backend; this
    twin keeps the physics layer's operations complete in both.)"""
    tf = tensorflow()
    waves = illuminate(object_patches[:, :, None], tf.cast(extra_modes, tf.complex64), mask)
    extra = tf.reduce_sum(far_field_amplitude(waves) ** 2, axis=2)
    return tf.sqrt(tf.maximum(amplitude**2 + extra, INTENSITY_FLOOR))
