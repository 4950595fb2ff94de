"""Speed of training and reconstruction, side by side with the physics-only floor.

    python benchmarks/train_infer.py [--size 192] [--n 64] [--steps 20] [--accelerator auto]

Measures in one run, on the current machine:
- training groups/s (forward + loss + backward + Adam step, the work of one Trainer step)
  for gridsize 1 and 2 and n_filters_scale 1 and 2;
- inference patterns/s of `reconstruct` (grouping, normalisation, model, streaming stitch);
- both with the generator's convolutions in the default NHWC (channels-last) layout and in NCHW;
- the physics-only floor: the forward model alone (extraction + probe + far field) on the same
  patterns, i.e. what no network-based method can beat.
Writes benchmarks/results/train_infer_{cpu,gpu}.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import print_json, timed, write_results  # noqa: E402

from ptychopinn.api import build_scales, reconstruct, with_resolved_batch_size  # noqa: E402
from ptychopinn.backends.torch.backend import torch_weights  # noqa: E402
from ptychopinn.backends.torch.device import resolve_device  # noqa: E402
from ptychopinn.backends.torch.losses import data_loss  # noqa: E402
from ptychopinn.backends.torch.model import PtychoPINN  # noqa: E402
from ptychopinn.backends.torch.ops import far_field_amplitude  # noqa: E402
from ptychopinn.config import resolve_settings  # noqa: E402
from ptychopinn.data.grouped import GroupedScan  # noqa: E402
from ptychopinn.model.architecture import ModelGeometry, canvas_size_for  # noqa: E402
from ptychopinn.model.trained import TrainedModel  # noqa: E402
from ptychopinn.physics import normalize_probe  # noqa: E402
from ptychopinn.simulation.simulate import simulate  # noqa: E402


def make_model(scan, gridsize: int, scale: int, device) -> TrainedModel:
    settings = with_resolved_batch_size(
        resolve_settings(None, {"data": {"gridsize": gridsize}, "model": {"n_filters_scale": scale}}), scan)
    grouped = GroupedScan.build(scan, settings.data)
    geometry = ModelGeometry(scan.patch_size, canvas_size_for(scan.patch_size, grouped.max_offset))
    probe = normalize_probe(scan.probe)
    draft = TrainedModel(settings, geometry, build_scales(scan, settings), probe, {})
    module = PtychoPINN(draft.architecture(), torch.from_numpy(probe))
    draft.weights = torch_weights(module)
    return draft


LAYOUTS = {"NHWC": torch.channels_last, "NCHW": torch.contiguous_format}


def training_rate(model: TrainedModel, scan, steps: int, device, layout: str) -> float:
    settings = model.settings
    grouped = GroupedScan.build(scan, settings.data)
    network = model.build_module(device=device).train()
    network.generator.use_memory_format(LAYOUTS[layout])
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)
    batch = settings.training.batch_size
    x = torch.from_numpy(grouped.diffraction(slice(0, batch))).to(device)
    offsets = torch.from_numpy(grouped.offsets(slice(0, batch))).to(device)

    def run(count):
        for _ in range(count):
            optimizer.zero_grad()
            loss = data_loss(network(x, offsets).amplitude, x, model.scales.photon_scale, settings.training.loss)
            loss.backward()
            optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    run(2)  # warm-up
    return steps * batch / timed(lambda: run(steps))


def inference_rate(model: TrainedModel, scan, accelerator: str, layout: str) -> float:
    from unittest import mock

    from ptychopinn.backends.torch.model import Generator

    with mock.patch.object(Generator, "default_memory_format", LAYOUTS[layout]):
        reconstruct(model, scan, accelerator=accelerator)  # warm-up
        return scan.n_patterns / timed(lambda: reconstruct(model, scan, accelerator=accelerator), repeats=2)


def physics_floor_rate(scan, device) -> float:
    """Forward model alone: extract patches from the true object, probe, far field."""
    from ptychopinn.backends.torch.extract import extract_patches

    obj = torch.tensor(scan.object, device=device)
    probe = torch.tensor(normalize_probe(scan.probe), device=device)
    n = scan.patch_size
    top_left = torch.tensor(np.stack([scan.ycoords - n / 2, scan.xcoords - n / 2], 1), device=device)

    def run():
        with torch.inference_mode():
            for start in range(0, scan.n_patterns, 64):
                far_field_amplitude(extract_patches(obj, top_left[start : start + 64], n) * probe)
        if device.type == "cuda":
            torch.cuda.synchronize()

    run()
    return scan.n_patterns / timed(run, repeats=3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--accelerator", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.accelerator)
    scan = simulate("lines", size=args.size, n=args.n, step=5, probe="defocused", seed=0)
    floor = physics_floor_rate(scan, device)
    rows = []
    for gridsize in (1, 2):
        for scale in (1, 2):
            model = make_model(scan, gridsize, scale, device)
            for layout in LAYOUTS:
                rows.append({
                    "gridsize": gridsize, "n_filters_scale": scale, "layout": layout,
                    "batch_size": model.settings.training.batch_size,
                    "train_groups_per_s": training_rate(model, scan, args.steps, device, layout),
                    "infer_patterns_per_s": inference_rate(model, scan, args.accelerator, layout),
                })
    payload = {"device": str(device), "patterns": scan.n_patterns, "patch_size": args.n,
               "physics_floor_patterns_per_s": floor, "rows": rows,
               "command": "python benchmarks/train_infer.py " + " ".join(sys.argv[1:])}
    lines = [f"# train/infer speed ({device}, {scan.n_patterns} patterns of {args.n}²)", "",
             f"physics-only floor: {floor:,.0f} patterns/s", "",
             "| gridsize | n_filters_scale | layout | training batch | train groups/s | infer patterns/s | floor / infer |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['gridsize']} | {r['n_filters_scale']} | {r['layout']} | {r['batch_size']} | {r['train_groups_per_s']:.1f} | "
                     f"{r['infer_patterns_per_s']:.1f} | {floor / r['infer_patterns_per_s']:.1f}× |")
    json_path, md_path = write_results("train_infer", payload, "\n".join(lines))
    print_json(payload)
    print(f"results: {json_path}, {md_path}")


if __name__ == "__main__":
    main()
