"""ptychodus data products (``product.h5``): reading and writing (docs/design/spec.md#data-contract).

A product holds an object with its pixel size and centre, the probe (OPR × incoherent modes ×
N × N), the probe positions in metres with their scan indexes, the photon energy, the detector
distance and a loss history. The dataset and attribute names are those of ptychodus's
``ProductFileKeys`` (ptychodus 1.7); they are spelled out here so that reading needs no ptychodus.

Scale: ptychodus's far-field forward model multiplies the exit wave's energy by
G = (dx·dy/(λz))²·N_x·N_y (the Fresnel transform's prefactor |dx dy/(λ z)| and an unnormalised
FFT), while this project's model is unitary and leaves the photon scale to the scale contract.
:func:`write_product` therefore scales the probe by one real factor so that ptychodus's model of
the written object and probe gives the measured mean total counts per pattern.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ptychopinn.atomic import atomic_path
from ptychopinn.data.geometry import metres_to_pixels, pixels_to_metres, wavelength_m
from ptychopinn.data.hdf5 import open_hdf5, read_scalar, require_dataset
from ptychopinn.data.scan import Scan, ScanFormatError, ScanMetadata
from ptychopinn.physics.scaling import mean_total_counts

logger = logging.getLogger(__name__)

# ptychodus ProductFileKeys
NAME = "name"
COMMENTS = "comments"
DETECTOR_DISTANCE = "detector_object_distance_m"
PHOTON_ENERGY = "photon_energy_eV"
LEGACY_PHOTON_ENERGY = "probe_energy_eV"
PROBE_PHOTON_COUNT = "probe_photon_count"
EXPOSURE_TIME = "exposure_time_s"
MASS_ATTENUATION = "mass_attenuation_m2_per_kg"
TOMOGRAPHY_ANGLE = "tomography_angle_deg"
FOCUS_OBJECT_DISTANCE = "focus_object_distance_m"
TILT_ANGLE = "tilt_angle_deg"
FAR_FIELD = "far_field"
PROBE_ARRAY = "probe"
PIXEL_WIDTH = "pixel_width_m"
PIXEL_HEIGHT = "pixel_height_m"
POSITION_INDEXES = "probe_position_indexes"
POSITION_X = "probe_position_x_m"
POSITION_Y = "probe_position_y_m"
OBJECT_ARRAY = "object"
OBJECT_CENTER_X = "center_x_m"
OBJECT_CENTER_Y = "center_y_m"
OBJECT_LAYER_SPACING = "object_layer_spacing_m"
LOSS_EPOCHS = "loss_epochs"
LOSS_VALUES = "loss_values"

# Written when a scan carries no physical geometry. The values only need to make ptychodus's
# Fresnel transform a Fraunhofer one (pixel Fresnel number dx²/(λz) ≈ 8e-8, so the quadratic
# phase across a 256-pixel window stays below 0.02 rad); the comments attribute says they are nominal.
NOMINAL_PHOTON_ENERGY_EV = 10_000.0
NOMINAL_DETECTOR_DISTANCE_M = 10.0
NOMINAL_OBJECT_PIXEL_M = 1e-8
RELATIVE_PIXEL_TOLERANCE = 1e-6


@dataclass(frozen=True)
class ObjectGeometry:
    """An object array's extent, pixel size and centre, as ptychodus records them."""

    width_px: int
    height_px: int
    pixel_width_m: float
    pixel_height_m: float
    center_x_m: float
    center_y_m: float

    def to_pixels(self, x_m: np.ndarray, y_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """This project's positions (probe pixel N/2 at the position) of positions in metres."""
        return (
            metres_to_pixels(x_m, self.center_x_m, self.pixel_width_m, self.width_px),
            metres_to_pixels(y_m, self.center_y_m, self.pixel_height_m, self.height_px),
        )

    def to_metres(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (
            pixels_to_metres(x, self.center_x_m, self.pixel_width_m, self.width_px),
            pixels_to_metres(y, self.center_y_m, self.pixel_height_m, self.height_px),
        )

    @property
    def position_offset_m(self) -> tuple[float, float]:
        """(offset_x, offset_y) with x_m = offset_x + x·dx."""
        return (
            self.center_x_m - self.width_px / 2 * self.pixel_width_m,
            self.center_y_m - self.height_px / 2 * self.pixel_height_m,
        )


@dataclass(frozen=True)
class Product:
    """The contents of a ``product.h5``, positions already in this project's pixels."""

    indexes: np.ndarray  # (M,) int64 scan indexes, pairing positions with patterns
    xcoords: np.ndarray  # (M,) float64, probe pixel N/2 at the position
    ycoords: np.ndarray
    probes: np.ndarray  # (K, N, N) complex64, the first OPR mode's incoherent modes
    object: np.ndarray  # (H, W) complex64, layer 0: a previous reconstruction or a guess
    geometry: ObjectGeometry
    photon_energy_eV: float  # noqa: N815
    detector_distance_m: float
    losses: np.ndarray  # (L, 2) [epoch, value]


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------


def read_product(path: str | Path) -> Product:
    """Read a ptychodus ``product.h5``; malformed files raise :class:`ScanFormatError`."""
    path = Path(path)
    with open_hdf5(path) as handle:
        energy = _photon_energy(handle, path)
        distance = read_scalar(handle, DETECTOR_DISTANCE, path, attrs=handle.attrs)
        if distance is None:
            raise ScanFormatError(path, DETECTOR_DISTANCE, "missing file attribute (detector distance in metres)")
        if not bool(handle.attrs.get(FAR_FIELD, True)):
            logger.warning("%s: a near-field product; this project models far-field patterns only", path)
        probes = _read_probes(handle, path)
        obj, geometry = _read_object(handle, path)
        _check_probe_pixels(handle, geometry, path)
        indexes, x_m, y_m = _read_positions(handle, path)
        losses = _read_losses(handle, path)
    xcoords, ycoords = geometry.to_pixels(x_m, y_m)
    return Product(indexes, xcoords, ycoords, probes, obj, geometry, energy, distance, losses)


def _photon_energy(handle, path: Path) -> float:
    for key in (PHOTON_ENERGY, LEGACY_PHOTON_ENERGY):
        value = read_scalar(handle, key, path, attrs=handle.attrs)
        if value is not None:
            if value <= 0:
                raise ScanFormatError(path, key, f"expected a positive photon energy in eV, got {value}")
            return value
    raise ScanFormatError(path, PHOTON_ENERGY, "missing file attribute (photon energy in eV)")


def probe_modes_from_array(array: np.ndarray, source: Path, key: str) -> np.ndarray:
    """(K, N, N) incoherent modes from a (N, N), (K, N, N) or (OPR, K, N, N) probe array; only
    the first OPR mode is kept (this project has one probe for all positions)."""
    if not np.iscomplexobj(array) and not np.issubdtype(array.dtype, np.floating):
        raise ScanFormatError(source, key, f"expected a complex probe, got dtype {array.dtype}")
    if array.ndim == 4:
        if array.shape[0] > 1:
            logger.info("%s: '%s' has %d OPR modes; using the first", source, key, array.shape[0])
        array = array[0]
    elif array.ndim == 2:
        array = array[np.newaxis]
    if array.ndim != 3 or array.shape[0] == 0 or array.shape[1] != array.shape[2]:
        raise ScanFormatError(
            source, key, f"expected a probe of shape (N, N), (K, N, N) or (OPR, K, N, N), got {array.shape}"
        )
    return np.ascontiguousarray(array, dtype=np.complex64)


def _read_probes(handle, path: Path) -> np.ndarray:
    dataset = require_dataset(handle, PROBE_ARRAY, path, "the complex probe array")
    return probe_modes_from_array(dataset[()], path, PROBE_ARRAY)


def _pixel_size(dataset, path: Path, key: str) -> tuple[float, float]:
    width = read_scalar(None, PIXEL_WIDTH, path, attrs=dataset.attrs)
    height = read_scalar(None, PIXEL_HEIGHT, path, attrs=dataset.attrs)
    if width is None or height is None or width <= 0 or height <= 0:
        raise ScanFormatError(
            path, key, f"expected positive attributes '{PIXEL_WIDTH}' and '{PIXEL_HEIGHT}' (metres), "
            f"got {width} and {height}"
        )
    return width, height


def _read_object(handle, path: Path) -> tuple[np.ndarray, ObjectGeometry]:
    dataset = require_dataset(handle, OBJECT_ARRAY, path, "the complex object array with its pixel size and centre")
    array = dataset[()]
    if array.ndim == 3:
        if array.shape[0] > 1:
            logger.info("%s: a %d-layer object; keeping layer 0", path, array.shape[0])
        array = array[0]
    if array.ndim != 2:
        raise ScanFormatError(path, OBJECT_ARRAY, f"expected an (H, W) or (L, H, W) object, got {array.shape}")
    width_m, height_m = _pixel_size(dataset, path, OBJECT_ARRAY)
    centre = [read_scalar(None, key, path, attrs=dataset.attrs) for key in (OBJECT_CENTER_X, OBJECT_CENTER_Y)]
    if None in centre:
        raise ScanFormatError(path, OBJECT_ARRAY, f"missing attributes '{OBJECT_CENTER_X}'/'{OBJECT_CENTER_Y}'")
    geometry = ObjectGeometry(int(array.shape[1]), int(array.shape[0]), width_m, height_m, *centre)
    return np.ascontiguousarray(array, dtype=np.complex64), geometry


def _check_probe_pixels(handle, geometry: ObjectGeometry, path: Path) -> None:
    """The probe must sample the object's grid: this project has one pixel grid."""
    probe_size = _pixel_size(handle[PROBE_ARRAY], path, PROBE_ARRAY)
    object_size = (geometry.pixel_width_m, geometry.pixel_height_m)
    if not np.allclose(probe_size, object_size, rtol=RELATIVE_PIXEL_TOLERANCE, atol=0):
        raise ScanFormatError(
            path, PROBE_ARRAY, f"probe pixel size {probe_size} m differs from the object's {object_size} m; "
            "expected the probe on the object's pixel grid (resample it in ptychodus first)"
        )


def _read_positions(handle, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    arrays = []
    for key, what in ((POSITION_INDEXES, "scan indexes"), (POSITION_X, "x in metres"), (POSITION_Y, "y in metres")):
        values = np.asarray(require_dataset(handle, key, path, f"(M,) probe positions' {what}")[()])
        if values.ndim != 1 or not np.issubdtype(values.dtype, np.number):
            raise ScanFormatError(path, key, f"expected a real (M,) vector, got {values.dtype} {values.shape}")
        arrays.append(values)
    indexes, x_m, y_m = arrays
    if not (len(indexes) == len(x_m) == len(y_m)):
        raise ScanFormatError(
            path, POSITION_INDEXES, f"lengths differ: {len(indexes)} indexes, {len(x_m)} x, {len(y_m)} y"
        )
    if not np.all(np.isfinite(x_m)) or not np.all(np.isfinite(y_m)):
        raise ScanFormatError(path, POSITION_X, "non-finite probe positions")
    return indexes.astype(np.int64), x_m.astype(np.float64), y_m.astype(np.float64)


def _read_losses(handle, path: Path) -> np.ndarray:
    if LOSS_EPOCHS not in handle or LOSS_VALUES not in handle:
        return np.zeros((0, 2))
    epochs = np.atleast_1d(handle[LOSS_EPOCHS][()]).astype(np.float64)
    values = np.atleast_1d(handle[LOSS_VALUES][()]).astype(np.float64)
    if epochs.shape != values.shape:
        raise ScanFormatError(path, LOSS_VALUES, f"{values.size} values for {epochs.size} epochs")
    return np.stack([epochs, values], axis=1) if epochs.size else np.zeros((0, 2))


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------


def ptychodus_energy_gain(
    n_x: int, n_y: int, pixel_m: tuple[float, float], photon_energy_eV: float, distance_m: float  # noqa: N803
) -> float:
    """Σ|ptychodus far field|² / Σ|exit wave|²: (dx·dy/(λz))²·N_x·N_y (see the module docstring)."""
    prefactor = pixel_m[0] * pixel_m[1] / (wavelength_m(photon_energy_eV) * distance_m)
    return prefactor**2 * n_x * n_y


_ENERGY_CHUNK = 1024  # positions whose patches exit_wave_energies holds at a time


def exit_wave_energies(obj: np.ndarray, probes: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Σ_k Σ|P_k · O_patch|² per position, in float64 (= each pattern's total under a unitary
    far field, by Parseval); ``x``, ``y`` are positions on ``obj``'s own pixel grid."""
    from ptychopinn.physics.forward import extract_patches

    intensity = np.sum(np.abs(probes.astype(np.complex128)) ** 2, axis=0)
    positions = np.stack([x, y], axis=1)
    energies = np.empty(len(positions), dtype=np.float64)
    # a chunk of positions at a time: a whole scan's patches would be as large as its data
    for start in range(0, len(positions), _ENERGY_CHUNK):
        patches = extract_patches(obj, positions[start : start + _ENERGY_CHUNK], probes.shape[-1])
        energies[start : start + len(patches)] = np.einsum(
            "mij,ij->m", np.abs(patches.astype(np.complex128)) ** 2, intensity)
    return energies


_SHARE_SAMPLE = 256  # positions whose far fields estimate the valid pixels' share


def valid_pixel_share(obj: np.ndarray, probes: np.ndarray, x: np.ndarray, y: np.ndarray,
                      valid: np.ndarray) -> float:
    """The fraction of the predicted counts that falls on the valid detector pixels, over up to
    _SHARE_SAMPLE evenly spaced positions: bad pixels hold 0 in the data, and they are often where
    the counts are highest (a beamstop, a hot module), so the total alone would scale the probe low."""
    from ptychopinn.physics.forward import extract_patches, far_field

    picks = np.unique(np.linspace(0, len(x) - 1, min(_SHARE_SAMPLE, len(x))).astype(np.int64))
    patches = extract_patches(obj, np.stack([x[picks], y[picks]], axis=1), probes.shape[-1])
    intensity = np.sum(np.abs(far_field(patches[:, None] * probes[None].astype(np.complex128))) ** 2, axis=1)
    total = float(np.sum(intensity))
    return float(np.sum(intensity * valid)) / total if total > 0 else 1.0


def write_product(
    path: str | Path,
    scan: Scan,
    obj: np.ndarray | None = None,
    *,
    origin_xy: tuple[float, float] = (0.0, 0.0),
    probes: np.ndarray | None = None,
    losses: Sequence[tuple[int, float]] = (),
    name: str = "ptychopinn",
    fit_probe_scale: bool = True,
) -> Path:
    """Write ``obj`` (canvas pixel (i, j) is object pixel (i + y₀, j + x₀)) with the scan's
    positions and probe modes (or ``probes``) as a ptychodus ``product.h5``, atomically.

    Without ``obj`` the scan's reference object is written, or a unit-transmission guess covering
    every position. With ``fit_probe_scale`` the probe is multiplied by the one real factor for
    which ptychodus's forward model predicts the measured mean total counts.
    """
    path = Path(path)
    if obj is None:
        obj, origin_xy = _default_object(scan)
    obj = np.asarray(obj, dtype=np.complex64)
    probes = scan.probes if probes is None else probe_modes_from_array(np.asarray(probes), path, PROBE_ARRAY)
    metadata, comments = geometry_for_writing(scan.metadata)
    x = scan.xcoords - origin_xy[0]
    y = scan.ycoords - origin_xy[1]
    n = probes.shape[-1]
    pixel = metadata.object_pixel_size_m
    if fit_probe_scale:
        gain = ptychodus_energy_gain(n, n, pixel, metadata.photon_energy_eV, metadata.detector_distance_m)
        predicted = gain * float(np.mean(exit_wave_energies(obj, probes, x, y)))
        if scan.bad_pixels is not None:  # the measured counts lack the bad pixels' share
            predicted *= valid_pixel_share(obj, probes, x, y, scan.valid_pixels)
        measured = mean_total_counts(scan.diffraction, scan.valid_pixels)  # also for patterns read lazily
        if predicted > 0 and measured > 0:
            probes = (probes * np.sqrt(measured / predicted)).astype(np.complex64)
    geometry = _canvas_geometry(obj.shape, metadata, origin_xy)
    x_m, y_m = geometry.to_metres(x, y)
    with atomic_path(path) as tmp:
        _write_product_file(tmp, obj, probes, geometry, np.arange(scan.n_patterns), x_m, y_m,
                            metadata, losses, name, comments)
    return path


def _default_object(scan: Scan) -> tuple[np.ndarray, tuple[float, float]]:
    if scan.object is not None:
        return scan.object, (0.0, 0.0)
    # the canvas starts at object pixel 0 (positions then read back unchanged) unless a window
    # (x − N/2 .. x + N/2) reaches below it, and ends one pixel beyond the farthest window
    half = scan.patch_size / 2
    x0 = min(0.0, float(np.floor(scan.xcoords.min() - half)))
    y0 = min(0.0, float(np.floor(scan.ycoords.min() - half)))
    width = int(np.ceil(scan.xcoords.max() + half - x0)) + 1
    height = int(np.ceil(scan.ycoords.max() + half - y0)) + 1
    return np.ones((height, width), dtype=np.complex64), (x0, y0)


def geometry_for_writing(metadata: ScanMetadata) -> tuple[ScanMetadata, str]:
    """``metadata`` with nominal values for what is unknown, and a comment listing those."""
    nominal = []
    energy, distance = metadata.photon_energy_eV, metadata.detector_distance_m
    pixel, offset = metadata.object_pixel_size_m, metadata.position_offset_m
    if energy is None:
        energy = NOMINAL_PHOTON_ENERGY_EV
        nominal.append(f"photon energy {energy:g} eV")
    if distance is None:
        distance = NOMINAL_DETECTOR_DISTANCE_M
        nominal.append(f"detector distance {distance:g} m")
    if pixel is None:
        pixel = (NOMINAL_OBJECT_PIXEL_M, NOMINAL_OBJECT_PIXEL_M)
        nominal.append(f"object pixel size {NOMINAL_OBJECT_PIXEL_M:g} m (positions are pixels × this)")
    if offset is None:
        offset = (0.0, 0.0)
    comments = ""
    if nominal:
        comments = "nominal, not measured: " + "; ".join(nominal)
        logger.info("the scan carries no physical geometry for: %s", comments)
    return ScanMetadata(energy, distance, metadata.detector_pixel_size_m, pixel, offset), comments


def _canvas_geometry(shape: tuple[int, ...], metadata: ScanMetadata, origin_xy: tuple[float, float]) -> ObjectGeometry:
    """The geometry that puts canvas position x at x_m = offset + (x + x₀)·dx."""
    height, width = shape
    dx, dy = metadata.object_pixel_size_m
    ox, oy = metadata.position_offset_m
    return ObjectGeometry(
        width, height, dx, dy,
        center_x_m=ox + (origin_xy[0] + width / 2) * dx,
        center_y_m=oy + (origin_xy[1] + height / 2) * dy,
    )


def _write_product_file(
    tmp: Path, obj: np.ndarray, probes: np.ndarray, geometry: ObjectGeometry, indexes: np.ndarray,
    x_m: np.ndarray, y_m: np.ndarray, metadata: ScanMetadata, losses: Sequence[tuple[int, float]],
    name: str, comments: str,
) -> None:
    import h5py

    with h5py.File(tmp, "w") as handle:
        attrs = handle.attrs
        attrs[NAME] = name
        attrs[COMMENTS] = comments
        attrs[DETECTOR_DISTANCE] = float(metadata.detector_distance_m)
        attrs[PHOTON_ENERGY] = float(metadata.photon_energy_eV)
        for key in (PROBE_PHOTON_COUNT, EXPOSURE_TIME, MASS_ATTENUATION, TOMOGRAPHY_ANGLE,
                    FOCUS_OBJECT_DISTANCE, TILT_ANGLE):
            attrs[key] = 0.0
        attrs[FAR_FIELD] = True
        handle.create_dataset(POSITION_INDEXES, data=np.asarray(indexes, dtype=np.int64))
        handle.create_dataset(POSITION_X, data=np.asarray(x_m, dtype=np.float64))
        handle.create_dataset(POSITION_Y, data=np.asarray(y_m, dtype=np.float64))
        # (OPR, K, N, N), as ptychodus writes its ProbeSequence
        probe = handle.create_dataset(PROBE_ARRAY, data=probes[np.newaxis].astype(np.complex64))
        probe.attrs[PIXEL_WIDTH] = geometry.pixel_width_m
        probe.attrs[PIXEL_HEIGHT] = geometry.pixel_height_m
        dataset = handle.create_dataset(OBJECT_ARRAY, data=obj[np.newaxis].astype(np.complex64))
        dataset.attrs[OBJECT_CENTER_X] = geometry.center_x_m
        dataset.attrs[OBJECT_CENTER_Y] = geometry.center_y_m
        dataset.attrs[PIXEL_WIDTH] = geometry.pixel_width_m
        dataset.attrs[PIXEL_HEIGHT] = geometry.pixel_height_m
        handle.create_dataset(OBJECT_LAYER_SPACING, data=np.zeros(0, dtype=np.float64))
        epochs = np.asarray([epoch for epoch, _ in losses], dtype=np.int64)
        values = np.asarray([value for _, value in losses], dtype=np.float64)
        handle.create_dataset(LOSS_EPOCHS, data=epochs)
        handle.create_dataset(LOSS_VALUES, data=values)


def write_reconstruction_product(
    path: str | Path, scan: Scan, reconstruction, *, probes: np.ndarray | None = None,
    losses: Sequence[float] = (),
) -> Path:
    """``reconstruction`` (a :class:`~ptychopinn.reconstruction.result.Reconstruction`) of
    ``scan`` as a ptychodus ``product.h5`` beside its ``reconstruction.npz``, with ``losses`` as
    the loss history (one value per epoch or pass)."""
    origin = tuple(float(v) for v in np.asarray(reconstruction.origin_xy).ravel()[:2])
    return write_product(path, scan, reconstruction.object, origin_xy=origin, probes=probes,
                         losses=list(enumerate(float(v) for v in losses)))
