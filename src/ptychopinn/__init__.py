"""ptychopinn: physics-informed neural-network reconstruction for ptychography.

The public API is loaded lazily so that importing the package does no work (no torch, no
TensorFlow, no models built)::

    from ptychopinn import simulate, load_scan, train, load_model, reconstruct, evaluate, data_fit
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "simulate": "ptychopinn.simulation.simulate",
    "load_scan": "ptychopinn.data",
    "save_scan": "ptychopinn.data",
    "Scan": "ptychopinn.data",
    "Settings": "ptychopinn.config",
    "train": "ptychopinn.api",
    "pretrain": "ptychopinn.api",
    "finetune": "ptychopinn.api",
    "reconstruct": "ptychopinn.api",
    "evaluate": "ptychopinn.api",
    "load_model": "ptychopinn.model.trained",
    "Reconstruction": "ptychopinn.reconstruction.result",
    "data_fit": "ptychopinn.evaluation.data_fit",
}

__all__ = [*_API, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'ptychopinn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
