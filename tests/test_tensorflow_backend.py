"""The TensorFlow backend: lazy import, weight conversion, XLA, one bundle for both backends,
and numerical parity with PyTorch (forward stages, gradients, training, reconstruction, CLI), for
both generators (`cnn` and `unet`) where the network itself is under test.

Tolerances (float32 everywhere; measured values in docs/guides/tensorflow.md):
* forward stages, same weights and batch: relative difference max|a − b| / max|a| ≤ 1e-4
  (measured ~1e-6);
* gradients of the training loss w.r.t. all weights: ‖g_tf − g_torch‖ / ‖g_torch‖ ≤ 2e-4 over
  the whole gradient (`cnn`: measured ≤ 3e-5, the size of torch's own float32 error against
  float64) or, beyond that, ‖g_tf − g_64‖ ≤ 5 × ‖g_torch − g_64‖ with g_64 torch's float64
  gradient. The `unet`'s float32 gradient is ten times noisier in both backends (against
  float64: torch 1e-4–5e-4, TF 2e-4–1.5e-3, at most 3.2 × torch's):
  at its initial weights a few far-field pixels are predicted near zero where the random test
  pattern is not, and the Poisson gradient there, 1 − k/λ̂ with k/λ̂ up to 1e9, carries λ̂'s float32
  rounding. Single tensors are no test: the phase-head bias gradient is ~0 — a near-global
  phase shift leaves the loss unchanged — and float32 noise in either backend, 50–200 % off float64;
* training, same initial weights and batches: epoch losses within 1e-4 relative (measured
  ~1e-5 after two epochs).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import TensorFlowAdapter, TorchAdapter, model_inputs
from ptychopinn.config import (
    GeneratorKind,
    GroupEncoding,
    HeadKind,
    InputMode,
    PhaseActivation,
    resolve_settings,
)

STAGE_RTOL = 1e-4
GRADIENT_RTOL = 2e-4
FLOAT32_ERROR_FACTOR = 5
LOSS_RTOL = 1e-4
BATCHES = (1, 3, 16, 64)
SCRIPT = Path(sys.executable).with_name("ptychopinn")


def relative(a, b) -> float:
    """max|a − b| / max|a| (a is the reference)."""
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a.astype(np.complex128) - b)) / np.max(np.abs(a)))


@pytest.fixture(scope="module")
def tf_backend():
    return TensorFlowAdapter()


@pytest.fixture(scope="module")
def torch_backend():
    return TorchAdapter()


# Each generator with one phase head: the cnn with the default linear head; the unet with π·tanh,
# because under the linear head the unet's float32 gradients, in either backend, sit about 1e-3
# from float64 (torch's own up to 1.6e-3 in a trial), where the gradient test's criterion (within
# 5× torch's float32 error of float64) measures rounding noise rather than the backends.
TWIN_GENERATORS = [(GeneratorKind.cnn, PhaseActivation.linear), (GeneratorKind.unet, PhaseActivation.pi_tanh)]


@pytest.fixture(scope="module", params=TWIN_GENERATORS, ids=lambda twin: twin[0].value)
def twin_models(tf_backend, torch_backend, request):
    """A torch model (gridsize 2, object_big, N = 32) of each generator and a TF model holding its weights."""
    generator, phase = request.param
    torch_model = torch_backend.build(32, 2, seed=7, generator=generator, phase_activation=phase)
    tf_model = tf_backend.build(32, 2, generator=generator, phase_activation=phase)
    tf_model.load(torch_model.weights())
    return torch_model, tf_model


# -- import hygiene ------------------------------------------------------------------------------


def _run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_importing_the_package_does_not_import_tensorflow():
    result = _run_python(
        "import sys, ptychopinn, ptychopinn.api, ptychopinn.cli, ptychopinn.backends.tensorflow, "
        "ptychopinn.diagnostics.parity, ptychopinn.model.trained\n"
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_missing_tensorflow_is_a_clear_error(tmp_path):
    """Without TensorFlow the API raises, and the CLI exits 2, naming the install command."""
    result = _run_python(
        "import sys\n"
        "sys.modules['tensorflow'] = None  # as if not installed\n"
        "from ptychopinn.backends import get_backend\n"
        "try:\n"
        "    get_backend('tensorflow')\n"
        "except ImportError as error:\n"
        "    print('API:', error)\n"
        "from ptychopinn.cli import main\n"
        f"code = main(['train', '--train-data', 'x.npz', '--output-dir', {str(tmp_path / 'run')!r}, "
        "'--backend', 'tensorflow'])\n"
        "print('exit', code)\n"
    )
    assert result.returncode == 0, result.stderr
    assert "API: the TensorFlow backend needs TensorFlow" in result.stdout
    assert "pip install 'ptychopinn[tensorflow]'" in result.stdout
    assert "exit 2" in result.stdout and "pip install 'ptychopinn[tensorflow]'" in result.stderr
    assert not (tmp_path / "run").exists()  # refused before anything was written


# -- weights: canonical names and layouts -------------------------------------------------------


def test_kernel_layout_conversion_both_directions():
    from ptychopinn.backends.tensorflow.weights import kernel_from_canonical, kernel_to_canonical

    canonical = np.random.default_rng(0).standard_normal((5, 3, 3, 3)).astype(np.float32)  # (O, I, kh, kw)
    keras_kernel = kernel_from_canonical(canonical)
    assert keras_kernel.shape == (3, 3, 3, 5)  # (kh, kw, I, O)
    assert keras_kernel[2, 1, 0, 4] == canonical[4, 0, 2, 1]
    np.testing.assert_array_equal(kernel_to_canonical(keras_kernel), canonical)
    np.testing.assert_array_equal(kernel_from_canonical(kernel_to_canonical(keras_kernel)), keras_kernel)


@pytest.mark.parametrize("generator", list(GeneratorKind))
@pytest.mark.parametrize("head", list(HeadKind))
@pytest.mark.parametrize("encoding,object_big,gridsize", [
    (GroupEncoding.per_pattern, True, 2), (GroupEncoding.joint, True, 2),
    (GroupEncoding.joint, False, 2), (GroupEncoding.per_pattern, False, 1)])
def test_canonical_names_and_shapes_are_the_torch_state_dict(tf_backend, torch_backend, head, encoding,
                                                             object_big, gridsize, generator):
    from ptychopinn.backends.tensorflow.weights import expected_shapes

    kw = {"head": head, "object_big": object_big, "group_encoding": encoding, "generator": generator}
    torch_state = torch_backend.build(32, gridsize, **kw).weights()
    tf_model = tf_backend.build(32, gridsize, **kw)
    assert expected_shapes(tf_model.network) == {k: v.shape for k, v in torch_state.items()}
    tf_model.load(torch_state)  # torch → TF → canonical is the identity
    back = tf_model.weights()
    assert all(np.array_equal(back[k], torch_state[k]) for k in torch_state)


@pytest.mark.parametrize("generator", list(GeneratorKind))
@pytest.mark.parametrize("head,phase", [(HeadKind.probe_big, PhaseActivation.linear),
                                        (HeadKind.central, PhaseActivation.pi_tanh)])
def test_weights_convert_both_ways_with_equal_outputs(tf_backend, torch_backend, generator, head, phase):
    """TF-initialised weights run in torch, torch-initialised ones in TF: same forward pass
    (back-projected input, probe_big and central heads, either phase activation; the twin
    models below cover the amplitude input and the full head)."""
    x, offsets = model_inputs(3, 4, 32)
    kw = {"head": head, "input_mode": InputMode.backprojection, "generator": generator, "phase_activation": phase}
    for source, target in ((tf_backend, torch_backend), (torch_backend, tf_backend)):
        a = source.build(32, 2, seed=3, **kw)
        b = target.build(32, 2, seed=11, **kw)
        if target is torch_backend:
            b.network.load_state_dict({k: torch.from_numpy(v) for k, v in a.weights().items()})
        else:
            b.load(a.weights())
        out_a, out_b = a(x, offsets), b(x, offsets)
        assert relative(out_a.amplitude, out_b.amplitude) < STAGE_RTOL
        assert relative(out_a.object_patches, out_b.object_patches) < STAGE_RTOL


@pytest.mark.parametrize("generator", list(GeneratorKind))
def test_tf_initialisation_follows_torch_distributions(tf_backend, torch_backend, generator):
    """U(±1/√fan_in) for kernels and biases in both backends (so training starts alike)."""
    tf_weights = tf_backend.build(64, 2, scale=2, generator=generator).weights()
    torch_weights = torch_backend.build(64, 2, scale=2, generator=generator).weights()
    for name, value in torch_weights.items():
        fan_in = np.prod(torch_weights[name.replace(".bias", ".weight")].shape[1:])
        assert np.abs(tf_weights[name]).max() <= 1 / np.sqrt(fan_in) + 1e-7
        if value.size > 1000:
            assert np.std(tf_weights[name]) == pytest.approx(np.std(value), rel=0.1)


def test_mismatched_weights_are_refused(tf_backend):
    from ptychopinn.model.bundle import BundleError

    model = tf_backend.build(32, 2)
    weights = model.weights()
    weights.pop("generator.phase.head.bias")
    with pytest.raises(BundleError, match="missing tensors: generator.phase.head.bias"):
        model.load(weights)


def test_one_generator_s_weights_are_refused_by_the_other(tf_backend, torch_backend):
    """A `cnn` bundle's weights do not fit a `unet` (nor the reverse), in either backend."""
    from ptychopinn.model.bundle import BundleError

    cnn, unet = (torch_backend.build(32, 2, generator=kind) for kind in GeneratorKind)
    with pytest.raises(BundleError, match="generator.bottleneck.convs.0.weight"):
        tf_backend.build(32, 2, generator=GeneratorKind.unet).load(cnn.weights())
    with pytest.raises(BundleError, match="generator.bottleneck.convs.0.weight"):
        tf_backend.build(32, 2, generator=GeneratorKind.cnn).load(unet.weights())


