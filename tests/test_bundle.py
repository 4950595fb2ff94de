"""The model bundle: round trip, atomic writing, and refusal of damaged or foreign files."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ptychopinn.model import bundle as bundle_mod
from ptychopinn.model.bundle import (
    FORMAT_VERSION,
    Bundle,
    BundleError,
    check_weights,
    load_bundle,
    save_bundle,
)
from ptychopinn.physics.scaling import ScaleContract


@pytest.fixture
def scales():
    return ScaleContract.from_training_data(np.random.default_rng(0).uniform(0, 1, (4, 8, 8)))


@pytest.fixture
def parts(scales):
    rng = np.random.default_rng(1)
    probe = (rng.normal(size=(8, 8)) + 1j * rng.normal(size=(8, 8))).astype(np.complex64)
    weights = {
        "encoder.conv1.weight": rng.normal(size=(3, 3, 1, 4)).astype(np.float32),
        "encoder.conv1.bias": rng.normal(size=(4,)).astype(np.float32),
    }
    config = {"model": {"n_filters": 4}, "geometry": {"N": 8, "gridsize": 1}}
    return dict(config=config, scales=scales, probe=probe, weights=weights, backend="torch")


@pytest.fixture
def saved(tmp_path, parts):
    return save_bundle(tmp_path / "model.pinn", **parts)


def _rewrite(src: Path, dst: Path, *, drop=(), replace=None) -> Path:
    """Copy a bundle member by member, dropping or replacing some (manifest left as is)."""
    replace = replace or {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            if name in drop:
                continue
            zout.writestr(name, replace.get(name, zin.read(name)))
        for name, data in replace.items():
            if name not in zin.namelist():
                zout.writestr(name, data)
    return dst


def _manifest(path: Path) -> dict:
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read("manifest.json"))


def test_round_trip(saved, parts):
    b = load_bundle(saved)
    assert isinstance(b, Bundle)
    assert b.config == parts["config"]
    assert b.scales == parts["scales"]
    assert b.probe.dtype == np.complex64
    np.testing.assert_array_equal(b.probe, parts["probe"])
    assert set(b.weights) == set(parts["weights"])
    for name, array in parts["weights"].items():
        assert b.weights[name].dtype == np.float32
        np.testing.assert_array_equal(b.weights[name], array)
    assert b.backend == "torch"
    assert b.path == saved
    m = b.manifest
    assert m["format"] == "ptychopinn-bundle"
    assert m["format_version"] == FORMAT_VERSION
    assert m["package_version"] and m["created"]
    assert set(m["members"]) == {
        "config.json",
        "scales.json",
        "probe.safetensors",
        "weights.safetensors",
    }
    assert all(len(e["sha256"]) == 64 and e["bytes"] > 0 for e in m["members"].values())


def test_extras_and_float_casting(tmp_path, parts):
    parts["weights"]["w16"] = np.ones((2, 2), dtype=np.float16)
    summary = json.dumps({"epochs": 3}).encode()
    path = save_bundle(tmp_path / "m.pinn", extras={"summary.json": summary}, **parts)
    b = load_bundle(path)
    assert b.extras == {"summary.json": summary}
    assert "extra/summary.json" in b.manifest["members"]
    assert b.weights["w16"].dtype == np.float32


def test_non_float_weights_refused(tmp_path, parts):
    parts["weights"]["step"] = np.arange(3)
    with pytest.raises(BundleError, match="step"):
        save_bundle(tmp_path / "m.pinn", **parts)


def test_write_is_atomic(tmp_path, parts, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    dest = tmp_path / "model.pinn"
    monkeypatch.setattr(bundle_mod.safetensors.numpy, "save", boom)
    with pytest.raises(RuntimeError):
        save_bundle(dest, **parts)
    monkeypatch.undo()

    # Fail midway through writing the zip itself.
    original = zipfile.ZipFile.writestr

    def fail_on_weights(self, name, data, *args, **kwargs):
        if name == "weights.safetensors":
            raise OSError("disk full")
        return original(self, name, data, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "writestr", fail_on_weights)
    with pytest.raises(OSError):
        save_bundle(dest, **parts)
    assert list(tmp_path.iterdir()) == []


def test_failed_overwrite_keeps_old_bundle(saved, parts, monkeypatch):
    before = saved.read_bytes()
    monkeypatch.setattr(zipfile.ZipFile, "writestr", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        save_bundle(saved, **parts)
    assert saved.read_bytes() == before
    assert sorted(p.name for p in saved.parent.iterdir()) == ["model.pinn"]


def test_corrupted_member(saved, tmp_path):
    with zipfile.ZipFile(saved) as zf:
        data = bytearray(zf.read("weights.safetensors"))
    data[-1] ^= 0xFF
    bad = _rewrite(saved, tmp_path / "bad.pinn", replace={"weights.safetensors": bytes(data)})
    with pytest.raises(BundleError, match="weights.safetensors") as exc:
        load_bundle(bad)
    assert "bad.pinn" in str(exc.value)


def test_newer_format_version(saved, tmp_path):
    manifest = _manifest(saved)
    manifest["format_version"] = FORMAT_VERSION + 1
    bad = _rewrite(saved, tmp_path / "new.pinn", replace={"manifest.json": json.dumps(manifest)})
    with pytest.raises(BundleError, match="newer"):
        load_bundle(bad)


def test_missing_format_version_or_wrong_format(saved, tmp_path):
    manifest = _manifest(saved)
    del manifest["format_version"]
    bad = _rewrite(saved, tmp_path / "a.pinn", replace={"manifest.json": json.dumps(manifest)})
    with pytest.raises(BundleError, match="format_version"):
        load_bundle(bad)
    manifest = _manifest(saved)
    manifest["format"] = "something-else"
    bad = _rewrite(saved, tmp_path / "b.pinn", replace={"manifest.json": json.dumps(manifest)})
    with pytest.raises(BundleError, match="format"):
        load_bundle(bad)


@pytest.mark.parametrize("member", ["weights.safetensors", "probe.safetensors", "manifest.json"])
def test_missing_member(saved, tmp_path, member):
    bad = _rewrite(saved, tmp_path / "missing.pinn", drop={member})
    with pytest.raises(BundleError, match=member.replace(".", r"\.")):
        load_bundle(bad)


def test_unlisted_member(saved, tmp_path):
    bad = _rewrite(saved, tmp_path / "extra.pinn", replace={"extra/payload.bin": b"x"})
    with pytest.raises(BundleError, match="extra/payload.bin"):
        load_bundle(bad)


def test_not_a_zip_and_truncated(saved, tmp_path):
    junk = tmp_path / "junk.pinn"
    junk.write_bytes(b"this is not a zip file")
    with pytest.raises(BundleError, match="junk.pinn"):
        load_bundle(junk)
    data = saved.read_bytes()
    for cut in (len(data) // 2, len(data) - 10):
        short = tmp_path / "short.pinn"
        short.write_bytes(data[:cut])
        with pytest.raises(BundleError, match="short.pinn"):
            load_bundle(short)
    with pytest.raises(BundleError, match="nowhere.pinn"):
        load_bundle(tmp_path / "nowhere.pinn")


def test_probe_size_must_match_patch_size(tmp_path, parts):
    parts["probe"] = np.ones((16, 16), np.complex64)
    with pytest.raises(BundleError, match="patch_size"):
        save_bundle(tmp_path / "m.pinn", **parts)
    parts["probe"] = np.ones((8, 6), np.complex64)
    with pytest.raises(BundleError, match="square"):
        save_bundle(tmp_path / "m.pinn", **parts)


def test_probe_size_mismatch_on_load(saved, tmp_path, scales):
    """A consistent-looking bundle whose scales disagree with the stored probe is refused."""
    other = ScaleContract.from_training_data(np.random.default_rng(0).uniform(0, 1, (4, 16, 16)))
    scales_bytes = json.dumps(other.to_dict()).encode()
    manifest = _manifest(saved)
    manifest["members"]["scales.json"] = {
        "sha256": hashlib.sha256(scales_bytes).hexdigest(),
        "bytes": len(scales_bytes),
    }
    bad = _rewrite(
        saved,
        tmp_path / "mismatch.pinn",
        replace={"scales.json": scales_bytes, "manifest.json": json.dumps(manifest)},
    )
    with pytest.raises(BundleError, match="patch_size"):
        load_bundle(bad)


def test_check_weights(saved, parts):
    b = load_bundle(saved)
    expected = {name: a.shape for name, a in parts["weights"].items()}
    check_weights(b, expected)
    check_weights(parts["weights"], expected)

    wrong = {
        "encoder.conv1.weight": (3, 3, 1, 8),
        "decoder.out.weight": (4,),
    }
    with pytest.raises(BundleError) as exc:
        check_weights(b, wrong)
    msg = str(exc.value)
    assert str(saved) in msg
    assert "missing tensors: decoder.out.weight" in msg
    assert "unexpected tensors: encoder.conv1.bias" in msg
    assert "encoder.conv1.weight: expected (3, 3, 1, 8), found (3, 3, 1, 4)" in msg

    with pytest.raises(BundleError, match="my-model"):
        check_weights(parts["weights"], wrong, source="my-model")


def test_atomic_writes_get_ordinary_file_permissions(tmp_path):
    """mkstemp's private 0600 must not leak into results other users of a beamline share read."""
    import os
    import stat

    from ptychopinn.atomic import write_text_atomic

    reference = tmp_path / "plain.txt"
    reference.write_text("x")
    written = write_text_atomic(tmp_path / "atomic.txt", "x")
    assert stat.S_IMODE(os.stat(written).st_mode) == stat.S_IMODE(os.stat(reference).st_mode)
