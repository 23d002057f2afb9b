"""Exports of a kept answer, as Markdown (for people) and JSON (for tools): the
answer with its sentence marks, each sentence's sources with pages (unsupported ones
flagged), the runs the target wrote beyond the passages, the preliminary answer, the
sources, the run's statistics and settings.

Qt-free, like app/gui/history.py. Marks are numbered as the answer view numbers them:
[1] to [n] the retrieved passages (`Finished.chunks`), then the citations added from
the target's evidence.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from app.gui.history import AddedCitation, AnswerRecord, sentence_at
from core.events import ChunkRef, Finished

SNIPPET = 240  # characters of a passage quoted in the Markdown


def _where(c: ChunkRef) -> dict[str, Any]:
    return {
        "doc_id": c.doc_id,
        "title": c.title,
        "pages": list(c.pages),
        "page_labels": list(c.labels),
        "where": c.page_text,
    }


def citations(finished: Finished, added: Sequence[AddedCitation] = ()) -> list[dict[str, Any]]:
    """The passages an answer drew on, numbered as the answer view numbers them
    (`origin` "retrieved", or "document": found afterwards to cite a sentence no
    retrieved passage supports); the citations added from the target's evidence
    follow, flagged `added`."""
    out = [
        {"n": n, **_where(c), "score": round(c.score, 4), "text": c.text, "origin": c.origin}
        for n, c in enumerate(finished.chunks, start=1)
    ]
    for k, a in enumerate(added):
        n = len(finished.chunks) + k + 1
        out.append({"n": n, **_where(a.ref), "score": round(a.weight, 4), "text": a.ref.text,
                    "added": True, "reason": "the target's evidence, outside the retrieved "
                    "passages"})  # fmt: skip
    return out


def marks_of(finished: Finished, added: Sequence[AddedCitation] = ()) -> list[list[int]]:
    """The mark numbers of each sentence of `Finished.citations`."""
    marks = [[p + 1 for p in c.passages] for c in finished.citations]
    for k, a in enumerate(added):
        if 0 <= a.sentence < len(marks):
            marks[a.sentence].append(len(finished.chunks) + k + 1)
    return marks


def sentences(finished: Finished, added: Sequence[AddedCitation] = ()) -> list[dict[str, Any]]:
    """Each sentence of the answer: its text, marks, where its cited lines are, and
    whether any source supports it."""
    out = []
    marks = marks_of(finished, added)
    for i, c in enumerate(finished.citations):
        spots = [{"mark": p + 1, **_where(s), "text": s.text}
                 for p, s in zip(c.passages, c.spots, strict=False)]  # fmt: skip
        for k, a in enumerate(added):
            if a.sentence == i:
                spots.append({"mark": len(finished.chunks) + k + 1, **_where(a.ref),
                              "text": a.ref.text, "added": True})  # fmt: skip
        out.append({
            "n": i + 1, "text": finished.answer[c.start : c.end], "start": c.start,
            "end": c.end, "marks": marks[i], "supported": bool(marks[i]),
            "drafted_share": round(c.drafted, 4), "spots": spots,
        })  # fmt: skip
    return out


def beyond(finished: Finished) -> list[dict[str, Any]]:
    """The runs the target wrote against the drafter (the passages were not enough)."""
    return [
        {
            "text": finished.answer[r.start : r.end],
            "start": r.start,
            "end": r.end,
            "first_token": r.first,
            "last_token": r.last,
            "corrections": r.corrections,
            "sentence": sentence_at(finished.citations, r.start) + 1,
        }
        for r in finished.beyond
    ]


def answer_with_marks(finished: Finished, added: Sequence[AddedCitation] = ()) -> str:
    """The answer with each supported sentence's marks after it ("… 1871.[1][3] …")."""
    text, pos, parts = finished.answer, 0, []
    for c, marks in zip(finished.citations, marks_of(finished, added), strict=True):
        parts.append(text[pos : c.end])
        parts.append("".join(f"[{n}]" for n in marks))
        pos = c.end
    parts.append(text[pos:])
    return "".join(parts)


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
    """The export for tools: answer, sentences and their sources, beyond runs, the
    preliminary answer, sources with pages, statistics, settings."""
    f = record.finished
    cited = sentences(f, record.added)
    out: dict[str, Any] = {
        "question": record.question,
        "documents": [
            {"id": i, "title": t} for i, t in zip(record.doc_ids, record.titles, strict=False)
        ],
        "answer": record.answer,
        "answer_with_marks": answer_with_marks(f, record.added),
        "sentences": cited,
        "unsupported_sentences": sum(not s["supported"] for s in cited),
        "beyond_passages": beyond(f),
        "preliminary_answer": f.preliminary,
        "citations": citations(f, record.added),
        "statistics": statistics(f),
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


def _provenance_md(record: AnswerRecord) -> list[str]:
    """The Markdown sections on where the answer came from."""
    f, lines = record.finished, []
    if f.citations:
        lines += ["## Sentences and their sources", ""]
        for s in sentences(f, record.added):
            if s["supported"]:
                where = "; ".join(f"[{p['mark']}] {p['title']}, {p['where']}" for p in s["spots"])
                where = where or ", ".join(f"[{n}]" for n in s["marks"])
            else:
                where = "**unsupported**: no retrieved passage supports it"
            lines.append(f"{s['n']}. “{s['text']}” — {where}")
        lines.append("")
    if f.beyond:
        lines += ["## Read beyond the passages", "",
                  "The target wrote these against the drafter: the retrieved passages were "
                  "not enough.", ""]  # fmt: skip
        for b in beyond(f):
            lines.append(f"- “{b['text']}” (sentence {b['sentence']}, {b['corrections']} "
                         "corrections)")  # fmt: skip
        lines.append("")
    if f.preliminary:
        lines += ["## Preliminary answer (passages only)", "",
                  "*The drafter alone on the retrieved passages, while the target read the "
                  "whole document:*", ""]  # fmt: skip
        lines += [f"> {line}" if line else ">" for line in f.preliminary.splitlines()]
        lines.append("")
    return lines


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
        answer_with_marks(f, record.added) or "_(no answer)_",
        "",
    ]
    lines += _provenance_md(record)
    sources = citations(f, record.added)
    if sources:
        lines += ["## Sources", ""]
        for c in sources:
            snippet = " ".join(c["text"].split())
            snippet = snippet[:SNIPPET] + ("…" if len(snippet) > SNIPPET else "")
            extra = " (found in the document)" if c.get("origin") == "document" else ""
            extra = " (added: the target's evidence)" if c.get("added") else extra
            lines.append(f"{c['n']}. **{c['title']}**, {c['where']}{extra}: “{snippet}”")
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
