"""Scan data: the in-memory :class:`Scan` and its ``.npz`` file format (docs/design/spec.md#data-contract)."""

from ptychopinn.data.npz import load_scan, save_scan, validate_scan
from ptychopinn.data.scan import Scan, ScanFormatError

__all__ = ["Scan", "ScanFormatError", "load_scan", "save_scan", "validate_scan"]
