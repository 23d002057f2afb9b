"""Text cleaning of extracted lines and metadata: no control or zero-width
characters, single spaces, words broken at a line end joined again."""

from __future__ import annotations

import re

# Control characters (C0, DEL, C1) except newline and tab; tab becomes a space below.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Spaces that are not plain ASCII spaces: tabs, NBSP, the U+2000 block, ideographic.
_ODD_SPACE = re.compile(r"[\t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]")
_ZERO_WIDTH = re.compile(r"[\u00ad\u200b-\u200d\u2060\ufeff]")  # incl. soft hyphen
_SPACE_RUN = re.compile(r" {2,}")
# A word broken at a line end: "exam-\nple" -> "example". The continuation must start
# lowercase (see `_join_broken`), so "COVID-\n19" and "Smith-\nJones" keep theirs.
_BROKEN_WORD = re.compile(r"(?<=[^\W\d_])-\n(?=([^\W\d_]))")


def clean_line(raw: str) -> str:
    """One line's text: no control or zero-width characters, single spaces, stripped."""
    text = _ZERO_WIDTH.sub("", _CONTROL.sub("", raw))
    text = _ODD_SPACE.sub(" ", text)
    return _SPACE_RUN.sub(" ", text).strip()


def normalise_text(raw: str) -> str:
    """Clean extracted text: no control characters, joined broken words, tidy spaces.

    Lines keep their breaks (code and tables read better); a blank line (paragraph
    break) separates blocks; runs of spaces collapse to one; lines are stripped.
    """
    text = raw.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n\n")
    text = _ZERO_WIDTH.sub("", _CONTROL.sub("", text))
    text = _ODD_SPACE.sub(" ", text)
    lines = [_SPACE_RUN.sub(" ", line).strip() for line in text.split("\n")]
    text = "\n".join(lines)
    text = _BROKEN_WORD.sub(_join_broken, text)
    paragraphs = (p.strip("\n") for p in re.split(r"\n{2,}", text))
    return "\n\n".join(p for p in paragraphs if p)


def _join_broken(match: re.Match[str]) -> str:
    return "" if match.group(1).islower() else match.group(0)
