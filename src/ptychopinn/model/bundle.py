"""The one-file model bundle ``model.pinn`` (backend-neutral: numpy + safetensors only).

A bundle is a zip archive holding

* ``manifest.json``     format name/version, package version, training backend, creation time
                        and the sha256 + size of every other member;
* ``config.json``       the caller's resolved settings and geometry (any JSON object);
* ``scales.json``       the :class:`~ptychopinn.physics.scaling.ScaleContract`;
* ``probe.safetensors`` the normalised probe as float32 tensors ``probe.real``/``probe.imag``,
                        and, for a probe of K incoherent modes, all of them (K, N, N) as
                        ``modes.real``/``modes.imag`` (mode 0 = the probe; format version 2);
* ``weights.safetensors`` the model weights, float32, under backend-neutral names;
* ``extra/...``         optional caller-supplied files (e.g. a training summary).

Loading verifies every checksum and never unpickles anything: JSON goes through
:func:`json.loads` and tensors through :func:`safetensors.numpy.load`.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.numpy

import ptychopinn
from ptychopinn.atomic import atomic_path
from ptychopinn.physics.scaling import ScaleContract

FORMAT_NAME = "ptychopinn-bundle"
# 2: probe.safetensors may hold incoherent modes (a reader of version 1 would drop them, so it
# is told to upgrade instead)
FORMAT_VERSION = 2
BACKENDS = ("torch", "tensorflow")

MANIFEST = "manifest.json"
CONFIG = "config.json"
SCALES = "scales.json"
PROBE = "probe.safetensors"
WEIGHTS = "weights.safetensors"
EXTRA_PREFIX = "extra/"
REQUIRED_MEMBERS = (CONFIG, SCALES, PROBE, WEIGHTS)


class BundleError(ValueError):
    """A bundle that cannot be written or read; the message names the file and the member."""


@dataclass(frozen=True)
class Bundle:
    config: dict[str, Any]
    scales: ScaleContract
    probe: np.ndarray  # complex64, (N, N)
    weights: dict[str, np.ndarray]  # float32
    manifest: dict[str, Any]
    path: Path | None = None
    extras: dict[str, bytes] = field(default_factory=dict)  # keyed without the "extra/" prefix
    probe_modes: np.ndarray | None = None  # complex64 (K, N, N), mode 0 = probe; None for one mode

    @property
    def backend(self) -> str:
        return str(self.manifest["backend"])


def _package_version() -> str:
    version = getattr(ptychopinn, "__version__", None)
    if version:
        return str(version)
    try:
        return dist_version("ptychopinn")
    except Exception:
        return "0+unknown"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _as_float32(name: str, array: Any, where: str) -> np.ndarray:
    arr = np.asarray(array)
    if not np.issubdtype(arr.dtype, np.floating):
        raise BundleError(f"{where}: tensor {name!r} has dtype {arr.dtype}; expected a float dtype")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _check_probe(probe: np.ndarray, scales: ScaleContract, where: str) -> None:
    if probe.ndim != 2 or probe.shape[0] != probe.shape[1]:
        raise BundleError(f"{where}: probe must be a square 2-D array, got shape {probe.shape}")
    if probe.shape[0] != scales.patch_size:
        raise BundleError(
            f"{where}: probe is {probe.shape[0]}x{probe.shape[1]} but scales.patch_size is "
            f"{scales.patch_size}"
        )


def save_bundle(
    path: str | os.PathLike[str],
    *,
    config: dict[str, Any],
    scales: ScaleContract,
    probe: np.ndarray,
    weights: dict[str, np.ndarray],
    backend: str,
    extras: dict[str, bytes] | None = None,
    probe_modes: np.ndarray | None = None,
) -> Path:
    """Write ``model.pinn`` atomically: the destination is either the complete bundle or untouched.
    ``probe_modes`` (K, N, N), K ≥ 2: the probe's incoherent modes, the first equal to ``probe``."""
    path = Path(path)
    where = f"bundle {path}"
    if backend not in BACKENDS:
        raise BundleError(f"{where}: backend must be one of {BACKENDS}, got {backend!r}")
    if not isinstance(config, dict):
        raise BundleError(f"{where}: {CONFIG} must be a dict, got {type(config).__name__}")
    probe = np.asarray(probe)
    _check_probe(probe, scales, where)
    probe = probe.astype(np.complex64)
    probe_tensors = {"probe.real": np.ascontiguousarray(probe.real, dtype=np.float32),
                     "probe.imag": np.ascontiguousarray(probe.imag, dtype=np.float32)}
    if probe_modes is not None:
        modes = _checked_modes(np.asarray(probe_modes).astype(np.complex64), probe, where)
        probe_tensors["modes.real"] = np.ascontiguousarray(modes.real, dtype=np.float32)
        probe_tensors["modes.imag"] = np.ascontiguousarray(modes.imag, dtype=np.float32)
    tensors = {}
    for name, array in weights.items():
        if not isinstance(name, str) or not name:
            raise BundleError(f"{where}: weight names must be non-empty strings, got {name!r}")
        tensors[name] = _as_float32(name, array, f"{where} {WEIGHTS}")

    members: dict[str, bytes] = {
        CONFIG: json.dumps(config, indent=2).encode("utf-8"),
        SCALES: json.dumps(scales.to_dict(), indent=2).encode("utf-8"),
        PROBE: safetensors.numpy.save(probe_tensors),
        WEIGHTS: safetensors.numpy.save(tensors),
    }
    for name, data in (extras or {}).items():
        parts = name.replace("\\", "/").split("/")
        if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise BundleError(f"{where}: invalid extra member name {name!r}")
        members[EXTRA_PREFIX + "/".join(parts)] = bytes(data)

    manifest = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "package_version": _package_version(),
        "backend": backend,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "members": {
            name: {"sha256": _sha256(data), "bytes": len(data)} for name, data in members.items()
        },
    }
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(MANIFEST, json.dumps(manifest, indent=2))
            for name, data in members.items():
                zf.writestr(name, data)
    return path


