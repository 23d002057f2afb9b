"""Answer history: one record per answered question, kept on disk per library, and
exported as Markdown or JSON (answer, citations with pages, the run's statistics).

Qt-free on purpose: the records, their file and the exports are plain Python, so
they can be tested without a window and read back by any tool.
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

from core.events import ChunkRef, Finished

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

    @property
    def answer(self) -> str:
        return self.finished.answer

    def about(self, doc_ids: Iterable[str]) -> bool:
        """True when this answer read any of `doc_ids` (or all when none are given)."""
        wanted = set(doc_ids)
        return not wanted or not self.doc_ids or bool(wanted & set(self.doc_ids))


# ------------------------------------------------------------------ export


def citations(finished: Finished) -> list[dict[str, Any]]:
    """The passages an answer drew on, numbered as the answer view numbers them."""
    return [
        {
            "n": n,
            "doc_id": c.doc_id,
            "title": c.title,
            "pages": list(c.pages),
            "page_labels": list(c.labels),
            "where": c.page_text,
            "score": round(c.score, 4),
            "text": c.text,
        }
        for n, c in enumerate(finished.chunks, start=1)
    ]


def statistics(finished: Finished) -> dict[str, Any]:
    """The run's figures (the speedup is the engine's estimate, named so)."""
    return {
        "mode": finished.mode,
        "stop_reason": finished.stop_reason,
        "new_tokens": finished.new_tokens,
        "rounds": finished.rounds,
        "drafted": finished.drafted,
        "accepted": finished.accepted,
        "acceptance_rate": round(finished.acceptance_rate, 4),
        "mean_accepted_length": round(finished.mean_accepted_length, 3),
        "tokens_per_s": round(finished.tokens_per_s, 3),
        "speedup_estimate": round(finished.speedup_estimate, 3),
        "time_to_first_token_s": round(finished.time_to_first_token_s, 3),
        "target_prefill_s": round(finished.target_prefill_s, 3),
        "drafter_prefill_s": round(finished.drafter_prefill_s, 3),
        "decode_s": round(finished.decode_s, 3),
        "end_to_end_s": round(finished.end_to_end_s, 3),
    }


def to_json(record: AnswerRecord) -> str:
    """The export for tools: answer, citations with pages, statistics, settings."""
    out: dict[str, Any] = {
        "question": record.question,
        "documents": [
            {"id": i, "title": t} for i, t in zip(record.doc_ids, record.titles, strict=False)
        ],
        "answer": record.answer,
        "citations": citations(record.finished),
        "statistics": statistics(record.finished),
        "settings": record.settings,
        "asked_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(record.asked_at)),
    }
    if record.comparison is not None:
        c = record.comparison
        out["comparison"] = {
            "target_tokens_per_s": round(c.target_tokens_per_s, 3),
            "tokens_per_s": round(c.tokens_per_s, 3),
            "measured_speedup": round(c.speedup, 3),
            "identical_answers": c.identical,
            "target_answer": c.target_answer,
        }
    return json.dumps(out, indent=2, ensure_ascii=False) + "\n"


def to_markdown(record: AnswerRecord) -> str:
    """The export for people: readable in any Markdown viewer."""
    f = record.finished
    docs = ", ".join(record.titles) if record.titles else "the whole library"
    lines = [
        f"# {record.question}",
        "",
        f"*Asked about {docs} on "
        f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(record.asked_at))}.*",
        "",
        "## Answer",
        "",
        f.answer or "_(no answer)_",
        "",
    ]
    if f.chunks:
        lines += ["## Sources", ""]
        for c in citations(f):
            snippet = " ".join(c["text"].split())
            snippet = snippet[:240] + ("…" if len(snippet) > 240 else "")
            lines.append(f"{c['n']}. **{c['title']}**, {c['where']}: “{snippet}”")
        lines.append("")
    s = statistics(f)
    lines += [
        "## Statistics",
        "",
        "| | |",
        "|---|---|",
        f"| Mode | {s['mode']} |",
        f"| New tokens | {s['new_tokens']} |",
        f"| Rounds | {s['rounds']} |",
    ]
    if f.drafted:
        lines += [
            f"| Acceptance | {f.acceptance_rate:.0%} ({f.accepted} of {f.drafted}) |",
            f"| Mean accepted length | {f.mean_accepted_length:.2f} tokens/round |",
        ]
    lines.append(f"| Decode speed | {f.tokens_per_s:.1f} tok/s |")
    if f.speedup_estimate:
        lines.append(f"| Speedup (engine's estimate) | {f.speedup_estimate:.2f}× |")
    if record.comparison is not None:
        cmp = record.comparison
        same = "identical" if cmp.identical else "different"
        lines.append(
            f"| Measured against target only | {cmp.speedup:.2f}× "
            f"({cmp.target_tokens_per_s:.1f} → {cmp.tokens_per_s:.1f} tok/s; {same} "
            "answers) |"
        )
    lines.append(f"| Time to first token | {f.time_to_first_token_s:.2f} s |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------- storage


def _record_to_dict(r: AnswerRecord) -> dict[str, Any]:
    d = asdict(r)
    d["comparison"] = None if r.comparison is None else asdict(r.comparison)
    return d


def _record_from_dict(d: dict[str, Any]) -> AnswerRecord:
    fin = dict(d["finished"])
    fin["chunks"] = tuple(
        ChunkRef(
            **{
                **c,
                "pages": tuple(c["pages"]),
                "labels": tuple(c.get("labels", ())),
                "rects": tuple(tuple(r) for r in c.get("rects", ())),
            }
        )
        for c in fin.get("chunks", ())
    )
    comparison = d.get("comparison")
    return AnswerRecord(
        question=str(d["question"]),
        doc_ids=tuple(d.get("doc_ids", ())),
        titles=tuple(d.get("titles", ())),
        finished=Finished(**fin),
        settings=dict(d.get("settings", {})),
        tokens=tuple(d.get("tokens", ())),
        asked_at=float(d.get("asked_at", 0.0)),
        comparison=None if comparison is None else Comparison(**comparison),
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