def test_loss_formulas_match_torch(tf_backend):
    from ptychopinn.backends.tensorflow import losses as tf_losses
    from ptychopinn.backends.torch import losses as torch_losses
    from ptychopinn.config import LossKind

    assert tf_losses.POISSON_EPSILON == torch_losses.POISSON_EPSILON
    rng = np.random.default_rng(0)
    predicted, measured = (rng.random((4, 4, 32, 32), dtype=np.float32) * 3 for _ in range(2))
    valid = (rng.random((32, 32)) > 0.1).astype(np.float32)  # bad detector pixels left out of the loss
    for weights in ({LossKind.poisson: 1.0}, {LossKind.mae: 1.0}, {LossKind.mse: 1.0},
                    {LossKind.poisson: 1.0, LossKind.mae: 0.5}):
        for mask in (None, valid):
            a = torch_losses.data_loss(torch.from_numpy(predicted), torch.from_numpy(measured), 37.5, weights,
                                       None if mask is None else torch.from_numpy(mask))
            b = tf_losses.data_loss(tf_backend.tf.constant(predicted), tf_backend.tf.constant(measured), 37.5,
                                    weights, None if mask is None else tf_backend.tf.constant(mask))
            assert float(b) == pytest.approx(float(a), rel=1e-6)


# -- XLA (jit_compile) and eager, every batch size, inference and training ----------------------


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "xla"])
def test_translate_with_and_without_xla_matches_torch(tf_backend, torch_backend, jit):
    """Values and gradients (w.r.t. images and shifts) of translate at batch sizes 1, 3, 16, 64."""
    tf = tf_backend.tf
    from ptychopinn.backends.tensorflow.ops import translate

    @tf.function(jit_compile=jit)
    def values_and_gradients(images, shifts):
        with tf.GradientTape() as tape:
            tape.watch([images, shifts])
            moved = translate(images, shifts)
            total = tf.reduce_sum(moved * moved)  # weights the gradient by the output
        return moved, tape.gradient(total, [images, shifts])

    rng = np.random.default_rng(5)
    for batch in BATCHES:
        images = rng.random((batch, 40, 40), dtype=np.float32)
        shifts = rng.uniform(-6, 6, (batch, 2)).astype(np.float32)
        moved, (grad_images, grad_shifts) = values_and_gradients(tf.constant(images), tf.constant(shifts))
        image_t = torch.from_numpy(images).requires_grad_(True)
        shift_t = torch.from_numpy(shifts).requires_grad_(True)
        want = torch_backend.ops.translate(image_t, shift_t)
        (want * want).sum().backward()
        np.testing.assert_allclose(moved.numpy(), want.detach().numpy(), atol=1e-5)
        np.testing.assert_allclose(grad_images.numpy(), image_t.grad.numpy(), atol=1e-4)
        np.testing.assert_allclose(grad_shifts.numpy(), shift_t.grad.numpy(), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "xla"])
