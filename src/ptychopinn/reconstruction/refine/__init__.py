"""Refinement: physics-based polishing of a stitched object (docs/design/spec.md#stitching-and-refinement).

The object canvas (in object pixel coordinates) becomes a learnable complex tensor; the forward
model (sub-pixel extraction at every scan position, probe, far-field amplitude) and a data loss
are minimised over minibatches of positions, with a cosine-decaying step so the result settles
instead of fitting noise. Two optimisers: Adam (:mod:`.adam`), and a PIE-style step (:mod:`.mpie`:
each batch's gradient divided by the batch's illumination, as ePIE does for one position, with
heavy-ball momentum, the idea of mPIE), which needs fewer passes and ends higher at moderate and
high dose but needs more passes at low dose; the default picks between them by the scan's counts
per pattern. Started from a flat object it is an iterative reconstruction in its own right (the
baseline); started from the network's output it needs fewer passes where the network is good, and
under Adam a flat rival for the first passes guards against a start that is worse than none
(``RefineOptions.flat_check_passes``).

Modules: :mod:`.problem` (canvas, probe, forward model, loss), :mod:`.adam` and :mod:`.mpie` (one
optimiser each), :mod:`.positions` (the optional position correction), :mod:`.engine` (the pass
loop, the step schedule, the start check). The options
are the ``refinement`` section of the settings (:class:`ptychopinn.config.RefineOptions`).
"""

from ptychopinn.config import (
    ADAM_FLAT_CHECK_PASSES,
    MPIE_MIN_COUNTS,
    RefineLoss,
    RefineOptimizer,
    RefineOptions,
)
from ptychopinn.reconstruction.refine.engine import RefinementResult, plot_refinement, refine
from ptychopinn.reconstruction.refine.problem import RefinementProblem

__all__ = [
    "ADAM_FLAT_CHECK_PASSES",
    "MPIE_MIN_COUNTS",
    "RefineLoss",
    "RefineOptimizer",
    "RefineOptions",
    "RefinementProblem",
    "RefinementResult",
    "plot_refinement",
    "refine",
]
