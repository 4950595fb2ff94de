"""What every command shares: the -v/-q options, the exit codes, the help formatter, the checks
that run before any work (inputs, outputs, accelerator, backend) and the report lines."""

from __future__ import annotations

import argparse
import contextlib
import shutil
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import yaml

from ptychopinn.backends import get_backend

EXIT_OK = 0
EXIT_DIVERGED = 1  # compare-* and parity: the two inputs disagree beyond the tolerance
EXIT_USER_ERROR = 2  # bad input, settings or environment: one line on stderr, no traceback

ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")


class UserError(ValueError):
    """A mistake in what the user asked for, reported as one line (exit status 2)."""


# What a command reports as one line and exit status 2 instead of a traceback: bad values and
# files (ValueError: also pydantic's ValidationError, ScanFormatError, BundleError and the missing
# backend's error), the file system (missing, unreadable or unwritable paths), malformed YAML and
# broken zip archives (model.pinn)
USER_ERRORS = (ValueError, OSError, yaml.YAMLError, zipfile.BadZipFile, EOFError)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps descriptions as written; defaults are stated in each help text."""


def common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings only")
    return common


class CommandParser(argparse.ArgumentParser):
    """A parser that reads the predecessor's spellings of its options as today's: they keep
    working in users' scripts and stay out of ``--help`` (argparse cannot hide one alias of an
    option, and a hidden option of its own would not satisfy a required one)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.legacy_spellings: dict[str, str] = {}

    def parse_known_args(self, args=None, namespace=None):
        if args is not None and self.legacy_spellings:
            args = [self._today(arg) for arg in args]
        return super().parse_known_args(args, namespace)

    def _today(self, arg: str) -> str:
        name, equals, value = arg.partition("=")
        return self.legacy_spellings.get(name, name) + equals + value if name.startswith("--") else arg


def add_command(commands, name: str, run: Callable[[argparse.Namespace], int], *, help: str,
                doc: str, epilog: str | None = None) -> CommandParser:
    """A sub-command's parser with the common options; ``run`` handles its arguments. ``help`` is
    its line in ``ptychopinn --help``; its own ``--help`` describes it with ``doc`` (the command
    module's docstring) after the docstring's first paragraph, then ``epilog``."""
    description = doc.split("\n\n", 1)[-1].strip() + (f"\n\n{epilog}" if epilog else "")
    parser = commands.add_parser(name, parents=[common_options()], help=help, description=description,
                                 formatter_class=HelpFormatter, allow_abbrev=False)
    parser.set_defaults(run=run)
    return parser


def add_legacy(parser: CommandParser, spelling: str, today: str) -> None:
    """``spelling``, the predecessor's name of the option ``today``, is read as ``today``."""
    parser.legacy_spellings[spelling] = today


def add_hidden(parser: argparse.ArgumentParser, spelling: str, **kwargs: Any) -> None:
    """A predecessor's option with no counterpart of the same meaning today: accepted, hidden."""
    parser.add_argument(spelling, help=argparse.SUPPRESS, **kwargs)


def add_model_and_data(parser: CommandParser, model_help: str) -> None:
    """``--model`` (a bundle or its run directory) and ``--data`` (a scan), both required."""
    parser.add_argument("--model", dest="model", type=Path, required=True,
                        help=f"{model_help}; or 'general', the model shipped with the package")
    add_legacy(parser, "--model_path", "--model")
    parser.add_argument("--data", dest="data", type=Path, required=True,
                        help="scan: this project's .npz, a ptychodus export .npz or workflow directory (diffraction.h5 + product.h5), or a CXI file (docs/guides/own-data.md)")


# ---------------------------------------------------------------------------------------------
# checks before any work
# ---------------------------------------------------------------------------------------------


Loaded = TypeVar("Loaded")


