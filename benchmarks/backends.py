"""PyTorch vs TensorFlow on the demo-size problem: parity, training and inference speed, quality.

    python benchmarks/backends.py [--epochs 8] [--size 160] [--n 64] [--accelerator cpu]

The scan is ``simulate("lines", size=160, n=64, step=5, probe="defocused")``; the model gridsize 2,
n_filters_scale 1, default training settings otherwise. Both backends start from the same initial
weights (torch's initialisation, seed 0) and see the same batches, so their runs differ only by
floating-point arithmetic. Measured per backend:

- training: wall time of the whole ``fit`` / ``Trainer.fit`` divided by the epochs run (start-up
  and graph tracing included), steady-state training groups/s (timed steps after warm-up), and
  the per-epoch losses (their relative difference is the training parity);
- inference: patterns/s of ``reconstruct`` (warm, best of two);
- quality: docs/design/spec.md#evaluation metrics of each reconstruction against the true object;
- forward parity of each trained model (``ptychopinn.diagnostics.parity.backend_parity``, 64 groups).

Writes benchmarks/results/backends_{cpu,gpu}.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from common import print_json, timed, write_results  # noqa: E402

from ptychopinn.api import build_scales, evaluate, reconstruct, with_resolved_batch_size  # noqa: E402
from ptychopinn.backends.torch.backend import torch_weights  # noqa: E402
from ptychopinn.config import resolve_settings  # noqa: E402
from ptychopinn.data.grouped import GroupedScan  # noqa: E402
from ptychopinn.diagnostics.parity import backend_parity, epoch_metrics  # noqa: E402
from ptychopinn.model.architecture import ModelGeometry, canvas_size_for  # noqa: E402
from ptychopinn.model.trained import TrainedModel  # noqa: E402
from ptychopinn.physics import normalize_probe  # noqa: E402
from ptychopinn.simulation.simulate import simulate  # noqa: E402

BACKENDS = ("torch", "tensorflow")


def train_both(scan, settings, workdir: Path) -> dict:
    from ptychopinn.backends.tensorflow.training import train_tf
    from ptychopinn.backends.torch.model import PtychoPINN
    from ptychopinn.backends.torch.training import train_torch

    grouped = GroupedScan.build(scan, settings.data)
    scales = build_scales(scan, settings)
    probe = normalize_probe(scan.probe)
    geometry = ModelGeometry(scan.patch_size, canvas_size_for(scan.patch_size, grouped.max_offset))
    draft = TrainedModel(settings, geometry, scales, probe, {})
    arch = draft.architecture()
    torch.manual_seed(settings.training.seed)
    initial = torch_weights(PtychoPINN(arch, torch.from_numpy(probe)))
    runs = {}
    for name in BACKENDS:
        start = time.perf_counter()
        if name == "torch":
            result = train_torch(grouped, settings, scales, torch.from_numpy(probe), arch, workdir / name,
                                 quiet=True, initial_weights=initial)
            weights = torch_weights(result.model)
        else:
            result = train_tf(grouped, settings, scales, probe, arch, workdir / name, quiet=True,
                              initial_weights=initial)
            weights = result.weights
        seconds = time.perf_counter() - start
        model = TrainedModel(resolve_settings(None, {**settings.to_plain(), "backend": name}), geometry,
                             scales, probe, weights, backend=name)
        runs[name] = {"model": model, "seconds": seconds, "epochs": result.epochs_run,
                      "metrics": epoch_metrics(result.metrics_csv), "groups": len(grouped)}
    return runs


def steady_training_rate(model: TrainedModel, scan, backend: str, steps: int) -> float:
    """Training groups/s of warm steps (forward, loss, backward, Adam) on one batch."""
    settings = model.settings
    grouped = GroupedScan.build(scan, settings.data)
    batch = settings.training.batch_size
    x, offsets = grouped.diffraction(slice(0, batch)), grouped.offsets(slice(0, batch))
    if backend == "torch":
        from ptychopinn.backends.torch.losses import data_loss

        network = model.build_module().train()
        optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)
        xt, ot = torch.from_numpy(x), torch.from_numpy(offsets)

        def run(count):
            for _ in range(count):
                optimizer.zero_grad()
                data_loss(network(xt, ot).amplitude, xt, model.scales.photon_scale, settings.training.loss).backward()
                optimizer.step()
    else:
        import keras
        import tensorflow as tf

        network = model.build_module("tensorflow")
        network.configure_training(model.scales.photon_scale, settings.training.loss)
        optimizer = keras.optimizers.Adam(learning_rate=1e-3, epsilon=1e-8)

        @tf.function
        def step(x, offsets):
            with tf.GradientTape() as tape:
                loss, _ = network.loss_of(x, offsets)
            optimizer.apply(tape.gradient(loss, network.trainable_variables), network.trainable_variables)
            return loss

        xt, ot = tf.constant(x), tf.constant(offsets)

        def run(count):
            for _ in range(count):
                step(xt, ot)
            float(step(xt, ot))

    run(2)
    return steps * batch / timed(lambda: run(steps))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--accelerator", default="cpu")
    args = parser.parse_args()
    scan = simulate("lines", size=args.size, n=args.n, step=5, probe="defocused")
    settings = with_resolved_batch_size(resolve_settings(None, {
        "data": {"gridsize": 2}, "model": {"n_filters_scale": 1},
        "training": {"epochs": args.epochs, "accelerator": args.accelerator}}), scan)
    with tempfile.TemporaryDirectory() as tmp:
        runs = train_both(scan, settings, Path(tmp))
        rows = {}
        for name, run in runs.items():
            model = run["model"]
            reconstruct(model, scan, backend=name, accelerator=args.accelerator)  # warm-up
            infer_seconds = timed(lambda m=model, b=name: reconstruct(m, scan, backend=b,
                                                                      accelerator=args.accelerator), repeats=2)
            metrics = evaluate(reconstruct(model, scan, backend=name, accelerator=args.accelerator), scan)
            parity = backend_parity(model, scan, n_groups=64).report
            amplitude = next(e for e in parity["stages"]["stages"] if e["stage"] == "predicted_amplitude")
            rows[name] = {
                "epochs_run": run["epochs"],
                "train_seconds": run["seconds"],
                "seconds_per_epoch": run["seconds"] / run["epochs"],
                "steady_train_groups_per_s": steady_training_rate(model, scan, name, args.steps),
                "infer_patterns_per_s": scan.n_patterns / infer_seconds,
                "train_loss": run["metrics"]["train_loss"],
                "val_loss": run["metrics"]["val_loss"],
                "lr": run["metrics"]["lr"],
                "forward_parity_predicted_amplitude": amplitude["relative_diff"],
                "forward_parity_max_stage": max(e["relative_diff"] for e in parity["stages"]["stages"]),
                "parity_status": parity["status"],
                **{k: metrics[k] for k in ("phase_ssim", "amplitude_ssim", "phase_psnr", "amplitude_psnr",
                                           "complex_nrmse", "frc_half_bit")},
            }
    import tensorflow as tf

    t, f = rows["torch"], rows["tensorflow"]
    loss_rel = [abs(b - a) / abs(a) for a, b in zip(t["train_loss"], f["train_loss"], strict=False)]
    val_rel = [abs(b - a) / abs(a) for a, b in zip(t["val_loss"], f["val_loss"], strict=False)]
    payload = {
        "command": "python benchmarks/backends.py " + " ".join(sys.argv[1:]),
        "tensorflow": tf.__version__, "patterns": scan.n_patterns, "groups": runs["torch"]["groups"],
        "patch_size": args.n, "accelerator": args.accelerator, "rows": rows,
        "training_parity": {"train_loss_relative_difference": loss_rel, "val_loss_relative_difference": val_rel},
    }
    lines = [
        f"# PyTorch vs TensorFlow ({args.accelerator}, {scan.n_patterns} patterns of {args.n}², gridsize 2, "
        f"n_filters_scale 1, {args.epochs} epochs, same initial weights and batches)", "",
        "| | torch | tensorflow |", "|---|---|---|",
    ]
    for key, fmt in (("epochs_run", "d"), ("seconds_per_epoch", ".1f"), ("steady_train_groups_per_s", ".1f"),
                     ("infer_patterns_per_s", ".0f"), ("phase_ssim", ".3f"), ("amplitude_ssim", ".3f"),
                     ("phase_psnr", ".2f"), ("amplitude_psnr", ".2f"), ("frc_half_bit", ".2f"),
                     ("forward_parity_predicted_amplitude", ".1e"), ("forward_parity_max_stage", ".1e")):
        lines.append(f"| {key} | {t[key]:{fmt}} | {f[key]:{fmt}} |")
    lines += ["", "per-epoch train loss (torch / tensorflow / relative difference):", ""]
    for epoch, (a, b) in enumerate(zip(t["train_loss"], f["train_loss"], strict=False)):
        lines.append(f"- epoch {epoch}: {a:.6g} / {b:.6g} / {abs(b - a) / abs(a):.1e}")
    json_path, md_path = write_results("backends", payload, "\n".join(lines))
    print_json(payload)
    print("\n".join(lines))
    print(f"results: {json_path}, {md_path}")


if __name__ == "__main__":
    main()
