"""Atomic file output: a file is either complete or absent.

Every writer in the package goes through :func:`atomic_path`, which hands out a temporary name in
the destination directory and renames it over the destination only when the block succeeds, so an
interrupted run never leaves a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(destination: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``destination``; rename it into place on success."""
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{destination.name}.", suffix=".part", dir=destination.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates 0600; give the result the permissions an ordinary open() would have
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, destination)
    finally:
        if tmp.exists():
            tmp.unlink()


def _current_umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it; restored at once
    os.umask(mask)
    return mask


def write_bytes_atomic(destination: str | os.PathLike[str], data: bytes) -> Path:
    with atomic_path(destination) as tmp:
        tmp.write_bytes(data)
    return Path(destination)


def write_text_atomic(destination: str | os.PathLike[str], text: str) -> Path:
    return write_bytes_atomic(destination, text.encode("utf-8"))


def write_json_atomic(destination: str | os.PathLike[str], payload: Any) -> Path:
    return write_text_atomic(destination, json.dumps(payload, indent=2, sort_keys=False) + "\n")


def save_figure_atomic(figure: Any, destination: str | os.PathLike[str], **kwargs: Any) -> Path:
    """Save a matplotlib figure; the format is taken from the destination's suffix."""
    destination = Path(destination)
    fmt = destination.suffix.lstrip(".") or "png"
    with atomic_path(destination) as tmp:
        figure.savefig(tmp, format=fmt, **kwargs)
    return destination
