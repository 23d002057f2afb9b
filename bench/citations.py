"""Sentence citations against labelled evidence pages: how often the citations of a
correct answer include the page the question's evidence is on.

    .venv/bin/python bench/citations.py [--set bench/qa/sample.jsonl] [--mode sd]
        [--library DIR] [--subset N] [--json FILE]

Each question of the set (bench/qa; `page` = the evidence's page) is asked with the
default model pair (or --target/--drafter) in one process. An answer is correct when it
holds one of the set's reference strings (bench/scoring.py). For each correct answer:
*spot* = a sentence's citation narrowed to its matching sentence (what a click
highlights) is on the evidence page; *passage* = a cited passage covers that page;
*retrieved* = a passage the drafter read covers it (what a citation of the retrieved
passages alone can reach; a sentence they do not support is cited from the rest of the
document when its words are found there). Prints a table, one row per figure, as a
share of the correct answers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.scoring import QA_DOC_FOLDERS, QA_SETS_DIR, contains_reference, load_qa_set  # noqa: E402
from core.api import Engine  # noqa: E402
from core.config import DecodeConfig, IndexConfig, ModelConfig  # noqa: E402
from core.events import Evidence, Finished  # noqa: E402


@dataclass(frozen=True)
class Row:
    """One question: whether it was answered right and where its citations point."""

    qid: str
    correct: bool
    page: int | None
    spot: bool  # a sentence's narrowed citation is on the evidence page
    passage: bool  # a cited passage covers the evidence page
    retrieved: bool  # a passage the drafter read covers it
    sentences: int
    supported: int
    from_document: int  # sentences cited from outside the retrieved passages
    beyond: int
    answer: str
    cited_pages: tuple[int, ...]
    evidence_pages: tuple[int, ...] = ()  # pages of the top 3 evidence spots (--evidence)
    evidence_s: float = 0.0


def _find(doc: str) -> Path | None:
    for folder in QA_DOC_FOLDERS:
        if (folder / doc).exists():
            return folder / doc
    return None


def ask_one(engine: Engine, question: str, pdf: Path, cfg: DecodeConfig) -> Finished:
    fin = None
    for event in engine.ask(question, [pdf], cfg):
        if isinstance(event, Finished):
            fin = event
    assert fin is not None
    return fin


def row_of(qid: str, refs: tuple[str, ...], page: int | None, fin: Finished) -> Row:
    spot_pages = {p for c in fin.citations for s in c.spots for p in s.pages}
    passage_pages = {p for c in fin.citations for j in c.passages for p in fin.chunks[j].pages}
    read_pages = {p for ch in fin.chunks if ch.origin == "retrieved" for p in ch.pages}
    found = {j for c in fin.citations for j in c.passages if fin.chunks[j].origin == "document"}
    return Row(
        qid=qid, correct=contains_reference(fin.answer, refs), page=page,
        spot=page in spot_pages, passage=page in passage_pages, retrieved=page in read_pages,
        sentences=len(fin.citations), supported=sum(c.supported for c in fin.citations),
        from_document=len(found), beyond=len(fin.beyond), answer=fin.answer,
        cited_pages=tuple(sorted(spot_pages)),
    )  # fmt: skip


def table(rows: list[Row]) -> str:
    right = [r for r in rows if r.correct and r.page is not None]
    n = max(len(right), 1)
    sentences = sum(r.sentences for r in rows)

    def share(k: int, of: int) -> str:
        return f"{k}/{of} ({100 * k / max(of, 1):.0f}%)"

    lines = [
        "| figure | value |",
        "|---|---|",
        f"| questions | {len(rows)} |",
        f"| correct answers (with an evidence page) | {len(right)} |",
        f"| correct: a sentence citation (spot) on the evidence page | "
        f"{share(sum(r.spot for r in right), n)} |",
        f"| correct: a cited passage covers the evidence page | "
        f"{share(sum(r.passage for r in right), n)} |",
        f"| correct: the drafter's passages cover it (the bound) | "
        f"{share(sum(r.retrieved for r in right), n)} |",
        f"| sentences supported (all answers) | "
        f"{share(sum(r.supported for r in rows), sentences)} |",
        f"| answers citing the rest of the document | "
        f"{share(sum(r.from_document > 0 for r in rows), len(rows))} |",
        f"| answers with a read-beyond run | {share(sum(r.beyond > 0 for r in rows), len(rows))} |",
    ]
    probed = [r for r in right if r.evidence_s > 0]
    if probed:
        top = sum(r.evidence_pages[:1] == (r.page,) for r in probed)
        top3 = sum(r.page in r.evidence_pages for r in probed)
        secs = sorted(r.evidence_s for r in probed)
        lines += [
            f"| correct, first run probed: strongest evidence spot on the evidence page | "
            f"{share(top, len(probed))} |",
            f"| correct, first run probed: one of the 3 strongest on it | "
            f"{share(top3, len(probed))} |",
            f"| evidence time, median (s) | {secs[len(secs) // 2]:.1f} |",
        ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", type=Path, default=QA_SETS_DIR / "sample.jsonl")
    parser.add_argument("--mode", default=DecodeConfig().mode)
    parser.add_argument("--target", default=ModelConfig().target)
    parser.add_argument("--drafter", default=ModelConfig().drafter)
    parser.add_argument("--library", type=Path, default=None)
    parser.add_argument("--subset", type=int, default=0, help="the first N questions")
    parser.add_argument("--json", type=Path, default=None, help="write the rows here")
    parser.add_argument(
        "--evidence", action="store_true",
        help="also probe the target's attention for each answer's first read-beyond run",
    )  # fmt: skip
    args = parser.parse_args()
    items = load_qa_set(args.set)[: args.subset or None]
    engine = Engine(
        ModelConfig(target=args.target, drafter=args.drafter), IndexConfig(library=args.library)
    )
    cfg = DecodeConfig(mode=args.mode, preliminary=False)
    rows: list[Row] = []
    t0 = time.perf_counter()
    for item in items:
        pdf = _find(item.doc)
        if pdf is None:
            print(f"skip {item.qid}: {item.doc} not found", file=sys.stderr)
            continue
        fin = ask_one(engine, item.question, pdf, cfg)
        row = row_of(item.qid, item.refs, item.page, fin)
        if args.evidence and fin.beyond:
            t_e = time.perf_counter()
            doc_ids = list(dict.fromkeys(c.doc_id for c in fin.chunks))
            spots = ()
            for ev in engine.evidence(item.question, doc_ids, fin.answer_ids, fin.beyond[0],
                                      fin.chunks, cfg):  # fmt: skip
                if isinstance(ev, Evidence):
                    spots = ev.spots
            pages = tuple(s.ref.pages[0] for s in spots[:3] if s.ref.pages)
            row = replace(row, evidence_pages=pages, evidence_s=time.perf_counter() - t_e)
        rows.append(row)
        mark = "ok " if row.correct else "-- "
        print(f"{mark}{item.qid}: page {item.page} cited {list(row.cited_pages)} "
              f"{fin.answer[:70]!r}", file=sys.stderr, flush=True)  # fmt: skip
    print(f"\n{args.set.name}, mode {args.mode}, {args.target} + {args.drafter}, "
          f"{time.perf_counter() - t0:.0f} s\n")  # fmt: skip
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1))
    engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
