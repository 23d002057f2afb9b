"""Answer quality against a labelled question set (bench/qa/*.jsonl).

Two scores, as in the RAPID paper's tables and SQuAD before it:

- **accuracy**: the answer contains one of the short references (`refs`), matched
  case-insensitively on word boundaries ("25" is not found in "250"; a reference
  like "write.table" keeps its punctuation);
- **token F1** between the answer and the reference sentence (`answer`), after
  SQuAD's normalisation (lowercase, no punctuation, no articles).

`load_qa_set` reads and checks a set; `summarise` turns per-question results into
one row per decoding mode.
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from core.errors import RapidQAError

_REPO = Path(__file__).resolve().parent.parent
QA_SETS_DIR = _REPO / "bench" / "qa"  # every *.jsonl there is the default set...
QA_MADE_SETS = ("long.jsonl", "needle.jsonl")  # ...but these, whose PDFs a script makes
# Where the bundled question sets' PDFs are (bench/qa; `doc` is relative to one of these).
QA_DOC_FOLDERS: tuple[Path, ...] = (
    Path("/usr/share/R/doc/manual"),  # Debian's r-doc-pdf
    Path("/usr/share/doc/gnuplot"),  # gnuplot-doc
    Path("/usr/share/texlive/texmf-dist/doc/latex"),  # texlive-latex-{base,recommended}-doc
    _REPO / "resources" / "sample",
    # made by bench/qa/long_docs.py and bench/qa/needle.py (long.jsonl, needle.jsonl)
    Path.home() / ".cache" / "rapidqa" / "long-docs",
    Path.home() / ".cache" / "rapidqa" / "needle",
)

REQUIRED = ("id", "doc", "question", "answer", "refs")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)
_SPACE = re.compile(r"\s+")


class QASetError(RapidQAError):
    """A question set file is missing, not JSON Lines, or lacks a field."""


@dataclass(frozen=True)
class QAItem:
    """One labelled question about one document."""

    qid: str
    doc: str  # the PDF's file name
    question: str
    answer: str  # the reference answer, a sentence
    refs: tuple[str, ...]  # short strings; any one in an answer makes it right
    page: int | None = None  # where the evidence is (1-based), when known


@dataclass(frozen=True)
class Scored:
    """One question answered in one mode."""

    qid: str
    mode: str
    correct: bool
    f1: float
    answer_tokens: int
    drafted: int = 0
    accepted: int = 0
    rounds: int = 0


@dataclass(frozen=True)
class ModeSummary:
    """A row of the quality table."""

    mode: str
    questions: int
    accuracy: float
    f1: float
    mean_answer_tokens: float
    acceptance_rate: float | None  # None for modes that do not draft
    mean_accepted_length: float | None


def contains_reference(answer: str, refs: Iterable[str]) -> bool:
    """True when one of `refs` occurs in `answer` as whole words (case-insensitive)."""
    text = _SPACE.sub(" ", answer.casefold())
    for ref in refs:
        wanted = _SPACE.sub(" ", ref.casefold().strip())
        if wanted and re.search(rf"(?<!\w){re.escape(wanted)}(?!\w)", text):
            return True
    return False


def normalise(text: str) -> list[str]:
    """SQuAD's answer normalisation, as tokens."""
    text = text.casefold().translate(_PUNCTUATION)
    return _ARTICLES.sub(" ", text).split()


def token_f1(answer: str, reference: str) -> float:
    """Harmonic mean of token precision and recall (bag of normalised words)."""
    got, want = normalise(answer), normalise(reference)
    if not got or not want:
        return float(got == want)
    common = sum((Counter(got) & Counter(want)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(got), common / len(want)
    return 2 * precision * recall / (precision + recall)


def load_qa_set(path: Path | str) -> list[QAItem]:
    """The questions of a JSON Lines set; `QASetError` names the line that is wrong."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise QASetError(f"Cannot read the question set {path} ({err.strerror or err}).") from err
    items: list[QAItem] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise QASetError(f"{where} is not JSON ({err.msg}). One object per line.") from err
        if not isinstance(row, dict):
            raise QASetError(f"{where} is not a JSON object.")
        missing = [key for key in REQUIRED if key not in row]
        if missing:
            raise QASetError(
                f"{where} lacks {', '.join(missing)}. Every line needs {', '.join(REQUIRED)}."
            )
        refs = row["refs"]
        if (
            not isinstance(refs, list)
            or not refs
            or not all(isinstance(r, str) and r.strip() for r in refs)
        ):
            raise QASetError(f"{where}: refs must be a non-empty list of strings.")
        if row["id"] in seen:
            raise QASetError(f"{where}: the id {row['id']!r} is used twice.")
        seen.add(row["id"])
        page = row.get("page")
        items.append(
            QAItem(
                str(row["id"]),
                str(row["doc"]),
                str(row["question"]),
                str(row["answer"]),
                tuple(refs),
                int(page) if page is not None else None,
            )
        )
    if not items:
        raise QASetError(f"The question set {path} has no questions.")
    return items


def score(
    item: QAItem,
    mode: str,
    answer: str,
    answer_tokens: int,
    drafted: int = 0,
    accepted: int = 0,
    rounds: int = 0,
) -> Scored:
    """One answer against its item."""
    return Scored(
        item.qid,
        mode,
        contains_reference(answer, item.refs),
        token_f1(answer, item.answer),
        answer_tokens,
        drafted,
        accepted,
        rounds,
    )


def summarise(results: Sequence[Scored]) -> list[ModeSummary]:
    """One row per mode, in the order the modes first appear."""
    rows: list[ModeSummary] = []
    for mode in dict.fromkeys(r.mode for r in results):
        mine = [r for r in results if r.mode == mode]
        n = len(mine)
        drafted = sum(r.drafted for r in mine)
        rounds = sum(r.rounds for r in mine)
        accepted = sum(r.accepted for r in mine)
        rows.append(
            ModeSummary(
                mode=mode,
                questions=n,
                accuracy=sum(r.correct for r in mine) / n,
                f1=sum(r.f1 for r in mine) / n,
                mean_answer_tokens=sum(r.answer_tokens for r in mine) / n,
                acceptance_rate=accepted / drafted if drafted else None,
                mean_accepted_length=accepted / rounds if drafted and rounds else None,
            )
        )
    return rows
