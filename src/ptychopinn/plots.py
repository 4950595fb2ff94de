"""Every figure the tool writes. Figures are built with the object API (no pyplot state) and
saved atomically."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ptychopinn.atomic import save_figure_atomic
from ptychopinn.data.scan import Scan


def new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _image(axis, data, title, cmap="gray", **kwargs):
    handle = axis.imshow(data, cmap=cmap, **kwargs)
    axis.set_title(title, fontsize=9)
    axis.set_xticks([])
    axis.set_yticks([])
    axis.figure.colorbar(handle, ax=axis, shrink=0.8)
    return handle


def plot_scan_overview(scan: Scan, path: str | Path) -> Path:
    """Scan positions (over the reference amplitude when known), probe amplitude and phase,
    and the mean diffraction pattern on a log scale."""
    figure = new_figure(13, 3.6)
    axes = figure.subplots(1, 4)
    if scan.object is not None:
        axes[0].imshow(np.abs(scan.object), cmap="gray")
    axes[0].plot(scan.xcoords, scan.ycoords, ".", ms=2, color="tab:orange")
    axes[0].set_title(f"{scan.n_patterns} scan positions (px)", fontsize=9)
    axes[0].set_aspect("equal")
    if scan.object is None:
        axes[0].invert_yaxis()
    _image(axes[1], np.abs(scan.probe), "probe amplitude", cmap="viridis")
    _image(axes[2], np.angle(scan.probe), "probe phase (rad)", cmap="twilight")
    mean_pattern = np.mean(scan.diffraction.astype(np.float64) ** 2, axis=0)
    _image(axes[3], np.log10(mean_pattern + 1e-3), "mean pattern log10(counts)", cmap="magma")
    figure.suptitle(Path(str(scan.source)).name, fontsize=10)
    return save_figure_atomic(figure, path, dpi=110)


def plot_training_curves(metrics_csv: str | Path, path: str | Path) -> Path:
    """Training and validation loss per epoch (log scale when positive) and the learning rate."""
    epochs: dict[str, dict[int, float]] = {"train_loss": {}, "val_loss": {}, "lr-Adam": {}}
    with open(metrics_csv, newline="") as handle:
        for row in csv.DictReader(handle):
            if not row.get("epoch"):
                continue
            for key, series in epochs.items():
                if row.get(key):
                    series[int(float(row["epoch"]))] = float(row[key])
    figure = new_figure(9, 3.4)
    loss_axis, lr_axis = figure.subplots(1, 2)
    for key, label in (("train_loss", "training"), ("val_loss", "validation")):
        if epochs[key]:
            xs = sorted(epochs[key])
            loss_axis.plot(xs, [epochs[key][x] for x in xs], "o-", ms=3, label=label)
    values = [v for key in ("train_loss", "val_loss") for v in epochs[key].values()]
    if values and min(values) > 0:
        loss_axis.set_yscale("log")
    loss_axis.set(xlabel="epoch", ylabel="loss", title="loss")
    loss_axis.legend()
    if epochs["lr-Adam"]:
        xs = sorted(epochs["lr-Adam"])
        lr_axis.plot(xs, [epochs["lr-Adam"][x] for x in xs], "s-", ms=3)
        lr_axis.set_yscale("log")
    lr_axis.set(xlabel="epoch", ylabel="learning rate", title="learning rate")
    return save_figure_atomic(figure, path, dpi=110)


def plot_pretraining_curves(metrics_csv: str | Path, path: str | Path) -> Path:
    """Pretraining: the training loss per step (and its running mean), each held-out set's
    fidelity per epoch (1 = the object up to global phase and scale), and the learning rate."""
    steps: dict[str, dict[int, float]] = {"train_loss_step": {}, "lr-Adam": {}}
    fidelity: dict[str, dict[int, float]] = {}
    with open(metrics_csv, newline="") as handle:
        for row in csv.DictReader(handle):
            step = int(float(row["step"])) if row.get("step") else None
            for key, series in steps.items():
                if row.get(key) and step is not None:
                    series[step] = float(row[key])
            for key, value in row.items():
                if key.startswith("val_fidelity_") and value and row.get("epoch"):
                    fidelity.setdefault(key.removeprefix("val_fidelity_"), {})[int(float(row["epoch"]))] = float(value)
    figure = new_figure(12, 3.4)
    loss_axis, fidelity_axis, lr_axis = figure.subplots(1, 3)
    losses = steps["train_loss_step"]
    if losses:
        xs = sorted(losses)
        ys = np.array([losses[x] for x in xs])
        loss_axis.plot(xs, ys, lw=0.5, alpha=0.4, color="tab:blue")
        window = max(1, len(ys) // 50)
        loss_axis.plot(xs, np.convolve(ys, np.ones(window) / window, mode="same"), color="tab:blue")
    loss_axis.set(xlabel="step", ylabel="loss (NLL at S = 1)", title="training loss")
    for name, series in sorted(fidelity.items()):
        xs = sorted(series)
        fidelity_axis.plot([x + 1 for x in xs], [series[x] for x in xs], "o-", ms=3, label=name.replace("_", " "))
    if fidelity:
        fidelity_axis.legend(fontsize=8)
    fidelity_axis.set(xlabel="epoch", ylabel="fidelity", title="held-out fidelity")
    if steps["lr-Adam"]:
        xs = sorted(steps["lr-Adam"])
        lr_axis.plot(xs, [steps["lr-Adam"][x] for x in xs])
        lr_axis.set_yscale("log")
    lr_axis.set(xlabel="step", ylabel="learning rate", title="learning rate")
    return save_figure_atomic(figure, path, dpi=110)


def object_extent(reconstruction) -> list[float]:
    """imshow extent so axes read in object pixel coordinates."""
    ox, oy = reconstruction.origin_xy
    rows, cols = reconstruction.object.shape
    return [ox - 0.5, ox + cols - 0.5, oy + rows - 0.5, oy - 0.5]


def plot_reconstruction_channel(reconstruction, channel: str, path: str | Path) -> Path:
    """Amplitude or phase of a stitched reconstruction, axes in object pixels; uncovered pixels
    are left blank."""
    values = reconstruction.amplitude if channel == "amplitude" else reconstruction.phase
    shown = np.ma.masked_where(~reconstruction.mask, values)
    figure = new_figure(5.2, 4.6)
    axis = figure.subplots()
    handle = axis.imshow(shown, cmap="gray" if channel == "amplitude" else "twilight",
                         extent=object_extent(reconstruction))
    figure.colorbar(handle, ax=axis, shrink=0.85, label="rad" if channel == "phase" else None)
    axis.set(title=f"reconstruction {channel}", xlabel="x (object px)", ylabel="y (object px)")
    return save_figure_atomic(figure, path, dpi=120)


def plot_trust_map(reconstruction, positions_xy: np.ndarray, excess: np.ndarray, path: str | Path) -> Path:
    """Each scan position coloured by its pattern's misfit in units of its Poisson floor (1: the
    object explains that pattern), over the reconstruction's amplitude in object pixels."""
    figure = new_figure(6.2, 5.0)
    axis = figure.subplots()
    axis.imshow(np.ma.masked_where(~reconstruction.mask, reconstruction.amplitude), cmap="gray",
                extent=object_extent(reconstruction))
    top = max(3.0, float(np.percentile(excess, 99))) if excess.size else 3.0
    handle = axis.scatter(positions_xy[:, 0], positions_xy[:, 1], c=excess, s=14, cmap="inferno",
                          vmin=1.0, vmax=top, edgecolors="none")
    figure.colorbar(handle, ax=axis, shrink=0.85, label="misfit / Poisson floor (1 = explained)")
    axis.set(title="trust map: where the object explains each pattern", xlabel="x (object px)",
             ylabel="y (object px)")
    return save_figure_atomic(figure, path, dpi=120)


