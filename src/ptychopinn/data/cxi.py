"""CXI files (NeXus NXcxi_ptycho, CXI 1.6) as scans (docs/design/spec.md#data-contract).

Paths follow ptychodus's CXI reader (ptychodus 1.7): patterns at ``/entry_1/data_1/data`` (or
``/entry_1/instrument_1/detector_1/data``), positions at
``/entry_1/sample_1/geometry_1/translation`` (or ``/entry_1/data_1/translation``), (M, 3) in
metres, whose first two columns are taken as the probe position (x, y) without a sign change, as
ptychodus does; the energy at ``/entry_1/instrument_1/source_1/energy`` in joules; the detector
distance and pixel size under ``detector_1``; ``detector_1/mask`` (nonzero = bad pixel); the probe
at ``/entry_1/image_1/data`` or ``/entry_1/instrument_1/source_1/illumination``.

Positions become pixels with the object pixel size dx = λz/(N·p) of the far-field geometry (or
the one ptychodus records under ``/entry_1/ptychodus``), and with the object's centre when the file
carries an object (``/entry_1/image_2``), else so that the leftmost and topmost windows start at
object pixel 0.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ptychopinn.data.geometry import ELECTRON_VOLT_J, far_field_object_pixel_m, metres_to_pixels
from ptychopinn.data.hdf5 import (
    open_hdf5,
    pattern_rows,
    read_patterns,
    read_scalar,
    require_dataset,
)
from ptychopinn.data.product import probe_modes_from_array
from ptychopinn.data.ptychodus import counts_to_amplitudes
from ptychopinn.data.scan import Scan, ScanFormatError, ScanMetadata

logger = logging.getLogger(__name__)

ENTRY = "/entry_1"
DATA = "/entry_1/data_1/data"
DETECTOR = "/entry_1/instrument_1/detector_1"
DETECTOR_DATA = DETECTOR + "/data"
DISTANCE = DETECTOR + "/distance"
X_PIXEL_SIZE = DETECTOR + "/x_pixel_size"
Y_PIXEL_SIZE = DETECTOR + "/y_pixel_size"
MASK = DETECTOR + "/mask"
ENERGY = "/entry_1/instrument_1/source_1/energy"
ILLUMINATION = "/entry_1/instrument_1/source_1/illumination"
PROBE_IMAGE = "/entry_1/image_1/data"
OBJECT_IMAGE = "/entry_1/image_2/data"
TRANSLATION = "/entry_1/sample_1/geometry_1/translation"
DATA_TRANSLATION = "/entry_1/data_1/translation"
EXTRAS = "/entry_1/ptychodus"
OBJECT_PIXEL_WIDTH = EXTRAS + "/object_pixel_width_m"
OBJECT_PIXEL_HEIGHT = EXTRAS + "/object_pixel_height_m"
OBJECT_CENTER_X = EXTRAS + "/object_center_x_m"
OBJECT_CENTER_Y = EXTRAS + "/object_center_y_m"
POSITION_INDEXES = EXTRAS + "/probe_position_indexes"

NO_PROBE_HINT = (
    "this CXI file has no probe (expected {} or {}); convert it with a probe from a "
    "previous reconstruction: ptychopinn convert {} scan.npz --probe PROBE (a .npy (N, N) or "
    "(K, N, N) complex array, a scan .npz or a ptychodus product.h5)"
)


def is_cxi(handle) -> bool:
    return ENTRY in handle and (DATA in handle or DETECTOR_DATA in handle)


def read_cxi(path: str | Path, *, probe: np.ndarray | None = None, lazy: bool = False) -> Scan:
    """A scan from a CXI file; ``probe`` ((N, N) or (K, N, N)) replaces or supplies the probe;
    with ``lazy`` the patterns stay on disk and are read as asked for (ptychopinn.data.lazy)."""
    path = Path(path)
    with open_hdf5(path) as handle:
        if not is_cxi(handle):
            raise ScanFormatError(path, DATA, "not a CXI ptychography file: expected the diffraction patterns "
                                  f"at {DATA} or {DETECTOR_DATA}")
        data_key = DATA if DATA in handle else DETECTOR_DATA
        read = pattern_rows if lazy else read_patterns
        counts = read(require_dataset(handle, data_key, path, "(M, N, N) counts"), path, data_key)
        translation_m = _translation(handle, path, counts.shape[0])
        energy_J = _required_positive(handle, ENERGY, path, "photon energy in joules")  # noqa: N806
        distance = _required_positive(handle, DISTANCE, path, "detector distance in metres")
        detector_pixel = (
            _required_positive(handle, X_PIXEL_SIZE, path, "detector pixel width in metres"),
            _required_positive(handle, Y_PIXEL_SIZE, path, "detector pixel height in metres"),
        )
        bad_pixels = _mask(handle, path, counts.shape[1:])
        modes = _probe(handle, path, probe)
        object_pixel = _object_pixel(handle, path, energy_J / ELECTRON_VOLT_J, distance, detector_pixel,
                                     counts.shape[-1])
        object_frame = _object_frame(handle, path)
    n = counts.shape[-1]
    if modes.shape[-1] != n or counts.shape[-2] != n:
        raise ScanFormatError(path, PROBE_IMAGE if probe is None else "--probe",
                              f"probe of {modes.shape[-2:]} pixels for patterns of {counts.shape[-2:]} pixels")
    x, y, offset = _positions_in_pixels(translation_m, object_pixel, object_frame, n)
    return Scan(
        diffraction=counts_to_amplitudes(counts, bad_pixels, path, data_key),
        xcoords=x,
        ycoords=y,
        probe=modes[0],
        probe_modes=modes if modes.shape[0] > 1 else None,
        bad_pixels=bad_pixels,
        source=str(path),
        metadata=ScanMetadata(
            photon_energy_eV=energy_J / ELECTRON_VOLT_J,
            detector_distance_m=distance,
            detector_pixel_size_m=detector_pixel,
            object_pixel_size_m=object_pixel,
            position_offset_m=offset,
        ),
    )


def _translation(handle, path: Path, m: int) -> np.ndarray:
    key = TRANSLATION if TRANSLATION in handle else DATA_TRANSLATION
    dataset = require_dataset(handle, key, path, "(M, 3) sample translations in metres")
    values = np.asarray(dataset[()], dtype=np.float64)
    if values.ndim != 2 or values.shape[1] < 2:
        raise ScanFormatError(path, key, f"expected (M, 3) translations, got shape {values.shape}")
    if values.shape[0] != m:
        raise ScanFormatError(path, key, f"{values.shape[0]} translations for {m} patterns; expected one each")
    if POSITION_INDEXES in handle and not np.array_equal(handle[POSITION_INDEXES][()], np.arange(m)):
        logger.info("%s: %s ignored: patterns and translations pair by row", path, POSITION_INDEXES)
    if not np.all(np.isfinite(values[:, :2])):
        raise ScanFormatError(path, key, "non-finite translations")
    return values[:, :2]


def _required_positive(handle, key: str, path: Path, what: str) -> float:
    value = read_scalar(handle, key, path)
    if value is None:
        raise ScanFormatError(path, key, f"missing; expected the {what}")
    if value <= 0:
        raise ScanFormatError(path, key, f"expected a positive {what}, got {value}")
    return value


def _mask(handle, path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    if MASK not in handle:
        return None
    mask = np.asarray(handle[MASK][()])
    if mask.shape != shape:
        raise ScanFormatError(path, MASK, f"expected a {shape} mask, got shape {mask.shape}")
    return mask != 0


def _probe(handle, path: Path, probe: np.ndarray | None) -> np.ndarray:
    if probe is not None:
        if PROBE_IMAGE in handle or ILLUMINATION in handle:
            logger.info("%s: the file's probe is replaced by the one given", path)
        return probe_modes_from_array(np.asarray(probe), path, "--probe")
    for key in (PROBE_IMAGE, ILLUMINATION):
        if key in handle:
            return probe_modes_from_array(np.asarray(handle[key][()]), path, key)
    raise ScanFormatError(path, ILLUMINATION, NO_PROBE_HINT.format(PROBE_IMAGE, ILLUMINATION, path))


def _object_pixel(handle, path: Path, energy_eV: float, distance: float,  # noqa: N803
                  detector_pixel: tuple[float, float], n: int) -> tuple[float, float]:
    width = read_scalar(handle, OBJECT_PIXEL_WIDTH, path)
    height = read_scalar(handle, OBJECT_PIXEL_HEIGHT, path)
    if width is not None and height is not None:
        return width, height
    return (far_field_object_pixel_m(energy_eV, distance, detector_pixel[0], n),
            far_field_object_pixel_m(energy_eV, distance, detector_pixel[1], n))


def _object_frame(handle, path: Path) -> tuple[float, float, int, int] | None:
    """(centre_x_m, centre_y_m, W, H) of the object ptychodus stored, or None."""
    cx, cy = read_scalar(handle, OBJECT_CENTER_X, path), read_scalar(handle, OBJECT_CENTER_Y, path)
    if cx is None or cy is None or OBJECT_IMAGE not in handle:
        return None
    shape = handle[OBJECT_IMAGE].shape
    return cx, cy, int(shape[-1]), int(shape[-2])


def _positions_in_pixels(
    translation_m: np.ndarray, pixel: tuple[float, float], frame: tuple[float, float, int, int] | None, n: int
) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    x_m, y_m = translation_m[:, 0], translation_m[:, 1]
    if frame is not None:
        cx, cy, width, height = frame
    else:
        # centre a virtual object so that the first windows start at pixel 0: x_min ↦ N/2
        width = height = 0
        cx = float(x_m.min()) - n / 2 * pixel[0]
        cy = float(y_m.min()) - n / 2 * pixel[1]
    x = metres_to_pixels(x_m, cx, pixel[0], width)
    y = metres_to_pixels(y_m, cy, pixel[1], height)
    return x, y, (cx - width / 2 * pixel[0], cy - height / 2 * pixel[1])


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------

CXI_VERSION = 160  # CXI 1.6, stored as version × 100
CXI_PIXEL_IS_INVALID = 0x1


def write_cxi(path: str | Path, scan: Scan) -> Path:
    """The scan as a CXI file that :func:`read_cxi` and ptychodus read back, atomically.

    Counts (X²), the translations in metres (x_m = offset + x·dx, the sign ptychodus reads),
    the geometry (nominal where the scan has none, see
    :func:`~ptychopinn.data.product.geometry_for_writing`), the mask, all probe modes as the
    illumination, and the object frame under ``/entry_1/ptychodus`` with an object image (the
    scan's reference, or a unit-transmission guess) so that positions read back exactly.
    """
    import h5py

    from ptychopinn.atomic import atomic_path
    from ptychopinn.data.product import _default_object, geometry_for_writing
    from ptychopinn.data.ptychodus import _far_field_detector_pixel, counts_for_writing

    path = Path(path)
    geometry, _ = geometry_for_writing(scan.metadata)
    detector_pixel = scan.metadata.detector_pixel_size_m or _far_field_detector_pixel(scan)
    obj, (x0, y0) = _default_object(scan)
    dx, dy = geometry.object_pixel_size_m
    ox, oy = geometry.position_offset_m
    height, width = obj.shape
    translation = np.zeros((scan.n_patterns, 3))
    translation[:, 0] = ox + scan.xcoords * dx
    translation[:, 1] = oy + scan.ycoords * dy
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as handle:
        handle.create_dataset("cxi_version", data=CXI_VERSION)
        handle.create_dataset(ENERGY, data=geometry.photon_energy_eV * ELECTRON_VOLT_J)
        handle.create_dataset(DISTANCE, data=geometry.detector_distance_m)
        handle.create_dataset(X_PIXEL_SIZE, data=float(detector_pixel[0]))
        handle.create_dataset(Y_PIXEL_SIZE, data=float(detector_pixel[1]))
        handle.create_dataset(DETECTOR_DATA, data=counts_for_writing(scan.diffraction), compression="lzf")
        if scan.bad_pixels is not None:
            handle.create_dataset(MASK, data=np.where(scan.bad_pixels, CXI_PIXEL_IS_INVALID, 0).astype(np.uint32))
        handle.require_group("/entry_1/data_1")["data"] = h5py.SoftLink(DETECTOR_DATA)
        handle.create_dataset(TRANSLATION, data=translation)
        handle.create_dataset(ILLUMINATION, data=scan.probes)
        handle.create_dataset(OBJECT_IMAGE, data=obj[np.newaxis])
        handle.create_dataset(OBJECT_PIXEL_WIDTH, data=dx)
        handle.create_dataset(OBJECT_PIXEL_HEIGHT, data=dy)
        handle.create_dataset(OBJECT_CENTER_X, data=ox + (x0 + width / 2) * dx)
        handle.create_dataset(OBJECT_CENTER_Y, data=oy + (y0 + height / 2) * dy)
    return path
