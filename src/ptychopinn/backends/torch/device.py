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


def release_process_group() -> None:
    """End a multi-process pretraining run's torch.distributed group once its fit is over (nothing
    after the fit communicates). Left to the interpreter's exit, the group's communication threads can abort
    a process ("terminate called without an active exception", exit code −6: a child of the
    2-process gloo test in CI once)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
