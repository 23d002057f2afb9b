"""Write the page-range extracts of long PDFs that the long-context set (long.jsonl) quotes.

Each extract is a run of whole sections of a manual, cut so that its text (as PyMuPDF
extracts it) is 16,000-29,000 tokens of the Qwen2.5 tokenizer: the default target reads
a 32,768-token window, which leaves room for the prompt, the question and the answer.
The fourth document, R Data Import/Export, fits whole: its "extract" is all its pages.

    .venv/bin/python bench/qa/long_docs.py [--out DIR] [--tokens]

Extracts are named `long-<stem>-p<first>-<last>.pdf` (1-based physical pages of the source,
both included); files already present are left alone. Each is written to a temporary
file and renamed into place, so an interrupted run leaves no partial PDF. `--tokens`
prints each document's Qwen token count (loads the tokenizer offline, about 10 s).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pymupdf

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = Path("~/.cache/rapidqa/long-docs")
TOKENIZER = "qwen-1.5b"  # the default target (Qwen2.5-Coder-1.5B-Instruct)
MAX_TOKENS = 29_000  # leaves 3,768 of the 32,768-token window for prompt and answer


class Extract(NamedTuple):
    """Pages `first`..`last` (1-based physical, both included) of `source`."""

    source: Path
    first: int
    last: int
    what: str

    @property
    def name(self) -> str:
        """The extract's file name, as `doc` in long.jsonl names it."""
        return f"long-{self.source.stem}-p{self.first}-{self.last}.pdf"


GNUPLOT = Path("/usr/share/doc/gnuplot/gnuplot.pdf")  # gnuplot-doc 5.4.4
R_MANUALS = Path("/usr/share/R/doc/manual")  # r-doc-pdf 4.2.2
EXTRACTS = (
    Extract(GNUPLOT, 23, 61, "gnuplot 5.4 part I, 'New features' to 'Time/Date data'"),
    Extract(R_MANUALS / "R-lang.pdf", 6, 40, "R Language Definition, chapters 1-5"),
    Extract(R_MANUALS / "R-ints.pdf", 6, 35, "R Internals, chapters 1-2"),
    Extract(R_MANUALS / "R-data.pdf", 1, 41, "R Data Import/Export, whole"),
)


def write_extract(extract: Extract, out: Path) -> tuple[Path, bool]:
    """Write `extract` into `out` unless it is there; return (path, whether written)."""
    target = out / extract.name
    if target.exists():
        return target, False
    out.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{extract.name}.", suffix=".tmp", dir=out)
    os.close(fd)
    try:
        with pymupdf.open(extract.source) as src, pymupdf.open() as dst:  # type: ignore[no-untyped-call]
            if not 1 <= extract.first <= extract.last <= len(src):
                raise ValueError(
                    f"{extract.source} has {len(src)} pages, not {extract.first}-{extract.last}"
                )
            dst.insert_pdf(src, from_page=extract.first - 1, to_page=extract.last - 1)
            dst.save(tmp, garbage=3, deflate=True)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target, True


def _token_counter() -> Callable[[str], int]:
    """Count tokens with the default target's (Qwen2.5) tokenizer."""
    sys.path.insert(0, str(REPO))
    from core.models.loading import counting_tokenizer, load_tokenizer

    tokenizer = counting_tokenizer(load_tokenizer(TOKENIZER))
    return lambda text: len(tokenizer.encode(text).ids)


def pdf_text(pdf: Path) -> tuple[int, str]:
    """(pages, whole text as PyMuPDF extracts it, pages joined by newlines)."""
    with pymupdf.open(pdf) as doc:  # type: ignore[no-untyped-call]
        return len(doc), "\n".join(page.get_text() for page in doc)


def main(argv: list[str] | None = None) -> int:
    """Write the extracts; with --tokens print every document's token count."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"folder to write the extracts to (default: {DEFAULT_OUT})",
    )
    parser.add_argument(
        "--tokens",
        action="store_true",
        help=f"print each document's token count ({TOKENIZER} tokenizer)",
    )
    args = parser.parse_args(argv)
    out: Path = args.out.expanduser()
    missing = [e.source for e in EXTRACTS if not e.source.is_file()]
    if missing:
        print(
            f"missing: {', '.join(map(str, missing))} (apt-get install gnuplot-doc r-doc-pdf)",
            file=sys.stderr,
        )
        return 1
    documents: list[Path] = []
    for extract in EXTRACTS:
        path, written = write_extract(extract, out)
        print(f"{'wrote' if written else 'kept '} {path}  ({extract.what})")
        documents.append(path)
    if not args.tokens:
        return 0
    count = _token_counter()
    status = 0
    print(f"\n{'document':<26} {'pages':>5} {'tokens':>7}")
    for path in documents:
        pages, text = pdf_text(path)
        tokens = count(text)
        flag = "" if tokens <= MAX_TOKENS else f"  over {MAX_TOKENS:,}"
        status = status or int(bool(flag))
        print(f"{path.name:<26} {pages:>5} {tokens:>7,}{flag}")
    return status


if __name__ == "__main__":
    sys.exit(main())
