"""TensorFlow ↔ canonical weights: the one place that knows both naming schemes and layouts.

A bundle stores weights under **canonical** names and layouts, which are those of the torch
backend's ``state_dict``: ``generator.encoder.blocks.{i}.0.{0|2}.weight`` with conv kernels laid
out (O, I, kh, kw), biases (O,). Keras stores a conv kernel as (kh, kw, I, O). This module

* names every conv of the TensorFlow network with its canonical prefix (the network asks
  :func:`encoder_conv`, :func:`decoder_conv`, :func:`head_conv` and :func:`outer_conv`; the `unet`
  also :func:`bottleneck_conv` and :func:`unet_decoder_conv`), and
* converts layouts both ways (:func:`kernel_to_canonical`, :func:`kernel_from_canonical`,
  :func:`to_canonical`, :func:`load_canonical`).

The torch backend needs no conversion: its ``state_dict`` *is* the canonical form.
"""

from __future__ import annotations

import numpy as np

from ptychopinn.model.bundle import check_weights

WEIGHT, BIAS = "weight", "bias"
BRANCHES = ("amplitude", "phase")


# -- names ---------------------------------------------------------------------------------------
# torch: Encoder.blocks[i] = Sequential(conv_pair, MaxPool); conv_pair = Sequential(conv, ReLU,
# conv, ReLU), so the two convs of block i sit at ".{i}.0.0" and ".{i}.0.2". Decoders likewise
# (conv_pair, Upsample); the ``full`` head's extra block is the decoder's last block. The
# probe_big outer branch is Sequential(Upsample, conv, SiLU): its conv is ".outer.1".
# The unet (backends/torch/unet.py) keeps the encoder's names; its decoders' blocks are conv pairs
# alone (the upsample and the concatenation are not modules), so their convs sit at ".{k}.0" and
# ".{k}.2"; its bottleneck's conv pair is "generator.bottleneck.convs".


def encoder_conv(block: int, index: int) -> str:
    return f"generator.encoder.blocks.{block}.0.{2 * index}"


def decoder_conv(branch: str, block: int, index: int) -> str:
    return f"generator.{_branch(branch)}.blocks.{block}.0.{2 * index}"


def unet_decoder_conv(branch: str, block: int, index: int) -> str:
    return f"generator.{_branch(branch)}.blocks.{block}.{2 * index}"


def bottleneck_conv(index: int) -> str:
    return f"generator.bottleneck.convs.{2 * index}"


def head_conv(branch: str) -> str:
    return f"generator.{_branch(branch)}.head"


def outer_conv(branch: str) -> str:
    return f"generator.{_branch(branch)}.outer.1"


def _branch(branch: str) -> str:
    if branch not in BRANCHES:
        raise ValueError(f"decoder branch must be one of {BRANCHES}, got {branch!r}")
    return branch


# -- layouts -------------------------------------------------------------------------------------


def kernel_to_canonical(kernel: np.ndarray) -> np.ndarray:
    """Keras conv kernel (kh, kw, I, O) → canonical (O, I, kh, kw)."""
    kernel = np.asarray(kernel)
    if kernel.ndim != 4:
        raise ValueError(f"a conv kernel has 4 axes, got shape {kernel.shape}")
    return np.ascontiguousarray(np.transpose(kernel, (3, 2, 0, 1)), dtype=np.float32)


def kernel_from_canonical(weight: np.ndarray) -> np.ndarray:
    """Canonical conv weight (O, I, kh, kw) → Keras kernel (kh, kw, I, O)."""
    weight = np.asarray(weight)
    if weight.ndim != 4:
        raise ValueError(f"a conv weight has 4 axes, got shape {weight.shape}")
    return np.ascontiguousarray(np.transpose(weight, (2, 3, 1, 0)), dtype=np.float32)


def _canonical_shapes(prefix: str, layer) -> dict[str, tuple[int, ...]]:
    kh, kw, i, o = (int(v) for v in layer.kernel.shape)
    return {f"{prefix}.{WEIGHT}": (o, i, kh, kw), f"{prefix}.{BIAS}": (o,)}


def expected_shapes(network) -> dict[str, tuple[int, ...]]:
    """Canonical name → canonical shape of every weight of a built TensorFlow network."""
    shapes: dict[str, tuple[int, ...]] = {}
    for prefix, layer in network.named_convs().items():
        shapes.update(_canonical_shapes(prefix, layer))
    return shapes


def to_canonical(network) -> dict[str, np.ndarray]:
    """The weights of a built TensorFlow network under canonical names and layouts (float32)."""
    weights: dict[str, np.ndarray] = {}
    for prefix, layer in network.named_convs().items():
        weights[f"{prefix}.{WEIGHT}"] = kernel_to_canonical(layer.kernel.numpy())
        weights[f"{prefix}.{BIAS}"] = np.asarray(layer.bias.numpy(), dtype=np.float32).copy()
    return weights


def load_canonical(network, weights: dict[str, np.ndarray], source: str = "weights") -> None:
    """Assign canonical ``weights`` to a built TensorFlow network.

    Refuses (:class:`~ptychopinn.model.bundle.BundleError`) names or shapes that disagree with the
    network, exactly as the torch backend does.
    """
    check_weights(weights, expected_shapes(network), source=source)
    for prefix, layer in network.named_convs().items():
        layer.kernel.assign(kernel_from_canonical(weights[f"{prefix}.{WEIGHT}"]))
        layer.bias.assign(np.asarray(weights[f"{prefix}.{BIAS}"], dtype=np.float32))