def test_inference_with_and_without_xla_at_every_batch_size(twin_models, jit):
    from ptychopinn.backends.tensorflow.inference import Predictor

    torch_model, tf_model = twin_models
    predictor = Predictor(tf_model.network, "cpu", jit_compile=jit)
    x, offsets = model_inputs(64, 4, 32, seed=2)
    reference = torch_model(x, offsets)
    for batch in BATCHES:
        for start in (0, 64 - batch):
            part = slice(start, start + batch)
            got = predictor(x[part], offsets[part])
            assert relative(reference.amplitude[part], got.amplitude) < STAGE_RTOL
            assert relative(reference.group_object[part], got.group_object) < STAGE_RTOL
            assert relative(reference.canvas[part], got.canvas) < STAGE_RTOL


def _relative_distance(got: dict, want: dict) -> float:
    """‖got − want‖ / ‖want‖ over all tensors together."""
    difference = sum(float(np.sum((got[name] - want[name]) ** 2)) for name in want)
    return float(np.sqrt(difference / sum(float(np.sum(value**2)) for value in want.values())))


def _torch_gradients(module, x, offsets, photon_scale, weights, dtype):
    """(loss, {canonical name: float64 gradient}) of the torch module at ``dtype``."""
    from ptychopinn.backends.torch.losses import data_loss

    module.zero_grad()
    x_t = torch.from_numpy(x).to(dtype)
    loss = data_loss(module(x_t, torch.from_numpy(offsets).to(dtype)).amplitude, x_t, photon_scale, weights)
    loss.backward()
    return loss.item(), {name: p.grad.numpy().astype(np.float64) for name, p in module.named_parameters()}


