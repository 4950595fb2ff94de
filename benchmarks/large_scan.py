"""Memory and speed of ``ptychopinn infer`` on a large scan: patterns read lazily against the scan
loaded whole (issue 27).

Writes a synthetic scan of ``--patterns`` 64 × 64 patterns (a raster with jitter over a random
phase object, Poisson counts, stored as float32 amplitudes in an uncompressed .npz), streamed to
disk a chunk at a time so that the writer never holds it, then runs ``ptychopinn infer --model
general`` on it in a subprocess per path: ``lazy`` (what infer does: the patterns stay on disk and
stream a batch at a time) and ``full`` (the scan loaded into memory first, as before). Each child's
peak resident memory comes from ``os.wait4``; patterns/s is M over the command's wall time (load,
grouping, network, stitching, data fit and figures). Writes ``results/large_scan_<cpu|gpu>.{json,md}``.

    python benchmarks/large_scan.py --patterns 20000 --workdir /tmp/large_scan
    python benchmarks/large_scan.py --patterns 100000 --skip-full   # the full load needs ~15 GB
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, write_results  # noqa: E402

N = 64
STEP = 4.0  # px between raster positions: every object pixel is seen by ~(N/STEP)² patterns' probes
PHOTONS = 1e6  # mean total counts per pattern
WRITE_CHUNK = 1024  # patterns simulated and written at a time


# --------------------------------------------------------------------------------------------
# the synthetic scan, streamed to disk
# --------------------------------------------------------------------------------------------


def raster_positions(n_patterns: int, seed: int) -> np.ndarray:
    """(M, 2) [x, y]: a near-square raster of M positions, STEP px apart, jittered ±0.5 px, whose
    patches all lie inside the object (corner at N/2 + 2)."""
    columns = int(np.ceil(np.sqrt(n_patterns)))
    index = np.arange(n_patterns)
    grid = np.stack([index % columns, index // columns], axis=1) * STEP
    jitter = np.random.default_rng(seed).uniform(-0.5, 0.5, size=grid.shape)
    return grid + jitter + N / 2 + 2


def phase_object(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth random phase object (amplitude 0.8 to 1), complex64; float32 throughout, so a
    100 000-pattern object (about 1 300² px) costs a few tens of MB."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((height, width)).astype(np.float32)
    ky = np.fft.fftfreq(height)[:, None].astype(np.float32)
    kx = np.fft.rfftfreq(width)[None, :].astype(np.float32)
    smooth = np.fft.irfft2(np.fft.rfft2(noise) * np.exp(-(kx**2 + ky**2) * (2 * np.pi * 6) ** 2), s=(height, width))
    smooth = (smooth / (np.abs(smooth).max() + 1e-12)).astype(np.float32)
    return ((0.9 + 0.1 * smooth) * np.exp(1j * 1.5 * smooth)).astype(np.complex64)


def write_scan(path: Path, n_patterns: int, seed: int = 0) -> dict:
    """The scan at ``path`` (.npz, members stored uncompressed as np.savez writes them), its
    diffraction written chunk by chunk."""
    from numpy.lib import format as npy_format

    from ptychopinn.atomic import atomic_path
    from ptychopinn.physics.forward import extract_patches, far_field, illuminate
    from ptychopinn.simulation.simulate import simulation_probe

    positions = raster_positions(n_patterns, seed)
    height, width = (np.ceil(positions.max(axis=0)[::-1] + N / 2 + 3)).astype(int)
    obj = phase_object(int(height), int(width), seed)
    probe = simulation_probe(N, "disk")
    rng = np.random.default_rng(seed + 1)
    # λ from the first chunk: the mean total counts of the whole scan is then PHOTONS to a few %
    first = np.abs(far_field(illuminate(extract_patches(obj, positions[:WRITE_CHUNK], N), probe))) ** 2
    rate = PHOTONS / float(np.mean(first.sum(axis=(-2, -1))))
    header = {"descr": npy_format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False,
              "shape": (n_patterns, N, N)}
    with atomic_path(path) as temporary, zipfile.ZipFile(temporary, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        with archive.open("diffraction.npy", "w", force_zip64=True) as member:
            npy_format.write_array_header_2_0(member, header)
            for start in range(0, n_patterns, WRITE_CHUNK):
                chunk = positions[start : start + WRITE_CHUNK]
                intensity = np.abs(far_field(illuminate(extract_patches(obj, chunk, N), probe))) ** 2
                member.write(np.sqrt(rng.poisson(rate * intensity)).astype(np.float32).tobytes())
        for key, value in (("xcoords", positions[:, 0]), ("ycoords", positions[:, 1]), ("probeGuess", probe)):
            with archive.open(f"{key}.npy", "w", force_zip64=True) as member:
                npy_format.write_array(member, np.ascontiguousarray(value), allow_pickle=False)
    return {"patterns": n_patterns, "object_shape": [int(height), int(width)], "file_bytes": path.stat().st_size}


# --------------------------------------------------------------------------------------------
# one infer per path, in a child process
# --------------------------------------------------------------------------------------------


def child_main(mode: str, infer_args: list[str]) -> int:
    """``ptychopinn infer`` as the console script runs it; ``full`` loads the scan whole first
    (the path infer took before patterns were read lazily)."""
    import ptychopinn.cli.infer as infer_command
    from ptychopinn.cli.main import main
    from ptychopinn.data import load_scan

    def load_whole(path, **options):
        scan = load_scan(path, **{**options, "lazy": False})  # whatever infer asks for
        assert isinstance(scan.diffraction, np.ndarray), "the full path must hold the patterns in memory"
        return scan

    if mode == "full":
        infer_command.load_scan = load_whole
    return main(["infer", *infer_args])


def run_infer(mode: str, scan: Path, output_dir: Path, batch_size: int) -> dict:
    infer_args = ["--model", "general", "--data", str(scan), "--output-dir", str(output_dir),
                  "--batch-size", str(batch_size), "--accelerator", "cpu", "--quiet"]
    command = [sys.executable, str(Path(__file__).resolve()), "--child", mode, "--", *infer_args]
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f"infer ({mode}) failed with exit code {child.returncode}:\n{output}")
    return {"mode": mode, "command": "ptychopinn infer " + shlex.join(infer_args), "peak_rss_mb": usage.ru_maxrss / 1024,
            "seconds": seconds, "output_tail": output.strip().splitlines()[-4:]}


def canvas_megabytes(object_shape: list[int]) -> float:
    """What the canvas accumulators hold: the stitcher's complex128 sum and float64 coverage, the
    data fit's complex64 canvas and float32 illumination (the object plus its margins)."""
    pixels = object_shape[0] * object_shape[1]
    return pixels * (16 + 8 + 8 + 4) / 2**20


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------


