"""Reading, writing and validating scan files (docs/design/spec.md#data-contract).

A scan is one ``.npz`` archive with the keys ``diffraction`` (M, N, N), ``xcoords`` and
``ycoords`` (M,), ``probeGuess`` (N, N) and the optional ``objectGuess``, ``xcoords_start``,
``ycoords_start`` and ``scan_index``, ``bad_pixels``, (K, N, N) probe modes as ``probeGuess``,
the :class:`ScanMetadata` fields, and the ``ptychopinn_format`` marker. Reading never unpickles
(``allow_pickle=False``); every breach of the contract becomes a :class:`ScanFormatError` naming
the file, the key and what was expected. Legacy layouts (``diff3d``, an (N, N, M) stack, raw
intensities) are accepted and reported in a log line. :func:`load_scan` also dispatches to the
ptychodus and CXI readers (:mod:`ptychopinn.data.ptychodus`, :mod:`ptychopinn.data.cxi`).
"""

from __future__ import annotations

import errno
import logging
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np
from numpy.lib.npyio import NpzFile

from ptychopinn.atomic import atomic_path
from ptychopinn.data.hdf5 import is_hdf5
from ptychopinn.data.lazy import LazyPatterns, npz_patterns, pattern_energy
from ptychopinn.data.scan import Scan, ScanFormatError, ScanMetadata

logger = logging.getLogger(__name__)

REQUIRED_KEYS = ("diffraction", "xcoords", "ycoords", "probeGuess")
# the metadata scalars (and (width, height) / (x, y) pairs) of ScanMetadata, under its field names
METADATA_KEYS = ("photon_energy_eV", "detector_distance_m", "detector_pixel_size_m",
                 "object_pixel_size_m", "position_offset_m")
# written by save_scan so that this project's files (which may hold ``bad_pixels``) are never
# taken for ptychodus's PtychoPINN export (``diff3d`` counts with ``bad_pixels``)
FORMAT_KEY = "ptychopinn_format"
FORMAT_NAME = "ptychopinn-scan"
OPTIONAL_KEYS = ("objectGuess", "xcoords_start", "ycoords_start", "scan_index", "bad_pixels",
                 FORMAT_KEY, *METADATA_KEYS)
LEGACY_DIFFRACTION_KEY = "diff3d"
KNOWN_KEYS = frozenset(REQUIRED_KEYS + OPTIONAL_KEYS + (LEGACY_DIFFRACTION_KEY,))

POSITION_TOLERANCE = 1e-6
_READ_ERRORS = (zipfile.BadZipFile, EOFError, ValueError, OSError, zlib.error)
_HINT_SAMPLE_SIZE = 100_000


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------


def load_scan(
    path: str | os.PathLike[str], *, intensity: bool | None = None, lazy: bool = False
) -> Scan:
    """Read and validate a scan in any supported format (docs/formats.md).

    ``path`` is this project's ``.npz``, ptychodus's PtychoPINN export ``.npz``, a ptychodus
    workflow directory, ``diffraction.h5`` (with ``product.h5`` beside it) or ``product.h5``
    (with ``diffraction.h5`` beside it), or a CXI file. ``intensity=True`` declares that the
    patterns of this project's ``.npz`` are photon counts; they are square-rooted into
    amplitudes (the other formats always hold counts and ignore it). ``lazy=True`` leaves the patterns on disk: ``diffraction`` is
    then a :class:`~ptychopinn.data.lazy.LazyPatterns` that reads the rows asked for (validated
    here in chunks; a compressed npz member is read whole; HDF5 datasets are read by rows, compressed or not). A missing file raises
    :class:`FileNotFoundError`; anything else that is wrong raises :class:`ScanFormatError`.
    """
    path = Path(path)
    if path.is_dir() or (path.is_file() and is_hdf5(path)):
        return validate_scan(_read_hdf5_scan(path, lazy=lazy))
    arrays = _read_npz(path, lazy=lazy)
    if _is_ptychodus_export(arrays):
        from ptychopinn.data.ptychodus import scan_from_export

        arrays = _read_npz(path) if lazy else arrays  # the export's counts are converted in memory
        return validate_scan(scan_from_export(arrays, str(path)))
    return validate_scan(_scan_from_arrays(arrays, str(path), intensity=bool(intensity)))


