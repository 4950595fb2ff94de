"""Procedural object and probe families for the pretraining corpus (docs/design/corpus.md)."""

from __future__ import annotations

import numpy as np
import pytest

from ptychopinn.simulation import families
from ptychopinn.simulation.families import (
    HELD_OUT_IMAGES,
    HELD_OUT_OBJECT_FAMILIES,
    HELD_OUT_PROBE_FAMILIES,
    OBJECT_FAMILIES,
    PROBE_FAMILIES,
    TRAINING_IMAGES,
    ImageBank,
    random_object,
    random_probe,
)

ALL_OBJECT_FAMILIES = OBJECT_FAMILIES + HELD_OUT_OBJECT_FAMILIES
ALL_PROBE_FAMILIES = PROBE_FAMILIES + HELD_OUT_PROBE_FAMILIES
N = 64


@pytest.fixture(scope="module")
def banks() -> dict[str, ImageBank]:
    return {"train": ImageBank("train"), "held_out": ImageBank("held_out")}


def bank_for(family: str, banks: dict[str, ImageBank]) -> ImageBank | None:
    if family == "natural_held_out":
        return banks["held_out"]
    return banks["train"] if family in OBJECT_FAMILIES else None


def intensity_centroid(probe: np.ndarray) -> np.ndarray:
    intensity = np.abs(probe.astype(np.complex128)) ** 2
    rows, cols = np.indices(intensity.shape)
    return np.array([(rows * intensity).sum(), (cols * intensity).sum()]) / intensity.sum()


def energy_inside_central_square(probe: np.ndarray, margin: int = 4) -> float:
    intensity = np.abs(probe.astype(np.complex128)) ** 2
    return float(intensity[margin:-margin, margin:-margin].sum() / intensity.sum())


def illuminated_fraction(probe: np.ndarray) -> float:
    """The participation ratio (Σ|P|²)² / Σ|P|⁴ as a fraction of the window."""
    intensity = np.abs(probe.astype(np.complex128)) ** 2
    return float(intensity.sum() ** 2 / (intensity**2).sum() / intensity.size)


# ---------------------------------------------------------------------------------- objects


@pytest.mark.parametrize("family", ALL_OBJECT_FAMILIES)
def test_objects_are_valid_varied_transmissions(family, banks):
    rng = np.random.default_rng(0)
    objects = [random_object(family, N, rng, bank_for(family, banks)) for _ in range(6)]
    for obj in objects:
        assert obj.shape == (N, N) and obj.dtype == np.complex64
        assert np.all(np.isfinite(obj))
        amplitude, phase = np.abs(obj), np.angle(obj)
        assert amplitude.min() > 0 and amplitude.max() <= 1.0
        assert np.abs(phase).max() <= np.pi + 1e-6
        # every draw has structure, in its amplitude or its phase
        assert max(amplitude.std(), phase.std()) > 1e-3
    assert max(np.angle(obj).std() for obj in objects) > 0.1
    assert max(np.abs(obj).std() for obj in objects) > 0.02


@pytest.mark.parametrize("family", ALL_OBJECT_FAMILIES)
def test_objects_are_seeded(family, banks):
    bank = bank_for(family, banks)
    first = random_object(family, 32, np.random.default_rng(7), bank)
    np.testing.assert_array_equal(first, random_object(family, 32, np.random.default_rng(7), bank))
    assert not np.array_equal(first, random_object(family, 32, np.random.default_rng(8), bank))


def test_the_image_bank_is_only_a_cache(banks):
    """A draw is a function of the seed alone: passing a (warm) bank or none gives one array."""
    for family in ("natural", "natural_held_out", "grf"):
        with_bank = random_object(family, 32, np.random.default_rng(3), bank_for(family, banks))
        np.testing.assert_array_equal(
            with_bank, random_object(family, 32, np.random.default_rng(3))
        )


def test_amplitude_phase_mapping_spans_the_documented_ranges():
    """Over many draws: weak to strong absorbers, 0.1 rad to ~π phase, and amplitude that
    follows the phase (either sign) as well as amplitude independent of it."""
    rng = np.random.default_rng(11)
    min_amplitude, phase_span, correlation = [], [], []
    for _ in range(60):
        obj = random_object("grf", 32, rng)
        amplitude, phase = np.abs(obj).ravel(), np.angle(obj).ravel()
        min_amplitude.append(amplitude.min())
        phase_span.append(np.abs(phase).max())
        correlation.append(np.corrcoef(amplitude, phase)[0, 1])
    assert min(min_amplitude) < 0.2 and max(min_amplitude) > 0.85
    assert min(phase_span) < 0.3 and max(phase_span) > 2.5
    correlation = np.array(correlation)
    assert correlation.min() < -0.95 and correlation.max() > 0.95
    assert np.any(np.abs(correlation) < 0.3)


def test_training_draws_never_load_a_held_out_image(monkeypatch):
    loaded: list[str] = []

    def fake_image(name: str) -> np.ndarray:
        loaded.append(name)
        return np.random.default_rng(len(name)).uniform(0, 1, (160, 200))

    monkeypatch.setattr(families, "_load_bundled_image", fake_image)
    rng = np.random.default_rng(5)
    for _ in range(8):
        for family in OBJECT_FAMILIES:
            random_object(family, 32, rng)
    assert loaded and set(loaded) <= set(TRAINING_IMAGES)
    loaded.clear()
    for _ in range(8):
        random_object("natural_held_out", 32, rng)
    assert loaded and set(loaded) <= set(HELD_OUT_IMAGES)


