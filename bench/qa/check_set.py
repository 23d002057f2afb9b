"""Check the labelled question sets (bench/qa/*.jsonl) against the PDFs they quote.

Every line must be a JSON object with the keys id, doc, question, answer, refs, evidence
and page; ids must be unique across all the sets checked; `doc` is a path relative to
one of the document folders (searched in order, the first that holds it wins):

    /usr/share/R/doc/manual                   R manuals (Debian r-doc-pdf)
    /usr/share/doc/gnuplot                    gnuplot.pdf (gnuplot-doc)
    /usr/share/texlive/texmf-dist/doc/latex   LaTeX docs (texlive-latex-base-doc,
                                              texlive-latex-recommended-doc)
    <repo>/resources/sample                   the bundled sample handbook

`refs` must be 1-4 strings of 1-4 words, none found in the question and one found in the
answer (whole words, case-insensitive, as `bench.scoring.contains_reference` matches);
the evidence must be 10-40 words and occur, after normalisation, in the text PyMuPDF
extracts from the stated 1-based physical page.

Normalisation (applied to both the page text and the evidence): expand the ligatures
ﬁ ﬂ ﬀ ﬃ ﬄ, lowercase, join words hyphenated across a line break ("exam-\\nple" ->
"example"), and replace every run of whitespace with one space.

    .venv/bin/python bench/qa/check_set.py [--set FILE]... [--docs DIR]... [--tokens]

Prints a table per set (doc, folder, pages, questions; with --tokens also the document's
SmolLM2 token count and whether it fits the 8K window) and exits 1, listing the
failures, if any line fails.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path

import pymupdf

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.scoring import QA_DOC_FOLDERS, contains_reference  # noqa: E402  (after the path insert)

SETS_DIR = Path(__file__).resolve().parent
DEFAULT_DOCS = QA_DOC_FOLDERS
KEYS = ("id", "doc", "question", "answer", "refs", "evidence", "page")
EVIDENCE_WORDS = (10, 40)
MAX_REFS, MAX_REF_WORDS = 4, 4
WINDOW = 8192  # the default model's (SmolLM2-135M) context window
FITS = 7000  # a document fits when its text leaves this much room for prompt and answer

_LIGATURES = {"ﬀ": "ff", "ﬁ": "fi", "ﬂ": "fl", "ﬃ": "ffi", "ﬄ": "ffl", "ﬅ": "st", "ﬆ": "st"}
_HYPHEN_BREAK = re.compile(r"-[ \t]*\r?\n\s*")
_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Normalise text for evidence matching (see the module docstring)."""
    for lig, expanded in _LIGATURES.items():
        text = text.replace(lig, expanded)
    text = _HYPHEN_BREAK.sub("", text.lower())
    return _SPACE.sub(" ", text).strip()


def resolve_doc(doc: str, folders: Sequence[Path] = DEFAULT_DOCS) -> Path | None:
    """The PDF that `doc` names in the first folder that holds it, or None."""
    rel = Path(doc)
    if rel.is_absolute() or ".." in rel.parts or not doc.strip():
        return None
    for folder in folders:
        if (folder / rel).is_file():
            return folder / rel
    return None


@cache
def page_texts(pdf: Path) -> tuple[str, ...]:
    """Normalised text of every page of a PDF, in physical order."""
    with pymupdf.open(pdf) as doc:  # type: ignore[no-untyped-call]  # no type hints
        return tuple(normalise(page.get_text()) for page in doc)


@cache
def raw_text(pdf: Path) -> str:
    """The PDF's whole text as PyMuPDF extracts it (pages joined by newlines)."""
    with pymupdf.open(pdf) as doc:  # type: ignore[no-untyped-call]
        return "\n".join(page.get_text() for page in doc)


def _check_refs(where: str, item: dict[str, object]) -> list[str]:
    refs = item["refs"]
    if (
        not isinstance(refs, list)
        or not 1 <= len(refs) <= MAX_REFS
        or not all(isinstance(r, str) and r.strip() for r in refs)
    ):
        return [f"{where}: refs must be a list of 1-{MAX_REFS} non-empty strings"]
    errors = [
        f"{where}: ref {r!r} has more than {MAX_REF_WORDS} words"
        for r in refs
        if len(r.split()) > MAX_REF_WORDS
    ]
    echoed = [r for r in refs if contains_reference(str(item["question"]), [r])]
    if echoed:
        errors.append(f"{where}: the question already contains ref(s) {echoed}")
    if not contains_reference(str(item["answer"]), refs):
        errors.append(f"{where}: the reference answer contains none of the refs")
    return errors


