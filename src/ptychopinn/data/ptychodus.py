"""ptychodus files as scans (docs/design/spec.md#data-contract).

Three layouts are read: a workflow directory (``diffraction.h5`` and ``product.h5`` side by
side), a ``diffraction.h5`` (with ``product.h5`` beside it, or a product given explicitly), and
ptychodus's "export for PtychoPINN" ``.npz`` (its ``diff3d`` holds counts, its ``probeGuess`` all
probe modes, its positions put probe pixel (N − 1)/2 at the position, and ``bad_pixels`` is the
mask of pixels it inpainted). Patterns are paired with positions by scan index; positions in
metres become this project's pixels through the product's object geometry (module
:mod:`ptychopinn.data.geometry`).

A product's object is a previous reconstruction or an initial guess, never a ground truth: it is
not loaded as the scan's reference (which would be scored against). :func:`read_product` gives
it to Python callers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ptychopinn.atomic import atomic_path
from ptychopinn.data.hdf5 import (
    open_hdf5,
    pattern_rows,
    read_patterns,
    read_scalar,
    require_dataset,
)
from ptychopinn.data.lazy import LazyPatterns, MaskedRows, RowSource, SelectedRows
from ptychopinn.data.product import Product, probe_modes_from_array, read_product
from ptychopinn.data.scan import Scan, ScanFormatError, ScanMetadata

logger = logging.getLogger(__name__)

DIFFRACTION_FILE = "diffraction.h5"
PRODUCT_FILE = "product.h5"
# ptychodus DiffractionFileKeys
PATTERNS = "patterns"
INDEXES = "indexes"
BAD_PIXELS = "bad_pixels"
DETECTOR_PIXEL_WIDTH = "detector_pixel_width_m"
DETECTOR_PIXEL_HEIGHT = "detector_pixel_height_m"
# ptychodus's export puts probe pixel (N − 1)/2 at a position, this project probe pixel N/2
HALF_PIXEL = 0.5


@dataclass(frozen=True)
class DiffractionData:
    """The contents of a ptychodus ``diffraction.h5``."""

    indexes: np.ndarray  # (M,) int64
    counts: np.ndarray | RowSource  # (M, N, N) float64, or left on disk (a lazy read)
    detector_pixel_size_m: tuple[float, float] | None
    bad_pixels: np.ndarray | None  # (N, N) bool


# --------------------------------------------------------------------------------------------
# locating the files
# --------------------------------------------------------------------------------------------


def is_workflow_directory(path: Path) -> bool:
    return path.is_dir() and (path / DIFFRACTION_FILE).is_file()


def locate_pair(path: Path, product: Path | None = None, *, is_product: bool = False) -> tuple[Path, Path]:
    """(diffraction.h5, product.h5) for a workflow directory, a diffraction file or a product file
    (``is_product``, or named product.h5)."""
    if path.is_dir():
        if not (path / DIFFRACTION_FILE).is_file():
            raise ScanFormatError(path, DIFFRACTION_FILE, "a directory without a ptychodus diffraction.h5")
        diffraction = path / DIFFRACTION_FILE
    elif (is_product or path.name == PRODUCT_FILE) and product is None:
        diffraction, product = path.with_name(DIFFRACTION_FILE), path
        if not diffraction.is_file():
            raise ScanFormatError(path, PATTERNS, "a product file holds no patterns, and there is no "
                                  f"{DIFFRACTION_FILE} beside it; pass the diffraction file")
    else:
        diffraction = path
    product = product if product is not None else diffraction.with_name(PRODUCT_FILE)
    if not product.is_file():
        raise ScanFormatError(
            diffraction, None, f"no {PRODUCT_FILE} beside it: the positions and probe live in a ptychodus "
            "product file; put it there or pass its path"
        )
    return diffraction, product


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------


def read_diffraction(path: Path, *, lazy: bool = False) -> DiffractionData:
    """Read a ptychodus ``diffraction.h5`` (patterns as counts; with ``lazy`` left on disk)."""
    with open_hdf5(path) as handle:
        patterns = require_dataset(handle, PATTERNS, path, "(M, N, N) diffraction counts")
        counts = (pattern_rows if lazy else read_patterns)(patterns, path, PATTERNS)
        width = read_scalar(None, DETECTOR_PIXEL_WIDTH, path, attrs=patterns.attrs)
        height = read_scalar(None, DETECTOR_PIXEL_HEIGHT, path, attrs=patterns.attrs)
        indexes = np.asarray(require_dataset(handle, INDEXES, path, "(M,) scan indexes of the patterns")[()])
        bad = handle.get(BAD_PIXELS)
        bad_pixels = None if bad is None else np.asarray(bad[()])
    if indexes.ndim != 1 or indexes.shape[0] != counts.shape[0] or not np.issubdtype(indexes.dtype, np.integer):
        raise ScanFormatError(
            path, INDEXES, f"expected {counts.shape[0]} integer indexes, one per pattern, got "
            f"{indexes.dtype} of shape {indexes.shape}"
        )
    if bad_pixels is not None and bad_pixels.shape != counts.shape[1:]:
        raise ScanFormatError(path, BAD_PIXELS, f"expected a {counts.shape[1:]} mask, got shape {bad_pixels.shape}")
    pixel = None if width is None or height is None else (width, height)
    mask = None if bad_pixels is None else bad_pixels.astype(bool)
    return DiffractionData(indexes.astype(np.int64), counts, pixel, mask)


def read_workflow(path: Path, product_path: Path | None = None, *, is_product: bool = False,
                  lazy: bool = False) -> Scan:
    """A scan from ptychodus's diffraction and product files (see :func:`locate_pair`); with
    ``lazy`` the patterns stay on disk and are read as asked for (ptychopinn.data.lazy)."""
    diffraction_path, product_path = locate_pair(path, product_path, is_product=is_product)
    data = read_diffraction(diffraction_path, lazy=lazy)
    product = read_product(product_path)
    source = f"{diffraction_path} + {product_path.name}"
    pattern_rows, position_rows = pair_by_index(data.indexes, product.indexes, diffraction_path, product_path)
    counts = _selected(data.counts, pattern_rows)
    if counts.shape[-1] != product.probes.shape[-1] or counts.shape[-2] != counts.shape[-1]:
        raise ScanFormatError(
            product_path, "probe", f"probe of {product.probes.shape[-2:]} pixels for patterns of "
            f"{counts.shape[-2:]} pixels; expected square patterns the probe's size"
        )
    if product.object.size:
        logger.info("%s: the product's object (a previous reconstruction or guess) is not used as a "
                    "reference; read it with ptychopinn.data.read_product", product_path)
    return Scan(
        diffraction=counts_to_amplitudes(counts, data.bad_pixels, diffraction_path),
        xcoords=product.xcoords[position_rows],
        ycoords=product.ycoords[position_rows],
        probe=product.probes[0],
        probe_modes=product.probes if product.probes.shape[0] > 1 else None,
        bad_pixels=data.bad_pixels,
        source=source,
        metadata=_metadata(product, data),
    )


def _metadata(product: Product, data: DiffractionData) -> ScanMetadata:
    geometry = product.geometry
    return ScanMetadata(
        photon_energy_eV=product.photon_energy_eV,
        detector_distance_m=product.detector_distance_m,
        detector_pixel_size_m=data.detector_pixel_size_m,
        object_pixel_size_m=(geometry.pixel_width_m, geometry.pixel_height_m),
        position_offset_m=geometry.position_offset_m,
    )


def pair_by_index(
    pattern_indexes: np.ndarray, position_indexes: np.ndarray, diffraction_path: Path, product_path: Path
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of patterns and of positions that share a scan index, in the positions' order."""
    for indexes, path, key in ((pattern_indexes, diffraction_path, INDEXES),
                               (position_indexes, product_path, "probe_position_indexes")):
        unique, counts = np.unique(indexes, return_counts=True)
        if np.any(counts > 1):
            raise ScanFormatError(path, key, f"scan index {int(unique[counts > 1][0])} appears more than once")
    pattern_row = {int(index): row for row, index in enumerate(pattern_indexes)}
    position_rows = np.array([row for row, index in enumerate(position_indexes) if int(index) in pattern_row],
                             dtype=np.int64)
    if position_rows.size == 0:
        raise ScanFormatError(
            product_path, "probe_position_indexes", "no position's scan index matches a pattern's index in "
            f"{diffraction_path.name} (patterns {_span(pattern_indexes)}, positions {_span(position_indexes)})"
        )
    pattern_rows = np.array([pattern_row[int(position_indexes[row])] for row in position_rows], dtype=np.int64)
    unpaired_patterns = len(pattern_indexes) - len(pattern_rows)
    unpaired_positions = len(position_indexes) - len(position_rows)
    if unpaired_patterns or unpaired_positions:
        logger.warning("%s: %d pattern(s) without a position and %d position(s) without a pattern are "
                       "left out", diffraction_path, unpaired_patterns, unpaired_positions)
    return pattern_rows, position_rows


