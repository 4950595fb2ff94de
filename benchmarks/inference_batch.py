"""One-pass inference speed against the batch size (groups per forward pass), stitching included.

    python benchmarks/inference_batch.py [--model general] [--patterns 3025] [--rounds 3]
                                         [--batch-sizes 4 8 16 32 64 128] [--threads T]

Reconstructs one simulated scan (a held-out object, a zone-plate probe: the generalization
benchmark's throughput scan) with ``ptychopinn.api.reconstruct`` at every batch size and at the
default (unset: ``AUTO_INFERENCE_BATCH`` for the device). The sizes are measured side by side in
rounds (every size once per round, after one warm-up call each), and each keeps its best round,
so that a load that comes and goes during the run affects them alike.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_threads_flag, machine_description, print_json, use_threads, write_results  # noqa: E402

DEFAULT_BATCHES = (4, 8, 16, 32, 64, 128)
AUTO = "auto"


def throughput_scan(model, patterns: int):
    """The generalization benchmark's throughput scan at the model's patch size."""
    import generalization

    return generalization.build_scan(generalization.throughput_case(patterns), model.patch_size)[0]


def measure(model, scan, batch_sizes: list, rounds: int) -> dict:
    """Best seconds per batch size (``AUTO`` for the default) over ``rounds`` interleaved rounds."""
    from ptychopinn.api import reconstruct

    def run(size):
        return reconstruct(model, scan, batch_size=None if size == AUTO else size)

    for size in batch_sizes:
        run(size)  # warm-up: one-time costs (allocator, oneDNN primitives) are paid once per session
    best = {size: float("inf") for size in batch_sizes}
    for _ in range(rounds):
        for size in batch_sizes:
            began = time.perf_counter()
            run(size)
            best[size] = min(best[size], time.perf_counter() - began)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="general", help="a model.pinn, or 'general' [general]")
    parser.add_argument("--patterns", type=int, default=3025)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=list(DEFAULT_BATCHES))
    add_threads_flag(parser)
    args = parser.parse_args()
    use_threads(args.threads)

    from ptychopinn.api import load_model
    from ptychopinn.backends import get_backend

    model = load_model(args.model)
    backend = get_backend(model.settings.backend)
    auto = model.settings.inference.resolved_batch_size(backend.runs_on_gpu(model.settings.inference.accelerator))
    scan = throughput_scan(model, args.patterns)
    sizes = [AUTO, *args.batch_sizes]
    best = measure(model, scan, sizes, args.rounds)
    rows = [{"batch_size": auto if size == AUTO else size, "default": size == AUTO, "seconds": round(seconds, 3),
             "patterns_per_second": round(scan.n_patterns / seconds, 1)} for size, seconds in best.items()]
    command = "python benchmarks/inference_batch.py " + " ".join(sys.argv[1:])
    payload = {"command": command.strip(), "model": args.model,
               "patterns": scan.n_patterns, "patch_size": model.patch_size, "rounds": args.rounds,
               "threads": args.threads, "rows": rows}
    print_json(payload)
    write_results("inference_batch", payload, markdown(payload, machine_description()))


def markdown(payload: dict, machine: dict) -> str:
    lines = [f"# One-pass inference against the batch size ({payload['model']}, {payload['patterns']} patterns of "
             f"{payload['patch_size']}², stitching included)", "",
             f"`{payload['command']}`; {machine.get('cpu_count')} CPU cores, {machine.get('torch_threads')} torch "
             f"threads, CUDA: {machine['cuda'] or 'none'}. Best of {payload['rounds']} interleaved rounds.", "",
             "| batch size | patterns/s | seconds |", "|---|---|---|"]
    for row in payload["rows"]:
        label = f"{row['batch_size']} (default)" if row["default"] else str(row["batch_size"])
        lines.append(f"| {label} | {row['patterns_per_second']:,.0f} | {row['seconds']:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