def _read_hdf5_scan(path: Path, *, lazy: bool = False) -> Scan:
    from ptychopinn.data import cxi, ptychodus
    from ptychopinn.data.hdf5 import open_hdf5

    if path.is_dir():
        if not ptychodus.is_workflow_directory(path):
            raise ScanFormatError(path, None, "a directory, but not a ptychodus workflow directory "
                                  f"(no {ptychodus.DIFFRACTION_FILE} in it)")
        return ptychodus.read_workflow(path, lazy=lazy)
    with open_hdf5(path) as handle:
        is_cxi = cxi.is_cxi(handle)
        is_product = "probe_position_x_m" in handle and ptychodus.PATTERNS not in handle
        is_diffraction = ptychodus.PATTERNS in handle
    if is_cxi:
        return cxi.read_cxi(path, lazy=lazy)
    if is_product or is_diffraction:
        return ptychodus.read_workflow(path, is_product=is_product, lazy=lazy)
    raise ScanFormatError(path, None, "an HDF5 file, but neither a ptychodus diffraction.h5/product.h5 "
                          "(datasets 'patterns', 'indexes') nor a CXI file (/entry_1/data_1/data)")


def _is_ptychodus_export(arrays: dict) -> bool:
    """ptychodus's PtychoPINN export: ``diff3d`` counts with a ``bad_pixels`` mask, and none of
    the keys only this project writes."""
    return (FORMAT_KEY not in arrays and LEGACY_DIFFRACTION_KEY in arrays and "bad_pixels" in arrays
            and "diffraction" not in arrays)


def save_scan(scan: Scan, path: str | os.PathLike[str]) -> Path:
    """Validate ``scan`` and write it atomically under the canonical key names."""
    path = Path(path)
    try:
        valid = validate_scan(scan)
    except ScanFormatError as err:
        raise ScanFormatError(
            path, err.key, f"refusing to write an invalid scan ({err.source}): {err.problem}"
        ) from err
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **_canonical_arrays(valid))
    return path


def validate_scan(scan: Scan) -> Scan:
    """Check ``scan`` against the data contract and return it with canonical dtypes.

    Diffraction becomes C-contiguous float32, coordinates float64, probe and object complex64,
    scan_index int64; missing start coordinates default to the positions and a missing
    scan_index to zeros. Raises :class:`ScanFormatError` on any breach.
    """
    source = scan.source
    diffraction = _checked_diffraction(scan.diffraction, source)
    m, n = diffraction.shape[0], diffraction.shape[1]
    xcoords = _checked_vector(scan.xcoords, source, "xcoords", m)
    ycoords = _checked_vector(scan.ycoords, source, "ycoords", m)
    probe = _checked_probe(scan.probe, source, n)
    probe_modes = _checked_probe_modes(scan.probe_modes, probe, source)
    bad_pixels = _checked_bad_pixels(scan.bad_pixels, source, n)
    obj = None if scan.object is None else _checked_object(scan.object, source)
    if obj is not None:
        _check_positions_inside(xcoords, ycoords, obj.shape, n, source)
    return Scan(
        diffraction=diffraction,
        xcoords=xcoords,
        ycoords=ycoords,
        probe=probe,
        object=obj,
        xcoords_start=_start_or_default(scan.xcoords_start, xcoords, source, "xcoords_start"),
        ycoords_start=_start_or_default(scan.ycoords_start, ycoords, source, "ycoords_start"),
        scan_index=_checked_scan_index(scan.scan_index, source, m),
        source=source,
        probe_modes=probe_modes,
        bad_pixels=bad_pixels,
        metadata=scan.metadata,
    )