def _checked_modes(modes: np.ndarray, probe: np.ndarray, where: str) -> np.ndarray:
    if modes.ndim != 3 or modes.shape[1:] != probe.shape or len(modes) < 2:
        raise BundleError(f"{where}: probe modes must be (K, {probe.shape[0]}, {probe.shape[1]}) with K >= 2, "
                          f"got shape {modes.shape}")
    if not np.array_equal(modes[0], probe):
        raise BundleError(f"{where}: the first probe mode must equal the probe")
    return modes


def _json_object(data: bytes, member: str, where: str) -> dict[str, Any]:
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{where}: {member} is not valid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise BundleError(f"{where}: {member} must hold a JSON object")
    return value


def _tensors(data: bytes, member: str, where: str) -> dict[str, np.ndarray]:
    try:
        return safetensors.numpy.load(data)
    except Exception as exc:
        raise BundleError(f"{where}: {member} is not a readable safetensors file ({exc})") from exc


def _read_members(path: Path, where: str) -> dict[str, bytes]:
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise BundleError(f"{where}: duplicate members {duplicates}")
            return {name: zf.read(name) for name in names}
    except BundleError:
        raise
    except FileNotFoundError as exc:
        raise BundleError(f"{where}: file not found") from exc
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
        raise BundleError(f"{where}: not a readable zip archive ({exc})") from exc


def _check_manifest(manifest: dict[str, Any], where: str) -> dict[str, dict[str, Any]]:
    if manifest.get("format") != FORMAT_NAME:
        raise BundleError(
            f"{where}: {MANIFEST} format is {manifest.get('format')!r}, expected {FORMAT_NAME!r}"
        )
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise BundleError(f"{where}: {MANIFEST} has no integer format_version")
    if version > FORMAT_VERSION:
        raise BundleError(
            f"{where}: format_version {version} was written by a newer ptychopinn "
            f"(this one reads up to {FORMAT_VERSION}); upgrade ptychopinn"
        )
    if manifest.get("backend") not in BACKENDS:
        raise BundleError(f"{where}: {MANIFEST} backend {manifest.get('backend')!r} is unknown")
    listed = manifest.get("members")
    if not isinstance(listed, dict) or not all(
        isinstance(v, dict) and isinstance(v.get("sha256"), str) and isinstance(v.get("bytes"), int)
        for v in listed.values()
    ):
        raise BundleError(f"{where}: {MANIFEST} 'members' must map names to sha256 and bytes")
    missing = [m for m in REQUIRED_MEMBERS if m not in listed]
    if missing:
        raise BundleError(f"{where}: {MANIFEST} does not list required members {missing}")
    return listed


