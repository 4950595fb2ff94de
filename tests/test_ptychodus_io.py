"""ptychodus files in and out, checked against ptychodus's own readers, writers and forward model
(docs/design/spec.md#data-contract)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import h5py
import numpy as np
import pytest

from ptychopinn import simulate
from ptychopinn.data import ScanFormatError, ScanMetadata, load_scan, save_scan, write_product
from ptychopinn.data.lazy import LazyPatterns
from ptychopinn.data.ptychodus import write_workflow
from ptychopinn.physics.forward import extract_patches, far_field

ptychodus_io = pytest.importorskip("ptychodus.api.io", reason="ptychodus==1.7.0 is a test dependency (make install)")
from ptychodus.api.assemble import AssembledDiffractionData  # noqa: E402
from ptychodus.api.geometry import PixelGeometry  # noqa: E402
from ptychodus.api.object import Object, ObjectCenter  # noqa: E402
from ptychodus.api.probe import ProbeSequence  # noqa: E402
from ptychodus.api.probe_positions import ProbePosition, ProbePositionSequence  # noqa: E402
from ptychodus.api.product import LossValue, Product, ProductMetadata  # noqa: E402
from ptychodus.api.reconstruct import ReconstructInput  # noqa: E402
from ptychodus.api.simulate.diffraction import generate_diffraction_data  # noqa: E402

N = 32
# a power of two, so that metres ↔ pixels conversions are exact in binary floating point
PIXEL_M = 2.0**-27
ENERGY_EV = 10_000.0
DISTANCE_M = 8.0  # pixel Fresnel number dx²/(λz) ≈ 6e-8: ptychodus's Fresnel transform is Fraunhofer here
CENTRE_M = (3.0e-6, -1.0e-6)


def _two_mode_probe(probe: np.ndarray) -> np.ndarray:
    ramp = np.exp(2j * np.pi * np.arange(N) / N)[np.newaxis, :]
    return np.stack([probe, 0.4 * probe * ramp]).astype(np.complex64)


@pytest.fixture(scope="module")
def scan():
    """A small simulated scan with two probe modes, a bad-pixel mask and a full geometry."""
    base = simulate("lines", size=64, n=N, step=6.0, jitter=0.5, photons=1e5, seed=3)
    bad = np.zeros((N, N), dtype=bool)
    bad[3, 5] = bad[20, 7] = True
    diffraction = base.diffraction.copy()
    diffraction[:, bad] = 0.0
    return dataclasses.replace(
        base, diffraction=diffraction, probe_modes=_two_mode_probe(base.probe), bad_pixels=bad,
        metadata=ScanMetadata(photon_energy_eV=ENERGY_EV, detector_distance_m=DISTANCE_M,
                              detector_pixel_size_m=(75e-6, 75e-6), object_pixel_size_m=(PIXEL_M, PIXEL_M),
                              position_offset_m=(CENTRE_M[0] - 32 * PIXEL_M, CENTRE_M[1] - 32 * PIXEL_M)),
    )


def _ptychodus_product(scan, indexes: np.ndarray) -> Product:
    """The scan as ptychodus would hold it: its object centred at CENTRE_M, its positions in metres
    with probe pixel (N − 1)/2 at the position (ptychodus's pixel x = ours − 0.5)."""
    height, width = scan.object.shape
    x_m = CENTRE_M[0] + (scan.xcoords - 0.5 - (width - 1) / 2) * PIXEL_M
    y_m = CENTRE_M[1] + (scan.ycoords - 0.5 - (height - 1) / 2) * PIXEL_M
    pixel = PixelGeometry(PIXEL_M, PIXEL_M)
    return Product(
        metadata=ProductMetadata(name="fixture", comments="", detector_distance_m=DISTANCE_M,
                                 photon_energy_eV=ENERGY_EV, probe_photon_count=0.0, exposure_time_s=0.0,
                                 mass_attenuation_m2_per_kg=0.0, tomography_angle_deg=0.0),
        probe_positions=ProbePositionSequence(
            [ProbePosition(int(i), float(x), float(y)) for i, x, y in zip(indexes, x_m, y_m, strict=True)]),
        probes=ProbeSequence(array=scan.probe_modes.astype(np.complex128), opr_weights=None, pixel_geometry=pixel),
        object_=Object(array=scan.object.astype(np.complex128), pixel_geometry=pixel,
                       center=ObjectCenter(*CENTRE_M)),
        losses=[LossValue(0, 2.0), LossValue(1, 1.5)],
    )


@pytest.fixture(scope="module")
def workflow_dir(scan, tmp_path_factory) -> Path:
    """diffraction.h5 + product.h5 written by ptychodus; the patterns are stored in reverse
    order with one extra pattern, so reading must pair them with positions by scan index."""
    directory = tmp_path_factory.mktemp("workflow")
    indexes = 100 + np.arange(scan.n_patterns)
    ptychodus_io.save_product(directory / "product.h5", _ptychodus_product(scan, indexes))
    counts = np.round(scan.diffraction.astype(np.float64) ** 2).astype(np.uint32)
    extra = np.full((1, N, N), 7, dtype=np.uint32)
    counts[:, scan.bad_pixels] = 4_000_000_000  # a detector's saturation marker on the bad pixels
    data = AssembledDiffractionData(
        np.concatenate([indexes[::-1], [999]]), np.concatenate([counts[::-1], extra]),
        PixelGeometry(75e-6, 75e-6), scan.bad_pixels)
    ptychodus_io.save_diffraction_data(directory / "diffraction.h5", data)
    return directory


def _assert_same_scan(loaded, scan) -> None:
    np.testing.assert_array_equal(loaded.diffraction, scan.diffraction)
    np.testing.assert_allclose(loaded.xcoords, scan.xcoords, rtol=0, atol=1e-9)
    np.testing.assert_allclose(loaded.ycoords, scan.ycoords, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(loaded.probe_modes, scan.probe_modes)
    np.testing.assert_array_equal(loaded.bad_pixels, scan.bad_pixels)


# --------------------------------------------------------------------------------------------
# reading what ptychodus writes
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ["directory", "diffraction.h5", "product.h5"])
def test_reads_ptychodus_files_paired_by_scan_index(scan, workflow_dir, entry, caplog):
    path = workflow_dir if entry == "directory" else workflow_dir / entry
    loaded = load_scan(path)
    _assert_same_scan(loaded, scan)
    assert loaded.object is None  # a product's object is never a reference
    assert "1 pattern(s) without a position" in caplog.text
    metadata = loaded.metadata
    assert metadata.photon_energy_eV == ENERGY_EV and metadata.detector_distance_m == DISTANCE_M
    assert metadata.detector_pixel_size_m == (75e-6, 75e-6)
    assert metadata.object_pixel_size_m == (PIXEL_M, PIXEL_M)
    # x_m = offset + x·dx reproduces ptychodus's positions
    product = ptychodus_io.load_product(workflow_dir / "product.h5")
    x_m = metadata.position_offset_m[0] + loaded.xcoords * PIXEL_M
    np.testing.assert_allclose(x_m, product.probe_positions.get_coordinates_x_m(), rtol=0, atol=1e-18)


@pytest.mark.parametrize("entry", ["directory", "product.h5"])
def test_lazy_read_of_ptychodus_files_equals_the_eager_one(scan, workflow_dir, entry):
    """Patterns stored in reverse order with an unpaired extra and saturation markers on the bad
    pixels: read by rows on demand, they are what the eager read holds, pattern for pattern."""
    path = workflow_dir if entry == "directory" else workflow_dir / entry
    lazy = load_scan(path, lazy=True)
    assert isinstance(lazy.diffraction, LazyPatterns)
    _assert_same_scan(lazy, scan)  # np.asarray reads the whole scan
    rows = np.array([5, 0, 5, scan.n_patterns - 1])
    np.testing.assert_array_equal(lazy.diffraction[rows], scan.diffraction[rows])
    np.testing.assert_array_equal(lazy.diffraction[2:9], scan.diffraction[2:9])
    # the validation pass left each pattern's energy, as the scale contract reads it
    np.testing.assert_allclose(lazy.diffraction.pattern_energies(),
                               np.sum(scan.diffraction.astype(np.float64) ** 2, axis=(1, 2)), rtol=1e-12)


def test_lazy_read_refuses_negative_counts_outside_the_mask(scan, workflow_dir, tmp_path):
    (tmp_path / "product.h5").write_bytes((workflow_dir / "product.h5").read_bytes())
    with h5py.File(workflow_dir / "diffraction.h5", "r") as src, h5py.File(tmp_path / "diffraction.h5", "w") as dst:
        counts = src["patterns"][()].astype(np.float32)
        counts[:, scan.bad_pixels] = -1.0  # ignored: masked
        dst.create_dataset("patterns", data=counts)
        for key in ("indexes", "bad_pixels"):
            dst.create_dataset(key, data=src[key][()])
    load_scan(tmp_path, lazy=True)
    with h5py.File(tmp_path / "diffraction.h5", "a") as dst:
        dst["patterns"][3, 10, 10] = -2.0
    with pytest.raises(ScanFormatError, match="intensities must be >= 0, found minimum -2"):
        load_scan(tmp_path, lazy=True)


def test_reads_ptychodus_ptychopinn_export(scan, tmp_path):
    counts = np.round(scan.diffraction.astype(np.float64) ** 2)
    product = _ptychodus_product(scan, np.arange(scan.n_patterns))
    path = tmp_path / "export.npz"
    ptychodus_io.save_ptychopinn_training_data(
        path, ReconstructInput(diffraction_patterns=counts, bad_pixels=scan.bad_pixels, product=product),
        inpaint_bad_pixels=False)
    loaded = load_scan(path)
    _assert_same_scan(loaded, scan)
    np.testing.assert_allclose(loaded.xcoords_start, scan.xcoords, rtol=0, atol=1e-9)
    assert loaded.object is None


def test_own_npz_with_bad_pixels_and_diff3d_is_not_an_export(scan, tmp_path):
    """The format marker keeps this project's files from being read as ptychodus exports
    (which would square-root the amplitudes and shift the positions)."""
    path = save_scan(scan, tmp_path / "own.npz")
    loaded = load_scan(path)
    _assert_same_scan(loaded, scan)
    assert loaded.metadata == scan.metadata


# --------------------------------------------------------------------------------------------
# writing what ptychodus reads
# --------------------------------------------------------------------------------------------


def test_written_product_reads_back_in_ptychodus(scan, tmp_path):
    origin = (4.0, -2.0)
    canvas = scan.object[2:, 4:]  # canvas pixel (i, j) is object pixel (i − 2, j + 4)... with origin_xy
    path = write_product(tmp_path / "product.h5", scan, canvas, origin_xy=origin,
                         losses=[(0, 3.0), (5, 1.0)], fit_probe_scale=False)
    product = ptychodus_io.load_product(path)
    np.testing.assert_array_equal(product.object_.get_layer(0), canvas)
    np.testing.assert_array_equal(product.probes.get_probe_no_opr().get_array(), scan.probe_modes)
    geometry = product.object_.get_geometry()
    x_px = geometry.map_probe_positions_to_object_x_px(product.probe_positions)
    y_px = geometry.map_probe_positions_to_object_y_px(product.probe_positions)
    np.testing.assert_allclose(x_px, scan.xcoords - origin[0] - 0.5, rtol=0, atol=1e-9)
    np.testing.assert_allclose(y_px, scan.ycoords - origin[1] - 0.5, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(product.probe_positions.get_indexes(), np.arange(scan.n_patterns))
    assert product.metadata.photon_energy_eV == ENERGY_EV
    assert product.metadata.detector_distance_m == DISTANCE_M
    assert [(loss.epoch, loss.value) for loss in product.losses] == [(0, 3.0), (5, 1.0)]
    # and the metres agree with the scan's own frame: x_m = offset + x·dx
    np.testing.assert_allclose(product.probe_positions.get_coordinates_x_m(),
                               scan.metadata.position_offset_m[0] + scan.xcoords * PIXEL_M, rtol=0, atol=1e-18)


def _noise_free_intensities(obj, probes, positions_xy) -> np.ndarray:
    patches = extract_patches(obj, positions_xy, N)
    return sum(np.abs(far_field(patches * mode)) ** 2 for mode in probes)


@pytest.fixture(scope="module")
def noise_free(scan):
    """Integer positions (no interpolation in either model) and exact intensities."""
    grid = np.arange(18, 47, 7, dtype=np.float64)
    positions = np.stack(np.meshgrid(grid, grid), axis=-1).reshape(-1, 2)
    intensities = 1e4 * _noise_free_intensities(scan.object, scan.probe_modes, positions)
    noise_free = dataclasses.replace(
        scan, diffraction=np.sqrt(intensities).astype(np.float32), xcoords=positions[:, 0],
        ycoords=positions[:, 1], xcoords_start=None, ycoords_start=None, scan_index=None, bad_pixels=None)
    return noise_free, intensities


def _ptychodus_prediction(path: Path) -> np.ndarray:
    return generate_diffraction_data(ptychodus_io.load_product(path))._patterns


def _relative_error(predicted: np.ndarray, expected: np.ndarray) -> float:
    return float(np.linalg.norm(predicted - expected) / np.linalg.norm(expected))


def test_half_pixel_convention_against_ptychodus_forward_model(noise_free, tmp_path):
    """THE half-pixel test: ptychodus's forward model of the written true object and probe
    reproduces our noise-free intensities; the tempting mapping (our x taken as ptychodus's
    pixel, no +0.5) is off by percent."""
    scan, intensities = noise_free
    right = write_product(tmp_path / "right.h5", scan)
    tempting_scan = dataclasses.replace(scan, xcoords=scan.xcoords + 0.5, ycoords=scan.ycoords + 0.5)
    tempting = write_product(tmp_path / "tempting.h5", tempting_scan)
    right_error = _relative_error(_ptychodus_prediction(right), intensities)
    tempting_error = _relative_error(_ptychodus_prediction(tempting), intensities)
    assert right_error < 1e-4
    assert tempting_error > 3e-3


def test_probe_scale_makes_ptychodus_reproduce_measured_counts(noise_free, tmp_path):
    """ptychodus's model is not unitary (gain (dx dy/(λz))² N²); the written probe carries the
    photon scale so that its prediction matches a noisy measurement within Poisson noise.

    Integer positions: at sub-pixel positions the two models differ by more than the noise
    (ptychodus Fourier-shifts the probe, this project interpolates the object bilinearly).
    """
    scan, intensities = noise_free
    counts = np.random.default_rng(0).poisson(intensities).astype(np.float64)
    noisy = dataclasses.replace(scan, diffraction=np.sqrt(counts).astype(np.float32))
    predicted = _ptychodus_prediction(write_product(tmp_path / "product.h5", noisy))
    assert abs(predicted.sum() / counts.sum() - 1) < 1e-6  # the one fitted scalar
    bright = predicted > 10
    chi2 = np.mean((counts[bright] - predicted[bright]) ** 2 / predicted[bright])  # E = 1 for Poisson
    assert 0.9 < chi2 < 1.1


def test_probe_scale_is_fitted_on_the_valid_pixels(noise_free, tmp_path):
    """Bad pixels over the bright centre of the patterns hold 0 counts: the probe is scaled so
    that ptychodus predicts the counts of the valid pixels, not the total with the centre missing."""
    scan, intensities = noise_free
    bad = np.zeros((N, N), dtype=bool)
    bad[N // 2 - 1 : N // 2 + 2, N // 2 - 1 : N // 2 + 2] = True
    counts = np.where(bad, 0.0, intensities)
    masked = dataclasses.replace(scan, diffraction=np.sqrt(counts).astype(np.float32), bad_pixels=bad)
    predicted = _ptychodus_prediction(write_product(tmp_path / "product.h5", masked))
    assert abs(predicted[:, ~bad].sum() / counts[:, ~bad].sum() - 1) < 1e-4
    assert _relative_error(predicted, intensities) < 1e-4  # the bad pixels' counts predicted too
    assert predicted[:, bad].sum() > 0.05 * predicted.sum()  # the mask did hide a real share


# --------------------------------------------------------------------------------------------
# round trip and errors
# --------------------------------------------------------------------------------------------


def test_workflow_round_trip(scan, tmp_path):
    directory = write_workflow(tmp_path / "dir", scan)
    product = ptychodus_io.load_product(directory / "product.h5")  # ptychodus reads both files
    ptychodus_io.load_diffraction_data(directory / "diffraction.h5")
    loaded = load_scan(directory)
    _assert_same_scan_but_probe_scale(loaded, scan)
    assert loaded.metadata == scan.metadata
    assert product.metadata.photon_energy_eV == ENERGY_EV


def _assert_same_scan_but_probe_scale(loaded, scan) -> None:
    np.testing.assert_array_equal(loaded.diffraction, scan.diffraction)
    np.testing.assert_allclose(loaded.xcoords, scan.xcoords, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(loaded.bad_pixels, scan.bad_pixels)
    scale = np.vdot(scan.probe_modes, loaded.probe_modes).real / np.vdot(scan.probe_modes, scan.probe_modes).real
    np.testing.assert_allclose(loaded.probe_modes, scale * scan.probe_modes, rtol=0, atol=1e-5 * np.abs(loaded.probe_modes).max())


def _copy_without(source: Path, target: Path, drop: str, replace: dict | None = None) -> Path:
    with h5py.File(source, "r") as src, h5py.File(target, "w") as dst:
        for key, value in src.attrs.items():
            dst.attrs[key] = value
        for key in src:
            if key == drop:
                continue
            data = (replace or {}).get(key, src[key][()])
            data = data(src[key][()]) if callable(data) else data
            dataset = dst.create_dataset(key, data=data)
            for name, value in src[key].attrs.items():
                dataset.attrs[name] = value
    return target


@pytest.mark.parametrize(
    ("file", "drop", "replace", "key", "message"),
    [
        ("product.h5", "probe_position_x_m", None, "probe_position_x_m", "missing"),
        ("product.h5", None, {"probe_position_indexes": np.arange(5)}, "probe_position_indexes", "lengths differ"),
        ("product.h5", None, {"probe_position_indexes": lambda old: old + 5000}, "probe_position_indexes",
         "no position's scan index matches"),
        ("product.h5", None, {"probe": np.ones((2, 16, 16), dtype=np.complex64)}, "probe", "probe of (16, 16) pixels"),
        ("diffraction.h5", "patterns", None, "patterns", "missing"),
        ("diffraction.h5", None, {"indexes": np.arange(3)}, "indexes", "one per pattern"),
        ("diffraction.h5", None, {"bad_pixels": np.zeros((4, 4), dtype=bool)}, "bad_pixels", "mask"),
        ("diffraction.h5", None, {"patterns": np.ones((50, 32), dtype=np.uint32)}, "patterns", "(M, N, N)"),
    ],
)
def test_malformed_ptychodus_files(workflow_dir, tmp_path, file, drop, replace, key, message):
    for name in ("diffraction.h5", "product.h5"):
        source = workflow_dir / name
        if name == file:
            _copy_without(source, tmp_path / name, drop, replace)
        else:
            (tmp_path / name).write_bytes(source.read_bytes())
    with pytest.raises(ScanFormatError) as caught:
        load_scan(tmp_path)
    assert caught.value.key == key
    assert message in str(caught.value)
    assert file in str(caught.value)


def test_missing_partner_files(workflow_dir, tmp_path):
    (tmp_path / "diffraction.h5").write_bytes((workflow_dir / "diffraction.h5").read_bytes())
    with pytest.raises(ScanFormatError, match="no product.h5 beside it"):
        load_scan(tmp_path / "diffraction.h5")
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "product.h5").write_bytes((workflow_dir / "product.h5").read_bytes())
    with pytest.raises(ScanFormatError, match="holds no patterns"):
        load_scan(alone / "product.h5")
    with pytest.raises(ScanFormatError, match="not a ptychodus workflow directory"):
        load_scan(alone)


def test_malformed_export(scan, tmp_path):
    path = tmp_path / "export.npz"
    np.savez(path, diff3d=scan.diffraction ** 2, xcoords=scan.xcoords, ycoords=scan.ycoords,
             bad_pixels=np.zeros((4, 4), dtype=bool), probeGuess=scan.probe_modes)
    with pytest.raises(ScanFormatError, match="bad_pixels.*expected a \\(32, 32\\) mask"):
        load_scan(path)


def test_refine_writes_a_product_ptychodus_reads(tiny_scan, tmp_path):
    """``refine`` writes product.h5 beside reconstruction.npz: the same object, the loss per
    pass, the scan's positions; without physical metadata the geometry is nominal and says so."""
    from ptychopinn.cli.main import main
    from ptychopinn.reconstruction.result import Reconstruction

    save_scan(tiny_scan, tmp_path / "scan.npz")
    out = tmp_path / "refined"
    assert main(["refine", "--data", str(tmp_path / "scan.npz"), "--passes", "2", "--output-dir", str(out), "-q"]) == 0
    product = ptychodus_io.load_product(out / "product.h5")
    reconstruction = Reconstruction.load(out / "reconstruction.npz")
    np.testing.assert_array_equal(product.object_.get_layer(0), reconstruction.object)
    assert len(product.losses) == 2
    assert "nominal" in product.metadata.comments
    geometry = product.object_.get_geometry()
    x_px = geometry.map_probe_positions_to_object_x_px(product.probe_positions)
    np.testing.assert_allclose(x_px + 0.5 + reconstruction.origin_xy[0], tiny_scan.xcoords, rtol=0, atol=1e-6)


def test_malformed_metadata_in_own_npz(scan, tmp_path):
    path = save_scan(scan, tmp_path / "own.npz")
    with np.load(path, allow_pickle=False) as archive:
        arrays = dict(archive)
    arrays["object_pixel_size_m"] = np.ones(3)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ScanFormatError, match="expected 2 finite number") as caught:
        load_scan(tmp_path / "bad.npz")
    assert caught.value.key == "object_pixel_size_m"


def test_product_under_another_name_finds_its_diffraction_file(scan, workflow_dir, tmp_path):
    (tmp_path / "diffraction.h5").write_bytes((workflow_dir / "diffraction.h5").read_bytes())
    (tmp_path / "scan42_recon.h5").write_bytes((workflow_dir / "product.h5").read_bytes())
    _assert_same_scan(load_scan(tmp_path / "scan42_recon.h5"), scan)


def test_hdf5_of_unknown_layout(tmp_path):
    with h5py.File(tmp_path / "other.h5", "w") as handle:
        handle.create_dataset("data", data=np.zeros((3, 8, 8)))
    with pytest.raises(ScanFormatError, match="neither a ptychodus"):
        load_scan(tmp_path / "other.h5")


def test_reads_patterns_compressed_with_a_detector_filter(scan, workflow_dir, tmp_path):
    """Beamline detectors write bitshuffle/LZ4 chunks that plain HDF5 cannot decode."""
    import hdf5plugin

    (tmp_path / "product.h5").write_bytes((workflow_dir / "product.h5").read_bytes())
    with h5py.File(workflow_dir / "diffraction.h5", "r") as src, h5py.File(tmp_path / "diffraction.h5", "w") as dst:
        patterns = dst.create_dataset("patterns", data=src["patterns"][()], chunks=(1, N, N),
                                      **hdf5plugin.Bitshuffle(cname="lz4"))
        for name, value in src["patterns"].attrs.items():
            patterns.attrs[name] = value
        for key in ("indexes", "bad_pixels"):
            dst.create_dataset(key, data=src[key][()])
    with h5py.File(tmp_path / "diffraction.h5", "r") as check:
        assert check["patterns"]._filters  # really compressed with a plugin filter
    _assert_same_scan(load_scan(tmp_path), scan)
    _assert_same_scan(load_scan(tmp_path, lazy=True), scan)


def test_round_trip_without_reference_object_keeps_positions(scan, tmp_path):
    """Without objectGuess a unit-transmission guess starting at object pixel 0 is written, so
    the positions read back unchanged (and metres stay x_m = offset + x·dx)."""
    no_object = dataclasses.replace(scan, object=None)
    directory = write_workflow(tmp_path / "dir", no_object)
    product = ptychodus_io.load_product(directory / "product.h5")
    assert np.all(product.object_.get_layer(0) == 1)
    back = load_scan(directory)
    np.testing.assert_allclose(back.xcoords, scan.xcoords, rtol=0, atol=1e-9)
    np.testing.assert_allclose(back.ycoords, scan.ycoords, rtol=0, atol=1e-9)
    assert back.metadata.position_offset_m == pytest.approx(scan.metadata.position_offset_m, abs=1e-18)