def read_input(path: Path, what: str, load: Callable[[Path], Loaded]) -> Loaded:
    """``load(path)``, with any failure reported as one line naming ``path`` and ``what`` it
    should have been."""
    if not path.exists():
        raise UserError(f"{path}: no such file ({what})")
    try:
        return load(path)
    except USER_ERRORS as error:
        message = str(error)
        raise UserError(message if str(path) in message else f"{path}: not a readable {what} ({message})") \
            from error


def read_model(path: Path):
    """The model at ``path`` (model.pinn or its run directory), or the shipped model of that name
    (``general``), with the errors of :func:`read_input`."""
    from ptychopinn.model.general import shipped_model_path
    from ptychopinn.model.trained import load_model

    shipped = shipped_model_path(str(path)) if not path.exists() else None
    where = shipped if shipped is not None else path
    return read_input(where, "model (model.pinn, its run directory, or a shipped model's name)", load_model)


def check_accelerator(accelerator: str | None) -> None:
    """Refuse an unknown accelerator, or a GPU this machine does not have, before any work."""
    if accelerator is None or accelerator == "auto":
        return
    if accelerator not in ACCELERATORS:
        raise UserError(f"--accelerator {accelerator}: unknown; use one of {', '.join(ACCELERATORS)}")
    if accelerator == "cpu":
        return
    import torch

    if accelerator == "mps":
        found = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    else:
        found = torch.cuda.is_available()
    if not found:
        kind = "Apple MPS device" if accelerator == "mps" else "GPU (CUDA)"
        raise UserError(f"--accelerator {accelerator}: no {kind} was found on this machine; "
                        "use --accelerator cpu (or auto)")


def check_backend(backend) -> None:
    """Refuse a backend that cannot be loaded (TensorFlow is optional) before any work."""
    if backend is None:
        return
    get_backend(backend.value if hasattr(backend, "value") else backend)


def _topmost_missing(path: Path) -> Path | None:
    """The highest of ``path`` and its parents that does not exist (None: ``path`` exists)."""
    if path.exists():
        return None
    missing = path
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"{path}: cannot be created, {parent} is a file")
            return missing
        missing = parent
    return missing


@contextlib.contextmanager
def new_outputs(*directories: Path | None, files: tuple[Path | None, ...] = ()) -> Iterator[None]:
    """Create the output ``directories`` (and the parents of the output ``files``) up front, so an
    unwritable path fails before any work; when the command then fails with a user error, remove
    what it created, so that no partial output is left (an existing directory is left as it is)."""
    wanted = [(d, "output directory") for d in directories if d is not None]
    wanted += [(f.parent, "directory of an output file") for f in files if f is not None]
    for path in files:
        if path is not None and path.is_dir():
            raise UserError(f"{path}: is a directory; expected a file name")
    created: list[Path] = []
    try:
        for path, what in wanted:
            if path.exists() and not path.is_dir():
                raise UserError(f"{path}: exists and is not a directory (the {what})")
            top = _topmost_missing(path)
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise UserError(f"{path}: cannot create the {what} ({error.strerror or error})") from None
            if top is not None:
                created.append(top)
        yield
    except USER_ERRORS:
        for path in reversed(created):
            shutil.rmtree(path, ignore_errors=True)
        raise


# ---------------------------------------------------------------------------------------------
# report lines
# ---------------------------------------------------------------------------------------------


def metrics_headline(metrics: dict) -> str:
    """The metrics a reader looks at first, on one line."""
    return (f"phase SSIM {metrics['phase_ssim']:.3f}, amplitude SSIM {metrics['amplitude_ssim']:.3f}, "
            f"phase PSNR {metrics['phase_psnr']:.1f} dB, amplitude PSNR {metrics['amplitude_psnr']:.1f} dB, "
            f"FRC 1/2-bit {metrics['frc_half_bit']:.2f}")


def status_exit(report: dict) -> int:
    """Exit status of a comparison: 0 when its status is ok, 1 when anything diverged."""
    return EXIT_OK if report["status"] == "ok" else EXIT_DIVERGED
