"""A corpus test for core.pdf.extract: every PDF of two Debian TeX Live documentation packages.

Hundreds of real PDFs from many LaTeX versions, classes and drivers (pdfTeX, XeTeX,
LuaTeX, dvipdfmx ...). `read_pdf` must never crash on any of them: a `RapidQAError`
(damaged, no text ...) is a refusal it reports and is collected, anything else fails
the test naming the file. Each document it returns must be well-formed.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from core.errors import RapidQAError
from core.pdf.extract import PAGE_SEPARATOR, Document
from core.pdf.reader import read_pdf

PACKAGES = ("texlive-latex-base-doc", "texlive-latex-recommended-doc")
MIN_READABLE = 0.95  # share of the files that must parse into a document with text
# Points a line box may stick out of the page: MuPDF keeps a glyph that straddles the
# edge (overfull lines in code listings) whole; the worst seen here is 6.7 pt.
RECT_SLACK = 12.0


def _package_pdfs() -> list[Path]:
    """The PDF files that `PACKAGES` installed, sorted; skips when any is missing."""
    if shutil.which("dpkg") is None:
        pytest.skip("dpkg is not available (not a Debian-based system)")
    found: set[Path] = set()
    for package in PACKAGES:
        listed = subprocess.run(
            ["dpkg", "-L", package], capture_output=True, text=True, check=False
        )
        if listed.returncode != 0:
            pytest.skip(f"the Debian package {package} is not installed")
        for line in listed.stdout.splitlines():
            path = Path(line.strip())
            if path.suffix.lower() == ".pdf" and path.is_file():
                found.add(path)
    if not found:
        pytest.skip(f"the packages {', '.join(PACKAGES)} ship no PDF files here")
    return sorted(found)


def _malformed(doc: Document) -> list[str]:
    """What is wrong with a parsed document's structure ([] when well-formed)."""
    problems: list[str] = []
    if not doc.pages:
        return ["no pages"]
    numbers = [p.number for p in doc.pages]
    if numbers != list(range(1, len(doc.pages) + 1)):
        problems.append(f"pages numbered {numbers[:5]}..., not 1..{len(doc.pages)}")
    if doc.text != PAGE_SEPARATOR.join(p.text for p in doc.pages):
        problems.append("text is not the pages' texts joined")
    for page in doc.pages:
        where = f"page {page.number}"
        if doc.text[page.start_char : page.end_char] != page.text:
            problems.append(f"{where}: text[start_char:end_char] is not the page's text")
        spans, rects = page.line_spans, page.line_rects
        if spans.ndim != 2 or spans.shape[1:] != (2,) or rects.shape != (len(spans), 4):
            problems.append(f"{where}: {spans.shape} line spans but {rects.shape} line rects")
            continue
        if len(spans):
            starts, ends = spans[:, 0], spans[:, 1]
            if (starts < 0).any() or (ends < starts).any() or (ends > len(page.text)).any():
                problems.append(f"{where}: a line span outside its {len(page.text)} characters")
            if not np.isfinite(rects).all():
                problems.append(f"{where}: a line rectangle is not finite")
            x0, y0, x1, y1 = rects.T
            outside = (
                (x0 < -RECT_SLACK)
                | (y0 < -RECT_SLACK)
                | (x1 > page.width + RECT_SLACK)
                | (y1 > page.height + RECT_SLACK)
                | (x1 < x0)
                | (y1 < y0)
            )
            if outside.any():
                worst = rects[outside][0].round(1).tolist()
                problems.append(
                    f"{where}: {int(outside.sum())} line rect(s) outside the "
                    f"{page.width:.1f} x {page.height:.1f} page, e.g. {worst}"
                )
        if page.width <= 0 or page.height <= 0:
            problems.append(f"{where}: size {page.width} x {page.height}")
    return problems


@dataclass
class _Tally:
    files: int = 0
    parsed: int = 0
    with_text: int = 0
    pages: int = 0
    lines: int = 0
    refused: list[tuple[Path, str]] = field(default_factory=list)
    crashed: list[tuple[Path, str]] = field(default_factory=list)
    malformed: list[tuple[Path, str]] = field(default_factory=list)


@pytest.mark.slow
def test_texlive_doc_corpus_parses_without_crashes(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("pymupdf")
    pdfs = _package_pdfs()
    tally = _Tally()
    started = time.perf_counter()
    for path in pdfs:
        tally.files += 1
        try:
            doc = read_pdf(path, ocr=False)
        except RapidQAError as err:
            tally.refused.append((path, f"{type(err).__name__}: {err}"))
            continue
        except Exception as err:  # a crash: anything but a reported refusal
            last = traceback.format_exception(err)[-1].strip()
            tally.crashed.append((path, f"{type(err).__name__}: {err} [{last}]"))
            continue
        tally.parsed += 1
        tally.pages += len(doc.pages)
        tally.lines += sum(len(p.line_spans) for p in doc.pages)
        if doc.text.strip():
            tally.with_text += 1
        tally.malformed.extend((path, problem) for problem in _malformed(doc)[:3])
    elapsed = time.perf_counter() - started

    reasons = Counter(reason.split(":")[0] for _, reason in tally.refused)
    summary = [
        f"corpus: {tally.files} PDFs of {', '.join(PACKAGES)} in {elapsed:.1f} s",
        f"  parsed {tally.parsed} ({tally.with_text} with text): {tally.pages} pages, "
        f"{tally.lines} lines",
        f"  unreadable (RapidQAError) {len(tally.refused)} {dict(reasons)}",
        *(f"    {path}: {reason}" for path, reason in tally.refused),
        f"  crashed {len(tally.crashed)}, malformed {len(tally.malformed)}",
    ]
    with capsys.disabled():
        print("\n" + "\n".join(summary))

    assert not tally.crashed, "read_pdf crashed (not a RapidQAError):\n" + "\n".join(
        f"{path}: {reason}" for path, reason in tally.crashed
    )
    assert not tally.malformed, "malformed documents:\n" + "\n".join(
        f"{path}: {problem}" for path, problem in tally.malformed[:40]
    )
    assert tally.with_text >= MIN_READABLE * tally.files, (
        f"only {tally.with_text} of {tally.files} PDFs parsed into a document with text"
    )
