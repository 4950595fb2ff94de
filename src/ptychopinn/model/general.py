"""General models: pretrained on the procedural corpus, applied to any scan with its own probe.

What sets them apart from a model trained on one scan: the probe is normalised by its energy
(docs/design/spec.md#scaling), the bundle records the statistics of the probes it was trained on
(so that ``infer`` can say when a scan's probe lies outside them), and models shipped with the
package load by name (``load_model("general")``).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ptychopinn.config import Settings

SHIPPED_MODELS = {"general": "general-64.pinn"}



def shipped_model_path(name: str) -> Path | None:
    """The packaged bundle called ``name``, or None when ``name`` is not a shipped model."""
    filename = SHIPPED_MODELS.get(str(name))
    if filename is None:
        return None
    return Path(str(resources.files("ptychopinn.model.shipped").joinpath(filename)))


def pretraining_settings(overrides: dict[str, Any] | None = None) -> Settings:
    """The defaults of ``pretrain``, then ``overrides``: a corpus, the energy probe
    normalisation, per-pattern inference (any scan geometry) stitched with |P|² weights (any probe
    size), and a schedule sized for the corpus."""
    defaults = Settings().with_overrides({
        "data": {"gridsize": 1},
        "physics": {"probe_normalization": "energy"},
        "model": {"generator": "unet", "n_filters_scale": 1},  # benchmarks/generators.py
        "training": {"epochs": 20, "batch_size": 32, "learning_rate": 1e-3, "min_lr": 1e-5,
                     "precision": "auto", "validation_fraction": 0.0},
        "inference": {"stitch_weighting": "probe"},
        "corpus": {},
    })
    return defaults.with_overrides(overrides or {})


def effective_area_fraction(probe: np.ndarray) -> float:
    """(Σ|P|²)² / (N² Σ|P|⁴): the fraction of the window the probe effectively lights (1 for a
    flat field, about the disk's area fraction for a top-hat disk)."""
    intensity = np.abs(np.asarray(probe, dtype=np.complex128)) ** 2
    return float(intensity.sum() ** 2 / (intensity.size * (intensity**2).sum()))


def probe_statistics(probes: list[np.ndarray]) -> dict[str, list[float]]:
    """The range (1st and 99th percentiles) of each probe statistic over the training probes."""
    areas = [effective_area_fraction(p) for p in probes]
    return {"effective_area_fraction": [float(np.percentile(areas, 1)), float(np.percentile(areas, 99))]}


def probe_outside(statistics: dict[str, list[float]] | None, probe: np.ndarray) -> str | None:
    """Why ``probe`` lies outside the training probes' ``statistics``, or None when it does not."""
    if not statistics:
        return None
    area = effective_area_fraction(probe)
    low, high = statistics["effective_area_fraction"]
    if not low <= area <= high:
        return (f"it lights {area:.1%} of the window, the training probes {low:.1%} to {high:.1%} "
                "(1st to 99th percentile)")
    return None