@pytest.fixture(scope="module")
def float64_gradients():
    """torch's float64 gradients by (generator, batch), shared by the eager and XLA runs (a
    float64 pass of 64 groups takes 15-25 s on CPU)."""
    return {}


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "xla"])
def test_training_gradients_with_and_without_xla_match_torch(tf_backend, twin_models, float64_gradients, jit):
    """The gradient of the Poisson loss w.r.t. all weights, through merge/translate, at batch
    sizes 1, 3, 16 and 64, equals torch's autograd gradient: within GRADIENT_RTOL of torch's
    float32 gradient or, where it is further, as close to torch's float64 gradient as torch's own
    float32 gradient is, within FLOAT32_ERROR_FACTOR (all relative to the gradient's norm)."""
    import copy

    from ptychopinn.backends.tensorflow.weights import kernel_to_canonical
    from ptychopinn.config import LossKind

    tf = tf_backend.tf
    torch_model, tf_model = twin_models
    network = tf_model.network
    photon_scale, weights = 30.0, {LossKind.poisson: 1.0}
    network.configure_training(photon_scale, weights)
    layers = network.named_convs()

    @tf.function(jit_compile=jit)
    def gradients(x, offsets):
        with tf.GradientTape() as tape:
            loss, _ = network.loss_of(x, offsets)
        return loss, tape.gradient(loss, [v for layer in layers.values() for v in (layer.kernel, layer.bias)])

    module = torch_model.network
    x_all, offsets_all = model_inputs(64, 4, 32, seed=4)
    for batch in BATCHES:
        x, offsets = x_all[:batch], offsets_all[:batch]
        want_loss, want = _torch_gradients(module, x, offsets, photon_scale, weights, torch.float32)
        loss, grads = gradients(tf.constant(x), tf.constant(offsets))
        assert float(loss) == pytest.approx(want_loss, rel=LOSS_RTOL)
        grads, got = iter(grads), {}
        for prefix in layers:
            got[f"{prefix}.weight"] = kernel_to_canonical(next(grads).numpy()).astype(np.float64)
            got[f"{prefix}.bias"] = next(grads).numpy().astype(np.float64)
        if _relative_distance(got, want) < GRADIENT_RTOL:
            continue
        # further apart than the cnn ever is: is it float32 rounding? measure both against float64
        key = (module.arch.generator, batch)
        if key not in float64_gradients:
            exact = copy.deepcopy(module).double()  # the probe stays complex64, exact in float64
            float64_gradients[key] = _torch_gradients(exact, x, offsets, photon_scale, weights, torch.float64)[1]
        reference = float64_gradients[key]
        torch_error, tf_error = _relative_distance(want, reference), _relative_distance(got, reference)
        assert tf_error < FLOAT32_ERROR_FACTOR * torch_error, (batch, tf_error, torch_error)


