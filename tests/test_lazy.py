"""Lazily read patterns (ptychopinn.data.lazy) and inference that streams them: equal to the eager
path, validated with the eager path's errors, and never reading more than a batch at a time."""

from __future__ import annotations

import logging
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from ptychopinn.api import reconstruct
from ptychopinn.backends import get_backend
from ptychopinn.config import resolve_settings
from ptychopinn.data import Scan, ScanFormatError, load_scan, save_scan
from ptychopinn.data.lazy import (
    FileRows,
    LazyPatterns,
    hdf5_patterns,
    npz_member_rows,
    npz_patterns,
)
from ptychopinn.evaluation.data_fit import data_fit
from ptychopinn.model.architecture import Architecture, ModelGeometry
from ptychopinn.model.trained import TrainedModel
from ptychopinn.physics.scaling import ScaleContract, input_scale, mean_total_counts
from ptychopinn.simulation.simulate import simulate

N = 32


@pytest.fixture(scope="module")
def scan_file(tiny_scan, tmp_path_factory):
    return save_scan(tiny_scan, tmp_path_factory.mktemp("lazy") / "scan.npz")


def random_model(gridsize: int, seed: int = 0) -> TrainedModel:
    """An untrained model: inference's arithmetic is the same whatever the weights."""
    settings = resolve_settings(None, {"data": {"gridsize": gridsize, "neighbor_count": max(4, gridsize**2)},
                                       "model": {"n_filters_scale": 1}})
    geometry = ModelGeometry(patch_size=N, canvas_size=N + 16)
    y, x = np.mgrid[:N, :N] - N / 2
    r2 = (x**2 + y**2) / (N / 4) ** 2
    probe = settings.physics.normalized_probe((np.exp(-(r2**2)) * np.exp(1j * 0.3 * r2)).astype(np.complex64))
    torch.manual_seed(seed)
    module = get_backend("torch").build_module(Architecture.from_settings(settings, geometry), probe)
    weights = {name: value.detach().numpy().copy() for name, value in module.state_dict().items()}
    scales = ScaleContract(patch_size=N, probe_scale=settings.physics.probe_scale, probe_mask=False,
                           input_scale=1.0, mean_counts=(N / 2) ** 2, photon_scale=1.0)
    return TrainedModel(settings, geometry, scales, probe, weights)


class CountingRows:
    """A row source that records how many rows each read asked for."""

    def __init__(self, rows):
        self.inner, self.shape, self.dtype = rows, rows.shape, rows.dtype
        self.reads: list[int] = []

    def read_range(self, start, stop):
        self.reads.append(stop - start)
        return self.inner.read_range(start, stop)

    def read_rows(self, rows):
        self.reads.append(len(rows))
        return self.inner.read_rows(rows)


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------


def test_lazy_npz_reads_what_the_eager_load_holds(scan_file):
    eager, lazy = load_scan(scan_file), load_scan(scan_file, lazy=True)
    patterns = lazy.diffraction
    assert isinstance(patterns, LazyPatterns) and isinstance(patterns.rows, FileRows)
    assert patterns.shape == eager.diffraction.shape and lazy.n_patterns == eager.n_patterns
    whole = eager.diffraction
    np.testing.assert_array_equal(patterns[:], whole)
    np.testing.assert_array_equal(patterns[7], whole[7])
    np.testing.assert_array_equal(patterns[-1], whole[-1])
    np.testing.assert_array_equal(patterns[3:40:5], whole[3:40:5])
    groups = np.array([[9, 2, 2, 10], [0, 11, 12, 13]])  # unsorted, repeated, runs: a group batch
    np.testing.assert_array_equal(patterns[groups], whole[groups])
    assert patterns[groups].dtype == np.float32
    np.testing.assert_array_equal(np.asarray(patterns), whole)
    for key in ("xcoords", "ycoords", "probe", "xcoords_start", "scan_index"):
        np.testing.assert_array_equal(getattr(lazy, key), getattr(eager, key))
    # the scale contract's statistics, from the chunked pass, are bit for bit the eager ones
    assert mean_total_counts(patterns) == mean_total_counts(whole)
    assert input_scale(patterns) == input_scale(whole)
    with pytest.raises(IndexError):
        patterns[np.array([0, len(whole)])]
    with pytest.raises(TypeError, match="first axis"):
        patterns[0, 1]


def test_member_offset_is_found_through_the_local_header(tmp_path):
    """np.savez's members (zip64 extra fields) and a member after others are located exactly."""
    stack = np.arange(5 * 4 * 4, dtype=np.int16).reshape(5, 4, 4)
    path = tmp_path / "members.npz"
    np.savez(path, first=np.ones(3), diffraction=stack)
    rows = npz_member_rows(path, "diffraction")
    assert rows.shape == (5, 4, 4) and rows.dtype == np.int16
    np.testing.assert_array_equal(rows.read_rows(np.array([1, 2, 4])), stack[[1, 2, 4]])
    np.testing.assert_array_equal(rows.read_range(0, 5), stack)


