"""Scan data: the in-memory :class:`Scan` and the file formats it is read from and written to
(docs/design/spec.md#data-contract, docs/formats.md)."""

from ptychopinn.data.npz import load_scan, save_scan, validate_scan
from ptychopinn.data.product import read_product, write_product
from ptychopinn.data.ptychodus import write_diffraction, write_workflow
from ptychopinn.data.scan import Scan, ScanFormatError, ScanMetadata

__all__ = [
    "Scan",
    "ScanFormatError",
    "ScanMetadata",
    "load_scan",
    "read_product",
    "save_scan",
    "validate_scan",
    "write_diffraction",
    "write_product",
    "write_workflow",
]