def _span(indexes: np.ndarray) -> str:
    return f"{indexes.min()}..{indexes.max()}" if indexes.size else "none"


def _selected(counts: np.ndarray | RowSource, rows: np.ndarray) -> np.ndarray | RowSource:
    if not isinstance(counts, np.ndarray):
        return counts if np.array_equal(rows, np.arange(counts.shape[0])) else SelectedRows(counts, rows)
    return counts[rows]


def counts_to_amplitudes(counts: np.ndarray | RowSource, bad_pixels: np.ndarray | None, source: Path | str,
                         key: str = PATTERNS) -> np.ndarray | LazyPatterns:
    """√counts in float32, with bad pixels set to 0 (they are excluded from every loss, and
    detectors write saturation markers there that would distort the scan's statistics).

    Counts left on disk (a :class:`~ptychopinn.data.lazy.RowSource`) give
    :class:`~ptychopinn.data.lazy.LazyPatterns` that do the same on read; the scan's validation
    pass then checks their values."""
    if not isinstance(counts, np.ndarray):
        rows = counts if bad_pixels is None else MaskedRows(counts, bad_pixels)
        return LazyPatterns(rows, source=str(source), key=key, transform="sqrt")
    counts = np.array(counts, dtype=np.float64)
    if bad_pixels is not None:
        counts[:, bad_pixels] = 0.0
    if not np.all(np.isfinite(counts)):
        raise ScanFormatError(source, PATTERNS, "non-finite counts outside the bad-pixel mask")
    negative = counts < 0
    if np.any(negative):
        raise ScanFormatError(
            source, PATTERNS, f"{int(negative.sum())} negative count(s) (minimum {counts.min()}); "
            "expected photon counts >= 0 (mark bad pixels in the mask)"
        )
    return np.sqrt(counts).astype(np.float32)


