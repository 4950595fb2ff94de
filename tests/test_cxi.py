"""CXI (NeXus NXcxi_ptycho) files, checked against ptychodus's CXI reader
(docs/design/spec.md#data-contract)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import h5py
import numpy as np
import pytest

from ptychopinn import simulate
from ptychopinn.cli.main import main
from ptychopinn.data import ScanFormatError, ScanMetadata, load_scan, save_scan
from ptychopinn.data.cxi import read_cxi, write_cxi
from ptychopinn.data.geometry import ELECTRON_VOLT_J, wavelength_m
from ptychopinn.data.lazy import LazyPatterns

cxi_plugin = pytest.importorskip("ptychodus.plugins.cxi_file", reason="ptychodus==1.7.0 is a test dependency")

N = 32
ENERGY_EV = 8_000.0
DISTANCE_M = 5.0
DETECTOR_PIXEL_M = 75e-6
OBJECT_PIXEL_M = wavelength_m(ENERGY_EV) * DISTANCE_M / (N * DETECTOR_PIXEL_M)


@pytest.fixture(scope="module")
def scan():
    base = simulate("lines", size=64, n=N, step=6.0, jitter=0.5, photons=1e5, seed=5)
    bad = np.zeros((N, N), dtype=bool)
    bad[0, :3] = True
    diffraction = base.diffraction.copy()
    diffraction[:, bad] = 0.0
    modes = np.stack([base.probe, 0.3 * base.probe.T]).astype(np.complex64)
    return dataclasses.replace(base, diffraction=diffraction, bad_pixels=bad, probe_modes=modes)


def _write_nxcxi(path: Path, scan, *, with_probe: bool = True, with_object: bool = True,
                 drop: str | None = None) -> Path:
    """An NXcxi_ptycho file laid out as ptychodus's CXI reader expects, written with h5py."""
    x_m = 1e-6 + scan.xcoords * OBJECT_PIXEL_M
    y_m = -2e-6 + scan.ycoords * OBJECT_PIXEL_M
    datasets = {
        "/entry_1/instrument_1/source_1/energy": ENERGY_EV * ELECTRON_VOLT_J,
        "/entry_1/instrument_1/detector_1/distance": DISTANCE_M,
        "/entry_1/instrument_1/detector_1/x_pixel_size": DETECTOR_PIXEL_M,
        "/entry_1/instrument_1/detector_1/y_pixel_size": DETECTOR_PIXEL_M,
        "/entry_1/instrument_1/detector_1/data": np.round(scan.diffraction.astype(np.float64) ** 2).astype(np.uint16),
        "/entry_1/instrument_1/detector_1/mask": np.where(scan.bad_pixels, 1, 0).astype(np.uint32),
        "/entry_1/sample_1/geometry_1/translation": np.stack([x_m, y_m, np.zeros_like(x_m)], axis=1),
    }
    if with_probe:
        datasets["/entry_1/image_1/data"] = scan.probe_modes[np.newaxis]
    if with_object:
        height, width = scan.object.shape
        datasets["/entry_1/image_2/data"] = scan.object[np.newaxis]
        datasets["/entry_1/ptychodus/object_pixel_width_m"] = OBJECT_PIXEL_M
        datasets["/entry_1/ptychodus/object_pixel_height_m"] = OBJECT_PIXEL_M
        # x_m = offset + x·dx with offset = c_x − (W/2)·dx (ptychodus's pixel (W − 1)/2 is at c_x)
        datasets["/entry_1/ptychodus/object_center_x_m"] = 1e-6 + width / 2 * OBJECT_PIXEL_M
        datasets["/entry_1/ptychodus/object_center_y_m"] = -2e-6 + height / 2 * OBJECT_PIXEL_M
    with h5py.File(path, "w") as handle:
        handle.create_dataset("cxi_version", data=160)
        for key, value in datasets.items():
            if key != drop:
                handle.create_dataset(key, data=value)
        handle.require_group("/entry_1/data_1")["data"] = h5py.SoftLink("/entry_1/instrument_1/detector_1/data")
    return path


