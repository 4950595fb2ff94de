"""Backend-neutral NumPy reference of the physics (docs/design/spec.md#forward-model to #scaling): the oracle both backends match."""

from ptychopinn.physics.forward import extract_patches, far_field, forward_amplitude, illuminate
from ptychopinn.physics.probe import make_probe, normalize_probe, probe_mask
from ptychopinn.physics.scaling import ScaleContract, input_scale, mean_total_counts

__all__ = [
    "ScaleContract",
    "extract_patches",
    "far_field",
    "forward_amplitude",
    "illuminate",
    "input_scale",
    "make_probe",
    "mean_total_counts",
    "normalize_probe",
    "probe_mask",
]
