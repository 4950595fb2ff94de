"""Adam steps of the refinement: on the object canvas (optimizer ``adam``) and on the probe
(``refine_probe``, whichever optimiser steps the object)."""

from __future__ import annotations

import torch

from ptychopinn.config import RefineOptimizer, RefineOptions


class AdamSteps:
    """One ``torch.optim.Adam`` over the parameters Adam steps; a no-op when there are none."""

    def __init__(self, canvas: torch.nn.Parameter, probe: torch.Tensor, options: RefineOptions):
        self.options = options
        groups = []
        if options.optimizer is RefineOptimizer.adam:
            groups.append({"params": [canvas], "lr": options.step_size, "role": "object"})
        if options.refine_probe:
            groups.append({"params": [probe], "lr": 0.0, "role": "probe"})
        self.optimizer = torch.optim.Adam(groups) if groups else None

    def set_step_fraction(self, fraction: float, pass_index: int) -> None:
        """Scale the steps to ``fraction`` of their full size (the schedule); the probe's steps
        start at ``probe_start_pass``."""
        probe_active = pass_index >= self.options.probe_start_pass
        for group in self.optimizer.param_groups if self.optimizer is not None else ():
            if group["role"] == "object":
                group["lr"] = fraction * self.options.step_size
            else:
                group["lr"] = fraction * self.options.probe_learning_rate if probe_active else 0.0

    def zero_grad(self) -> None:
        if self.optimizer is not None:
            self.optimizer.zero_grad(set_to_none=True)

    def step(self) -> None:
        if self.optimizer is not None:
            self.optimizer.step()