# -- training: callbacks, batch order, parity ---------------------------------------------------


def test_plateau_schedule_follows_torch(tf_backend):
    """The Keras reduce-on-plateau callback gives torch's learning-rate sequence."""
    import keras

    from ptychopinn.backends.tensorflow.training import keras_training_classes

    losses = [5.0, 4.0, 4.0, 3.9999, 4.1, 4.2, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 2.0, 2.0, 2.0, 2.0]
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([parameter], lr=1e-3)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=2, min_lr=1e-4)
    callback = keras_training_classes().ReduceLROnPlateau("val_loss", 0.5, 2, 1e-4)
    model = keras.Sequential([keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3))
    callback.set_model(model)
    for epoch, loss in enumerate(losses):
        scheduler.step(loss)
        callback.on_epoch_end(epoch, {"val_loss": loss})
        assert float(model.optimizer.learning_rate) == pytest.approx(optimizer.param_groups[0]["lr"], rel=1e-6)
    assert optimizer.param_groups[0]["lr"] < 1e-3  # the sequence did reduce


def test_adam_follows_torch(tf_backend):
    """TorchAdam = torch.optim.Adam, also for gradients of the size of ε (Keras's Adam differs)."""
    from ptychopinn.backends.tensorflow.training import keras_training_classes

    tf = tf_backend.tf
    rng = np.random.default_rng(0)
    start = rng.standard_normal(5).astype(np.float32)
    parameter = torch.nn.Parameter(torch.from_numpy(start.copy()))
    optimizer = torch.optim.Adam([parameter], lr=1e-3)
    variable = tf.Variable(start.copy())
    adam = keras_training_classes().TorchAdam(learning_rate=1e-3)
    for _ in range(20):
        gradient = (rng.standard_normal(5) * [1, 1e-3, 1e-8, 1e-9, 0]).astype(np.float32)
        parameter.grad = torch.from_numpy(gradient)
        optimizer.step()
        adam.apply([tf.constant(gradient)], [variable])
    np.testing.assert_allclose(variable.numpy(), parameter.detach().numpy(), rtol=0, atol=1e-7)


def test_both_backends_draw_the_same_batches(tiny_scan):
    from ptychopinn.backends.tensorflow.training import keras_training_classes
    from ptychopinn.backends.torch.data_module import GroupDataset, make_loader
    from ptychopinn.data.grouped import GroupedScan, epoch_order

    grouped = GroupedScan.build(tiny_scan, resolve_settings(None, {"data": {"n_groups": 40}}).data)
    selection = np.arange(3, 40)
    loader = make_loader(GroupDataset(grouped, selection), 16, True, seed=5)
    batches = keras_training_classes().GroupBatches(grouped, selection, 16, True, 5)
    for epoch in range(2):
        loader.sampler.set_epoch(epoch)  # what Lightning does before every epoch
        batches.on_epoch_begin()  # what Keras does before every epoch
        assert list(loader.sampler) == epoch_order(len(selection), epoch, 5).tolist()
        for index, (x, offsets) in enumerate(loader):
            tf_x, tf_offsets = batches[index]
            np.testing.assert_array_equal(x.numpy(), tf_x)
            np.testing.assert_array_equal(offsets.numpy(), tf_offsets)
        assert len(batches) == index + 1
    assert not np.array_equal(epoch_order(37, 0, 5), epoch_order(37, 1, 5))