def test_an_image_bank_of_the_wrong_split_is_refused():
    with pytest.raises(ValueError, match="'train' split"):
        random_object("natural", 32, np.random.default_rng(0), ImageBank("held_out"))
    with pytest.raises(ValueError, match="'held_out' split"):
        random_object("natural_held_out", 32, np.random.default_rng(0), ImageBank("train"))
    with pytest.raises(ValueError, match="'train' split"):  # a partner texture may be natural
        random_object("grf", 32, np.random.default_rng(0), ImageBank("held_out"))


def test_image_splits_are_disjoint_and_every_image_loads_offline(banks):
    assert not set(TRAINING_IMAGES) & set(HELD_OUT_IMAGES)
    assert {"camera", "moon"} <= set(HELD_OUT_IMAGES)  # the project's `image` test object
    for split, bank in banks.items():
        for name in bank.names:
            image = bank.image(name)
            assert image.ndim == 2 and min(image.shape) >= 100, (split, name)
            assert image.min() >= 0 and image.max() <= 1 and image.std() > 0.05, (split, name)


def test_image_crops_are_unit_range_and_seeded(banks):
    bank = banks["held_out"]
    crop = bank.crop(128, np.random.default_rng(2))  # larger than microaneurysms' 102 px
    assert crop.shape == (128, 128) and crop.dtype == np.float64
    assert crop.min() == 0 and crop.max() == 1 and crop.std() > 0.05
    np.testing.assert_array_equal(crop, bank.crop(128, np.random.default_rng(2)))
    assert not np.array_equal(crop, bank.crop(128, np.random.default_rng(3)))
    with pytest.raises(ValueError, match="held_out"):
        ImageBank("validation")


def test_unknown_families_and_bad_sizes_are_clear_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="unknown object family 'dots'.*dead_leaves"):
        random_object("dots", 32, rng)
    with pytest.raises(ValueError, match="unknown probe family 'disk'.*zone_plate"):
        random_probe("disk", 32, rng)
    with pytest.raises(ValueError, match="integer"):
        random_object("grf", 8, rng)
    with pytest.raises(ValueError, match="integer ≥ 32"):
        random_probe("pupil", 31.5, rng)
    with pytest.raises(ValueError, match="integer ≥ 32"):
        random_probe("pupil", 16, rng)


# ---------------------------------------------------------------------------------- probes


@pytest.mark.parametrize("family", ALL_PROBE_FAMILIES)
def test_probes_are_normalised_centred_and_inside_the_window(family):
    rng = np.random.default_rng(0)
    for _ in range(12):
        probe = random_probe(family, N, rng)
        assert probe.shape == (N, N) and probe.dtype == np.complex64
        assert np.all(np.isfinite(probe))
        assert abs(np.abs(probe).max() - 1) < 1e-6
        assert np.abs(intensity_centroid(probe) - N / 2).max() < 2
        assert energy_inside_central_square(probe) >= 0.99


@pytest.mark.parametrize("family", ALL_PROBE_FAMILIES)
def test_probes_are_seeded_and_span_beam_sizes(family):
    first = random_probe(family, N, np.random.default_rng(4))
    np.testing.assert_array_equal(first, random_probe(family, N, np.random.default_rng(4)))
    assert not np.array_equal(first, random_probe(family, N, np.random.default_rng(5)))
    rng = np.random.default_rng(1)
    fractions = [illuminated_fraction(random_probe(family, N, rng)) for _ in range(30)]
    assert max(fractions) / min(fractions) >= 4


@pytest.mark.parametrize("n", [32, 128])
def test_probes_fit_other_window_sizes(n):
    rng = np.random.default_rng(2)
    for family in ALL_PROBE_FAMILIES:
        for _ in range(4):
            probe = random_probe(family, n, rng)
            assert probe.shape == (n, n) and energy_inside_central_square(probe) >= 0.99
            assert np.abs(intensity_centroid(probe) - n / 2).max() < 2


def pupil_amplitude(probe: np.ndarray) -> np.ndarray:
    return np.abs(np.fft.fftshift(np.fft.fft2(probe.astype(np.complex128))))


def test_zone_plate_pupils_have_a_central_stop_and_plain_pupils_do_not():
    rng = np.random.default_rng(3)
    for _ in range(10):
        stopped = pupil_amplitude(random_probe("zone_plate", N, rng))
        assert stopped[N // 2, N // 2] < 0.1 * stopped.max()
        open_pupil = pupil_amplitude(random_probe("pupil", N, rng))
        assert open_pupil[N // 2, N // 2] > 0.5 * open_pupil.max()


def test_kb_mirror_probes_are_separable_unlike_the_training_probes():
    """Crossed mirrors act on x and y independently: the field is an outer product (rank 1);
    the training probes come from round pupils and apertures, far from rank 1."""

    def second_singular_ratio(probe: np.ndarray) -> float:
        singular = np.linalg.svd(probe.astype(np.complex128), compute_uv=False)
        return float(singular[1] / singular[0])

    rng = np.random.default_rng(6)
    for _ in range(10):
        assert second_singular_ratio(random_probe("kb_mirror", N, rng)) < 1e-4
        for family in PROBE_FAMILIES:
            assert second_singular_ratio(random_probe(family, N, rng)) > 0.1
