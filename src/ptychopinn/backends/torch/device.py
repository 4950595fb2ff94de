"""Device choice for work outside the Lightning Trainer (inference, refinement)."""

from __future__ import annotations

import torch


def resolve_device(accelerator: str = "auto") -> torch.device:
    """'auto' picks CUDA, then Apple MPS, then CPU; 'gpu'/'cuda' demand CUDA; 'cpu' is CPU."""
    accelerator = accelerator.lower()
    if accelerator == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if accelerator in ("gpu", "cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"accelerator '{accelerator}' requested but no CUDA device is available")
        return torch.device("cuda")
    if accelerator in ("cpu", "mps"):
        return torch.device(accelerator)
    raise ValueError(f"unknown accelerator {accelerator!r}: use auto, cpu, gpu, cuda or mps")
