"""Shared helpers of the benchmark scripts: machine description and result files."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def add_threads_flag(parser) -> None:
    """``--threads T``: torch's CPU threads, applied by :func:`use_threads`."""
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (on a shared machine 1 avoids oversubscription) [torch's own]")


def use_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def machine_description() -> dict:
    import torch

    description = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return description


def write_results(name: str, payload: dict, markdown: str, results_dir: Path = RESULTS) -> tuple[Path, Path]:
    """``<results_dir>/<name>_<cpu|gpu>.{json,md}``; tests pass a temporary ``results_dir`` so that
    they never replace the recorded results."""
    from ptychopinn.atomic import write_json_atomic, write_text_atomic

    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    payload = {"name": name, "recorded": stamp, "machine": machine_description(), **payload}
    tag = "gpu" if payload["machine"]["cuda"] else "cpu"
    json_path = write_json_atomic(results_dir / f"{name}_{tag}.json", payload)
    md_path = write_text_atomic(results_dir / f"{name}_{tag}.md", markdown + "\n")
    return json_path, md_path


def timed(function, repeats: int = 1) -> float:
    """Best wall time of ``repeats`` calls, seconds."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def print_json(payload: dict) -> None:
    print(json.dumps(payload, indent=2))


def add_optimizer_argument(parser) -> None:
    """``--refine-optimizer`` of the refinement benchmarks."""
    from ptychopinn.reconstruction.refine import RefineOptimizer, RefineOptions

    parser.add_argument("--refine-optimizer", choices=[o.value for o in RefineOptimizer],
                        default=RefineOptions().optimizer.value,
                        help="refinement's optimiser; results of another than the default are written "
                        "as <name>_<optimizer>_* [%(default)s]")


def results_name(name: str, optimizer: str) -> str:
    """``name``, or ``name_<optimizer>`` for another optimiser than refinement's default, so a run
    with it does not overwrite the default's results."""
    from ptychopinn.reconstruction.refine import RefineOptions

    return name if optimizer == RefineOptions().optimizer.value else f"{name}_{optimizer}"
