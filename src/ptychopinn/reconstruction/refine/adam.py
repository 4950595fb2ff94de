"""Adam steps of the refinement's object canvas (optimizer ``adam``). The probe has its own
ePIE-like step whichever optimiser steps the object (:class:`.mpie.ProbeSteps`): Adam's per-pixel
normalised probe steps moved the probe's dark pixels as fast as its bright ones, and a probe with
free power diverged (issue 27)."""

from __future__ import annotations

import torch

from ptychopinn.config import RefineOptimizer, RefineOptions


class AdamSteps:
    """One ``torch.optim.Adam`` over the canvas under optimizer adam; a no-op otherwise."""

    def __init__(self, canvas: torch.nn.Parameter, options: RefineOptions):
        self.options = options
        adam = options.optimizer is RefineOptimizer.adam
        self.optimizer = torch.optim.Adam([canvas], lr=options.step_size) if adam else None

    def set_step_fraction(self, fraction: float) -> None:
        """Scale the steps to ``fraction`` of their full size (the schedule)."""
        for group in self.optimizer.param_groups if self.optimizer is not None else ():
            group["lr"] = fraction * self.options.step_size

    def zero_grad(self) -> None:
        if self.optimizer is not None:
            self.optimizer.zero_grad(set_to_none=True)

    def step(self) -> None:
        if self.optimizer is not None:
            self.optimizer.step()
