"""Reading, writing and validating scan files (docs/design/spec.md#data-contract).

A scan is one ``.npz`` archive with the keys ``diffraction`` (M, N, N), ``xcoords`` and
``ycoords`` (M,), ``probeGuess`` (N, N) and the optional ``objectGuess``, ``xcoords_start``,
``ycoords_start`` and ``scan_index``. Reading never unpickles (``allow_pickle=False``); every
breach of the contract becomes a :class:`ScanFormatError` naming the file, the key and what was
expected. Legacy layouts (``diff3d``, an (N, N, M) stack, raw intensities) are accepted and
reported in a log line.
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
from ptychopinn.data.scan import Scan, ScanFormatError

logger = logging.getLogger(__name__)

REQUIRED_KEYS = ("diffraction", "xcoords", "ycoords", "probeGuess")
OPTIONAL_KEYS = ("objectGuess", "xcoords_start", "ycoords_start", "scan_index")
LEGACY_DIFFRACTION_KEY = "diff3d"
KNOWN_KEYS = frozenset(REQUIRED_KEYS + OPTIONAL_KEYS + (LEGACY_DIFFRACTION_KEY,))

POSITION_TOLERANCE = 1e-6
_READ_ERRORS = (zipfile.BadZipFile, EOFError, ValueError, OSError, zlib.error)
_HINT_SAMPLE_SIZE = 100_000


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------


def load_scan(path: str | os.PathLike[str], *, intensity: bool = False) -> Scan:
    """Read and validate a scan file.

    ``intensity=True`` declares that the stored patterns are photon counts; they are
    square-rooted into amplitudes. A missing file raises :class:`FileNotFoundError`; anything
    else that is wrong raises :class:`ScanFormatError`.
    """
    path = Path(path)
    arrays = _read_npz(path)
    return validate_scan(_scan_from_arrays(arrays, str(path), intensity=intensity))


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
    )


# --------------------------------------------------------------------------------------------
# reading the archive
# --------------------------------------------------------------------------------------------


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """The known arrays of the archive at ``path``, read without unpickling."""
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
        return {key: _read_member(archive, key, path) for key in _known_members(archive, path)}


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
    diffraction = _real_array(arrays["diffraction"], source, "diffraction")
    diffraction = _legacy_layout_fixed(diffraction, arrays["xcoords"], arrays["probeGuess"], source)
    if intensity:
        diffraction = _intensity_to_amplitude(diffraction, source)
    else:
        _hint_if_intensity(diffraction, source)
    return Scan(
        diffraction=diffraction,
        xcoords=arrays["xcoords"],
        ycoords=arrays["ycoords"],
        probe=arrays["probeGuess"],
        object=arrays.get("objectGuess"),
        xcoords_start=arrays.get("xcoords_start"),
        ycoords_start=arrays.get("ycoords_start"),
        scan_index=arrays.get("scan_index"),
        source=source,
    )


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


def _checked_diffraction(values: object, source: str | None) -> np.ndarray:
    key = "diffraction"
    array = _real_array(values, source, key)
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
    amplitudes = _cast(array, np.float32, source, key)
    if np.any(amplitudes < 0):
        raise ScanFormatError(
            source,
            key,
            f"{int((amplitudes < 0).sum())} negative amplitude(s) (minimum {amplitudes.min()}); "
            "amplitudes must be >= 0",
        )
    return amplitudes


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
    }
    if scan.object is not None:
        arrays["objectGuess"] = scan.object
    return arrays
