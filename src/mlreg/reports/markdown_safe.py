"""Put untrusted text (model, version, slice and metric names from a PR) into GitHub Markdown.

The gate's result is computed from a pull request, so every name in it is attacker-controlled.
Rendered into the PR comment, a name must not be able to:

* inject Markdown or break a table (``*``, ``_``, ``[x](y)``, ``|``, newlines, headings, math);
* inject raw HTML, or open/close an HTML comment (``<!--``, ``-->``) and so hide the rest of the
  report or fake the sticky comment's hidden marker;
* @-mention a user or team (notifications are spam and a social-engineering tool), or
  cross-reference another issue (``#12``) or autolink a URL.

``escape_md`` makes text literal for any inline position, table cells included. ``code_span``
does the same for text shown in a code span. ``truncate_body`` cuts a comment to GitHub's size limit
without leaving an unclosed code fence or HTML comment, keeping the hidden marker.
"""

from __future__ import annotations

import re

__all__ = [
    "escape_md",
    "code_span",
    "truncate_body",
    "text_length",
    "GITHUB_BODY_LIMIT",
    "ZWSP",
]

#: GitHub rejects comment, issue and PR bodies longer than this (422 "Body is too long").
GITHUB_BODY_LIMIT = 65536

#: Zero-width space: invisible, not a word character, and it breaks GitHub's mention, reference
#: and autolink detection (which all run on the rendered text, after entities are decoded, so an
#: HTML entity such as ``&#64;`` would not help).
ZWSP = "\u200b"

# ASCII punctuation with a Markdown meaning somewhere (CommonMark lets any ASCII punctuation be
# backslash-escaped, so escaping too much is harmless). ``=`` and ``-`` make setext headings and
# rules, ``$`` starts GitHub math, ``|`` splits a table cell even inside code, ``!`` starts an
# image, ``~`` strikethrough.
_BACKSLASH = frozenset("\\`*_{}[]()#+-.!|~=$")
# Converted to entities so that the output contains no ``<`` at all: no HTML, no autolink, and
# no ``<!--`` / ``-->`` substring for anything that scans the raw body (like the marker search).
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
# Line breaks end a table row; bidi controls reorder what a reviewer sees (Trojan Source).
_BREAKS = re.compile(r"\r\n|[\r\n\t\v\f\x85\u2028\u2029]")
_INVISIBLE = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\u202a-\u202e\u2066-\u2069\u061c"
                        r"\u200e\u200f]")
_URL_SCHEME = re.compile(r"(?i)(?<=[a-z0-9]):(?=//)")
_WWW = re.compile(r"(?i)\bwww\.")


def _clean(text: str, max_chars: int | None) -> str:
    text = _INVISIBLE.sub("", _BREAKS.sub(" ", text))
    if max_chars is not None and len(text) > max_chars:
        text = text[: max(0, max_chars - 1)] + "\u2026"
    return text


