"""The progress helper: drawn on a TTY for large transfers, silent otherwise."""

from __future__ import annotations

import io

import pytest

from mlreg.storage.progress import (
    PROGRESS_THRESHOLD,
    ProgressBar,
    format_bytes,
    make_progress,
)


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _term(monkeypatch):
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setenv("COLUMNS", "120")


def test_quiet_when_not_a_tty():
    out = io.StringIO()
    p = make_progress(None, "uploading x", 10 * PROGRESS_THRESHOLD, stream=out)
    p.update(10 * PROGRESS_THRESHOLD)
    p.close()
    assert out.getvalue() == ""


def test_quiet_for_small_transfers_even_on_a_tty():
    out = FakeTTY()
    p = make_progress(None, "uploading x", PROGRESS_THRESHOLD - 1, stream=out)
    p.update(PROGRESS_THRESHOLD - 1)
    p.close()
    assert out.getvalue() == ""


def test_quiet_on_a_dumb_terminal(monkeypatch):
    monkeypatch.setenv("TERM", "dumb")
    out = FakeTTY()
    p = make_progress(None, "x", 10 * PROGRESS_THRESHOLD, stream=out)
    p.update(10 * PROGRESS_THRESHOLD)
    p.close()
    assert out.getvalue() == ""


def test_bar_on_a_tty_for_large_transfers():
    out = FakeTTY()
    total = 4 * PROGRESS_THRESHOLD
    p = make_progress(None, "uploading model.bin", total, stream=out)
    assert isinstance(p, ProgressBar)
    for _ in range(4):
        p.update(PROGRESS_THRESHOLD)
    p.close()
    text = out.getvalue()
    assert text.startswith("\r") and text.endswith("\n")
    assert "uploading model.bin" in text and "100.0%" in text and "32.0 MiB/32.0 MiB" in text


def test_unknown_total_appears_after_the_threshold():
    out = FakeTTY()
    p = make_progress(None, "spooling", None, stream=out)
    p.update(1024)
    assert out.getvalue() == ""
    p.update(PROGRESS_THRESHOLD)
    p.close()
    assert "spooling" in out.getvalue() and "%" not in out.getvalue()


def test_forced_on_and_off():
    out = FakeTTY()
    p = make_progress(False, "x", 10 * PROGRESS_THRESHOLD, stream=out)
    p.update(10)
    p.close()
    assert out.getvalue() == ""
    plain = io.StringIO()
    p = make_progress(True, "x", 10, stream=plain)
    p.update(10)
    p.close()
    assert "100.0%" in plain.getvalue()


def test_callback_receives_cumulative_bytes():
    seen = []
    p = make_progress(lambda d, t: seen.append((d, t)), "x", 30)
    for _ in range(3):
        p.update(10)
    p.close()
    assert seen == [(10, 30), (20, 30), (30, 30)]


def test_redraws_are_rate_limited():
    out = FakeTTY()
    bar = ProgressBar("x", 10**9, stream=out, min_interval=3600)
    for _ in range(1000):
        bar.update(1000)
    assert out.getvalue().count("\r") == 1  # only the first draw within the interval
    bar.close()
    bar.close()  # idempotent
    assert out.getvalue().count("\n") == 1


def test_format_bytes():
    assert format_bytes(512) == "512 B"
    assert format_bytes(3 * 1024 * 1024 + 200_000) == "3.2 MiB"
    assert format_bytes(2 * 1024**4) == "2.0 TiB"