def test_cxi_agrees_with_ptychodus_reader(scan, tmp_path):
    path = _write_nxcxi(tmp_path / "scan.cxi", scan)
    ours = load_scan(path)
    dataset = cxi_plugin.CXIDiffractionFileReader().read(path)
    theirs_patterns = np.concatenate([array.get_patterns() for array in dataset])
    np.testing.assert_array_equal(ours.diffraction, np.sqrt(np.where(scan.bad_pixels, 0, theirs_patterns)).astype(np.float32))
    np.testing.assert_array_equal(ours.bad_pixels, dataset.get_bad_pixels())
    metadata = dataset.get_metadata()
    assert ours.metadata.photon_energy_eV == pytest.approx(metadata.photon_energy_eV, rel=1e-12)
    assert ours.metadata.detector_distance_m == metadata.detector_distance_m
    product = cxi_plugin.CXIProductFileIO().read(path)
    np.testing.assert_array_equal(ours.probes, product.probes.get_array()[0])
    geometry = product.object_.get_geometry()
    # ptychodus's object pixel of each position, + 0.5 (its probe pixel (N − 1)/2 vs our N/2)
    np.testing.assert_allclose(ours.xcoords, geometry.map_probe_positions_to_object_x_px(product.probe_positions) + 0.5,
                               rtol=0, atol=1e-9)
    np.testing.assert_allclose(ours.ycoords, geometry.map_probe_positions_to_object_y_px(product.probe_positions) + 0.5,
                               rtol=0, atol=1e-9)
    # and those are the positions the file was made from
    np.testing.assert_allclose(ours.xcoords, scan.xcoords, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(ours.diffraction, scan.diffraction)


def test_cxi_lazy_read_equals_the_eager_one(scan, tmp_path):
    path = _write_nxcxi(tmp_path / "scan.cxi", scan)
    eager, lazy = load_scan(path), load_scan(path, lazy=True)
    assert isinstance(lazy.diffraction, LazyPatterns)
    np.testing.assert_array_equal(np.asarray(lazy.diffraction), eager.diffraction)
    np.testing.assert_array_equal(lazy.diffraction[[7, 1]], eager.diffraction[[7, 1]])
    np.testing.assert_array_equal(lazy.bad_pixels, eager.bad_pixels)
    np.testing.assert_array_equal(lazy.xcoords, eager.xcoords)


def test_cxi_without_object_frame_uses_far_field_pixel(scan, tmp_path):
    """No object in the file: dx = λz/(N p), the first windows start at object pixel 0."""
    ours = load_scan(_write_nxcxi(tmp_path / "raw.cxi", scan, with_object=False))
    assert ours.metadata.object_pixel_size_m == pytest.approx((OBJECT_PIXEL_M, OBJECT_PIXEL_M), rel=1e-12)
    np.testing.assert_allclose(ours.xcoords - scan.xcoords, N / 2 - scan.xcoords.min(), rtol=0, atol=1e-9)
    assert ours.xcoords.min() == pytest.approx(N / 2) and ours.ycoords.min() == pytest.approx(N / 2)
    x_m = ours.metadata.position_offset_m[0] + ours.xcoords * OBJECT_PIXEL_M
    np.testing.assert_allclose(x_m, 1e-6 + scan.xcoords * OBJECT_PIXEL_M, rtol=0, atol=1e-15)


def test_cxi_without_probe_says_how_to_supply_one(scan, tmp_path):
    path = _write_nxcxi(tmp_path / "noprobe.cxi", scan, with_probe=False)
    with pytest.raises(ScanFormatError, match="--probe") as caught:
        load_scan(path)
    assert str(path) in str(caught.value)
    supplied = read_cxi(path, probe=scan.probe_modes)
    np.testing.assert_array_equal(supplied.probes, scan.probe_modes)


@pytest.mark.parametrize(
    ("drop", "key"),
    [
        ("/entry_1/instrument_1/source_1/energy", "/entry_1/instrument_1/source_1/energy"),
        ("/entry_1/instrument_1/detector_1/distance", "/entry_1/instrument_1/detector_1/distance"),
        ("/entry_1/sample_1/geometry_1/translation", "/entry_1/data_1/translation"),
    ],
)
def test_malformed_cxi(scan, tmp_path, drop, key):
    path = _write_nxcxi(tmp_path / "bad.cxi", scan, drop=drop)
    with pytest.raises(ScanFormatError, match="missing") as caught:
        load_scan(path)
    assert caught.value.key == key


def test_cxi_translation_count_must_match(scan, tmp_path):
    path = _write_nxcxi(tmp_path / "short.cxi", scan)
    with h5py.File(path, "a") as handle:
        translation = handle["/entry_1/sample_1/geometry_1/translation"][()]
        del handle["/entry_1/sample_1/geometry_1/translation"]
        handle.create_dataset("/entry_1/sample_1/geometry_1/translation", data=translation[:-3])
    with pytest.raises(ScanFormatError, match="translations for"):
        load_scan(path)


def _assert_round_trip(back, scan, *, probe_scale_free: bool) -> None:
    np.testing.assert_array_equal(back.diffraction, scan.diffraction)
    np.testing.assert_allclose(back.xcoords, scan.xcoords, rtol=0, atol=1e-9)
    np.testing.assert_allclose(back.ycoords, scan.ycoords, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(back.bad_pixels, scan.bad_pixels)
    if probe_scale_free:
        scale = np.vdot(scan.probes, back.probes).real / np.vdot(scan.probes, scan.probes).real
        np.testing.assert_allclose(back.probes, scale * scan.probes, rtol=0, atol=1e-5 * np.abs(back.probes).max())
    else:
        np.testing.assert_array_equal(back.probes, scan.probes)


def test_write_cxi_round_trip_and_ptychodus_reads_it(scan, tmp_path):
    with_geometry = dataclasses.replace(scan, metadata=ScanMetadata(ENERGY_EV, DISTANCE_M, (DETECTOR_PIXEL_M,) * 2,
                                                                    (OBJECT_PIXEL_M,) * 2, (1e-6, -2e-6)))
    path = write_cxi(tmp_path / "out.cxi", with_geometry)
    back = load_scan(path)
    _assert_round_trip(back, with_geometry, probe_scale_free=False)
    assert back.metadata.photon_energy_eV == pytest.approx(ENERGY_EV, rel=1e-12)
    assert back.metadata.position_offset_m == pytest.approx((1e-6, -2e-6), rel=1e-9)
    product = cxi_plugin.CXIProductFileIO().read(path)
    np.testing.assert_allclose(product.probe_positions.get_coordinates_x_m(), 1e-6 + scan.xcoords * OBJECT_PIXEL_M,
                               rtol=0, atol=1e-15)


@pytest.mark.parametrize("target", ["converted.cxi", "ptychodus_dir"])
def test_convert_round_trip(scan, tmp_path, target, capsys):
    """npz → (CXI | ptychodus directory) → npz keeps patterns, positions, mask and probe modes."""
    source = save_scan(scan, tmp_path / "scan.npz")
    middle = tmp_path / target
    assert main(["convert", str(source), str(middle)]) == 0
    assert main(["convert", str(middle), str(tmp_path / "back.npz")]) == 0
    back = load_scan(tmp_path / "back.npz")
    # the ptychodus product carries the photon scale in its probe: equal up to one real factor
    _assert_round_trip(back, scan, probe_scale_free=target == "ptychodus_dir")
    assert "patterns of 32×32, 2 probe mode(s)" in capsys.readouterr().out


def test_convert_cxi_without_probe_takes_probe_flag(scan, tmp_path, capsys):
    cxi = _write_nxcxi(tmp_path / "noprobe.cxi", scan, with_probe=False)
    assert main(["convert", str(cxi), str(tmp_path / "a.npz")]) == 2
    assert "--probe" in capsys.readouterr().err
    np.save(tmp_path / "probe.npy", scan.probe_modes)
    assert main(["convert", str(cxi), str(tmp_path / "a.npz"), "--probe", str(tmp_path / "probe.npy")]) == 0
    np.testing.assert_array_equal(load_scan(tmp_path / "a.npz").probes, scan.probe_modes)


def test_convert_takes_the_probe_of_a_ptychodus_product(scan, tmp_path):
    from ptychopinn.data import write_product

    cxi = _write_nxcxi(tmp_path / "noprobe.cxi", scan, with_probe=False)
    product = write_product(tmp_path / "previous.h5", scan, fit_probe_scale=False)
    assert main(["convert", str(cxi), str(tmp_path / "a.npz"), "--probe", str(product)]) == 0
    np.testing.assert_array_equal(load_scan(tmp_path / "a.npz").probes, scan.probe_modes)


def test_convert_takes_the_probe_refine_saved(scan, tmp_path):
    """refine's probe.npz (the refined modes) replaces a scan's probe: how a refined probe reaches
    training (docs/guides/own-data.md)."""
    from ptychopinn.cli.refine import save_probe

    modes = np.stack([scan.probe, 0.5 * scan.probe.T, 0.1 * scan.probe[::-1]]).astype(np.complex64)
    probe_file = save_probe(modes, tmp_path / "probe.npz")
    source = save_scan(scan, tmp_path / "scan.npz")
    assert main(["convert", str(source), str(tmp_path / "refined.npz"), "--probe", str(probe_file)]) == 0
    converted = load_scan(tmp_path / "refined.npz")
    np.testing.assert_array_equal(converted.probes, modes)
    np.testing.assert_array_equal(converted.diffraction, scan.diffraction)
