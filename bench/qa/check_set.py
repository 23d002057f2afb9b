"""Check the labelled question set over the R manuals (bench/qa/r-manuals.jsonl).

Every line must be a JSON object with the keys id, doc, question, answer, evidence and
page; ids must be unique; doc must name a PDF in the R manual directory (installed by
Debian's ``r-doc-pdf``); and the evidence must occur, after normalisation, in the text
PyMuPDF extracts from the stated 1-based page.

Normalisation (applied to both the page text and the evidence): expand the ligatures
ﬁ ﬂ ﬀ ﬃ ﬄ, lowercase, join words hyphenated across a line break ("exam-\\nple" ->
"example"), and replace every run of whitespace with one space.

    .venv/bin/python bench/qa/check_set.py [--set bench/qa/r-manuals.jsonl]
        [--manuals /usr/share/R/doc/manual]

Prints a summary table (doc, questions) and exits 1, listing the failures, if any line
fails.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from functools import cache
from pathlib import Path

import pymupdf

DEFAULT_SET = Path(__file__).with_name("r-manuals.jsonl")
DEFAULT_MANUALS = Path("/usr/share/R/doc/manual")
KEYS = ("id", "doc", "question", "answer", "evidence", "page")

_LIGATURES = {"ﬀ": "ff", "ﬁ": "fi", "ﬂ": "fl", "ﬃ": "ffi", "ﬄ": "ffl", "ﬅ": "st", "ﬆ": "st"}
_HYPHEN_BREAK = re.compile(r"-[ \t]*\r?\n\s*")
_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Normalise text for evidence matching (see the module docstring)."""
    for lig, expanded in _LIGATURES.items():
        text = text.replace(lig, expanded)
    text = _HYPHEN_BREAK.sub("", text.lower())
    return _SPACE.sub(" ", text).strip()


@cache
def page_texts(pdf: Path) -> tuple[str, ...]:
    """Normalised text of every page of a PDF, in physical order."""
    with pymupdf.open(pdf) as doc:  # type: ignore[no-untyped-call]  # no type hints
        return tuple(normalise(page.get_text()) for page in doc)


def check_line(
    lineno: int, line: str, manuals: Path, seen: set[str]
) -> tuple[str | None, list[str]]:
    """Check one line; return (doc or None, list of failure messages)."""
    try:
        item = json.loads(line)
    except json.JSONDecodeError as exc:
        return None, [f"line {lineno}: invalid JSON ({exc})"]
    if not isinstance(item, dict):
        return None, [f"line {lineno}: not a JSON object"]
    missing = [k for k in KEYS if k not in item]
    if missing:
        return None, [f"line {lineno}: missing keys {missing}"]
    qid = item["id"]
    where = f"line {lineno} ({qid})"
    errors: list[str] = []
    for key in ("id", "doc", "question", "answer", "evidence"):
        if not isinstance(item[key], str) or not item[key].strip():
            errors.append(f"{where}: {key} must be a non-empty string")
    page = item["page"]
    if not isinstance(page, int) or isinstance(page, bool):
        errors.append(f"{where}: page must be an integer")
    if errors:
        return None, errors
    if qid in seen:
        errors.append(f"{where}: duplicate id")
    seen.add(qid)
    doc = item["doc"]
    pdf = manuals / doc
    if Path(doc).name != doc or not pdf.is_file():
        return doc, [*errors, f"{where}: no such manual {pdf}"]
    pages = page_texts(pdf)
    if not 1 <= page <= len(pages):
        return doc, [*errors, f"{where}: page {page} outside 1..{len(pages)}"]
    evidence = normalise(item["evidence"])
    if evidence not in pages[page - 1]:
        found = [i + 1 for i, text in enumerate(pages) if evidence in text]
        hint = f" (found on page(s) {found})" if found else " (not found on any page)"
        errors.append(f"{where}: evidence not on page {page}{hint}")
    return doc, errors


def main(argv: list[str] | None = None) -> int:
    """Check the set, print a summary; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", type=Path, default=DEFAULT_SET, dest="qa_set")
    parser.add_argument("--manuals", type=Path, default=DEFAULT_MANUALS)
    args = parser.parse_args(argv)

    counts: Counter[str] = Counter()
    failures: list[str] = []
    seen: set[str] = set()
    lines = args.qa_set.read_text(encoding="utf-8").splitlines()
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        doc, errors = check_line(lineno, line, args.manuals, seen)
        if doc is not None:
            counts[doc] += 1
        failures.extend(errors)

    width = max([len("doc"), *(len(d) for d in counts)])
    print(f"{'doc':<{width}}  questions")
    for doc in sorted(counts):
        print(f"{doc:<{width}}  {counts[doc]:>9}")
    print(f"{'total':<{width}}  {sum(counts.values()):>9}")
    if failures:
        print(f"\n{len(failures)} failure(s):", file=sys.stderr)
        for failure in failures:
            print(f"  {failure}", file=sys.stderr)
        return 1
    print("\nall lines pass")
    return 0


if __name__ == "__main__":
    sys.exit(main())