def test_a_compressed_member_is_read_whole_with_a_log_line(tiny_scan, tmp_path, caplog):
    path = tmp_path / "compressed.npz"
    np.savez_compressed(path, diffraction=tiny_scan.diffraction, xcoords=tiny_scan.xcoords,
                        ycoords=tiny_scan.ycoords, probeGuess=tiny_scan.probe)
    assert npz_patterns(path) is None
    with caplog.at_level(logging.INFO, logger="ptychopinn.data.lazy"):
        scan = load_scan(path, lazy=True)
    assert isinstance(scan.diffraction, np.ndarray) and "compressed" in caplog.text
    np.testing.assert_array_equal(scan.diffraction, tiny_scan.diffraction)


def test_counts_are_square_rooted_on_read_as_the_eager_load_does(tiny_scan, tmp_path):
    counts = np.round(tiny_scan.diffraction.astype(np.float64) ** 2).astype(np.uint32)
    path = tmp_path / "counts.npz"
    np.savez(path, diffraction=counts, xcoords=tiny_scan.xcoords, ycoords=tiny_scan.ycoords,
             probeGuess=tiny_scan.probe)
    eager, lazy = load_scan(path, intensity=True), load_scan(path, intensity=True, lazy=True)
    assert lazy.diffraction.transform == "sqrt"
    np.testing.assert_array_equal(lazy.diffraction[np.arange(5, 60, 3)], eager.diffraction[5:60:3])
    assert mean_total_counts(lazy.diffraction) == mean_total_counts(eager.diffraction)


def test_hdf5_dataset_reads_slices_and_indices(tmp_path):
    import h5py
    import hdf5plugin

    counts = np.random.default_rng(0).poisson(50.0, size=(40, 8, 8)).astype(np.uint16)
    path = tmp_path / "scan.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("entry/data", data=counts, chunks=(4, 8, 8), **hdf5plugin.Zstd())
    patterns = hdf5_patterns(path, "entry/data")
    assert patterns.shape == (40, 8, 8) and patterns.raw_dtype == np.uint16 and len(patterns) == 40
    np.testing.assert_array_equal(patterns[5:17], counts[5:17].astype(np.float32))
    picks = np.array([[30, 2], [2, 7]])
    np.testing.assert_array_equal(patterns[picks], counts[picks].astype(np.float32))
    amplitudes = hdf5_patterns(path, "entry/data", transform="sqrt")
    np.testing.assert_array_equal(amplitudes[picks], np.sqrt(counts[picks].astype(np.float64)).astype(np.float32))
    with pytest.raises(ScanFormatError, match="entry/missing") as missing:
        hdf5_patterns(path, "entry/missing")
    assert missing.value.source == str(path)


# --------------------------------------------------------------------------------------------
# validation without holding the scan
# --------------------------------------------------------------------------------------------


def _spoiled_file(tiny_scan, tmp_path, index, value, name):
    diffraction = tiny_scan.diffraction.copy()
    diffraction[index] = value
    path = tmp_path / name
    np.savez(path, diffraction=diffraction, xcoords=tiny_scan.xcoords, ycoords=tiny_scan.ycoords,
             probeGuess=tiny_scan.probe)
    return path


@pytest.mark.parametrize(("value", "message"), [(np.nan, "non-finite"), (-2.0, "negative amplitude")])
def test_lazy_validation_raises_the_eager_error(tiny_scan, tmp_path, monkeypatch, value, message):
    path = _spoiled_file(tiny_scan, tmp_path, (200, 3, 4), value, "spoiled.npz")
    with pytest.raises(ScanFormatError) as eager:
        load_scan(path)
    # chunks of 16 patterns: the bad value lies in a late chunk, and its index is still the scan's
    monkeypatch.setattr(LazyPatterns, "rows_per_chunk", lambda self: 16)
    with pytest.raises(ScanFormatError, match=message) as lazy:
        load_scan(path, lazy=True)
    assert str(lazy.value) == str(eager.value)
    assert lazy.value.key == "diffraction" and lazy.value.source == str(path)


def test_lazy_validation_refuses_negative_counts(tiny_scan, tmp_path):
    path = _spoiled_file(tiny_scan, tmp_path, (10, 0, 0), -3.0, "negative_counts.npz")
    with pytest.raises(ScanFormatError, match="intensities must be >= 0") as lazy:
        load_scan(path, intensity=True, lazy=True)
    with pytest.raises(ScanFormatError) as eager:
        load_scan(path, intensity=True)
    assert str(lazy.value) == str(eager.value) and str(path) in str(lazy.value)


