"""The console script, run in a subprocess: simulate and inspect."""

from __future__ import annotations

import re

import numpy as np
import pytest

from helpers import run_cli
from ptychopinn.data import load_scan


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "scan.npz"
    run_cli("simulate", str(path), "--object", "dots", "--size", "96", "--n", "32",
            "--step", "5", "--photons", "1e5", "--seed", "3", "--scan", "fermat", "-q")
    return path


def test_simulate_writes_a_valid_scan_with_reference(simulated):
    scan = load_scan(simulated)
    assert scan.patch_size == 32 and scan.object.shape == (96, 96)
    totals = np.sum(scan.diffraction.astype(np.float64) ** 2, axis=(1, 2))
    assert totals.mean() == pytest.approx(1e5, rel=0.01)


def test_inspect_reports_what_a_scientist_checks(simulated, tmp_path):
    plot = tmp_path / "overview.png"
    result = run_cli("inspect", str(simulated), "--plot", str(plot))
    out = result.stdout
    scan = load_scan(simulated)
    assert f"{scan.n_patterns} × 32×32" in out
    assert "amplitudes" in out
    photons = float(re.search(r"photons/pattern\s+(\S+)", out).group(1))
    assert photons == pytest.approx(1e5, rel=0.01)
    assert "median step" in out and "linear overlap" in out
    from PIL import Image

    with Image.open(plot) as image:
        assert image.format == "PNG" and image.size[0] > 800
        pixels = np.asarray(image.convert("L"), dtype=float)
    assert pixels.std() > 10  # a drawn figure, not a blank canvas


def test_inspect_flags_intensity_like_data(tmp_path):
    scan_path = tmp_path / "counts.npz"
    rng = np.random.default_rng(0)
    np.savez(scan_path, diffraction=rng.poisson(300, (6, 8, 8)).astype(np.uint16),
             xcoords=np.arange(6.0), ycoords=np.arange(6.0), probeGuess=np.ones((8, 8), complex))
    result = run_cli("inspect", str(scan_path))
    assert "intensities?" in result.stdout
    counted = run_cli("inspect", str(scan_path), "--intensity")
    assert "amplitudes" in counted.stdout


def test_bad_file_is_a_clear_error_not_a_traceback(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_text("not a scan")
    result = run_cli("inspect", str(bad), check=False)
    assert result.returncode == 2
    assert str(bad) in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["simulate", "inspect"])
def test_help_explains(command):
    result = run_cli(command, "--help")
    assert "usage: ptychopinn" in result.stdout and "--" in result.stdout