def plot_comparison(panels: dict[str, np.ndarray], metrics: dict, path: str | Path) -> Path:
    """Reference and aligned reconstructions side by side (amplitude row, phase row), difference
    maps of the last one against the reference, and the FRC curve.

    ``panels`` maps a label to an aligned complex image; the first entry is the reference.
    """
    labels = list(panels)
    reference, last = panels[labels[0]], panels[labels[-1]]
    columns = len(labels) + 2
    figure = new_figure(3.1 * columns, 6.0)
    axes = figure.subplots(2, columns, squeeze=False)
    amp = np.abs(reference)
    phase = np.angle(reference)
    for column, label in enumerate(labels):
        _image(axes[0, column], np.abs(panels[label]), f"{label}: amplitude",
               vmin=amp.min(), vmax=amp.max())
        _image(axes[1, column], np.angle(panels[label]), f"{label}: phase", cmap="twilight",
               vmin=phase.min(), vmax=phase.max())
    _difference(axes[0, -2], np.abs(last) - amp, f"{labels[-1]} − {labels[0]}: amplitude")
    _difference(axes[1, -2], np.angle(last * np.conj(reference)), f"{labels[-1]} − {labels[0]}: phase")
    _draw_frc(axes[0, -1], metrics)
    axes[1, -1].axis("off")
    axes[1, -1].text(0, 0.5, _metrics_text(metrics), fontsize=9, family="monospace", va="center")
    return save_figure_atomic(figure, path, dpi=110)


def _difference(axis, values: np.ndarray, title: str) -> None:
    """A signed map on a colour scale symmetric about zero (white = no difference)."""
    limit = float(np.percentile(np.abs(values), 99.5)) or 1e-6
    _image(axis, values, title, cmap="RdBu_r", vmin=-limit, vmax=limit)


def _metrics_text(metrics: dict) -> str:
    rows = [("phase SSIM", "phase_ssim", ".3f"), ("amp. SSIM", "amplitude_ssim", ".3f"),
            ("phase PSNR", "phase_psnr", ".1f"), ("amp. PSNR", "amplitude_psnr", ".1f"),
            ("phase MAE", "phase_mae", ".3f"), ("NRMSE", "complex_nrmse", ".3f"),
            ("FRC 0.5", "frc_0_5", ".2f"), ("FRC 1/2-bit", "frc_half_bit", ".2f")]
    return "\n".join(f"{name:<12}{metrics[key]:{fmt}}" for name, key, fmt in rows if key in metrics)


def _draw_frc(axis, metrics: dict) -> None:
    from ptychopinn.evaluation.metrics import half_bit_threshold

    freqs = np.asarray(metrics["frc_frequencies"])
    axis.plot(freqs, metrics["frc_curve"], label="FRC")
    axis.plot(freqs, half_bit_threshold(np.asarray(metrics["frc_ring_counts"])), "--", label="1/2-bit")
    axis.axhline(0.5, color="gray", ls=":", label="0.5")
    axis.set(xlabel="frequency (fraction of Nyquist)", ylabel="correlation", ylim=(-0.05, 1.05),
             title="Fourier ring correlation")
    axis.legend(fontsize=8)


def plot_loss_curve(losses: list[float], path: str | Path, title: str = "loss") -> Path:
    figure = new_figure(5, 3.4)
    axis = figure.subplots()
    axis.plot(range(1, len(losses) + 1), losses, "o-", ms=3)
    if losses and min(losses) > 0:
        axis.set_yscale("log")
    axis.set(xlabel="pass", ylabel="loss", title=title)
    return save_figure_atomic(figure, path, dpi=110)
