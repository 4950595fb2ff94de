"""Collapse and saturation of the network's predicted patches during training (docs/design/spec.md#diagnostics).

A network that has collapsed predicts the same flat patch for every pattern, and one whose phase
activation saturated pins the phase at ±π: neither shows in the loss curve, which just stops
improving. After every epoch training looks at the predicted patches of a fixed sample of groups,
over the pixels the probe lights (elsewhere nothing constrains the network):

* the within-patch variance of the amplitude (``var_zero_mean``, relative to the squared mean)
  and of the phase, taken about each patch's amplitude-weighted circular mean phase (a patch's
  global phase is free and may sit anywhere on the circle, ±π included, without being spread):
  both near zero means the patches carry no structure (collapse);
* the fraction of amplitudes within SATURATION_MARGIN of the activation's bounds and, for a
  bounded phase head (π · tanh), of phase values within it of ±π: the activation is saturated
  there and its gradient vanishes. The linear phase head has no bound to saturate at.

The statistics are accumulated in float64 (:class:`~ptychopinn.diagnostics.stats.PatchAccumulator`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ptychopinn.diagnostics.stats import PatchAccumulator, centred_phases

# Below these the patches are flat: relative amplitude variance (var / mean²) and phase variance
# (rad²). A healthy network on a weak phase object still shows ~1e-3 rad² within its patches.
COLLAPSED_AMPLITUDE_BELOW = 1e-4
COLLAPSED_PHASE_BELOW = 1e-4
SATURATION_MARGIN = 0.02  # of the activation's range: |φ| ≥ 0.98 π, or A within 2 % of a bound
SATURATED_ABOVE = 0.5  # fraction of the illuminated outputs at a bound
ILLUMINATED_FROM = 0.1  # |P|² ≥ this × max |P|²: the pixels whose outputs the data constrain


@dataclass(frozen=True)
class CollapseCheck:
    """What one epoch's predicted patches show (all fractions and variances over illuminated pixels)."""

    epoch: int
    amplitude_mean: float
    amplitude_relative_variance: float
    phase_variance: float
    phase_saturated_fraction: float
    amplitude_saturated_fraction: float

    @property
    def collapsed(self) -> bool:
        return (self.amplitude_relative_variance < COLLAPSED_AMPLITUDE_BELOW
                and self.phase_variance < COLLAPSED_PHASE_BELOW)

    @property
    def saturated(self) -> bool:
        return max(self.phase_saturated_fraction, self.amplitude_saturated_fraction) > SATURATED_ABOVE

    @property
    def healthy(self) -> bool:
        return not (self.collapsed or self.saturated)

    def message(self) -> str:
        """One line for the log and the CLI; empty when the patches are healthy."""
        problems = []
        if self.collapsed:
            problems.append(f"the predicted patches have collapsed to flat patches (relative amplitude variance "
                            f"{self.amplitude_relative_variance:.2g}, phase variance {self.phase_variance:.2g} rad²)")
        if self.saturated:
            shares = [f"{share:.0%} of the {what}" for share, what in (
                (self.phase_saturated_fraction, "phase at ±π"),
                (self.amplitude_saturated_fraction, "amplitude at its bounds")) if share > 0]
            problems.append(f"the activations are saturated ({', '.join(shares)})")
        if not problems:
            return ""
        # only the bounded π·tanh head can pin the phase at ±π; the linear head has no bound
        remedy = "--phase-activation linear, " if self.phase_saturated_fraction > SATURATED_ABOVE else ""
        return (f"epoch {self.epoch}: " + "; ".join(problems) + f": the network is not reconstructing; try "
                f"{remedy}--learn-probe, --probe-modes K, a lower --lr, or refine (refine --init flat)")

    def as_dict(self) -> dict:
        return {**asdict(self), "collapsed": self.collapsed, "saturated": self.saturated}


def illuminated_pixels(probe: np.ndarray) -> np.ndarray:
    """(N, N) bool: where mode 0 of ``probe`` ((N, N) or (K, N, N)) carries ILLUMINATED_FROM of its peak power."""
    power = np.abs(np.asarray(probe).reshape(-1, *np.shape(probe)[-2:])[0]).astype(np.float64) ** 2
    return power >= ILLUMINATED_FROM * power.max()


class CollapseMonitor:
    """Accumulates one epoch's predicted patches and judges them (:meth:`finish`)."""

    def __init__(self, illuminated: np.ndarray, amplitude_bound: float, phase_bound: float | None = math.pi):
        self.illuminated = np.asarray(illuminated, dtype=bool)
        self.amplitude_bound = float(amplitude_bound)
        self.phase_bound = phase_bound  # None: the phase head is unbounded (linear)
        self.reset()

    def reset(self) -> None:
        self.amplitude = PatchAccumulator()
        self.phase = PatchAccumulator()
        self.phase_saturated = 0
        self.amplitude_saturated = 0
        self.count = 0

    def update(self, amplitude: np.ndarray, phase: np.ndarray) -> CollapseMonitor:
        """Patches (..., N, N) of the amplitude and phase heads."""
        n = self.illuminated.shape[-1]
        amplitude = np.asarray(amplitude, dtype=np.float64).reshape(-1, n, n)[:, self.illuminated]
        phase = np.asarray(phase, dtype=np.float64).reshape(-1, n, n)[:, self.illuminated]
        self.amplitude.update(amplitude[:, None])
        # shifted by π into [0, 2π] so that the accumulator's modulus leaves it unchanged
        self.phase.update(centred_phases(amplitude * np.exp(1j * phase), axis=-1)[:, None] + math.pi)
        if self.phase_bound is not None:
            self.phase_saturated += int(np.count_nonzero(np.abs(phase) >= (1 - SATURATION_MARGIN) * self.phase_bound))
        margin = SATURATION_MARGIN * self.amplitude_bound
        self.amplitude_saturated += int(np.count_nonzero((amplitude <= margin)
                                                         | (amplitude >= self.amplitude_bound - margin)))
        self.count += amplitude.size
        return self

    def finish(self, epoch: int) -> CollapseCheck:
        amplitude, phase = self.amplitude.result(), self.phase.result()
        mean = amplitude["mean"]
        relative = amplitude["var_zero_mean"] / mean**2 if mean > 0 else 0.0
        count = max(self.count, 1)
        check = CollapseCheck(epoch, float(mean), float(relative), float(phase["var_zero_mean"]),
                              self.phase_saturated / count, self.amplitude_saturated / count)
        self.reset()
        return check
