"""Diffraction patterns read from disk on demand (docs/design/spec.md#data-contract), so that a scan
far larger than memory can be reconstructed: only the rows a batch asks for are read.

Two sources: an uncompressed member of a ``.npz`` archive (what ``np.savez`` writes), found through
the archive's local file header and the member's ``.npy`` header, and an HDF5 dataset. The npz
rows are read with positional file reads rather than a memory map: the pages of a memory map that
a pass over the scan touches count as the process's resident memory until the kernel reclaims
them, while read pages stay in the page cache, which the kernel frees as it needs.

:class:`LazyPatterns` is what ``Scan.diffraction`` holds for a scan loaded with ``lazy=True``:
(M, N, N) float32 amplitudes, indexed along the first axis only (an int, a slice or an integer
array of any shape), with an optional transform on read (``sqrt`` for files that store counts).
"""

from __future__ import annotations

import logging
import os
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.lib import format as npy_format

log = logging.getLogger(__name__)

TRANSFORMS = (None, "sqrt")
# Rows per chunk of a pass over the whole scan (validation, pattern energies): about this many bytes
CHUNK_BYTES = 16 * 2**20
_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")  # a zip member's local file header (30 bytes)
_LOCAL_HEADER_SIGNATURE = b"PK\x03\x04"


class RowSource(Protocol):
    """Raw (unconverted) rows of an (M, ...) array on disk."""

    shape: tuple[int, ...]
    dtype: np.dtype

    def read_range(self, start: int, stop: int) -> np.ndarray: ...

    def read_rows(self, rows: np.ndarray) -> np.ndarray:
        """``rows``: sorted, distinct row indices."""
        ...


@dataclass(frozen=True)
class FileRows:
    """Rows of a C-ordered array stored uncompressed at byte ``offset`` of ``path``."""

    path: Path
    offset: int
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize

    def read_range(self, start: int, stop: int) -> np.ndarray:
        out = np.empty((stop - start, *self.shape[1:]), dtype=self.dtype)
        with open(self.path, "rb") as handle:
            self._read_into(handle, start, out)
        return out

    def read_rows(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), *self.shape[1:]), dtype=self.dtype)
        with open(self.path, "rb") as handle:
            # runs of consecutive rows (a scan's neighbours often are) in one read each
            breaks = np.flatnonzero(np.diff(rows) != 1) + 1
            for first, last in zip(np.r_[0, breaks], np.r_[breaks, len(rows)], strict=True):
                self._read_into(handle, int(rows[first]), out[first:last])
        return out

    def _read_into(self, handle, start: int, out: np.ndarray) -> None:
        handle.seek(self.offset + start * self.row_bytes)
        view = memoryview(out).cast("B")
        if handle.readinto(view) != view.nbytes:
            raise OSError(f"{self.path}: truncated: rows {start}..{start + len(out)} lie past its end")


@dataclass(frozen=True)
class HDF5Rows:
    """Rows of an HDF5 dataset; the file is opened for each read, so nothing stays open."""

    path: Path
    key: str
    shape: tuple[int, ...]
    dtype: np.dtype

    def read_range(self, start: int, stop: int) -> np.ndarray:
        with _open_hdf5(self.path) as handle:
            return np.asarray(handle[self.key][start:stop])

    def read_rows(self, rows: np.ndarray) -> np.ndarray:
        with _open_hdf5(self.path) as handle:
            # h5py's point selection wants increasing indices: the caller's are sorted and distinct
            return np.asarray(handle[self.key][rows.tolist()])


@dataclass(frozen=True, eq=False)
class MaskedRows:
    """Rows of ``source`` with the pixels ``zeroed`` ((N, N) bool: bad detector pixels) set to 0 on
    read, as the eager readers set them: detectors write saturation markers or NaN there."""

    source: RowSource
    zeroed: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.source.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.source.dtype)

    def read_range(self, start: int, stop: int) -> np.ndarray:
        return self._masked(self.source.read_range(start, stop))

    def read_rows(self, rows: np.ndarray) -> np.ndarray:
        return self._masked(self.source.read_rows(rows))

    def _masked(self, raw: np.ndarray) -> np.ndarray:
        # the sources return fresh arrays, zeroed in place; a read-only one is copied first
        raw = raw if raw.flags.writeable else raw.copy()
        raw[:, self.zeroed] = 0
        return raw


@dataclass(frozen=True, eq=False)
class SelectedRows:
    """Rows ``stored[i]`` of ``source`` as row i: patterns paired with positions by scan index,
    in the positions' order."""

    source: RowSource
    stored: np.ndarray  # (M,) int64 rows of source

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.stored), *self.source.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.source.dtype)

    def read_range(self, start: int, stop: int) -> np.ndarray:
        stored = self.stored[start:stop]
        if stored.size and np.all(np.diff(stored) == 1):  # a run on disk: one read
            return self.source.read_range(int(stored[0]), int(stored[-1]) + 1)
        return self._read_stored(stored)

    def read_rows(self, rows: np.ndarray) -> np.ndarray:
        return self._read_stored(self.stored[rows])

    def _read_stored(self, stored: np.ndarray) -> np.ndarray:
        if not stored.size:
            return np.empty((0, *self.shape[1:]), self.dtype)
        distinct, inverse = np.unique(stored, return_inverse=True)
        return self.source.read_rows(distinct)[inverse.reshape(-1)]


