"""benchmarks/inference_batch.py: every batch size is timed on the same scan and the table marks
the default."""

from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import inference_batch  # noqa: E402

from ptychopinn.api import load_model  # noqa: E402


def test_each_batch_size_and_the_default_get_a_time_and_one_table_row():
    model = load_model("general")
    scan = inference_batch.throughput_scan(model, 60)
    best = inference_batch.measure(model, scan, [inference_batch.AUTO, 8], rounds=1)
    assert set(best) == {inference_batch.AUTO, 8}
    assert all(math.isfinite(seconds) and seconds > 0 for seconds in best.values())
    payload = {"command": "python benchmarks/inference_batch.py", "model": "general", "patterns": scan.n_patterns,
               "patch_size": 64, "rounds": 1, "threads": None,
               "rows": [{"batch_size": 16, "default": True, "seconds": 1.0, "patterns_per_second": 60.0},
                        {"batch_size": 8, "default": False, "seconds": 2.0, "patterns_per_second": 30.0}]}
    table = inference_batch.markdown(payload, {"cpu_count": 2, "torch_threads": 2, "cuda": None}).splitlines()
    assert "| 16 (default) | 60 | 1.00 |" in table and "| 8 | 30 | 2.00 |" in table