def scan_from_export(arrays: dict[str, np.ndarray], source: str) -> Scan:
    """A scan from the arrays of ptychodus's "export for PtychoPINN" ``.npz``."""
    for key in ("diff3d", "xcoords", "ycoords", "probeGuess"):
        if key not in arrays:
            raise ScanFormatError(source, key, "required key of a ptychodus PtychoPINN export is missing")
    counts = np.asarray(arrays["diff3d"])
    if counts.ndim != 3:
        raise ScanFormatError(source, "diff3d", f"expected (M, N, N) counts, got shape {counts.shape}")
    bad = np.asarray(arrays["bad_pixels"]).astype(bool)
    if bad.shape != counts.shape[1:]:
        raise ScanFormatError(source, "bad_pixels", f"expected a {counts.shape[1:]} mask, got shape {bad.shape}")
    modes = probe_modes_from_array(np.asarray(arrays["probeGuess"]), Path(source), "probeGuess")
    shifted = {key: np.asarray(arrays[key], dtype=np.float64) + HALF_PIXEL
               for key in ("xcoords", "ycoords", "xcoords_start", "ycoords_start") if key in arrays}
    if "objectGuess" in arrays:
        logger.info("%s: the export's objectGuess (ptychodus's object, not a ground truth) is not used as "
                    "a reference", source)
    logger.info("%s: ptychodus PtychoPINN export: counts square-rooted, positions shifted by +0.5 px "
                "(probe pixel N/2 at the position)", source)
    return Scan(
        diffraction=counts_to_amplitudes(counts, bad, source),
        xcoords=shifted["xcoords"],
        ycoords=shifted["ycoords"],
        probe=modes[0],
        probe_modes=modes if modes.shape[0] > 1 else None,
        xcoords_start=shifted.get("xcoords_start"),
        ycoords_start=shifted.get("ycoords_start"),
        scan_index=arrays.get("scan_index"),
        bad_pixels=bad,
        source=source,
    )


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------


