"""Scan files (docs/design/spec.md#data-contract): round trip, legacy variants and one test per malformed case."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from ptychopinn.data import Scan, ScanFormatError, load_scan, save_scan, validate_scan

M, N, SIDE = 6, 8, 32
LOGGER = "ptychopinn.data.npz"


def scan_arrays(m: int = M, n: int = N, with_object: bool = True) -> dict[str, np.ndarray]:
    """A small valid scan: positions well inside a SIDE x SIDE object."""
    rng = np.random.default_rng(0)
    arrays = {
        "diffraction": rng.uniform(0.1, 3.0, size=(m, n, n)).astype(np.float32),
        "xcoords": np.linspace(n / 2, SIDE - n / 2, m),
        "ycoords": np.linspace(SIDE - n / 2 - 0.25, n / 2 + 0.25, m),
        "probeGuess": (rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))).astype(np.complex64),
    }
    if with_object:
        arrays["objectGuess"] = np.exp(1j * rng.uniform(size=(SIDE, SIDE))).astype(np.complex64)
    return arrays


def write_npz(directory: Path, name: str = "scan.npz", **arrays: np.ndarray) -> Path:
    path = directory / name
    np.savez(path, **arrays)
    return path


def assert_format_error(path: Path, key: str, **kwargs: object) -> ScanFormatError:
    with pytest.raises(ScanFormatError) as info:
        load_scan(path, **kwargs)
    message = str(info.value)
    assert str(path) in message
    assert key in message
    return info.value


# --------------------------------------------------------------------------------------------
# valid files
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("with_object", [True, False])
def test_round_trip_gives_identical_arrays(tmp_path: Path, with_object: bool) -> None:
    arrays = scan_arrays(with_object=with_object)
    arrays["xcoords_start"] = arrays["xcoords"] + 0.5
    arrays["ycoords_start"] = arrays["ycoords"] - 0.5
    arrays["scan_index"] = np.array([0, 0, 1, 1, 2, 2])
    original = load_scan(write_npz(tmp_path, **arrays))

    out = save_scan(original, tmp_path / "copy.npz")
    assert out == tmp_path / "copy.npz"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.npz", "scan.npz"]
    reloaded = load_scan(out)

    for name in (
        "diffraction",
        "xcoords",
        "ycoords",
        "probe",
        "object",
        "xcoords_start",
        "ycoords_start",
        "scan_index",
    ):
        before, after = getattr(original, name), getattr(reloaded, name)
        if before is None:
            assert after is None
            continue
        assert after.dtype == before.dtype
        np.testing.assert_array_equal(after, before)
    assert reloaded.source == str(out)


def test_save_writes_canonical_keys_even_without_npz_suffix(tmp_path: Path) -> None:
    arrays = scan_arrays()
    arrays["diff3d"] = arrays.pop("diffraction")
    scan = load_scan(write_npz(tmp_path, **arrays))
    out = save_scan(scan, tmp_path / "scan_copy.bin")
    assert out.exists()
    with np.load(out, allow_pickle=False) as archive:
        assert set(archive.files) == {
            "diffraction",
            "xcoords",
            "ycoords",
            "probeGuess",
            "objectGuess",
            "xcoords_start",
            "ycoords_start",
            "scan_index",
            "ptychopinn_format",  # never mistaken for a ptychodus export (which has diff3d, bad_pixels)
        }
        assert str(archive["ptychopinn_format"]) == "ptychopinn-scan"


def test_loaded_dtypes_and_source(tmp_path: Path) -> None:
    arrays = scan_arrays()
    arrays["diffraction"] = arrays["diffraction"].astype(np.float64)
    arrays["xcoords"] = np.round(arrays["xcoords"]).astype(np.int32)
    arrays["probeGuess"] = arrays["probeGuess"].astype(np.complex128)
    arrays["objectGuess"] = arrays["objectGuess"].real.astype(np.float32)
    path = write_npz(tmp_path, **arrays)
    scan = load_scan(path)
    assert scan.diffraction.dtype == np.float32 and scan.diffraction.flags.c_contiguous
    assert scan.xcoords.dtype == np.float64 and scan.ycoords.dtype == np.float64
    assert scan.probe.dtype == np.complex64
    assert scan.object.dtype == np.complex64
    assert scan.scan_index.dtype == np.int64
    assert scan.source == str(path)
    assert (scan.n_patterns, scan.patch_size) == (M, N)


def test_optional_keys_default(tmp_path: Path) -> None:
    scan = load_scan(write_npz(tmp_path, **scan_arrays(with_object=False)))
    assert scan.object is None
    np.testing.assert_array_equal(scan.xcoords_start, scan.xcoords)
    np.testing.assert_array_equal(scan.ycoords_start, scan.ycoords)
    assert scan.xcoords_start.dtype == np.float64
    np.testing.assert_array_equal(scan.scan_index, np.zeros(M, dtype=np.int64))
    assert scan.scan_index.dtype == np.int64


def test_unknown_keys_ignored_with_debug_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    path = write_npz(tmp_path, extra_notes=np.arange(3), **scan_arrays())
    load_scan(path)
    assert any(
        "extra_notes" in r.getMessage() and r.levelno == logging.DEBUG for r in caplog.records
    )


def test_validate_in_memory_scan_casts_and_fills_defaults() -> None:
    arrays = scan_arrays(with_object=False)
    raw = Scan(
        diffraction=arrays["diffraction"].astype(np.float64).transpose(0, 2, 1),
        xcoords=list(arrays["xcoords"]),
        ycoords=arrays["ycoords"].astype(np.float32),
        probe=arrays["probeGuess"].real,
    )
    scan = validate_scan(raw)
    assert scan.diffraction.dtype == np.float32 and scan.diffraction.flags.c_contiguous
    assert scan.xcoords.dtype == np.float64
    assert scan.probe.dtype == np.complex64
    np.testing.assert_array_equal(scan.xcoords_start, scan.xcoords)
    np.testing.assert_array_equal(scan.scan_index, np.zeros(M, dtype=np.int64))


def test_validate_in_memory_scan_error_names_key() -> None:
    arrays = scan_arrays(with_object=False)
    raw = Scan(
        arrays["diffraction"], arrays["xcoords"][:-1], arrays["ycoords"], arrays["probeGuess"]
    )
    with pytest.raises(ScanFormatError, match="<in-memory scan>, key 'xcoords'"):
        validate_scan(raw)


# --------------------------------------------------------------------------------------------
# legacy variants
# --------------------------------------------------------------------------------------------


def test_legacy_diff3d_key_is_accepted_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    arrays = scan_arrays()
    expected = arrays["diffraction"]
    arrays["diff3d"] = arrays.pop("diffraction")
    scan = load_scan(write_npz(tmp_path, **arrays))
    np.testing.assert_array_equal(scan.diffraction, expected)
    assert any("diff3d" in r.getMessage() for r in caplog.records)


def test_legacy_nnm_layout_is_transposed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    arrays = scan_arrays()
    stack = arrays["diffraction"]
    stack[3] = 0.0
    stack[3, 1, 5] = 7.0  # a recognisable pattern, asymmetric so a wrong axis order shows
    arrays["diffraction"] = np.transpose(stack, (1, 2, 0))  # (N, N, M)
    assert arrays["diffraction"].shape == (N, N, M)
    scan = load_scan(write_npz(tmp_path, **arrays))
    assert scan.diffraction.shape == (M, N, N)
    assert scan.diffraction.flags.c_contiguous
    assert scan.diffraction[3, 1, 5] == 7.0 and scan.diffraction[3].sum() == 7.0
    np.testing.assert_array_equal(scan.diffraction, stack)
    assert any("(N, N, M)" in r.getMessage() for r in caplog.records)


def test_uint16_intensities_square_rooted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    arrays = scan_arrays()
    counts = np.random.default_rng(1).integers(0, 60000, size=(M, N, N)).astype(np.uint16)
    counts[0, 0, 0], counts[0, 0, 1] = 49, 65535
    arrays["diffraction"] = counts
    scan = load_scan(write_npz(tmp_path, **arrays), intensity=True)
    assert scan.diffraction.dtype == np.float32
    np.testing.assert_array_equal(
        scan.diffraction, np.sqrt(counts.astype(np.float64)).astype(np.float32)
    )
    assert scan.diffraction[0, 0, 0] == 7.0
    assert scan.diffraction[0, 0, 1] == np.float32(np.sqrt(65535.0))
    assert any("intensit" in r.getMessage() for r in caplog.records)


def test_intensity_hint_for_integer_dtype(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    arrays = scan_arrays()
    counts = np.random.default_rng(2).integers(0, 5000, size=(M, N, N)).astype(np.uint16)
    arrays["diffraction"] = counts
    scan = load_scan(write_npz(tmp_path, **arrays))
    np.testing.assert_array_equal(scan.diffraction, counts.astype(np.float32))  # loaded as-is
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("--intensity" in r.getMessage() for r in warnings)


def test_intensity_hint_for_integer_valued_floats(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    arrays = scan_arrays()
    counts = np.random.default_rng(3).integers(0, 5000, size=(M, N, N)).astype(np.float32)
    arrays["diffraction"] = counts
    load_scan(write_npz(tmp_path, **arrays))
    assert any("--intensity" in r.getMessage() for r in caplog.records)


def test_no_intensity_hint_for_amplitudes(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    arrays = scan_arrays()
    arrays["diffraction"] = np.sqrt(
        np.random.default_rng(4).integers(0, 5000, size=(M, N, N))
    ).astype(np.float32)
    load_scan(write_npz(tmp_path, **arrays))
    assert not any("--intensity" in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------------------------
# malformed files: one case each, the message names the file and the key
# --------------------------------------------------------------------------------------------


def _drop(key: str):
    def edit(a: dict[str, np.ndarray]) -> None:
        del a[key]

    return edit


def _set(key: str, make):
    def edit(a: dict[str, np.ndarray]) -> None:
        a[key] = make(a)

    return edit


def _poke(key: str, index: tuple[int, ...], value: complex):
    def edit(a: dict[str, np.ndarray]) -> None:
        a[key] = a[key].copy()
        a[key][index] = value

    return edit


MALFORMED = {
    "missing_diffraction": (_drop("diffraction"), "diffraction"),
    "missing_xcoords": (_drop("xcoords"), "xcoords"),
    "missing_ycoords": (_drop("ycoords"), "ycoords"),
    "missing_probe": (_drop("probeGuess"), "probeGuess"),
    "ragged_ycoords": (_set("ycoords", lambda a: a["ycoords"][:-1]), "ycoords"),
    "ragged_diffraction": (_set("diffraction", lambda a: a["diffraction"][:-2]), "xcoords"),
    "ragged_xcoords_start": (_set("xcoords_start", lambda a: a["xcoords"][:3]), "xcoords_start"),
    "ragged_ycoords_start": (_set("ycoords_start", lambda a: a["ycoords"][:3]), "ycoords_start"),
    "ragged_scan_index": (_set("scan_index", lambda a: np.zeros(M + 1, int)), "scan_index"),
    "non_integer_scan_index": (_set("scan_index", lambda a: np.full(M, 0.5)), "scan_index"),
    "diffraction_2d": (_set("diffraction", lambda a: a["diffraction"][0]), "diffraction"),
    "diffraction_complex": (_set("diffraction", lambda a: a["diffraction"] + 0j), "diffraction"),
    "xcoords_2d": (_set("xcoords", lambda a: a["xcoords"][:, None]), "xcoords"),
    # (K, N, N) is a stack of probe modes; four axes are not a probe
    "probe_4d": (_set("probeGuess", lambda a: a["probeGuess"][None, None]), "probeGuess"),
    "object_1d": (_set("objectGuess", lambda a: a["objectGuess"][0]), "objectGuess"),
    "nan_diffraction": (_poke("diffraction", (2, 3, 4), np.nan), "diffraction"),
    "inf_xcoords": (_poke("xcoords", (1,), np.inf), "xcoords"),
    "nan_ycoords": (_poke("ycoords", (0,), np.nan), "ycoords"),
    "nan_probe": (_poke("probeGuess", (0, 0), complex(np.nan, 0)), "probeGuess"),
    "inf_object": (_poke("objectGuess", (5, 5), complex(0, np.inf)), "objectGuess"),
    "nan_xcoords_start": (_set("xcoords_start", lambda a: a["xcoords"] * np.nan), "xcoords_start"),
    "negative_amplitude": (_poke("diffraction", (1, 2, 3), -0.5), "diffraction"),
    "probe_size_mismatch": (
        _set("probeGuess", lambda a: np.ones((2 * N, 2 * N), np.complex64)),
        "probeGuess",
    ),
    "non_square_patterns": (
        _set("diffraction", lambda a: a["diffraction"][:, :, :6]),
        "diffraction",
    ),
    "empty_scan": (_set("diffraction", lambda a: np.zeros((0, N, N), np.float32)), "diffraction"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_file(tmp_path: Path, case: str) -> None:
    edit, key = MALFORMED[case]
    arrays = scan_arrays()
    edit(arrays)
    if case == "empty_scan":
        arrays["xcoords"] = arrays["ycoords"] = np.zeros(0)
    path = write_npz(tmp_path, f"{case}.npz", **arrays)
    error = assert_format_error(path, f"'{key}'")
    assert error.key == key


def test_negative_intensities_rejected(tmp_path: Path) -> None:
    arrays = scan_arrays()
    arrays["diffraction"] = arrays["diffraction"] - 1.0
    path = write_npz(tmp_path, **arrays)
    assert_format_error(path, "'diffraction'", intensity=True)


def test_positions_outside_object(tmp_path: Path) -> None:
    arrays = scan_arrays()
    arrays["xcoords"] = arrays["xcoords"].copy()
    arrays["ycoords"] = arrays["ycoords"].copy()
    arrays["xcoords"][2] = N / 2 - 0.5  # patch would start at column -0.5
    arrays["ycoords"][4] = SIDE - N / 2 + 0.01  # patch would end past the last row
    path = write_npz(tmp_path, **arrays)
    error = assert_format_error(path, "xcoords/ycoords")
    assert "2 of 6" in error.problem
    assert "index 2" in error.problem


def test_positions_on_object_edge_within_tolerance(tmp_path: Path) -> None:
    arrays = scan_arrays()
    arrays["xcoords"] = np.full(M, N / 2 - 1e-7)
    arrays["ycoords"] = np.full(M, SIDE - N / 2 + 1e-7)
    load_scan(write_npz(tmp_path, **arrays))


def test_object_array_is_rejected_without_unpickling(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"

    class Booby:
        def __reduce__(self):
            return (Path.touch, (marker,))

    arrays = scan_arrays()
    arrays["probeGuess"] = np.array([Booby(), 1], dtype=object)
    path = write_npz(tmp_path, **arrays)
    error = assert_format_error(path, "'probeGuess'")
    assert "object" in error.problem
    assert not marker.exists()


def test_text_file_rejected(tmp_path: Path) -> None:
    path = tmp_path / "scan.npz"
    path.write_text("xcoords,ycoords\n1,2\n")
    assert_format_error(path, "diffraction")


def test_plain_npy_rejected(tmp_path: Path) -> None:
    path = tmp_path / "scan.npy"
    np.save(path, np.zeros((M, N, N), np.float32))
    assert_format_error(path, "diffraction")


def test_truncated_file_rejected(tmp_path: Path) -> None:
    path = write_npz(tmp_path, **scan_arrays())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert_format_error(path, "diffraction")


def test_missing_file_raises_file_not_found(tmp_path: Path) -> None:
    path = tmp_path / "absent.npz"
    with pytest.raises(FileNotFoundError) as info:
        load_scan(path)
    assert str(path) in str(info.value)


# --------------------------------------------------------------------------------------------
# saving
# --------------------------------------------------------------------------------------------


def test_save_invalid_scan_writes_nothing(tmp_path: Path) -> None:
    arrays = scan_arrays()
    scan = Scan(
        diffraction=arrays["diffraction"],
        xcoords=arrays["xcoords"][:-1],
        ycoords=arrays["ycoords"],
        probe=arrays["probeGuess"],
    )
    path = tmp_path / "out.npz"
    with pytest.raises(ScanFormatError) as info:
        save_scan(scan, path)
    assert str(path) in str(info.value) and "'xcoords'" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_save_positions_outside_object_writes_nothing(tmp_path: Path) -> None:
    arrays = scan_arrays()
    scan = Scan(
        diffraction=arrays["diffraction"],
        xcoords=arrays["xcoords"] + SIDE,
        ycoords=arrays["ycoords"],
        probe=arrays["probeGuess"],
        object=arrays["objectGuess"],
    )
    path = tmp_path / "out.npz"
    with pytest.raises(ScanFormatError, match="xcoords/ycoords"):
        save_scan(scan, path)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_save_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scan = validate_scan(
        Scan(*[scan_arrays()[k] for k in ("diffraction", "xcoords", "ycoords", "probeGuess")])
    )

    def exploding_savez(handle, **arrays):
        handle.write(b"PK partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", exploding_savez)
    with pytest.raises(KeyboardInterrupt):
        save_scan(scan, tmp_path / "out.npz")
    assert list(tmp_path.iterdir()) == []
