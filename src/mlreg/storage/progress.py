"""A tiny progress bar for long transfers, on stderr, only when a human is watching.

Why not tqdm: one more dependency for ~80 lines, and its defaults (drawing into CI logs) are
the opposite of what we want. The rules here:

* the library never prints, except this bar;
* the bar is drawn only when the stream is a TTY (not in CI logs, not when piped) and the
  transfer is at least :data:`PROGRESS_THRESHOLD` bytes (small files finish before a bar helps);
* callers can force it on/off (``progress=True/False``) or pass a callable that receives
  ``(done_bytes, total_bytes_or_None)`` to drive their own UI.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from typing import Protocol, TextIO

from mlreg.storage.failures import SideError

__all__ = [
    "PROGRESS_THRESHOLD",
    "ProgressArg",
    "ProgressBar",
    "ProgressReporter",
    "make_progress",
    "format_bytes",
]

#: Transfers smaller than this stay quiet unless a bar is explicitly requested.
PROGRESS_THRESHOLD = 8 * 1024 * 1024

#: What the public ``progress=`` arguments accept: None = automatic (TTY and large enough),
#: True = always draw, False = never, or a callback ``(done, total) -> None``.
ProgressArg = bool | Callable[[int, int | None], None] | None


class ProgressReporter(Protocol):
    """What transfer loops talk to: ``update`` with each chunk's length, then ``close``."""

    def update(self, n: int) -> None: ...

    def close(self) -> None: ...


class _NullProgress:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


class _CallbackProgress:
    def __init__(self, callback: Callable[[int, int | None], None], total: int | None) -> None:
        self._callback = callback
        self._total = total
        self.done = 0

    def update(self, n: int) -> None:
        self.done += n
        try:
            self._callback(self.done, self._total)
        except Exception as e:
            # The caller's exception: it must reach the caller as is, not as a store failure.
            raise SideError("callback", "progress", e) from e

    def close(self) -> None:
        pass


def format_bytes(n: float) -> str:
    """Human-readable binary size: ``512 B``, ``3.2 MiB``, ``1.0 GiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


class ProgressBar:
    """A one-line ``\\r``-redrawn bar: label, percent, bytes done/total, rate.

    Redraws at most every ``min_interval`` seconds so tight loops of small chunks do not spend
    their time writing to the terminal. When the total is unknown, the bar shows bytes and
    rate only and (in automatic mode) appears once ``show_after`` bytes have passed.
    """

    def __init__(
        self, label: str, total: int | None, *, stream: TextIO, min_interval: float = 0.1,
        show_after: int = 0,
    ) -> None:
        self.label = label
        self.total = total
        self.stream = stream
        self.min_interval = min_interval
        self.show_after = show_after
        self.done = 0
        self._start = time.monotonic()
        self._last_draw: float | None = None
        self._drawn = False
        self._closed = False

    def update(self, n: int) -> None:
        self.done += n
        if self.done < self.show_after:
            return
        now = time.monotonic()
        if self._last_draw is None or now - self._last_draw >= self.min_interval:
            self._last_draw = now
            self._draw(now)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.done >= self.show_after:
            self._draw(time.monotonic())
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()

    def render(self, now: float | None = None) -> str:
        """The line as it would be drawn now (without the leading carriage return)."""
        elapsed = max((now if now is not None else time.monotonic()) - self._start, 1e-9)
        rate = f"{format_bytes(self.done / elapsed)}/s"
        if self.total:
            frac = min(self.done / self.total, 1.0)
            width = 20
            filled = int(frac * width)
            bar = "#" * filled + "-" * (width - filled)
            return (
                f"{self.label} [{bar}] {frac * 100:5.1f}% "
                f"{format_bytes(self.done)}/{format_bytes(self.total)} {rate}"
            )
        return f"{self.label} {format_bytes(self.done)} {rate}"

    def _draw(self, now: float) -> None:
        columns = shutil.get_terminal_size(fallback=(80, 24)).columns
        line = self.render(now)[: max(columns - 1, 10)]
        self.stream.write("\r" + line.ljust(max(columns - 1, 10)))
        self.stream.flush()
        self._drawn = True

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _is_interactive(stream: TextIO) -> bool:
    if os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


def make_progress(
    progress: ProgressArg, label: str, total: int | None, *, stream: TextIO | None = None,
) -> ProgressReporter:
    """Pick the reporter for one transfer (see the module docstring for the rules)."""
    if callable(progress) and not isinstance(progress, bool):
        return _CallbackProgress(progress, total)
    if progress is False:
        return _NullProgress()
    out = stream if stream is not None else sys.stderr
    if progress is None:
        if not _is_interactive(out):
            return _NullProgress()
        if total is not None and total < PROGRESS_THRESHOLD:
            return _NullProgress()
        return ProgressBar(label, total, stream=out, show_after=PROGRESS_THRESHOLD)
    return ProgressBar(label, total, stream=out)