def counts_for_writing(diffraction: np.ndarray) -> np.ndarray:
    """X² as unsigned integers when the amplitudes are square roots of integers (measured or
    simulated counts), else as float32."""
    counts = np.asarray(diffraction, dtype=np.float64) ** 2  # also reads patterns held lazily
    rounded = np.round(counts)
    # float32 amplitudes of counts k carry a relative error of ~6e-8, so X² misses k by ~1e-7·k
    if counts.size and np.all(np.abs(counts - rounded) <= 1e-5 * np.maximum(rounded, 1.0)):
        return rounded.astype(np.uint32)
    return counts.astype(np.float32)


def write_diffraction(path: str | Path, scan: Scan) -> Path:
    """The scan's patterns as a ptychodus ``diffraction.h5`` (counts, indexes 0..M−1), atomically."""
    import h5py

    path = Path(path)
    pixel = scan.metadata.detector_pixel_size_m or _far_field_detector_pixel(scan)
    bad = scan.bad_pixels if scan.bad_pixels is not None else np.zeros(scan.diffraction.shape[1:], dtype=bool)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as handle:
        handle.create_dataset(INDEXES, data=np.arange(scan.n_patterns, dtype=np.int64), compression="lzf")
        patterns = handle.create_dataset(PATTERNS, data=counts_for_writing(scan.diffraction), compression="lzf")
        patterns.attrs[DETECTOR_PIXEL_WIDTH] = float(pixel[0])
        patterns.attrs[DETECTOR_PIXEL_HEIGHT] = float(pixel[1])
        handle.create_dataset(BAD_PIXELS, data=bad, compression="lzf")
    return path


def _far_field_detector_pixel(scan: Scan) -> tuple[float, float]:
    """The detector pixel size λz/(N·dx) consistent with the (possibly nominal) geometry that
    :func:`~ptychopinn.data.product.write_product` writes."""
    from ptychopinn.data.geometry import far_field_object_pixel_m
    from ptychopinn.data.product import geometry_for_writing

    geometry, _ = geometry_for_writing(scan.metadata)
    n = scan.patch_size
    # the far-field relation is its own inverse: λz/(N·dx) maps either pitch to the other
    return tuple(
        far_field_object_pixel_m(geometry.photon_energy_eV, geometry.detector_distance_m, pixel, n)
        for pixel in geometry.object_pixel_size_m
    )


def write_workflow(directory: str | Path, scan: Scan) -> Path:
    """A ptychodus workflow directory: ``diffraction.h5`` and ``product.h5`` (the scan's probe
    scaled to the counts, and its reference object or a unit-transmission guess)."""
    from ptychopinn.data.product import write_product

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if scan.scan_index is not None and np.any(scan.scan_index != 0):
        logger.warning("%s: ptychodus files have no scan_index; it is not written", directory)
    write_diffraction(directory / DIFFRACTION_FILE, scan)
    write_product(directory / PRODUCT_FILE, scan)
    return directory