# --------------------------------------------------------------------------------------------
# reading the archive
# --------------------------------------------------------------------------------------------


def _read_npz(path: Path, *, lazy: bool = False) -> dict[str, np.ndarray | LazyPatterns]:
    """The known arrays of the archive at ``path``, read without unpickling; with ``lazy`` the
    diffraction stays on disk where it is stored uncompressed."""
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, "scan file not found", str(path))
    expected = "expected a .npz archive with keys " + ", ".join(f"'{k}'" for k in REQUIRED_KEYS)
    try:
        archive = np.load(path, allow_pickle=False)
    except _READ_ERRORS as err:
        raise ScanFormatError(path, None, f"{_unreadable_reason(err)}; {expected}") from err
    if not isinstance(archive, NpzFile):
        raise ScanFormatError(path, None, f"holds a single .npy array; {expected}")
    with archive:
        return {key: _lazy_or_read_member(archive, key, path) if lazy else _read_member(archive, key, path)
                for key in _known_members(archive, path)}


def _lazy_or_read_member(archive: NpzFile, key: str, path: Path) -> np.ndarray | LazyPatterns:
    if key not in ("diffraction", LEGACY_DIFFRACTION_KEY):
        return _read_member(archive, key, path)
    try:
        patterns = npz_patterns(path, key)
    except _READ_ERRORS as err:
        raise ScanFormatError(path, key, f"cannot be read in place ({type(err).__name__}: {err})") from err
    return _read_member(archive, key, path) if patterns is None else patterns


def _unreadable_reason(err: Exception) -> str:
    if "pickle" in str(err):
        return "not a NumPy .npz archive (no NumPy header; pickled or text data is never read)"
    return f"not a readable .npz archive, truncated or corrupt ({type(err).__name__}: {err})"


def _known_members(archive: NpzFile, path: Path) -> list[str]:
    for key in archive.files:
        if key not in KNOWN_KEYS:
            logger.debug("%s: ignoring unknown key '%s'", path, key)
    return [key for key in archive.files if key in KNOWN_KEYS]


def _read_member(archive: NpzFile, key: str, path: Path) -> np.ndarray:
    try:
        return archive[key]
    except _READ_ERRORS as err:
        if "allow_pickle" in str(err):
            problem = "holds an object-dtype (pickled) array; expected a plain numeric array"
        else:
            problem = f"cannot be read ({type(err).__name__}: {err}); the file may be truncated"
        raise ScanFormatError(path, key, problem) from err


# --------------------------------------------------------------------------------------------
# from raw arrays (legacy variants) to a Scan
# --------------------------------------------------------------------------------------------


def _scan_from_arrays(arrays: dict[str, np.ndarray], source: str, *, intensity: bool) -> Scan:
    arrays = _resolve_diffraction_alias(arrays, source)
    for key in REQUIRED_KEYS:
        if key not in arrays:
            raise ScanFormatError(source, key, "required key is missing")
    if isinstance(arrays["diffraction"], LazyPatterns):
        diffraction = _lazy_amplitudes(arrays["diffraction"], arrays, source, intensity=intensity)
    else:
        diffraction = _real_array(arrays["diffraction"], source, "diffraction")
        diffraction = _legacy_layout_fixed(diffraction, arrays["xcoords"], arrays["probeGuess"], source)
        if intensity:
            diffraction = _intensity_to_amplitude(diffraction, source)
        else:
            _hint_if_intensity(diffraction, source)
    probe, probe_modes = _split_probe_modes(arrays["probeGuess"])
    return Scan(
        diffraction=diffraction,
        xcoords=arrays["xcoords"],
        ycoords=arrays["ycoords"],
        probe=probe,
        object=arrays.get("objectGuess"),
        xcoords_start=arrays.get("xcoords_start"),
        ycoords_start=arrays.get("ycoords_start"),
        scan_index=arrays.get("scan_index"),
        source=source,
        probe_modes=probe_modes,
        bad_pixels=arrays.get("bad_pixels"),
        metadata=_metadata_from_arrays(arrays, source),
    )


