"""Scan data: the in-memory :class:`Scan` and its ``.npz`` file format (SPEC §1)."""

from .npz import load_scan, save_scan, validate_scan
from .scan import Scan, ScanFormatError

__all__ = ["Scan", "ScanFormatError", "load_scan", "save_scan", "validate_scan"]
