"""``ptychopinn convert IN OUT``: a scan from one file format to another.

Reads (the format is recognised from the file, see docs/formats.md):
  scan.npz          this project's scan (amplitudes; --intensity if it holds counts)
  export.npz        ptychodus's "export for PtychoPINN" (counts, all probe modes, bad pixels)
  DIR/              a ptychodus workflow directory with diffraction.h5 and product.h5
  diffraction.h5    ptychodus patterns, with product.h5 beside it (or product.h5, with
                    diffraction.h5 beside it): patterns and positions pair by scan index
  file.cxi          CXI / NeXus NXcxi_ptycho (needs --probe when the file has no probe)

Writes, chosen by OUT:
  OUT.npz           this project's scan (probe modes, bad pixels and geometry included)
  OUT.cxi           a CXI file that ptychodus and this tool read
  OUT (other)       a ptychodus workflow directory: OUT/diffraction.h5 and OUT/product.h5

Positions are converted between ptychodus's convention (probe pixel (N-1)/2 at the position, in
metres) and this project's (probe pixel N/2, in object pixels): x = (x_m - c_x)/dx + W/2.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ptychopinn.cli.common import EXIT_OK, UserError, add_command, new_outputs, read_input


@dataclass(frozen=True)
class ConvertOptions:
    source: Path
    target: Path
    probe: Path | None
    intensity: bool

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ConvertOptions:
        return cls(args.source, args.target, args.probe, args.intensity)


def add_parser(commands) -> None:
    p = add_command(commands, "convert", run, help="convert a scan between file formats (npz, ptychodus, CXI)",
                    doc=__doc__)
    p.add_argument("source", type=Path, metavar="IN", help="scan file or ptychodus directory to read")
    p.add_argument("target", type=Path, metavar="OUT", help="OUT.npz, OUT.cxi, or a directory for ptychodus files")
    p.add_argument("--probe", type=Path, default=None,
                   help="probe to use instead of (or, for CXI, in the absence of) the file's: a .npy (N, N) or "
                        "(K, N, N) complex array, refine's probe.npz, a scan .npz, or a ptychodus product.h5")
    p.add_argument("--intensity", action="store_true", help="IN is this project's .npz holding counts")


def run(args: argparse.Namespace) -> int:
    options = ConvertOptions.from_args(args)
    probe = None if options.probe is None else read_input(options.probe, "probe", read_probe)
    scan = read_input(options.source, "scan", lambda path: read_scan(path, probe, options.intensity))
    if options.target.resolve() == options.source.resolve():
        raise UserError(f"{options.target}: OUT is IN; choose another output")
    single_file = options.target.suffix in (".npz", ".cxi")
    with new_outputs(files=(options.target,)) if single_file else new_outputs(options.target):
        written = write_scan(scan, options.target)
    print(f"{scan.n_patterns} patterns of {scan.patch_size}×{scan.patch_size}, {scan.n_probe_modes} probe "
          f"mode(s): {written}")
    return EXIT_OK


REFINED_PROBE_KEY = "probes"  # in refine's probe.npz (docs/formats.md#refined-probe)


def read_probe(path: Path) -> np.ndarray:
    """(K, N, N) probe modes from a .npy array, refine's probe.npz, a scan file or a ptychodus product."""
    from ptychopinn.data import load_scan, read_product
    from ptychopinn.data.hdf5 import is_hdf5, open_hdf5
    from ptychopinn.data.product import POSITION_X, PROBE_ARRAY, probe_modes_from_array

    if path.suffix == ".npy":
        return probe_modes_from_array(np.load(path, allow_pickle=False), path, "probe")
    if path.suffix == ".npz" and path.is_file():
        with np.load(path, allow_pickle=False) as archive:
            if REFINED_PROBE_KEY in archive.files and "diffraction" not in archive.files:  # refine's probe.npz
                return probe_modes_from_array(archive[REFINED_PROBE_KEY], path, REFINED_PROBE_KEY)
    if path.is_file() and is_hdf5(path):
        with open_hdf5(path) as handle:
            is_product = PROBE_ARRAY in handle and POSITION_X in handle
        if is_product:  # a product alone: its probe, whether or not patterns lie beside it
            return read_product(path).probes
    return load_scan(path).probes


def read_scan(path: Path, probe: np.ndarray | None, intensity: bool):
    from ptychopinn.data import load_scan, validate_scan
    from ptychopinn.data.cxi import read_cxi
    from ptychopinn.data.hdf5 import is_hdf5, open_hdf5

    if probe is not None and path.is_file() and is_hdf5(path):
        from ptychopinn.data.cxi import is_cxi

        with open_hdf5(path) as handle:
            cxi = is_cxi(handle)
        if cxi:
            return validate_scan(read_cxi(path, probe=probe))
    scan = load_scan(path, intensity=intensity)
    if probe is None:
        return scan
    return validate_scan(dataclasses.replace(scan, probe=probe[0], probe_modes=probe if len(probe) > 1 else None))


def write_scan(scan, target: Path) -> Path:
    from ptychopinn.data import save_scan
    from ptychopinn.data.cxi import write_cxi
    from ptychopinn.data.ptychodus import write_workflow

    if target.suffix == ".npz":
        return save_scan(scan, target)
    if target.suffix == ".cxi":
        return write_cxi(target, scan)
    if target.exists() and not target.is_dir():
        raise UserError(f"{target}: exists and is not a directory; name OUT.npz, OUT.cxi or a directory")
    return write_workflow(target, scan)
