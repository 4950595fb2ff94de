"""The ``ptychopinn`` command line, a thin layer over the library."""

from ptychopinn.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
