"""Answer history: one record per answered question, kept on disk per library (its
exports as Markdown or JSON are in app/gui/export.py).

Qt-free on purpose: the records and their file are plain Python, so they can be
tested without a window and read back by any tool. A record keeps the engine's
`Finished` whole, provenance included (sentence citations, "read beyond the
passages" runs, the preliminary answer), and the citations a user added from the
target's evidence; records written before those existed still load.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from core.events import BeyondRun, ChunkRef, Finished, SentenceCitation

HISTORY_FILE = "history.json"
MAX_RECORDS = 500
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Comparison:
    """The answer run again with the target alone (the measured baseline)."""

    target_tokens_per_s: float
    tokens_per_s: float
    identical: bool
    target_answer: str

    @property
    def speedup(self) -> float:
        return self.tokens_per_s / self.target_tokens_per_s if self.target_tokens_per_s else 0.0


@dataclass(frozen=True)
class AddedCitation:
    """A citation the user added from the target's evidence ("Cite it"): `ref`, the
    spot of the document the target attended to most while writing a run of sentence
    `sentence` (an index into `Finished.citations`), outside the retrieved passages;
    `weight` its share of the run's attention. Numbered after the retrieved passages."""

    sentence: int
    ref: ChunkRef
    weight: float = 0.0


def sentence_at(citations: Sequence[SentenceCitation], pos: int) -> int:
    """The index of the sentence holding answer character `pos`; between sentences
    (the blank after one) the next one; after the last, the last; -1 without any."""
    for i, c in enumerate(citations):
        if pos < c.end:
            return i
    return len(citations) - 1


@dataclass(frozen=True)
class AnswerRecord:
    """A question, the documents it was about, and how it was answered."""

    question: str
    doc_ids: tuple[str, ...]  # empty: the whole library
    titles: tuple[str, ...]
    finished: Finished
    settings: dict[str, Any] = field(default_factory=dict)  # mode, eta, gamma, models ...
    tokens: tuple[dict[str, Any], ...] = ()  # the answer view's tokens, to show it again
    asked_at: float = field(default_factory=time.time)
    comparison: Comparison | None = None
    added: tuple[AddedCitation, ...] = ()  # citations added from the target's evidence

    @property
    def answer(self) -> str:
        return self.finished.answer

    def about(self, doc_ids: Iterable[str]) -> bool:
        """True when this answer read any of `doc_ids` (or all when none are given)."""
        wanted = set(doc_ids)
        return not wanted or not self.doc_ids or bool(wanted & set(self.doc_ids))


# ----------------------------------------------------------------- storage


def _record_to_dict(r: AnswerRecord) -> dict[str, Any]:
    d = asdict(r)
    d["comparison"] = None if r.comparison is None else asdict(r.comparison)
    return d


def chunk_from_dict(c: dict[str, Any]) -> ChunkRef:
    """A `ChunkRef` from its `asdict` form (lists back to tuples)."""
    return ChunkRef(
        **{
            **c,
            "pages": tuple(c["pages"]),
            "labels": tuple(c.get("labels", ())),
            "rects": tuple(tuple(r) for r in c.get("rects", ())),
        }
    )


def _citation_from_dict(c: dict[str, Any]) -> SentenceCitation:
    return SentenceCitation(
        start=int(c["start"]),
        end=int(c["end"]),
        passages=tuple(int(i) for i in c.get("passages", ())),
        spots=tuple(chunk_from_dict(s) for s in c.get("spots", ())),
        drafted=float(c.get("drafted", 0.0)),
    )


def finished_from_dict(d: dict[str, Any]) -> Finished:
    """A `Finished` from its `asdict` form; fields added later (citations, beyond runs,
    answer ids, the preliminary answer) default when an older record lacks them."""
    fin = dict(d)
    fin["chunks"] = tuple(chunk_from_dict(c) for c in fin.get("chunks", ()))
    fin["citations"] = tuple(_citation_from_dict(c) for c in fin.get("citations", ()))
    fin["beyond"] = tuple(BeyondRun(**b) for b in fin.get("beyond", ()))
    fin["answer_ids"] = tuple(int(i) for i in fin.get("answer_ids", ()))
    fin["preliminary"] = str(fin.get("preliminary", ""))
    return Finished(**fin)


def _record_from_dict(d: dict[str, Any]) -> AnswerRecord:
    comparison = d.get("comparison")
    added = tuple(
        AddedCitation(int(a["sentence"]), chunk_from_dict(a["ref"]), float(a.get("weight", 0.0)))
        for a in d.get("added", ())
    )
    return AnswerRecord(
        question=str(d["question"]),
        doc_ids=tuple(d.get("doc_ids", ())),
        titles=tuple(d.get("titles", ())),
        finished=finished_from_dict(d["finished"]),
        settings=dict(d.get("settings", {})),
        tokens=tuple(d.get("tokens", ())),
        asked_at=float(d.get("asked_at", 0.0)),
        comparison=None if comparison is None else Comparison(**comparison),
        added=added,
    )


class HistoryStore:
    """The records of one library, newest last, in one JSON file written atomically.

    A damaged file is set aside (renamed `.damaged`) rather than lost or fatal.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: list[AnswerRecord] = []
        self.problem = ""  # what went wrong reading the file, for the status bar
        self._load()

    def _load(self) -> None:
        if not self.path.is_file():
            return
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            self.records = [_record_from_dict(d) for d in data["records"]]
        except (OSError, ValueError, KeyError, TypeError) as err:
            aside = self.path.with_suffix(".damaged")
            try:
                os.replace(self.path, aside)
            except OSError:
                pass
            self.records = []
            self.problem = (
                f"The answer history could not be read ({err}); it was set aside as "
                f"{aside.name} and a new one started."
            )

    def about(self, doc_ids: Sequence[str]) -> list[AnswerRecord]:
        """Records for these documents (all when none), newest first."""
        return [r for r in reversed(self.records) if r.about(doc_ids)]

    def add(self, record: AnswerRecord) -> None:
        self.records.append(record)
        del self.records[:-MAX_RECORDS]
        self.save()

    def update(self, old: AnswerRecord, **changes: Any) -> AnswerRecord:
        """Replace `old` with a copy carrying `changes` (e.g. a comparison)."""
        new = replace(old, **changes)
        for i, r in enumerate(self.records):
            if r is old:
                self.records[i] = new
        self.save()
        return new

    def remove(self, record: AnswerRecord) -> None:
        self.records = [r for r in self.records if r is not record]
        self.save()

    def save(self) -> None:
        """Write all records (never half-written: see `write_atomically`)."""
        data = {"version": FORMAT_VERSION, "records": [_record_to_dict(r) for r in self.records]}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(self.path, lambda out: json.dump(data, out, ensure_ascii=False))


def write_atomically(path: Path, write: Callable[[TextIO], object]) -> None:
    """`write(file)` into a temporary file beside `path`, flushed to disk, then swapped
    in: `path` is either whole and new or as it was. Raises `OSError`."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