def markdown(payload: dict) -> str:
    scan = payload["scan"]
    lines = [f"# infer on a large scan (cpu, {scan['patterns']:,} patterns of {N}², "
             f"{scan['file_bytes'] / 1e9:.2f} GB float32 on disk)", "",
             f"command: `{payload['command']}`", "",
             "| path | peak RSS (MB) | wall (s) | patterns/s |", "|---|---|---|---|"]
    for run in payload["runs"]:
        lines.append(f"| {run['mode']} | {run['peak_rss_mb']:,.0f} | {run['seconds']:.1f} | "
                     f"{scan['patterns'] / run['seconds']:,.0f} |")
    lines += ["", f"infer: `{payload['runs'][0]['command']}` (the general model, CPU)", "",
              f"memory bound of the lazy path: {payload['bound']}"]
    return "\n".join(lines)


def memory_bound(runs: list[dict], scan: dict, batch_size: int) -> str:
    """The lazy path's peak as constant + canvas + per position: nothing in it scales with the
    pattern bytes (the constant was ~0.75 GB at 2 000 and at 20 000 patterns on 2 CPU cores)."""
    canvas_mb = canvas_megabytes(scan["object_shape"])
    per_position_mb = scan["patterns"] * 200 / 2**20  # positions, groups, energies, trust map: ~200 B each
    text = (f"peak ≈ constant (~0.7 GB: interpreter, torch, the model and one batch of {batch_size} "
            f"through it, figures) + canvas accumulators (36 B per pixel: {canvas_mb:.0f} MB for "
            f"{scan['object_shape'][0]}×{scan['object_shape'][1]} px) + ~200 B per position "
            f"({per_position_mb:.0f} MB); nothing grows with the pattern bytes")
    lazy = next((run for run in runs if run["mode"] == "lazy"), None)
    if lazy is not None:
        text += f"; measured {lazy['peak_rss_mb']:,.0f} MB"
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patterns", type=int, default=100_000)
    parser.add_argument("--batch-size", dest="batch_size", type=int, default=64)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/large_scan"))
    parser.add_argument("--skip-full", dest="skip_full", action="store_true",
                        help="run only the lazy path (the full load of 100 000 patterns needs ~15 GB)")
    parser.add_argument("--keep", action="store_true", help="keep the scan file for a later run")
    parser.add_argument("--results-dir", dest="results_dir", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    scan_path = args.workdir / f"scan_{args.patterns}.npz"
    if scan_path.exists():
        from ptychopinn.data.lazy import npz_member_rows

        rows = npz_member_rows(scan_path, "diffraction")
        positions = raster_positions(args.patterns, 0)
        height, width = (np.ceil(positions.max(axis=0)[::-1] + N / 2 + 3)).astype(int)
        scan = {"patterns": rows.shape[0], "object_shape": [int(height), int(width)],
                "file_bytes": scan_path.stat().st_size}
    else:
        start = time.perf_counter()
        scan = write_scan(scan_path, args.patterns)
        print(f"wrote {scan_path} ({scan['file_bytes'] / 1e9:.2f} GB) in {time.perf_counter() - start:.0f} s")
    modes = ["lazy"] if args.skip_full else ["lazy", "full"]
    runs = []
    for mode in modes:
        run = run_infer(mode, scan_path, args.workdir / f"infer_{mode}", args.batch_size)
        print(json.dumps(run))
        runs.append(run)
    command = "python benchmarks/large_scan.py " + shlex.join(sys.argv[1:])
    payload = {"command": command, "scan": scan, "runs": runs, "batch_size": args.batch_size,
               "bound": memory_bound(runs, scan, args.batch_size)}
    for path in write_results("large_scan", payload, markdown(payload), args.results_dir):
        print(path)
    if not args.keep:
        scan_path.unlink()
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        separator = sys.argv.index("--")
        raise SystemExit(child_main(sys.argv[2], sys.argv[separator + 1 :]))
    raise SystemExit(main())