# --------------------------------------------------------------------------------------------
# streaming inference
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gridsize", [1, 2])
def test_streamed_inference_equals_the_eager_one(tiny_scan, scan_file, gridsize):
    model = random_model(gridsize)
    eager_scan = load_scan(scan_file)
    eager = reconstruct(model, eager_scan, batch_size=16, accelerator="cpu")
    streamed = reconstruct(model, scan_file, batch_size=16, accelerator="cpu")  # a path: read lazily
    assert streamed.origin_xy == eager.origin_xy
    np.testing.assert_array_equal(streamed.coverage, eager.coverage)
    np.testing.assert_array_equal(streamed.object, eager.object)  # the same arithmetic on the same rows
    if gridsize == 1:
        eager_fit = data_fit(eager_scan, eager, "cpu")
        streamed_fit = data_fit(load_scan(scan_file, lazy=True), streamed, "cpu")
        assert streamed_fit.misfit == pytest.approx(eager_fit.misfit, rel=1e-6)
        assert streamed_fit.noise_floor == pytest.approx(eager_fit.noise_floor, rel=1e-6)
        np.testing.assert_allclose(streamed_fit.position_excess, eager_fit.position_excess, rtol=1e-5)


def test_streaming_never_reads_more_than_a_batch(tmp_path):
    """Inference and its data fit read one batch of rows at a time, never the scan."""
    scan_file = save_scan(simulate("lines", size=128, n=N, step=4.0, photons=1e5, seed=2), tmp_path / "scan.npz")
    lazy = load_scan(scan_file, lazy=True)  # validated: the chunked pass is over
    counting = CountingRows(lazy.diffraction.rows)
    patterns = LazyPatterns(counting, source=str(scan_file), key="diffraction")
    patterns.remember_energies(lazy.diffraction.pattern_energies())
    scan: Scan = replace(lazy, diffraction=patterns)
    model = random_model(gridsize=2)
    batch_size, channels = 8, 4
    result = reconstruct(model, scan, batch_size=batch_size, accelerator="cpu")
    assert counting.reads and max(counting.reads) <= batch_size * channels
    assert len(counting.reads) == -(-scan.n_patterns // batch_size)  # one read per batch
    counting.reads.clear()
    fit = data_fit(scan, result, "cpu")
    assert np.isfinite(fit.misfit) and fit.position_excess.shape == (scan.n_patterns,)
    assert max(counting.reads) <= 256 < scan.n_patterns
    # a few passes over the scan (its counts, the best scale, the noise floor), each in batches
    assert sum(counting.reads) <= 4 * scan.n_patterns


def test_a_truncated_npz_is_reported(tiny_scan, tmp_path):
    path = save_scan(tiny_scan, tmp_path / "scan.npz")
    with zipfile.ZipFile(path) as archive:
        end = archive.getinfo("diffraction.npy").header_offset + archive.getinfo("diffraction.npy").file_size
    patterns = npz_patterns(path)
    data = path.read_bytes()
    path.write_bytes(data[: end // 2])
    with pytest.raises(OSError, match="truncated"):
        patterns[len(patterns) - 1]


def test_the_benchmarks_streamed_writer_makes_a_valid_lazy_scan(tmp_path, monkeypatch):
    """benchmarks/large_scan.py writes its scan chunk by chunk into an npz that np.load, the eager
    load and the lazy load all read alike, at the dose it was asked for."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import large_scan

    monkeypatch.setattr(large_scan, "WRITE_CHUNK", 16)  # several chunks
    path = tmp_path / "large.npz"
    written = large_scan.write_scan(path, 50)
    assert written["patterns"] == 50 and written["file_bytes"] == path.stat().st_size
    with np.load(path, allow_pickle=False) as archive:
        raw = archive["diffraction"]
    eager, lazy = load_scan(path), load_scan(path, lazy=True)
    assert isinstance(lazy.diffraction, LazyPatterns) and raw.shape == (50, 64, 64)
    np.testing.assert_array_equal(lazy.diffraction[:], raw)
    np.testing.assert_array_equal(eager.diffraction, raw)
    assert mean_total_counts(lazy.diffraction) == pytest.approx(large_scan.PHOTONS, rel=0.1)


def test_infer_reads_the_scan_lazily_and_writes_the_eager_result(scan_file, tmp_path, monkeypatch):
    import ptychopinn.cli.infer as infer_command
    from ptychopinn.cli.main import main
    from ptychopinn.reconstruction.result import Reconstruction

    model = random_model(gridsize=1)
    model_path = model.save(tmp_path / "model.pinn")
    seen = []

    def recording_reconstruct(model, scan, **kwargs):
        seen.append(type(scan.diffraction))
        return reconstruct(model, scan, **kwargs)

    monkeypatch.setattr(infer_command, "reconstruct", recording_reconstruct)
    code = main(["infer", "--model", str(model_path), "--data", str(scan_file), "--output-dir",
                 str(tmp_path / "out"), "--batch-size", "16", "--accelerator", "cpu", "--quiet"])
    assert code == 0 and seen == [LazyPatterns]
    written = Reconstruction.load(tmp_path / "out" / "reconstruction.npz")
    eager = reconstruct(model, load_scan(scan_file), batch_size=16, accelerator="cpu")
    np.testing.assert_array_equal(written.object, eager.object)
    trust = np.load(tmp_path / "out" / "trust_map.npz")
    np.testing.assert_allclose(trust["excess"], data_fit(load_scan(scan_file), eager, "cpu").position_excess,
                               rtol=1e-5)
