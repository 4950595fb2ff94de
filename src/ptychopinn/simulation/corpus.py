"""The procedural pretraining corpus (docs/design/corpus.md): one overlapping group per sample,
drawn afresh from (seed, index), so the stream is endless, reproducible and stores nothing.

A sample is a small scan: a random object from one family, a random probe from another, a dose,
and a gridsize × gridsize raster of positions with a random step and jitter. Its patterns are
simulated with Poisson noise and normalised as a whole scan of that object would be
(docs/design/spec.md#scaling): the input scale a comes from the mean counts per pattern of a scan
over the whole object, not from the group's own patterns, so that local absorption shows in the
input as it will at inference; the photon scale is S = 1/a (the data are counts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import numpy as np

from ptychopinn.config import CorpusConfig
from ptychopinn.physics.forward import extract_patches, far_field, illuminate
from ptychopinn.physics.probe import normalize_probe
from ptychopinn.simulation import families


class Split(str, Enum):
    """Which families a stream draws from: training, or one of the two held-out validation sets."""

    train = "train"
    held_out_objects = "held_out_objects"  # object families and images never trained on, training probes
    held_out_probes = "held_out_probes"  # the held-out probe family, training objects


# Each split draws from its own seed stream, so validation samples never coincide with training ones
_SPLIT_STREAMS = {Split.train: 0, Split.held_out_objects: 1, Split.held_out_probes: 2}


@dataclass(frozen=True)
class CorpusSample:
    diffraction: np.ndarray  # (C, N, N) float32: normalised amplitudes X_n = a·sqrt(counts)
    offsets: np.ndarray  # (C, 2) float32: member − group centre, [x, y] px
    probe: np.ndarray  # (N, N) complex64: the probe, energy-normalised (Σ|P_n|² = (N/2)²)
    photon_scale: float  # S = 1/a: counts = (S·X_n)²
    truth: np.ndarray  # (N, N) complex64: the object at the group centre, in the network's units
    dose: float  # expected photons per pattern through unit transmission
    object_family: str
    probe_family: str


class Corpus:
    """Samples of one split, for a model of patch size N and C = gridsize² members per group."""

    def __init__(self, config: CorpusConfig, patch_size: int, gridsize: int, seed: int,
                 split: Split | str = Split.train):
        self.config, self.n, self.gridsize, self.seed = config, patch_size, gridsize, int(seed)
        self.split = Split(split)
        self.object_families, self.probe_families = self._families()
        self._images: dict[str, families.ImageBank] = {}

    def _families(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        objects = tuple(self.config.object_families or families.OBJECT_FAMILIES)
        probes = tuple(self.config.probe_families or families.PROBE_FAMILIES)
        if self.split is Split.held_out_objects:
            objects = families.HELD_OUT_OBJECT_FAMILIES
        elif self.split is Split.held_out_probes:
            probes = families.HELD_OUT_PROBE_FAMILIES
        return objects, probes

    @property
    def object_size(self) -> int:
        """Side of each sample's object: room for the group plus a margin the size of a patch."""
        return 2 * self.n

    @property
    def max_offset(self) -> float:
        """The largest |offset| a member can have (what the merge canvas must hold): half the
        raster, its own jitter and the jitter of the group centre (the members' mean)."""
        step = self.config.step_range[1] * self.n
        return (self.gridsize - 1) / 2 * step + 2 * self.config.jitter * step

    def sample(self, index: int) -> CorpusSample:
        rng = np.random.default_rng([self.seed, _SPLIT_STREAMS[self.split], int(index)])
        object_family = str(rng.choice(self.object_families))
        probe_family = str(rng.choice(self.probe_families))
        obj = families.random_object(object_family, self.object_size, rng, self._image_bank(object_family))
        probe = normalize_probe(families.random_probe(probe_family, self.n, rng), mode="energy")
        dose = math.exp(rng.uniform(*np.log(self.config.dose_range)))
        positions = self._positions(rng)
        patches = extract_patches(obj, positions, self.n)
        intensity = np.abs(far_field(illuminate(patches, probe))) ** 2 * (dose / (self.n / 2) ** 2)
        counts = rng.poisson(intensity)
        # a scan of the whole object would average the transmitted energy over all of it
        scan_counts = dose * float(np.mean(np.abs(obj.astype(np.complex128)) ** 2))
        scale = (self.n / 2) / math.sqrt(scan_counts)
        centre = positions.mean(axis=0)
        truth = extract_patches(obj, centre[None], self.n)[0] * (scale * math.sqrt(dose) / (self.n / 2))
        return CorpusSample(
            diffraction=(np.sqrt(counts) * scale).astype(np.float32),
            offsets=(positions - centre).astype(np.float32),
            probe=probe,
            photon_scale=1.0 / scale,
            truth=truth.astype(np.complex64),
            dose=dose,
            object_family=object_family,
            probe_family=probe_family,
        )

    def _positions(self, rng: np.random.Generator) -> np.ndarray:
        """A gridsize × gridsize raster around the object centre, [x, y] px, randomly stepped,
        jittered and shifted by a sub-pixel amount."""
        step = rng.uniform(*self.config.step_range) * self.n
        grid = (np.arange(self.gridsize) - (self.gridsize - 1) / 2) * step
        xs, ys = np.meshgrid(grid, grid)
        raster = np.stack([xs.ravel(), ys.ravel()], axis=1)
        jitter = rng.uniform(-1, 1, raster.shape) * self.config.jitter * step
        centre = self.object_size / 2 + rng.uniform(-0.5, 0.5, 2)
        return raster + jitter + centre

    def _image_bank(self, family: str) -> families.ImageBank | None:
        """The cached images a family may crop: the training images for every training family
        (any of them can take a natural image as its second texture), the held-out ones for
        natural_held_out, none for the other held-out families."""
        split = ("train" if family in families.OBJECT_FAMILIES
                 else "held_out" if family == "natural_held_out" else None)
        if split is None:
            return None
        if split not in self._images:
            self._images[split] = families.ImageBank(split)
        return self._images[split]