def escape_md(text: object, *, max_chars: int | None = None) -> str:
    """Return ``text`` as literal GitHub Markdown, safe in a table cell or anywhere inline.

    One line always (line breaks become spaces); ``max_chars`` caps the input's length (with an
    ellipsis) before escaping. The output never contains ``<``, ``>``, an unescaped ``|``, ``<!--``,
    ``-->``, or ``@`` followed by a word character.
    """
    raw = _clean(str(text), max_chars)
    # Break autolinks on the raw text (a ZWSP after "://"'s colon and inside "www.").
    raw = _URL_SCHEME.sub(":" + ZWSP, raw)
    raw = _WWW.sub(lambda m: m.group(0)[:3] + ZWSP + ".", raw)
    out: list[str] = []
    for i, ch in enumerate(raw):
        if ch in _ENTITIES:
            out.append(_ENTITIES[ch])
        elif ch == "@":
            out.append("@" + ZWSP)
        elif ch == "#":
            nxt = raw[i + 1] if i + 1 < len(raw) else ""
            out.append("\\#" + (ZWSP if nxt.isalnum() else ""))
        elif ch in _BACKSLASH:
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def code_span(text: object, *, in_table: bool = True, max_chars: int | None = None) -> str:
    """Return ``text`` as a Markdown code span (monospace, shown verbatim).

    The fence is longer than any backtick run inside. In a table (``in_table``) pipes are written
    ``\\|``: GitHub splits cells on a bare pipe even inside code. ``<!--`` and ``-->`` get a zero-width
    space so the raw body never holds a comment delimiter of ours; mentions are not processed in code.
    """
    raw = _clean(str(text), max_chars)
    raw = raw.replace("<!--", "<!" + ZWSP + "--").replace("-->", "--" + ZWSP + ">")
    if in_table:
        # GitHub's table scanner pairs backslashes before it looks at a pipe (``\\|`` is an
        # escaped backslash, then a cell break), so a backslash run before a pipe is cut with a
        # zero-width space.
        raw = re.sub(r"(\\*)\|", lambda m: m.group(1) + (ZWSP if m.group(1) else "") + "\\|", raw)
    if not raw:
        return ""
    longest = max((len(m) for m in re.findall(r"`+", raw)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if raw.startswith("`") or raw.endswith("`") or (
        raw.startswith(" ") and raw.endswith(" ") and raw.strip()) else ""
    return f"{fence}{pad}{raw}{pad}{fence}"


def text_length(text: str) -> int:
    """Length in UTF-16 code units: never less than the number of characters, so a body that fits
    by this measure fits however GitHub counts (characters, or UTF-16 units for emoji)."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})", re.MULTILINE)


def truncate_body(
    body: str,
    limit: int = GITHUB_BODY_LIMIT,
    *,
    keep: str | None = None,
    note: str = "Report truncated: {omitted:,} characters left out to fit GitHub's limit. "
                "The full report is in the job summary.",
) -> str:
    """Cut ``body`` so that ``text_length(result) <= limit``; return it unchanged when it fits.

    The cut falls on a line boundary where one is near; an open code fence is closed, a dangling
    ``<!--`` or ``<details>`` is dropped or closed, and ``note`` (formatted with ``omitted``) is
    appended in italics. ``keep`` (the sticky comment's hidden marker) is guaranteed to be in the
    result: when the cut would lose it, it is put back at the top.
    """
    if text_length(body) <= limit and (keep is None or keep in body):
        return body
    if text_length(body) <= limit:  # fits, but the marker is missing
        candidate = f"{keep}\n{body}"
        if text_length(candidate) <= limit:
            return candidate
    # Reserve room for the marker (if the cut loses it) and for everything that may follow the
    # cut: a closing fence, a </details>, the note.
    head_room = text_length(keep) + 1 if keep is not None else 0
    tail_room = text_length(note.format(omitted=len(body))) + 64
    budget = limit - head_room - tail_room
    if budget <= 0:
        raise ValueError(f"limit {limit} is too small to truncate into")
    cut = body[:budget]
    while text_length(cut) > budget:
        cut = cut[: len(cut) - max(1, (text_length(cut) - budget) // 2)]
    newline = cut.rfind("\n")
    if newline >= len(cut) - 2000 and newline > 0:
        cut = cut[:newline]
    # A cut inside an HTML comment would swallow the note and everything after it.
    opener, closer = cut.rfind("<!--"), cut.rfind("-->")
    if opener > closer:
        cut = cut[:opener]
    omitted = len(body) - len(cut)
    closing = ""
    fences = _FENCE.findall(cut)
    if len(fences) % 2:
        closing += "\n" + fences[-1][0] * len(fences[-1])
    opened = len(re.findall(r"<details\b", cut, re.IGNORECASE))
    closed = len(re.findall(r"</details>", cut, re.IGNORECASE))
    closing += "\n</details>" * max(0, opened - closed)
    head = f"{keep}\n" if keep is not None and keep not in cut else ""
    result = f"{head}{cut.rstrip()}{closing}\n\n---\n*{note.format(omitted=omitted)}*\n"
    assert text_length(result) <= limit, "truncate_body reserved too little room"
    return result