@pytest.mark.parametrize("generator", list(GeneratorKind))
def test_training_parity_from_the_same_weights_and_batches(tiny_scan, tmp_path, generator):
    """Two epochs in each backend (48 + 16 groups, 3 training batches of 16 a shuffled epoch),
    the second in the final decay: epoch losses within LOSS_RTOL, the same learning rates."""
    from ptychopinn.diagnostics.parity import training_parity

    settings = resolve_settings(None, {
        "data": {"gridsize": 2, "n_groups": 64}, "model": {"n_filters_scale": 1, "generator": generator},
        "training": {"epochs": 2, "batch_size": 16, "validation_fraction": 0.25, "final_decay_fraction": 0.5}})
    result = training_parity(tiny_scan, settings, tmp_path)
    assert len(result.torch["train_loss"]) == len(result.tensorflow["train_loss"]) == 2
    differences = result.relative_loss_differences()
    assert max(differences["train_loss"]) < LOSS_RTOL, differences
    assert max(differences["val_loss"]) < LOSS_RTOL, differences
    assert result.torch["lr"] == pytest.approx(result.tensorflow["lr"]) == [1e-3, 1e-4]
    assert result.tensorflow["train_loss"][1] < result.tensorflow["train_loss"][0]  # it learns


def test_training_parity_with_incoherent_probe_modes(tiny_scan, tmp_path):
    """Three probe modes in the physics layer of both backends, their intensities summed."""
    from ptychopinn.diagnostics.parity import training_parity

    settings = resolve_settings(None, {
        "data": {"gridsize": 2, "n_groups": 64}, "model": {"n_filters_scale": 1},
        "physics": {"probe_modes": 3},
        "training": {"epochs": 1, "batch_size": 16, "validation_fraction": 0.25}})
    differences = training_parity(tiny_scan, settings, tmp_path).relative_loss_differences()
    assert max(differences["train_loss"]) < LOSS_RTOL, differences
    assert max(differences["val_loss"]) < LOSS_RTOL, differences


def test_tensorflow_refuses_settings_it_cannot_honour(tiny_scan, tmp_path):
    from ptychopinn.api import train_with_summary
    from ptychopinn.backends.tensorflow.training import check_settings

    with pytest.raises(ValueError, match="precision"):
        check_settings(resolve_settings(None, {"training": {"precision": "bf16-mixed"}}))
    with pytest.raises(ValueError, match="--resume"):
        train_with_summary(tiny_scan, tmp_path, backend="tensorflow", resume=tmp_path / "last.ckpt")


def test_tensorflow_training_feeds_batch_observers(tiny_scan, tmp_path):
    """Diagnostics hooks (e.g. --log-patch-stats) see every batch, as NumPy arrays."""
    from ptychopinn.api import train_with_summary

    seen = []
    settings = resolve_settings(None, {
        "data": {"gridsize": 1, "n_groups": 20}, "model": {"n_filters_scale": 1},
        "training": {"epochs": 1, "batch_size": 8, "validation_fraction": 0.2}})
    train_with_summary(tiny_scan, tmp_path, settings, backend="tensorflow", batch_observers=[
        lambda phase, index, batch, out: seen.append((phase, index, batch[0].shape, out.object_patches))])
    assert [entry[:3] for entry in seen] == [("train", 0, (8, 1, 32, 32)), ("train", 1, (8, 1, 32, 32)),
                                             ("val", 0, (4, 1, 32, 32))]
    assert all(isinstance(entry[3], np.ndarray) and np.iscomplexobj(entry[3]) for entry in seen)


# -- one bundle, both backends --------------------------------------------------------------------


