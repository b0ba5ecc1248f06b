"""A rows progress bar for long passes: drawn on stderr only when it is a terminal.

Same rules as :mod:`mlreg.storage.progress` (the library never prints, except this bar, and
only for a human watching): ``progress=None`` draws when stderr is a TTY, ``True`` always,
``False`` never, a callable receives ``(rows_done, rows_total_or_None)``.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

__all__ = ["rows_progress"]


class _Null:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


class _Callback:
    def __init__(self, fn, total):
        self.fn, self.total, self.done = fn, total, 0

    def update(self, n: int) -> None:
        self.done += n
        self.fn(self.done, self.total)

    def close(self) -> None:
        pass


class _Bar:
    def __init__(self, label: str, total: int | None, stream) -> None:
        self.label, self.total, self.stream = label, total, stream
        self.done = 0
        self.start = time.monotonic()
        self.last = 0.0
        self.drawn = False

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= 0.2:
            self.last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        rate = self.done / max(now - self.start, 1e-9)
        if self.total:
            frac = min(self.done / self.total, 1.0)
            bar = "#" * int(frac * 20) + "-" * (20 - int(frac * 20))
            text = (f"{self.label} [{bar}] {frac:6.1%} {self.done:,}/{self.total:,} rows "
                    f"{rate:,.0f} rows/s")
        else:
            text = f"{self.label} {self.done:,} rows {rate:,.0f} rows/s"
        self.stream.write("\r" + text[:120].ljust(80))
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()


def rows_progress(progress: Any, label: str, total: int | None):
    if callable(progress) and not isinstance(progress, bool):
        return _Callback(progress, total)
    if progress is False:
        return _Null()
    stream = sys.stderr
    if progress is None:
        try:
            interactive = stream.isatty() and os.environ.get("TERM") != "dumb"
        except (AttributeError, ValueError):
            interactive = False
        if not interactive:
            return _Null()
    return _Bar(label, total, stream)