def load_bundle(path: str | os.PathLike[str]) -> Bundle:
    """Read and fully verify a bundle; raise :class:`BundleError` on any inconsistency."""
    path = Path(path)
    where = f"bundle {path}"
    members = _read_members(path, where)
    if MANIFEST not in members:
        raise BundleError(f"{where}: member {MANIFEST} is missing")
    manifest = _json_object(members.pop(MANIFEST), MANIFEST, where)
    listed = _check_manifest(manifest, where)

    absent = sorted(set(listed) - set(members))
    if absent:
        raise BundleError(f"{where}: members listed in the manifest are missing: {absent}")
    unlisted = sorted(set(members) - set(listed))
    if unlisted:
        raise BundleError(f"{where}: members not listed in the manifest: {unlisted}")
    for name, data in members.items():
        entry = listed[name]
        if len(data) != entry["bytes"] or _sha256(data) != entry["sha256"]:
            raise BundleError(f"{where}: member {name} is corrupted (checksum mismatch)")

    config = _json_object(members[CONFIG], CONFIG, where)
    scales_dict = _json_object(members[SCALES], SCALES, where)
    try:
        scales = ScaleContract.from_dict(scales_dict)
    except (TypeError, ValueError) as exc:
        raise BundleError(f"{where}: {SCALES} is not a valid scale contract ({exc})") from exc

    parts = _tensors(members[PROBE], PROBE, where)
    if set(parts) not in ({"probe.real", "probe.imag"}, {"probe.real", "probe.imag", "modes.real", "modes.imag"}):
        raise BundleError(
            f"{where}: {PROBE} must hold exactly 'probe.real' and 'probe.imag' (and 'modes.real', "
            f"'modes.imag' for incoherent modes), got {sorted(parts)}"
        )
    real = _as_float32("probe.real", parts["probe.real"], f"{where} {PROBE}")
    imag = _as_float32("probe.imag", parts["probe.imag"], f"{where} {PROBE}")
    if real.shape != imag.shape:
        raise BundleError(
            f"{where}: {PROBE} probe.real {real.shape} and probe.imag {imag.shape} differ in shape"
        )
    probe = (real + 1j * imag).astype(np.complex64)
    _check_probe(probe, scales, f"{where} {PROBE}")
    probe_modes = None
    if "modes.real" in parts:
        modes_real = _as_float32("modes.real", parts["modes.real"], f"{where} {PROBE}")
        modes_imag = _as_float32("modes.imag", parts["modes.imag"], f"{where} {PROBE}")
        if modes_real.shape != modes_imag.shape:
            raise BundleError(f"{where}: {PROBE} modes.real {modes_real.shape} and modes.imag "
                              f"{modes_imag.shape} differ in shape")
        probe_modes = _checked_modes((modes_real + 1j * modes_imag).astype(np.complex64), probe, f"{where} {PROBE}")

    weights = {
        name: _as_float32(name, array, f"{where} {WEIGHTS}")
        for name, array in _tensors(members[WEIGHTS], WEIGHTS, where).items()
    }
    extras = {
        name[len(EXTRA_PREFIX) :]: data
        for name, data in members.items()
        if name.startswith(EXTRA_PREFIX)
    }
    return Bundle(config, scales, probe, weights, manifest, path, extras, probe_modes)


def check_weights(
    bundle_or_weights: Bundle | dict[str, np.ndarray],
    expected: dict[str, tuple[int, ...]],
    source: str | None = None,
) -> None:
    """Refuse weights whose tensor names or shapes disagree with the architecture's ``expected``."""
    if isinstance(bundle_or_weights, Bundle):
        weights = bundle_or_weights.weights
        if source is None:
            path = bundle_or_weights.path
            source = f"bundle {path}" if path is not None else "bundle"
    else:
        weights = bundle_or_weights
    source = source or "weights"
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    mismatched = [
        (name, tuple(expected[name]), tuple(np.shape(weights[name])))
        for name in sorted(set(expected) & set(weights))
        if tuple(expected[name]) != tuple(np.shape(weights[name]))
    ]
    if not (missing or unexpected or mismatched):
        return
    lines = [f"{source}: weights do not match the model architecture"]
    if missing:
        lines.append(f"  missing tensors: {', '.join(missing)}")
    if unexpected:
        lines.append(f"  unexpected tensors: {', '.join(unexpected)}")
    for name, want, got in mismatched:
        lines.append(f"  shape mismatch for {name}: expected {want}, found {got}")
    raise BundleError("\n".join(lines))
