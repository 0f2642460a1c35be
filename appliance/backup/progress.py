"""A progress bar with sizes on a terminal (tqdm), nothing otherwise."""

from __future__ import annotations

import os
import sys
from typing import Protocol, TextIO


class Progress(Protocol):
    def start(self, total: int, description: str) -> None: ...
    def update(self, done: int) -> None: ...
    def close(self) -> None: ...


class Quiet:
    def start(self, total: int, description: str) -> None:
        pass

    def update(self, done: int) -> None:
        pass

    def close(self) -> None:
        pass


class Bar:
    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._bar: object = None

    def start(self, total: int, description: str) -> None:
        from tqdm import tqdm  # type: ignore[import-untyped]

        self.close()
        columns, rows = _size(self._stream)
        self._bar = tqdm(
            total=total,
            desc=description,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            file=self._stream,
            leave=True,
            ncols=columns,
            nrows=rows,
        )

    def update(self, done: int) -> None:
        if self._bar is not None:
            self._bar.update(done)  # type: ignore[attr-defined]

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()  # type: ignore[attr-defined]
            self._bar = None


def _size(stream: TextIO) -> tuple[int, int]:
    """The terminal's (columns, rows); 80x24 when it does not say, as a fresh pseudo-terminal
    does not (tqdm would then hide the bar)."""
    try:
        size = os.get_terminal_size(stream.fileno())
    except (OSError, ValueError):
        return 80, 24
    return size.columns or 80, size.lines or 24


def for_terminal(stream: TextIO = sys.stderr) -> Progress:
    return Bar(stream) if stream.isatty() else Quiet()