def _train_in_each_backend(scan, root, generator: GeneratorKind) -> dict:
    """One epoch of training in each backend through the public API (64 groups, gridsize 2)."""
    from ptychopinn.api import train_with_summary

    settings = resolve_settings(None, {"data": {"gridsize": 2, "n_groups": 64},
                                       "model": {"n_filters_scale": 1, "generator": generator},
                                       "training": {"epochs": 1}})
    return {name: train_with_summary(scan, root / name, settings, backend=name)
            for name in ("torch", "tensorflow")}


@pytest.fixture(scope="module")
def trained_by_each(tiny_scan, tmp_path_factory):
    """The `cnn` trained in each backend (:func:`_train_in_each_backend`)."""
    return _train_in_each_backend(tiny_scan, tmp_path_factory.mktemp("trained"), GeneratorKind.cnn)


@pytest.fixture(scope="module")
def unet_trained_by_each(tiny_scan, tmp_path_factory):
    """The `unet` trained in each backend (:func:`_train_in_each_backend`)."""
    return _train_in_each_backend(tiny_scan, tmp_path_factory.mktemp("trained_unet"), GeneratorKind.unet)


def test_tensorflow_training_writes_the_usual_outputs(trained_by_each):
    summary = trained_by_each["tensorflow"]
    out = summary.output_dir
    assert summary.epochs_run == 1 and summary.device == "cpu"
    manifest = json.loads(zipfile.ZipFile(out / "model.pinn").read("manifest.json"))
    assert manifest["backend"] == "tensorflow" and summary.model.backend == "tensorflow"
    assert resolve_settings(out / "config.yaml").backend.value == "tensorflow"
    header = (out / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"epoch", "train_loss", "val_loss", "lr-Adam"} <= set(header)
    assert (out / "training_curves.png").stat().st_size > 1000


@pytest.mark.parametrize("generator", list(GeneratorKind))
@pytest.mark.parametrize("trained_with", ["torch", "tensorflow"])
def test_a_bundle_from_either_backend_runs_in_both(request, tiny_scan, trained_with, generator):
    from ptychopinn.backends.tensorflow.inference import Predictor
    from ptychopinn.data.grouped import GroupedScan
    from ptychopinn.model.trained import load_model

    trained = request.getfixturevalue({GeneratorKind.cnn: "trained_by_each",
                                       GeneratorKind.unet: "unet_trained_by_each"}[generator])
    model = load_model(trained[trained_with].model_path)
    assert model.backend == trained_with and model.architecture().generator is generator
    grouped = GroupedScan.build(tiny_scan, model.settings.data)
    x, offsets = grouped.diffraction(slice(0, 16)), grouped.offsets(slice(0, 16))
    with torch.no_grad():
        a = model.build_module("torch")(torch.from_numpy(x), torch.from_numpy(offsets))
    b = Predictor(model.build_module("tensorflow"), "cpu")(x, offsets)
    assert relative(a.amplitude.numpy(), b.amplitude) < STAGE_RTOL
    assert relative(a.object_patches.numpy(), b.object_patches) < STAGE_RTOL


def test_reconstruction_with_either_backend_is_the_same(trained_by_each, tiny_scan):
    """Streaming reconstruction (batches of 7 and 64) and stitching through each backend."""
    from ptychopinn.api import reconstruct

    model = trained_by_each["tensorflow"].model
    by_torch = reconstruct(model, tiny_scan, backend="torch", batch_size=64)
    by_tf = reconstruct(model, tiny_scan, batch_size=7)  # the model's own backend: tensorflow
    assert by_tf.origin_xy == by_torch.origin_xy and np.array_equal(by_tf.mask, by_torch.mask)
    assert relative(by_torch.object, by_tf.object) < STAGE_RTOL


# -- the parity command -----------------------------------------------------------------------------


