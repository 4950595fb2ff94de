"""HDF5 access shared by the ptychodus and CXI readers (docs/design/spec.md#data-contract).

h5py and hdf5plugin are imported here, inside functions, so importing the package stays cheap.
``hdf5plugin`` must be imported before a file is opened: beamline detectors write their patterns
with compression filters (bitshuffle/LZ4, Blosc) that plain HDF5 cannot decode.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ptychopinn.data.scan import ScanFormatError

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# HDF5 allows a user block before the superblock; the signature then sits at 512, 1024, ...
_SIGNATURE_OFFSETS = (0, 512, 1024, 2048)


def is_hdf5(path: Path) -> bool:
    """Whether ``path`` is a file that starts (after an optional user block) like HDF5."""
    if not path.is_file():
        return False
    with open(path, "rb") as handle:
        for offset in _SIGNATURE_OFFSETS:
            handle.seek(offset)
            if handle.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
                return True
    return False


@contextlib.contextmanager
def open_hdf5(path: Path) -> Iterator[Any]:
    """``path`` opened read-only, with the compression filters registered; an unreadable file
    becomes a :class:`ScanFormatError`."""
    import h5py
    import hdf5plugin  # noqa: F401  (registers the filters on import)

    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise ScanFormatError(path, None, f"not a readable HDF5 file ({err})") from err
    with handle:
        yield handle


def require_dataset(handle: Any, key: str, source: Path, expected: str) -> Any:
    """The dataset at ``key``, or a :class:`ScanFormatError` saying what should be there."""
    import h5py

    node = handle.get(key)
    if node is None:
        raise ScanFormatError(source, key, f"missing; expected {expected}")
    if not isinstance(node, h5py.Dataset):
        raise ScanFormatError(source, key, f"is a {type(node).__name__}, expected a dataset: {expected}")
    return node


def read_patterns(dataset: Any, source: Path, key: str) -> np.ndarray:
    """All patterns of an (M, H, W) dataset as a float64 array of counts (see :func:`pattern_rows`
    for reading them on demand)."""
    _check_patterns(dataset, source, key)
    try:
        counts = dataset[()]
    except OSError as err:  # a filter that is not available, or a truncated file
        raise ScanFormatError(source, key, f"cannot be read ({err})") from err
    return counts.astype(np.float64, copy=False)


def pattern_rows(dataset: Any, source: Path, key: str):
    """The patterns of an (M, H, W) dataset left on disk: a
    :class:`~ptychopinn.data.lazy.HDF5Rows` that reads the rows asked for, checked as
    :func:`read_patterns` checks them (the values are checked by the scan's validation pass)."""
    from ptychopinn.data.lazy import HDF5Rows

    _check_patterns(dataset, source, key)
    return HDF5Rows(Path(source), dataset.name, tuple(dataset.shape), np.dtype(dataset.dtype))


def _check_patterns(dataset: Any, source: Path, key: str) -> None:
    if dataset.ndim != 3:
        raise ScanFormatError(source, key, f"expected (M, N, N) patterns, got shape {dataset.shape}")
    if not (np.issubdtype(dataset.dtype, np.integer) or np.issubdtype(dataset.dtype, np.floating)):
        raise ScanFormatError(source, key, f"expected real-valued counts, got dtype {dataset.dtype}")


def read_scalar(handle: Any, key: str, source: Path, *, attrs: Any = None) -> float | None:
    """A real scalar from a dataset (or from ``attrs`` when given), None when absent."""
    container = handle if attrs is None else attrs
    if key not in container:
        return None
    raw = container[key]
    value = np.asarray(raw[()] if attrs is None else raw)
    if value.size != 1 or not np.issubdtype(value.dtype, np.number):
        raise ScanFormatError(source, key, f"expected a real scalar, got {value.dtype} of shape {value.shape}")
    number = float(value.reshape(()))
    if not np.isfinite(number):
        raise ScanFormatError(source, key, f"expected a finite number, got {number}")
    return number
