"""Which generator to pretrain: cnn against unet, each at two widths, under the same compute.

    python benchmarks/generators.py [--minutes 7] [--configs cnn:1 cnn:2 unet:1 unet:2] [--out DIR]

Every configuration's optimiser step (forward, backward, Adam on a corpus batch) is timed first,
one after the other under the same conditions; each then pretrains (``ptychopinn.api.pretrain``,
default settings otherwise) for as many steps as fit in ``--minutes`` at its measured step time,
so that every generator gets the same compute whatever else the machine does during the runs. Scored
on what none of them trained on: the two held-out validation sets of the corpus (fidelity: 1 =
the object up to global phase and scale; docs/design/corpus.md) and the one-pass phase SSIM of
four simulated scans (held-out object families siemens_star and circuit, under a training-family
zone_plate probe and the held-out kb_mirror probe, 1e6 photons). Runs are kept in --out (default
a temporary directory), so an interrupted benchmark resumes each run from its last checkpoint.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import print_json, write_results  # noqa: E402

CONFIGS = ("cnn:1", "cnn:2", "unet:1", "unet:2")
N = 64
BATCH = 32
SAMPLES_PER_EPOCH = 1024
SCANS = (("siemens_star", "zone_plate"), ("circuit", "zone_plate"), ("siemens_star", "kb_mirror"),
         ("circuit", "kb_mirror"))


def overrides_for(config: str, epochs: int, quick: bool) -> dict:
    generator, scale = config.split(":")
    samples = 64 if quick else SAMPLES_PER_EPOCH
    return {"model": {"generator": generator, "n_filters_scale": int(scale)},
            "training": {"epochs": epochs, "batch_size": BATCH},
            "corpus": {"samples_per_epoch": samples, "validation_samples": 32 if quick else 128}}


def seconds_per_step(config: str, steps: int = 4) -> float:
    """Wall time of one optimiser step (forward, backward, Adam) on a corpus batch, best of ``steps``."""
    import torch

    from ptychopinn.backends.torch.model import PtychoPINN
    from ptychopinn.backends.torch.pretraining import CorpusDataset, PretrainModule
    from ptychopinn.model.architecture import Architecture, ModelGeometry, canvas_size_for
    from ptychopinn.model.general import pretraining_settings
    from ptychopinn.simulation.corpus import Corpus

    settings = pretraining_settings(overrides_for(config, 1, False))
    training = settings.with_overrides({"data": {"gridsize": settings.corpus.gridsize}})
    corpus = Corpus(settings.corpus, N, settings.corpus.gridsize, seed=0)
    arch = Architecture.from_settings(training, ModelGeometry(N, canvas_size_for(N, corpus.max_offset)))
    dataset = CorpusDataset(corpus)
    batch = [torch.stack(parts) for parts in zip(*(dataset[i] for i in range(BATCH)), strict=True)]
    module = PretrainModule(PtychoPINN(arch, torch.from_numpy(corpus.sample(0).probe)), training)
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-4)
    best = float("inf")
    for _ in range(steps + 1):  # the first step warms up
        start = time.perf_counter()
        optimizer.zero_grad()
        module._forward(batch)[1].backward()
        optimizer.step()
        best = min(best, time.perf_counter() - start)
    return best


def last_fidelities(metrics_csv: Path) -> dict[str, float]:
    found: dict[str, float] = {}
    with open(metrics_csv, newline="") as handle:
        for row in csv.DictReader(handle):
            for key, value in row.items():
                if key.startswith("val_fidelity_") and value:
                    found[key.removeprefix("val_fidelity_")] = float(value)
    return found


def one_pass_scores(model) -> list[dict]:
    import numpy as np

    from ptychopinn import evaluate, reconstruct, simulate
    from ptychopinn.simulation import families

    rows = []
    for index, (object_family, probe_family) in enumerate(SCANS):
        rng = np.random.default_rng([777, index])
        obj = families.random_object(object_family, 160, rng)
        probe = families.random_probe(probe_family, N, rng)
        scan = simulate(obj, n=N, probe=probe, step=8.0, photons=1e6, seed=index)
        metrics = evaluate(reconstruct(model, scan), scan)
        rows.append({"object": object_family, "probe": probe_family,
                     "phase_ssim": round(float(metrics["phase_ssim"]), 4),
                     "amplitude_ssim": round(float(metrics["amplitude_ssim"]), 4)})
    return rows


def run_config(config: str, step: float, minutes: float, out: Path, quick: bool) -> dict:
    from ptychopinn.api import pretrain

    steps_per_epoch = (64 if quick else SAMPLES_PER_EPOCH) // BATCH
    epochs = 1 if quick else max(1, round(minutes * 60 / step / steps_per_epoch))
    run_dir = out / config.replace(":", "_s")
    last = run_dir / "checkpoints" / "last.ckpt"
    summary = pretrain(run_dir, overrides=overrides_for(config, epochs, quick), patch_size=N,
                       resume=last if last.is_file() else None)
    weights_mb = sum(w.nbytes for w in summary.model.weights.values()) / 1e6
    scans = one_pass_scores(summary.model)
    return {"config": config, "seconds_per_step": round(step, 3), "epochs": epochs,
            "steps": summary.steps_run, "wall_minutes": round(summary.wall_seconds / 60, 1),
            "weights_mb_float32": round(weights_mb, 2), "held_out_fidelity": last_fidelities(run_dir / "metrics.csv"),
            "scans": scans, "median_phase_ssim": float(sorted(r["phase_ssim"] for r in scans)[len(scans) // 2])}


def table(rows: list[dict]) -> str:
    lines = ["| generator:width | s/step | steps | MB (fp32) | fidelity, held-out objects | fidelity, held-out "
             "probes | one-pass phase SSIM (4 scans) |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        fid = row["held_out_fidelity"]
        ssims = ", ".join(f"{r['phase_ssim']:.2f}" for r in row["scans"])
        lines.append(f"| {row['config']} | {row['seconds_per_step']} | {row['steps']} | {row['weights_mb_float32']} "
                     f"| {fid.get('held_out_objects', float('nan')):.3f} | {fid.get('held_out_probes', float('nan')):.3f} "
                     f"| {ssims} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=7.0, help="wall-clock budget of each configuration")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS))
    parser.add_argument("--out", type=Path, default=None, help="where the runs go (kept, for resuming)")
    parser.add_argument("--quick", action="store_true", help="one tiny epoch each (a smoke test)")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="generators-"))
    # every configuration is timed under the same conditions, before any run: the budget is then
    # a number of steps per configuration, unaffected by what else the machine does meanwhile
    step_times = {config: seconds_per_step(config) for config in args.configs}
    rows = [run_config(config, step_times[config], args.minutes, out, args.quick) for config in args.configs]
    command = "python benchmarks/generators.py " + " ".join(argv if argv is not None else sys.argv[1:])
    payload = {"command": command.strip(), "minutes_each": args.minutes, "rows": rows}
    if not args.quick:
        write_results("generators", payload, f"`{payload['command']}`\n\n" + table(rows))
    print_json(payload)
    print(table(rows))
    return payload


if __name__ == "__main__":
    main()