def test_parity_command_passes_and_writes_its_report(trained_by_each, tiny_scan, tmp_path):
    from ptychopinn.data import save_scan

    scan_path = tmp_path / "scan.npz"
    save_scan(tiny_scan, scan_path)
    out = tmp_path / "parity"
    result = subprocess.run(
        [str(SCRIPT), "parity", "--model", str(trained_by_each["tensorflow"].model_path), "--data",
         str(scan_path), "--groups", "16", "--output-dir", str(out)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PARITY OK" in result.stdout and "predicted_amplitude" in result.stdout
    report = json.loads((out / "parity.json").read_text())
    assert report["status"] == "ok" and report["n_groups"] == 16 and report["trained_with"] == "tensorflow"
    amplitude = next(e for e in report["stages"]["stages"] if e["stage"] == "predicted_amplitude")
    assert amplitude["relative_diff"] < 1e-4
    for name in ("torch", "tensorflow"):
        assert (out / f"stages_{name}.npz").is_file() and (out / name / "reconstruction.npz").is_file()
        stats = json.loads((out / name / "stats.json").read_text())
        assert set(stats) == {"patch_amplitude", "canvas_amplitude"}
    assert (out / "compare_recon.png").is_file()


def test_parity_on_a_scan_with_probe_modes(trained_by_each, tiny_scan, tmp_path):
    """A one-mode model applied to a scan whose probe has two incoherent modes: both backends
    add the second mode's intensity (TensorFlow used to drop it: 0.2 relative apart)."""
    from ptychopinn.diagnostics.parity import backend_parity
    from ptychopinn.simulation.simulate import make_probe_modes

    scan = dataclasses.replace(tiny_scan, probe_modes=make_probe_modes(tiny_scan.probe, 2))
    result = backend_parity(trained_by_each["torch"].model, scan, n_groups=8, output_dir=tmp_path)
    assert result.ok, result.report["diverged"]
    one_mode = backend_parity(trained_by_each["torch"].model, tiny_scan, n_groups=8)
    # the second mode changes what both predict
    assert relative(one_mode.stages["torch"]["predicted_amplitude"], result.stages["torch"]["predicted_amplitude"]) > 1e-3


def test_parity_command_fails_beyond_the_tolerance(trained_by_each, tiny_scan, tmp_path, capsys):
    """--rtol 0: float32 arithmetic differs, so the command reports a divergence and exits 1."""
    from ptychopinn.cli import main
    from ptychopinn.data import save_scan

    save_scan(tiny_scan, tmp_path / "scan.npz")
    code = main(["parity", "--model", str(trained_by_each["torch"].output_dir), "--data",
                 str(tmp_path / "scan.npz"), "--groups", "4", "--rtol", "0", "-q"])
    assert code == 1
    assert "PARITY FAILED" in capsys.readouterr().out


def test_cli_train_and_infer_select_the_backend(tiny_scan, tmp_path):
    """train --backend tensorflow writes a TensorFlow bundle; infer --backend torch runs it."""
    from ptychopinn.cli import main
    from ptychopinn.data import save_scan

    save_scan(tiny_scan, tmp_path / "scan.npz")
    assert main(["train", "--train-data", str(tmp_path / "scan.npz"), "--output-dir", str(tmp_path / "run"),
                 "--backend", "tensorflow", "--epochs", "1", "--n-groups", "32", "--n-filters-scale", "1",
                 "-q"]) == 0
    manifest = json.loads(zipfile.ZipFile(tmp_path / "run" / "model.pinn").read("manifest.json"))
    assert manifest["backend"] == "tensorflow"
    assert main(["infer", "--model", str(tmp_path / "run"), "--data", str(tmp_path / "scan.npz"),
                 "--output-dir", str(tmp_path / "infer"), "--backend", "torch", "-q"]) == 0
    assert (tmp_path / "infer" / "reconstruction.npz").is_file()


def test_backend_flag_parses_and_rejects_unknown_backends():
    from ptychopinn.cli import build_parser

    parser = build_parser()
    for command in ("train", "infer"):
        args = parser.parse_args([command, "--backend", "tensorflow", *{
            "train": ["--train-data", "a.npz", "--output-dir", "o"],
            "infer": ["--model", "m", "--data", "a.npz", "--output-dir", "o"]}[command]])
        assert args.backend == "tensorflow"
    with pytest.raises(SystemExit):
        parser.parse_args(["infer", "--backend", "jax", "--model", "m", "--data", "a", "--output-dir", "o"])