def _split_probe_modes(probe: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """``probeGuess`` (N, N), or (K, N, N) incoherent modes whose first is the probe."""
    if np.ndim(probe) == 3 and np.shape(probe)[0] >= 1:
        return probe[0], probe
    return probe, None


def _metadata_from_arrays(arrays: dict, source: str) -> ScanMetadata:
    values: dict[str, float | tuple[float, float]] = {}
    for key in METADATA_KEYS:
        if key not in arrays:
            continue
        array = _real_array(arrays[key], source, key)
        size = 1 if key in ("photon_energy_eV", "detector_distance_m") else 2
        if array.size != size or not np.all(np.isfinite(array)):
            raise ScanFormatError(source, key, f"expected {size} finite number(s), got shape {array.shape}")
        flat = array.astype(np.float64).ravel()
        values[key] = float(flat[0]) if size == 1 else (float(flat[0]), float(flat[1]))
    return ScanMetadata(**values)


def _lazy_amplitudes(
    patterns: LazyPatterns, arrays: dict, source: str, *, intensity: bool
) -> LazyPatterns | np.ndarray:
    """Lazily read patterns as amplitudes (counts are square-rooted on read; their sign is checked
    in the validation pass). A legacy (N, N, M) stack has no contiguous patterns: it is read whole."""
    if not np.issubdtype(patterns.raw_dtype, np.integer) and not np.issubdtype(patterns.raw_dtype, np.floating):
        raise ScanFormatError(source, "diffraction", f"expected a real numeric array, got dtype {patterns.raw_dtype}")
    # a zero-stride stand-in of the stored shape answers "is this the legacy layout?" without data
    shape_only = np.broadcast_to(np.zeros((), patterns.raw_dtype), patterns.shape)
    if _legacy_layout_fixed(shape_only, arrays["xcoords"], arrays["probeGuess"], source) is not shape_only:
        logger.info("%s: the legacy (N, N, M) stack is read whole, not lazily", source)
        whole = _legacy_layout_fixed(patterns.rows.read_range(0, len(patterns)), arrays["xcoords"],
                                     arrays["probeGuess"], source)
        return _intensity_to_amplitude(whole, source) if intensity else whole
    if intensity:
        logger.info("%s: diffraction read as intensities (%s); square-rooted on read", source, patterns.raw_dtype)
        return patterns.with_transform("sqrt")
    _hint_if_intensity(_sample_rows(patterns), source)
    return patterns


def _sample_rows(patterns: LazyPatterns) -> np.ndarray:
    """About _HINT_SAMPLE_SIZE stored values, as evenly spaced whole patterns."""
    per_row = max(1, patterns.size // max(1, len(patterns)))
    count = min(len(patterns), max(1, _HINT_SAMPLE_SIZE // per_row))
    rows = np.unique(np.linspace(0, len(patterns) - 1, count).astype(np.int64))
    return patterns.rows.read_rows(rows)


def _resolve_diffraction_alias(arrays: dict[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    if LEGACY_DIFFRACTION_KEY not in arrays:
        return arrays
    arrays = dict(arrays)
    legacy = arrays.pop(LEGACY_DIFFRACTION_KEY)
    if "diffraction" in arrays:
        logger.warning(
            "%s: both 'diffraction' and legacy 'diff3d' present; using 'diffraction'", source
        )
    else:
        logger.info("%s: legacy key 'diff3d' used for 'diffraction'", source)
        arrays["diffraction"] = legacy
    return arrays


def _legacy_layout_fixed(
    diffraction: np.ndarray, xcoords: np.ndarray, probe: np.ndarray, source: str
) -> np.ndarray:
    """Transpose a legacy (N, N, M) stack to (M, N, N); anything else is returned unchanged."""
    if diffraction.ndim != 3 or np.ndim(xcoords) != 1 or np.ndim(probe) != 2:
        return diffraction
    m = np.shape(xcoords)[0]
    n_probe = np.shape(probe)
    first, second, last = diffraction.shape
    if first != m and last == m and (first, second) == n_probe:
        logger.info(
            "%s: legacy (N, N, M) diffraction layout %s transposed to (M, N, N)",
            source,
            diffraction.shape,
        )
        return np.transpose(diffraction, (2, 0, 1))
    return diffraction


def _intensity_to_amplitude(diffraction: np.ndarray, source: str) -> np.ndarray:
    counts = diffraction.astype(np.float64)
    if np.any(counts < 0):
        raise ScanFormatError(
            source, "diffraction", f"intensities must be >= 0, found minimum {np.nanmin(counts)}"
        )
    logger.info(
        "%s: diffraction read as intensities (%s); square-rooted", source, diffraction.dtype
    )
    return np.sqrt(counts).astype(np.float32)


def _hint_if_intensity(diffraction: np.ndarray, source: str) -> None:
    if _looks_like_intensity(diffraction):
        logger.warning(
            "%s: 'diffraction' (%s, max %s) looks like photon counts rather than amplitudes; "
            "if so, load with intensity=True (--intensity). Loading as amplitudes.",
            source,
            diffraction.dtype,
            diffraction.max() if diffraction.size else "n/a",
        )


def _looks_like_intensity(diffraction: np.ndarray) -> bool:
    """Integer dtype, or integer-valued floats above 100 that are mostly not perfect squares."""
    if diffraction.size == 0:
        return False
    if np.issubdtype(diffraction.dtype, np.integer):
        return True
    step = max(1, diffraction.size // _HINT_SAMPLE_SIZE)
    sample = diffraction.ravel()[::step].astype(np.float64)
    if not np.all(np.isfinite(sample)) or np.any(sample < 0):
        return False
    if not np.all(sample == np.round(sample)) or sample.max() <= 100:
        return False
    nonzero = sample[sample > 0]
    roots = np.round(np.sqrt(nonzero))
    return bool(np.mean(roots * roots == nonzero) < 0.5)


# --------------------------------------------------------------------------------------------
# validation of single fields
# --------------------------------------------------------------------------------------------


def _real_array(values: object, source: str | None, key: str) -> np.ndarray:
    array = np.asarray(values)
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ScanFormatError(
            source, key, f"expected a real numeric array, got dtype {array.dtype}"
        )
    return array


def _complex_array(values: object, source: str | None, key: str) -> np.ndarray:
    array = np.asarray(values)
    if not np.issubdtype(array.dtype, np.number):
        raise ScanFormatError(
            source, key, f"expected a complex numeric array, got dtype {array.dtype}"
        )
    return array


def _cast(array: np.ndarray, dtype: type, source: str | None, key: str) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        cast = np.ascontiguousarray(array, dtype=dtype)
    bad = ~np.isfinite(cast)
    if np.any(bad):
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ScanFormatError(
            source, key, f"{int(bad.sum())} non-finite value(s) (NaN/inf), first at index {first}"
        )
    return cast


def _require_ndim(array: np.ndarray, ndim: int, layout: str, source: str | None, key: str) -> None:
    if array.ndim != ndim:
        raise ScanFormatError(
            source, key, f"expected a {ndim}-D array {layout}, got shape {array.shape}"
        )


def _checked_diffraction(values: object, source: str | None) -> np.ndarray | LazyPatterns:
    key = "diffraction"
    lazy = isinstance(values, LazyPatterns)
    array = values if lazy else _real_array(values, source, key)
    _require_ndim(array, 3, "(M, N, N)", source, key)
    m, rows, cols = array.shape
    if m == 0:
        raise ScanFormatError(source, key, "empty scan: no diffraction patterns (M = 0)")
    if rows != cols or rows == 0:
        raise ScanFormatError(
            source,
            key,
            f"expected square N x N patterns, got {rows} x {cols} (shape {array.shape})",
        )
    if lazy:
        return _checked_lazy_diffraction(values, source)
    amplitudes = _cast(array, np.float32, source, key)
    if np.any(amplitudes < 0):
        raise _negative_amplitudes(source, int((amplitudes < 0).sum()), amplitudes.min())
    return amplitudes


def _negative_amplitudes(source: str | None, count: int, minimum: float) -> ScanFormatError:
    return ScanFormatError(
        source,
        "diffraction",
        f"{count} negative amplitude(s) (minimum {minimum}); amplitudes must be >= 0",
    )


def _checked_lazy_diffraction(patterns: LazyPatterns, source: str | None) -> LazyPatterns:
    """The checks of an eager load (stored counts >= 0, finite and non-negative amplitudes, with
    the same messages) in one chunked pass that never holds the scan; the pass also yields each
    pattern's energy, kept for the scale contract. A scan checked once is not read again."""
    if patterns.pattern_energies_known:
        return patterns
    key = "diffraction"
    counts_min, non_finite, first_non_finite = np.inf, 0, None
    negative, amplitude_min = 0, np.inf
    energies = np.empty(len(patterns), dtype=np.float64)  # filled in place, see pattern_energies
    for start, raw in patterns.raw_chunks():
        if patterns.transform == "sqrt" and raw.size:
            counts_min = min(counts_min, float(np.nanmin(raw)))
        amplitudes = patterns.converted(raw)
        bad = ~np.isfinite(amplitudes)
        if first_non_finite is None and bad.any():
            first = np.argwhere(bad)[0]
            first_non_finite = (int(first[0]) + start, *(int(i) for i in first[1:]))
        non_finite += int(bad.sum())
        below = amplitudes < 0
        negative += int(below.sum())
        if amplitudes.size:
            amplitude_min = min(amplitude_min, float(np.nanmin(amplitudes)) if not bad.all() else np.inf)
        energies[start : start + len(amplitudes)] = pattern_energy(amplitudes)
    if counts_min < 0:
        raise ScanFormatError(source, key, f"intensities must be >= 0, found minimum {counts_min}")
    if non_finite:
        raise ScanFormatError(
            source, key, f"{non_finite} non-finite value(s) (NaN/inf), first at index {first_non_finite}"
        )
    if negative:
        raise _negative_amplitudes(source, negative, np.float32(amplitude_min))
    patterns.remember_energies(energies)
    return patterns


def _checked_vector(values: object, source: str | None, key: str, m: int) -> np.ndarray:
    array = _real_array(values, source, key)
    _require_ndim(array, 1, "(M,)", source, key)
    if array.shape[0] != m:
        raise ScanFormatError(
            source,
            key,
            f"has {array.shape[0]} entries, expected one per diffraction pattern (M = {m})",
        )
    return _cast(array, np.float64, source, key)


def _start_or_default(
    values: object | None, coords: np.ndarray, source: str | None, key: str
) -> np.ndarray:
    if values is None:
        return coords.copy()
    return _checked_vector(values, source, key, coords.shape[0])


def _checked_scan_index(values: object | None, source: str | None, m: int) -> np.ndarray:
    key = "scan_index"
    if values is None:
        return np.zeros(m, dtype=np.int64)
    array = _real_array(values, source, key)
    as_float = _checked_vector(array, source, key, m)
    if not np.all(as_float == np.round(as_float)):
        raise ScanFormatError(source, key, "expected integer values")
    return np.ascontiguousarray(array, dtype=np.int64)


def _checked_probe(values: object, source: str | None, n: int) -> np.ndarray:
    key = "probeGuess"
    array = _complex_array(values, source, key)
    _require_ndim(array, 2, "(N, N)", source, key)
    if array.shape != (n, n):
        raise ScanFormatError(
            source,
            key,
            f"probe shape {array.shape} does not match the diffraction pattern size ({n}, {n})",
        )
    return _cast(array, np.complex64, source, key)


def _checked_probe_modes(values: object | None, probe: np.ndarray, source: str | None) -> np.ndarray | None:
    """(K, N, N) incoherent modes whose first is ``probe``; a single mode collapses to None."""
    if values is None:
        return None
    key = "probeGuess"
    array = _complex_array(values, source, key)
    n = probe.shape[0]
    if array.ndim != 3 or array.shape[1:] != (n, n) or array.shape[0] == 0:
        raise ScanFormatError(
            source, key, f"expected probe modes of shape (K, {n}, {n}), got {array.shape}"
        )
    modes = _cast(array, np.complex64, source, key)
    if not np.array_equal(modes[0], probe):
        raise ScanFormatError(source, key, "the first probe mode must be the scan's probe")
    return modes if modes.shape[0] > 1 else None


def _checked_bad_pixels(values: object | None, source: str | None, n: int) -> np.ndarray | None:
    """(N, N) bool mask of bad detector pixels; an all-good mask collapses to None."""
    if values is None:
        return None
    key = "bad_pixels"
    array = np.asarray(values)
    if array.shape != (n, n):
        raise ScanFormatError(
            source, key, f"expected a ({n}, {n}) mask matching the patterns, got shape {array.shape}"
        )
    if array.dtype != np.bool_ and not np.all(np.isin(array, (0, 1))):
        raise ScanFormatError(source, key, "expected a boolean mask (True = bad pixel)")
    mask = np.ascontiguousarray(array, dtype=bool)
    if mask.all():
        raise ScanFormatError(source, key, "every detector pixel is marked bad")
    return mask if mask.any() else None


def _checked_object(values: object, source: str | None) -> np.ndarray:
    key = "objectGuess"
    array = _complex_array(values, source, key)
    _require_ndim(array, 2, "(H, W)", source, key)
    return _cast(array, np.complex64, source, key)


def _check_positions_inside(
    xcoords: np.ndarray,
    ycoords: np.ndarray,
    object_shape: tuple[int, ...],
    n: int,
    source: str | None,
) -> None:
    """Every N x N patch centred at (x, y) must lie inside the (H, W) object."""
    height, width = object_shape
    half = n / 2
    tol = POSITION_TOLERANCE
    x_ok = (xcoords >= half - tol) & (xcoords <= width - half + tol)
    y_ok = (ycoords >= half - tol) & (ycoords <= height - half + tol)
    outside = np.flatnonzero(~(x_ok & y_ok))
    if outside.size == 0:
        return
    i = int(outside[0])
    raise ScanFormatError(
        source,
        "xcoords/ycoords",
        f"{outside.size} of {xcoords.size} position(s) lie outside objectGuess of shape "
        f"{(height, width)} for patch size {n}; first is index {i} at (x={xcoords[i]}, "
        f"y={ycoords[i]}); expected {half} <= x <= {width - half} and {half} <= y <= {height - half}",
    )


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------


def _canonical_arrays(scan: Scan) -> dict[str, np.ndarray]:
    arrays = {
        "diffraction": scan.diffraction,
        "xcoords": scan.xcoords,
        "ycoords": scan.ycoords,
        "probeGuess": scan.probe,
        "xcoords_start": scan.xcoords_start,
        "ycoords_start": scan.ycoords_start,
        "scan_index": scan.scan_index,
        FORMAT_KEY: np.array(FORMAT_NAME),
    }
    if scan.probe_modes is not None:
        arrays["probeGuess"] = scan.probe_modes
    if scan.object is not None:
        arrays["objectGuess"] = scan.object
    if scan.bad_pixels is not None:
        arrays["bad_pixels"] = scan.bad_pixels
    for key in METADATA_KEYS:
        value = getattr(scan.metadata, key)
        if value is not None:
            arrays[key] = np.asarray(value, dtype=np.float64)
    return arrays