def check_line(
    where: str, line: str, folders: Sequence[Path], seen: set[str]
) -> tuple[str | None, Path | None, list[str]]:
    """Check one line; return (doc or None, resolved PDF or None, failure messages)."""
    try:
        item = json.loads(line)
    except json.JSONDecodeError as exc:
        return None, None, [f"{where}: invalid JSON ({exc})"]
    if not isinstance(item, dict):
        return None, None, [f"{where}: not a JSON object"]
    missing = [k for k in KEYS if k not in item]
    if missing:
        return None, None, [f"{where}: missing keys {missing}"]
    qid = item["id"]
    where = f"{where} ({qid})"
    errors: list[str] = []
    for key in ("id", "doc", "question", "answer", "evidence"):
        if not isinstance(item[key], str) or not item[key].strip():
            errors.append(f"{where}: {key} must be a non-empty string")
    page = item["page"]
    if not isinstance(page, int) or isinstance(page, bool):
        errors.append(f"{where}: page must be an integer")
    if errors:
        return None, None, errors
    if qid in seen:
        errors.append(f"{where}: duplicate id")
    seen.add(qid)
    errors.extend(_check_refs(where, item))
    words = len(item["evidence"].split())
    if not EVIDENCE_WORDS[0] <= words <= EVIDENCE_WORDS[1]:
        errors.append(f"{where}: evidence has {words} words, not {EVIDENCE_WORDS[0]}-40")
    doc = item["doc"]
    pdf = resolve_doc(doc, folders)
    if pdf is None:
        searched = ", ".join(str(f) for f in folders)
        return doc, None, [*errors, f"{where}: {doc} is in none of {searched}"]
    pages = page_texts(pdf)
    if not 1 <= page <= len(pages):
        return doc, pdf, [*errors, f"{where}: page {page} outside 1..{len(pages)}"]
    evidence = normalise(item["evidence"])
    if evidence not in pages[page - 1]:
        found = [i + 1 for i, text in enumerate(pages) if evidence in text]
        hint = f" (found on page(s) {found})" if found else " (not found on any page)"
        errors.append(f"{where}: evidence not on page {page}{hint}")
    return doc, pdf, errors


def _token_counter() -> Callable[[str], int]:
    """Count tokens with SmolLM2-135M's tokenizer (the 8K-window figures of README.md)."""
    from core.models.loading import counting_tokenizer, load_tokenizer

    tokenizer = counting_tokenizer(load_tokenizer("smollm2-135m"))
    return lambda text: len(tokenizer.encode(text).ids)


def _print_table(
    name: str,
    counts: Counter[str],
    pdfs: dict[str, Path | None],
    folders: Sequence[Path],
    count_tokens: Callable[[str], int] | None,
) -> None:
    print(f"== {name}")
    rows = []
    for doc in sorted(counts):
        pdf = pdfs.get(doc)
        folder = next((str(f) for f in folders if pdf and pdf.is_relative_to(f)), "(missing)")
        pages = str(len(page_texts(pdf))) if pdf else "-"
        row = [doc, folder, pages, str(counts[doc])]
        if count_tokens is not None:
            tokens = count_tokens(raw_text(pdf)) if pdf else None
            row += [f"{tokens:,}" if tokens is not None else "-"]
            row += ["-" if tokens is None else "yes" if tokens <= FITS else "no"]
        rows.append(row)
    head = ["doc", "folder", "pages", "questions"]
    if count_tokens is not None:
        head += ["tokens", "fits 8K"]
    total = ["total", "", "", str(sum(counts.values()))] + [""] * (len(head) - 4)
    widths = [max(len(r[i]) for r in [head, *rows, total]) for i in range(len(head))]
    for r in [head, *rows, total]:
        cells = [
            cell.ljust(width) if i < 2 else cell.rjust(width)  # text left, numbers right
            for i, (cell, width) in enumerate(zip(r, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())
    print()


def main(argv: list[str] | None = None) -> int:
    """Check the sets, print a summary; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--set",
        type=Path,
        action="append",
        dest="sets",
        help="a question set (repeatable; default: every bench/qa/*.jsonl)",
    )
    parser.add_argument(
        "--docs",
        "--manuals",
        type=Path,
        action="append",
        dest="docs",
        help="a folder to look for the PDFs in (repeatable; replaces the default folders)",
    )
    parser.add_argument(
        "--tokens",
        action="store_true",
        help=f"count each document's tokens (default model) and say if it fits {WINDOW:,}",
    )
    args = parser.parse_args(argv)
    sets: list[Path] = args.sets or sorted(SETS_DIR.glob("*.jsonl"))
    folders: Sequence[Path] = args.docs or DEFAULT_DOCS
    count_tokens = _token_counter() if args.tokens else None

    failures: list[str] = []
    seen: set[str] = set()
    total = 0
    for qa_set in sets:
        counts: Counter[str] = Counter()
        pdfs: dict[str, Path | None] = {}
        try:
            lines = qa_set.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            failures.append(f"{qa_set}: cannot read ({exc.strerror or exc})")
            continue
        for lineno, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            doc, pdf, errors = check_line(f"{qa_set.name}:{lineno}", line, folders, seen)
            if doc is not None:
                counts[doc] += 1
                pdfs[doc] = pdf
            failures.extend(errors)
        _print_table(qa_set.name, counts, pdfs, folders, count_tokens)
        total += sum(counts.values())
    print(f"{len(sets)} set(s), {total} questions")
    if failures:
        print(f"\n{len(failures)} failure(s):", file=sys.stderr)
        for failure in failures:
            print(f"  {failure}", file=sys.stderr)
        return 1
    print("all lines pass")
    return 0


if __name__ == "__main__":
    sys.exit(main())
