"""The ``ptychopinn`` command line, a thin layer over the library: one module per command,
shared options and exit codes in :mod:`ptychopinn.cli.common`, the flag-to-setting table in
:mod:`ptychopinn.cli.flags`."""

from ptychopinn.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