def _open_hdf5(path: Path):
    # the readers' opener: compression filters registered, unreadable files reported by name
    from ptychopinn.data.hdf5 import open_hdf5

    return open_hdf5(path)


class LazyPatterns:
    """(M, N, N) float32 patterns read on demand from a :class:`RowSource`.

    ``transform``: None (stored amplitudes, cast to float32) or ``"sqrt"`` (stored counts: the
    square root in float64, then float32, exactly as an eager load with ``intensity=True``).
    """

    dtype = np.dtype(np.float32)

    def __init__(self, rows: RowSource, *, source: str, key: str, transform: str | None = None):
        if transform not in TRANSFORMS:
            raise ValueError(f"transform must be one of {TRANSFORMS}, got {transform!r}")
        self.rows = rows
        self.source = source
        self.key = key
        self.transform = transform
        self._energies: np.ndarray | None = None

    # ---- array-like shape ------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.rows.shape)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def raw_dtype(self) -> np.dtype:
        return np.dtype(self.rows.dtype)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __len__(self) -> int:
        return int(self.shape[0])

    def __repr__(self) -> str:
        return (f"LazyPatterns({self.source!r}, key={self.key!r}, shape={self.shape}, "
                f"stored {self.raw_dtype}, transform={self.transform})")

    def with_transform(self, transform: str | None) -> LazyPatterns:
        return LazyPatterns(self.rows, source=self.source, key=self.key, transform=transform)

    # ---- reading ---------------------------------------------------------------------------

    def __getitem__(self, index) -> np.ndarray:
        """Rows along the first axis: an int, a slice, or an integer array of any shape (the
        result then has that shape followed by (N, N), like NumPy's fancy indexing)."""
        if isinstance(index, tuple):
            raise TypeError(f"{self!r}: only the first axis can be indexed, got {index!r}")
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step == 1:
                return self.converted(self.rows.read_range(start, max(start, stop)))
            return self[np.arange(start, stop, step)]
        indices = np.asarray(index)
        if indices.dtype == np.bool_ or not np.issubdtype(indices.dtype, np.integer):
            raise TypeError(f"{self!r}: index with ints, slices or integer arrays, got {indices.dtype}")
        if indices.ndim == 0:
            return self[slice(*_single_row(int(indices), len(self)))][0]
        return self.take(indices)

    def take(self, indices: np.ndarray) -> np.ndarray:
        flat = np.asarray(indices, dtype=np.int64).reshape(-1)
        m = len(self)
        if flat.size and (flat.min() < -m or flat.max() >= m):
            raise IndexError(f"{self!r}: row index out of range for {m} patterns")
        flat = np.where(flat < 0, flat + m, flat)
        distinct, inverse = np.unique(flat, return_inverse=True)
        rows = self.converted(self.rows.read_rows(distinct)) if distinct.size else \
            np.empty((0, *self.shape[1:]), np.float32)
        return rows[inverse.reshape(-1)].reshape(*np.shape(indices), *self.shape[1:])

    def chunks(self, rows_per_chunk: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, float32 rows) over the whole scan, in order."""
        for start, raw in self.raw_chunks(rows_per_chunk):
            yield start, self.converted(raw)

    def raw_chunks(self, rows_per_chunk: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, rows as stored) over the whole scan, in order."""
        step = rows_per_chunk or self.rows_per_chunk()
        for start in range(0, len(self), step):
            yield start, self.rows.read_range(start, min(start + step, len(self)))

    def rows_per_chunk(self) -> int:
        row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * 8  # float64 while converting
        return max(1, CHUNK_BYTES // max(1, row_bytes))

    def converted(self, raw: np.ndarray) -> np.ndarray:
        """Rows as stored → float32 amplitudes."""
        # negative counts and overflowing values are reported by the validation pass, not warned of
        with np.errstate(over="ignore", invalid="ignore"):
            if self.transform == "sqrt":
                return np.sqrt(raw.astype(np.float64)).astype(np.float32)
            return np.ascontiguousarray(raw, dtype=np.float32)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """The whole scan in memory: for code that needs it all (training); streaming code
        indexes batches instead."""
        log.warning("%s: reading all %d patterns of '%s' into memory (%.2f GB)", self.source, len(self),
                    self.key, self.nbytes / 1e9)
        whole = np.concatenate([chunk for _, chunk in self.chunks()]) if len(self) else \
            np.empty(self.shape, np.float32)
        return whole if dtype is None else whole.astype(dtype)

    # ---- whole-scan statistics -------------------------------------------------------------

    def pattern_energies(self) -> np.ndarray:
        """(M,) Σ X² of each pattern in float64, from one chunked pass (kept: the scale contract,
        the data fit and refinement all ask for it)."""
        if self._energies is None:
            # filled in place: small arrays kept between the chunks' large temporaries fragment the heap
            energies = np.empty(len(self), dtype=np.float64)
            for start, chunk in self.chunks():
                energies[start : start + len(chunk)] = pattern_energy(chunk)
            self._energies = energies
        return self._energies

    @property
    def pattern_energies_known(self) -> bool:
        return self._energies is not None

    def remember_energies(self, energies: np.ndarray) -> None:
        """Keep the per-pattern energies a validation pass computed along the way."""
        self._energies = np.asarray(energies, dtype=np.float64)


def pattern_energy(patterns: np.ndarray) -> np.ndarray:
    """Σ X² over each (N, N) pattern, float64: the per-pattern term of the scale contract's n̄."""
    x = np.asarray(patterns, dtype=np.float64)
    return np.sum(x**2, axis=(-2, -1))


def _single_row(index: int, m: int) -> tuple[int, int]:
    if not -m <= index < m:
        raise IndexError(f"row {index} out of range for {m} patterns")
    index = index + m if index < 0 else index
    return index, index + 1


# --------------------------------------------------------------------------------------------
# opening sources
# --------------------------------------------------------------------------------------------


def npz_member_rows(path: str | os.PathLike[str], key: str) -> FileRows | None:
    """Where the rows of member ``key`` of the ``.npz`` at ``path`` lie, or None when they cannot
    be read in place (a compressed member, a Fortran-ordered or object array), with a log line:
    the caller then reads the member whole."""
    path = Path(path)
    with zipfile.ZipFile(path) as archive:
        names = {name for name in archive.namelist() if name in (f"{key}.npy", key)}
        if not names:  # np.load lists it, so it is there under another spelling
            log.info("%s: member '%s' not found as '%s.npy'; it is read whole, not lazily", path, key, key)
            return None
        info = archive.getinfo(sorted(names)[-1])
    if info.compress_type != zipfile.ZIP_STORED:
        log.info("%s: member '%s' is compressed; it is read whole, not lazily", path, key)
        return None
    with open(path, "rb") as handle:
        handle.seek(info.header_offset)
        fields = _LOCAL_HEADER.unpack(handle.read(_LOCAL_HEADER.size))
        if fields[0] != _LOCAL_HEADER_SIGNATURE:
            raise ValueError(f"{path}: member '{key}': no zip local file header at its recorded offset")
        name_length, extra_length = fields[-2], fields[-1]
        handle.seek(info.header_offset + _LOCAL_HEADER.size + name_length + extra_length)
        shape, fortran_order, dtype = _npy_header(handle)
        offset = handle.tell()
    if fortran_order or dtype.hasobject:
        log.info("%s: member '%s' is %s; it is read whole, not lazily", path, key,
                 "Fortran-ordered" if fortran_order else "an object array")
        return None
    return FileRows(path, offset, tuple(shape), dtype)


def _npy_header(handle) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = npy_format.read_magic(handle)
    if version == (1, 0):
        return npy_format.read_array_header_1_0(handle)
    return npy_format.read_array_header_2_0(handle)


def npz_patterns(path: str | os.PathLike[str], key: str = "diffraction", *,
                 transform: str | None = None) -> LazyPatterns | None:
    """The member ``key`` of an ``.npz`` read lazily, or None when it must be read whole."""
    rows = npz_member_rows(path, key)
    return None if rows is None else LazyPatterns(rows, source=str(path), key=key, transform=transform)


def hdf5_patterns(path: str | os.PathLike[str], key: str, *, transform: str | None = None) -> LazyPatterns:
    """The dataset ``key`` of an HDF5 file read lazily; a missing file or dataset is a
    :class:`~ptychopinn.data.scan.ScanFormatError` naming both (the readers' checks:
    :func:`ptychopinn.data.hdf5.pattern_rows`)."""
    from ptychopinn.data.hdf5 import pattern_rows, require_dataset

    path = Path(path)
    with _open_hdf5(path) as handle:
        rows = pattern_rows(require_dataset(handle, key, path, "an (M, N, N) stack of patterns"), path, key)
    return LazyPatterns(rows, source=str(path), key=key, transform=transform)


# --------------------------------------------------------------------------------------------
# streaming the rows to a torch device (the data fit and refinement)
# --------------------------------------------------------------------------------------------


class DevicePatterns:
    """Lazy patterns that index like the device tensor they stand in for: ``patterns[batch]``
    with a tensor of row indices gives the float32 rows on ``device``; only those rows are read."""

    def __init__(self, patterns: LazyPatterns, device):
        self.patterns = patterns
        self.device = device

    def __len__(self) -> int:
        return len(self.patterns)

    def __getitem__(self, batch):
        import torch

        rows = batch.detach().cpu().numpy() if isinstance(batch, torch.Tensor) else np.asarray(batch)
        return torch.from_numpy(self.patterns[rows]).to(self.device)


def patterns_on_device(diffraction, device):
    """``diffraction`` as the measured patterns of a torch computation: the whole array as one
    float32 tensor on ``device``, or, for :class:`LazyPatterns`, a :class:`DevicePatterns` that
    reads each batch on demand."""
    import torch

    if isinstance(diffraction, LazyPatterns):
        return DevicePatterns(diffraction, device)
    return torch.tensor(diffraction, dtype=torch.float32, device=device)
