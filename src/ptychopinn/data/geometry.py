"""Metres ↔ object pixels, and the photon wavelength (docs/design/spec.md#data-contract).

ptychodus describes an object of W × H pixels of size (dx, dy) by its centre (c_x, c_y): pixel
column i has its centre at c_x + (i − (W − 1)/2)·dx, and a probe position x_m puts probe pixel
(N − 1)/2 there. This project puts probe pixel N/2 at a position, half a pixel further, so

    x = (x_m − c_x)/dx + (W − 1)/2 + 1/2 = (x_m − c_x)/dx + W/2,

and x_m = offset_x + x·dx with offset_x = c_x − (W/2)·dx (likewise for y with H and dy).
"""

from __future__ import annotations

import numpy as np

# CODATA 2018 exact values
PLANCK_J_S = 6.62607015e-34
LIGHT_SPEED_M_S = 299792458.0
ELECTRON_VOLT_J = 1.602176634e-19


def wavelength_m(photon_energy_eV: float) -> float:  # noqa: N803
    """Photon wavelength in metres for an energy in eV."""
    return PLANCK_J_S * LIGHT_SPEED_M_S / (photon_energy_eV * ELECTRON_VOLT_J)


def metres_to_pixels(coord_m: np.ndarray, centre_m: float, pixel_m: float, extent_px: int) -> np.ndarray:
    """This project's pixel positions (probe pixel N/2 at the position) of ptychodus positions in
    metres on an object of ``extent_px`` pixels centred at ``centre_m``."""
    return (np.asarray(coord_m, dtype=np.float64) - centre_m) / pixel_m + extent_px / 2


def pixels_to_metres(coord_px: np.ndarray, centre_m: float, pixel_m: float, extent_px: int) -> np.ndarray:
    """Inverse of :func:`metres_to_pixels`."""
    return centre_m + (np.asarray(coord_px, dtype=np.float64) - extent_px / 2) * pixel_m


def far_field_object_pixel_m(
    photon_energy_eV: float, detector_distance_m: float, detector_pixel_m: float, n: int  # noqa: N803
) -> float:
    """Object-plane pixel size λ z / (N p) of a far-field measurement with N detector pixels of
    size p at distance z."""
    return wavelength_m(photon_energy_eV) * detector_distance_m / (n * detector_pixel_m)
