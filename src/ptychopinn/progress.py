"""Progress bars for long loops (tqdm on stderr), silent when disabled or not wanted."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress(items: Iterable[T], description: str, enabled: bool = True, total: int | None = None) -> Iterator[T]:
    if not enabled:
        yield from items
        return
    yield from tqdm(items, desc=description, total=total, leave=False, dynamic_ncols=True)
