"""Untrusted names rendered into the PR comment: no mentions, no HTML, no broken tables."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlreg.reports.markdown_safe import (
    GITHUB_BODY_LIMIT,
    ZWSP,
    code_span,
    escape_md,
    text_length,
    truncate_body,
)

MARKER = "<!-- mlreg:gate -->"
NASTY = "@org/team **bold** <!-- x -->|"

# Text that leans on the characters that matter, plus anything else.
nasty_text = st.text(
    alphabet=st.one_of(st.sampled_from(list("@<>!-|\\`*_#[](){}~=$&:/.w \n\r\t")),
                       st.characters()),
    max_size=80,
)


def unescaped_pipes(text: str) -> list[int]:
    """Positions of pipes that split a GitHub table cell: cmark-gfm's cell scanner reads
    backslash pairs first, so a pipe is escaped only after an odd run of backslashes."""
    out = []
    for m in re.finditer(r"\|", text):
        run = len(text[: m.start()]) - len(text[: m.start()].rstrip("\\"))
        if run % 2 == 0:
            out.append(m.start())
    return out


def assert_inert(escaped: str) -> None:
    assert "<!--" not in escaped and "-->" not in escaped
    assert "<" not in escaped and ">" not in escaped
    assert not re.search(r"@\w", escaped)
    assert not unescaped_pipes(escaped)
    assert "\n" not in escaped and "\r" not in escaped


def test_the_nasty_slice_name():
    out = escape_md(NASTY)
    assert_inert(out)
    assert "**" not in out
    assert out == f"@{ZWSP}org/team \\*\\*bold\\*\\* &lt;\\!\\-\\- x \\-\\-&gt;\\|"


def test_the_nasty_slice_name_in_a_table_row_keeps_two_cells():
    row = f"| {escape_md(NASTY)} | 0.91 |"
    assert len(unescaped_pipes(row)) == 3


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("plain_name", "plain\\_name"),
        ("a\\|b", "a\\\\\\|b"),
        ("line1\nline2", "line1 line2"),
        ("[click](http://evil.example)", f"\\[click\\]\\(http:{ZWSP}//evil\\.example\\)"),
        ("see #12", f"see \\#{ZWSP}12"),
        ("# heading", "\\# heading"),
        ("`code`", "\\`code\\`"),
        ("$x^2$", "\\$x^2\\$"),
        ("a & b", "a &amp; b"),
        ("&lt;", "&amp;lt;"),
        ("www.evil.com", f"www{ZWSP}\\.evil\\.com"),
        ("user@example.com", f"user@{ZWSP}example\\.com"),
        ("rtl\u202egnp.exe", "rtlgnp\\.exe"),
        ("", ""),
    ],
)
def test_escape_md_examples(raw, expected):
    assert escape_md(raw) == expected


def test_escape_md_caps_length_before_escaping():
    out = escape_md("a*" * 100, max_chars=10)
    assert out.endswith("\u2026") and out.count("*") == 4  # 9 characters kept, then the ellipsis


def test_escape_md_accepts_non_strings():
    assert escape_md(0.5) == "0\\.5"


@settings(max_examples=300, deadline=None)
@given(nasty_text)
def test_escaped_text_is_inert(text):
    assert_inert(escape_md(text))


@settings(max_examples=200, deadline=None)
@given(nasty_text)
def test_escaping_keeps_the_visible_characters(text):
    """Undoing the escapes gives back the input, less line breaks and invisible characters."""
    out = escape_md(text)
    unescaped = re.sub(r"\\(.)", r"\1", out.replace(ZWSP, ""))
    unescaped = unescaped.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    expected = re.sub(r"\r\n|[\r\n\t\v\f\x85\u2028\u2029]", " ", text)
    expected = re.sub(r"[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\u202a-\u202e\u2066-\u2069\u061c"
                      r"\u200e\u200f]", "", expected).replace(ZWSP, "")
    assert unescaped == expected


@settings(max_examples=200, deadline=None)
@given(nasty_text)
def test_code_span_never_breaks_out(text):
    out = code_span(text)
    assert "<!--" not in out and "-->" not in out
    assert not unescaped_pipes(out)
    assert "\n" not in out
    if out:
        fence = re.match(r"`+", out).group(0)
        inner = out[len(fence): len(out) - len(fence)]
        assert fence not in inner  # no backtick run inside can close the span early


def test_code_span_examples():
    assert code_span("a`b") == "``a`b``"
    assert code_span("`x`") == "`` `x` ``"
    assert code_span("a|b") == "`a\\|b`"
    assert code_span("a|b", in_table=False) == "`a|b`"
    assert code_span("\\|") == f"`\\{ZWSP}\\|`"
    assert code_span("") == ""


def test_truncate_body_leaves_a_fitting_body_alone():
    assert truncate_body("short", 100) == "short"


def test_truncate_body_closes_an_open_fence_and_keeps_the_marker():
    body = MARKER + "\nintro\n```\n" + "line\n" * 5000
    out = truncate_body(body, 2000, keep=MARKER)
    assert text_length(out) <= 2000
    assert out.startswith(MARKER)
    assert len(re.findall(r"^```", out, re.M)) % 2 == 0
    assert "characters left out" in out


def test_truncate_body_puts_back_a_marker_that_was_at_the_end():
    body = "x\n" * 5000 + MARKER
    out = truncate_body(body, 1000, keep=MARKER)
    assert out.startswith(MARKER + "\n") and out.count(MARKER) == 1
    assert text_length(out) <= 1000


def test_truncate_body_does_not_cut_inside_an_html_comment_or_details():
    body = "<details><summary>slices</summary>\n\n" + "row\n" * 100 + "<!-- " + "z" * 5000
    out = truncate_body(body, 1000)
    assert out.rfind("<!--") < out.rfind("-->") or "<!--" not in out
    assert out.count("<details") == out.count("</details>")


def test_truncate_body_counts_emoji_as_two_units():
    body = "\U0001f600" * GITHUB_BODY_LIMIT
    out = truncate_body(body, GITHUB_BODY_LIMIT)
    assert text_length(out) <= GITHUB_BODY_LIMIT


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=3000), st.integers(min_value=300, max_value=2000))
def test_truncate_body_always_fits_and_keeps_the_marker(text, limit):
    out = truncate_body(MARKER + "\n" + text, limit, keep=MARKER)
    assert text_length(out) <= limit
    assert MARKER in out


def test_truncate_body_refuses_a_tiny_limit():
    with pytest.raises(ValueError):
        truncate_body("x" * 100, 10)
