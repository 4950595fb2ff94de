"""Named intermediate tensors of one forward pass ("stage probes"), backend-neutral.

Two runs (two models, two settings, two backends) are compared stage by stage on the same
grouped, normalised batch; the first stage that diverges localises a discrepancy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# In forward order. Complex stages are stored as complex64, real ones as float32.
STAGE_NAMES = (
    "normalized_input",  # X_n (B, C, N, N)
    "raw_patches",  # generator output (B, C', N, N) complex
    "merged_canvas",  # per-group canvas (B, S, S) complex (absent without object_big)
    "object_patches",  # re-extracted patches fed to the physics (B, C, N, N) complex
    "predicted_amplitude",  # Â_n (B, C, N, N)
    "group_object",  # each group's patch centred on its centre (B, N, N) complex
)


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    else:
        value = np.asarray(value)
    return value.astype(np.complex64 if np.iscomplexobj(value) else np.float32)


def stages_from_forward(normalized_input: Any, output: Any) -> dict[str, np.ndarray]:
    """Collect the stages of a backend's forward output (attributes as on ``ForwardOutput``)."""
    stages = {
        "normalized_input": normalized_input,
        "raw_patches": output.raw_patches,
        "merged_canvas": output.canvas,
        "object_patches": output.object_patches,
        "predicted_amplitude": output.amplitude,
        "group_object": output.group_object,
    }
    return {name: _to_numpy(value) for name, value in stages.items() if value is not None}
