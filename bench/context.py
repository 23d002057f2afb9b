"""Context-length sweep: the speed bench on the first pages of a PDF, for several sizes.

For each requested size N (target tokens), `run_context_sweep` writes a PDF of the
first pages of the given PDF whose text totals about N tokens (PyMuPDF
``insert_pdf`` into a temporary folder), runs `run_speed_bench` on it, and removes
the temporary PDF and its library entry again afterwards (an entry that was in the
library before the sweep stays). It shows at which document length RAPID starts to
pay off against the plain target decode.

`pages_for_tokens` (the page selection) and `format_context_table` /
`context_sweep_to_json` are pure functions over their inputs.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from bench.speed import (
    ModeSummary,
    SpeedReport,
    fmt_optional,
    fmt_percent,
    report_to_json,
    run_speed_bench,
    table_row,
)
from core.api import EngineAPI
from core.config import DecodeConfig
from core.errors import ConfigError, QuestionError
from core.events import Event, ModelLoaded, Notice, drain
from core.models.prompts import DOCUMENT_HEADER_TOKENS, context_room

JOIN_TOKENS = 1  # the paragraph break that joins two pages' texts in the document


class SweepEngine(EngineAPI, Protocol):
    """The engine, with its loaded target (the sweep sizes documents in its tokens)."""

    target: Any  # core.models.loading.LoadedModel once `load_models()` ran


@dataclass(frozen=True)
class ContextPoint:
    """One size of the sweep: which pages it kept and the speed bench on them."""

    requested: int  # N asked for (target tokens)
    pages: int  # the first `pages` pages of the PDF
    document_tokens: int  # the slice's text in target tokens, as the library counted it
    report: SpeedReport


@dataclass(frozen=True)
class Skipped:
    requested: int
    reason: str


@dataclass(frozen=True)
class ContextSweep:
    """Everything `format_context_table` and `context_sweep_to_json` need."""

    document: str
    context_window: int  # the target's
    max_document_tokens: int  # the longest document the window holds with the answer
    questions: tuple[str, ...]
    modes: tuple[str, ...]
    repeat: int
    max_new_tokens: int
    points: tuple[ContextPoint, ...]
    skipped: tuple[Skipped, ...]


def parse_contexts(values: Sequence[int]) -> tuple[int, ...]:
    """The sizes in increasing order, once each; every size at least 1."""
    bad = [v for v in values if v < 1]
    if bad or not values:
        raise ConfigError(f"Context sizes must be whole numbers >= 1 (got {list(values)}).")
    return tuple(sorted(set(values)))


def pages_for_tokens(page_tokens: Sequence[int], tokens: int, limit: int | None = None) -> int:
    """How many first pages make a document of about `tokens` tokens.

    `page_tokens[i]` is page i's size (its text plus the join to the next page). The
    result is the prefix whose total is nearest to `tokens` (the shorter one on a tie)
    among those of at most `limit` tokens: 0 when not even the first page fits
    `limit`, every page when the document is shorter than `tokens`."""
    best, best_gap = 0, -1
    total = 0
    for k, n in enumerate(page_tokens, start=1):
        total += n
        if limit is not None and total > limit:
            break
        gap = abs(total - tokens)
        if best_gap < 0 or gap < best_gap:
            best, best_gap = k, gap
        if total >= tokens:
            break
    return best


def page_token_counts(
    pdf: Path, count: Callable[[str], int], password: str | None = None, up_to: int | None = None
) -> list[int]:
    """Target tokens of each page's text (+ `JOIN_TOKENS`), from the first page on,
    stopping after the page that brings the total to `up_to` (None: every page)."""
    import pymupdf as module  # deferred: PyMuPDF is large, and absent on GPU machines

    pymupdf: Any = module  # PyMuPDF has no type hints
    counts: list[int] = []
    with pymupdf.open(pdf) as src:
        if src.needs_pass and not src.authenticate(password or ""):
            raise ConfigError(f"{pdf} is encrypted: give its password (--password).")
        total = 0
        for page in src:
            counts.append(count(page.get_text()) + JOIN_TOKENS)
            total += counts[-1]
            if up_to is not None and total >= up_to:
                break
    return counts


def write_first_pages(pdf: Path, pages: int, dest: Path, password: str | None = None) -> Path:
    """Save the first `pages` pages of `pdf` as a new (unencrypted) PDF at `dest`."""
    import pymupdf as module

    pymupdf: Any = module
    with pymupdf.open(pdf) as src:
        if src.needs_pass and not src.authenticate(password or ""):
            raise ConfigError(f"{pdf} is encrypted: give its password (--password).")
        with pymupdf.open() as new:
            new.insert_pdf(src, from_page=0, to_page=pages - 1)
            new.save(dest)
    return dest


def max_document_tokens(
    window: int, tokenizer: Any, questions: Sequence[str], max_new_tokens: int
) -> int:
    """The longest document the target reads whole with any of `questions` and
    `max_new_tokens` (the engine's rule in `Engine.ask`: template, question, answer and
    the most draft tokens must fit beside it)."""
    rooms = (context_room(tokenizer, window, q, max_new_tokens) for q in questions)
    return min(rooms) - DOCUMENT_HEADER_TOKENS


def run_context_sweep(
    engine: SweepEngine,
    pdf: Path,
    contexts: Sequence[int],
    questions: Sequence[str],
    modes: Sequence[str],
    repeat: int,
    max_new_tokens: int,
    decode_base: DecodeConfig,
    *,
    password: str | None = None,
    log: Callable[[str], None] | None = None,
    workdir: Path | None = None,
) -> ContextSweep:
    """`run_speed_bench` on the first pages of `pdf` holding about N tokens, per N.

    Sizes the target's window cannot hold whole (with the answer) are skipped with a
    note, as are sizes that give the same pages as a smaller one (a short PDF). The
    temporary PDFs (in `workdir`, default a new temporary folder) and the library
    entries the sweep added are removed afterwards, and the KV caches cleared."""
    say = log if log is not None else (lambda _line: None)
    sizes = parse_contexts(contexts)
    qs = tuple(q.strip() for q in questions)
    if not qs or not all(qs):
        raise QuestionError("Give at least one non-empty question (-q).")
    loaded: dict[str, ModelLoaded] = {}
    for event in engine.load_models():
        if isinstance(event, ModelLoaded):
            loaded[event.role] = event
    target = engine.target
    tok = target.tokenizer

    def count(text: str) -> int:
        return len(tok.encode(text, add_special_tokens=False))

    limit = max_document_tokens(target.context_window, tok, qs, max_new_tokens)
    counts = page_token_counts(pdf, count, password, up_to=max(sizes))
    points: list[ContextPoint] = []
    skipped: list[Skipped] = []

    def skip(n: int, reason: str) -> None:
        skipped.append(Skipped(n, reason))
        say(f"context {n}: skipped: {reason}")

    with tempfile.TemporaryDirectory(prefix="rapidqa-context-", dir=workdir) as tmp:
        try:
            for n in sizes:
                if n > limit:
                    window = target.context_window
                    skip(n, f"the target's window ({window} tokens) holds documents of at "
                            f"most {limit} tokens with {max_new_tokens} new tokens")  # fmt: skip
                    continue
                k = pages_for_tokens(counts, n, limit)
                if k == 0:
                    skip(n, f"the first page alone is longer than {limit} tokens")
                    continue
                same = next((p for p in points if p.pages == k), None)
                if same is not None:
                    skip(n, f"the same {k} page(s) as context {same.requested}: the PDF "
                            f"holds about {sum(counts)} tokens")  # fmt: skip
                    continue
                point = _bench_slice(
                    engine, pdf, n, k, limit, Path(tmp), qs, modes, repeat, max_new_tokens,
                    decode_base, password, say, loaded,
                )  # fmt: skip
                if point is None:
                    skip(n, f"no first pages of the PDF fit in {limit} tokens")
                else:
                    points.append(point)
        finally:
            engine.clear_kv_cache(memory=True, disk=True)  # no KV of the temporary PDFs kept
    return ContextSweep(
        document=str(pdf),
        context_window=int(target.context_window),
        max_document_tokens=limit,
        questions=qs,
        modes=points[0].report.modes if points else tuple(modes),
        repeat=repeat,
        max_new_tokens=max_new_tokens,
        points=tuple(points),
        skipped=tuple(skipped),
    )


def _bench_slice(
    engine: SweepEngine, pdf: Path, n: int, pages: int, limit: int, tmp: Path,
    questions: tuple[str, ...], modes: Sequence[str], repeat: int, max_new_tokens: int,
    decode_base: DecodeConfig, password: str | None, say: Callable[[str], None],
    loaded: dict[str, ModelLoaded],
) -> ContextPoint | None:  # fmt: skip
    """Write the slice, add it to the library, bench it, remove it again. The page
    count drops while the library counts more than `limit` tokens (its text may differ
    a little from PyMuPDF's plain `get_text`); None when no page count fits."""
    known = {d.doc_id for d in engine.documents()}
    while pages >= 1:
        path = write_first_pages(pdf, pages, tmp / f"{pdf.stem}-first-{pages}-pages.pdf", password)
        entry = drain(engine.add(path), lambda e: _say_notice(e, say))
        added = entry.doc_id not in known
        try:
            if entry.tokens > limit:
                pages -= 1
                continue
            say(f"context {n}: the first {pages} page(s), {entry.tokens} tokens")
            report = run_speed_bench(
                engine, path, questions, modes, repeat, max_new_tokens, decode_base,
                log=say, models=loaded,
            )  # fmt: skip
            return ContextPoint(n, pages, entry.tokens, report)
        finally:
            if added:
                engine.remove(entry.doc_id)
            path.unlink(missing_ok=True)
    return None


def _say_notice(event: Event, say: Callable[[str], None]) -> None:
    if isinstance(event, Notice):
        say(f"{event.level}: {event.message}")


# --- rendering -----------------------------------------------------------------------------


def _cold_prefill(report: SpeedReport, mode: str) -> float | None:
    """Target + drafter prefill of the mode's cold run (the whole document read)."""
    for run in report.runs:
        if run.mode == mode and run.cold:
            return run.finished.target_prefill_s + run.finished.drafter_prefill_s
    return None


def _rows(sweep: ContextSweep) -> Iterator[tuple[ContextPoint, ModeSummary]]:
    for point in sweep.points:
        for mode in point.report.modes:
            s = point.report.summaries.get(mode)
            if s is not None:
                yield point, s


_COLUMNS: tuple[tuple[str, int], ...] = (
    ("context", 7),
    ("pages", 5),
    ("mode", 11),
    ("tok/s", 7),
    ("ratio", 6),
    ("accept", 6),
    ("acc/rnd", 7),
    ("prefill s", 9),
    ("e2e s", 7),
    ("=target", 7),
)


def format_context_table(sweep: ContextSweep) -> str:
    """One fixed-width table: a row per (context size, mode), then the skipped sizes."""
    lines = [f"RapidQA context sweep - {Path(sweep.document).name}"]
    if sweep.points:
        first = sweep.points[0].report
        m, d = first.machine, first.decode
        lines += [
            f"{m.device} ({m.dtype}), torch threads {m.torch_threads} of {m.cpu_count} CPUs,"
            f" {m.platform}",
            f"target: {m.target} (window {sweep.context_window})   drafter: {m.drafter}",
            f"questions: {len(sweep.questions)}   repeat: {sweep.repeat}   max new tokens:"
            f" {sweep.max_new_tokens}   gamma {d.gamma}   eta {d.eta:g}"
            f"   temperature {d.temperature:g}",
        ]
    lines.append("")
    header = table_row([name for name, _ in _COLUMNS], _COLUMNS)
    lines += [header, "-" * len(header)]
    previous: ContextPoint | None = None
    for point, s in _rows(sweep):
        if previous is not None and point is not previous:
            lines.append("")
        previous = point
        cells = (
            str(point.document_tokens),
            str(point.pages),
            s.mode,
            f"{s.tokens_per_s:.2f}",
            fmt_optional(s.ratio, ".2f", "x"),
            fmt_percent(s.acceptance_rate),
            fmt_optional(s.mean_accepted_length, ".2f"),
            fmt_optional(_cold_prefill(point.report, s.mode), ".2f"),
            f"{s.end_to_end_s:.2f}",
            f"{s.same_answer}/{s.compared}" if s.compared else "-",
        )
        lines.append(table_row(cells, _COLUMNS))
    if sweep.skipped:
        lines.append("")
        lines += [f"context {s.requested} skipped: {s.reason}" for s in sweep.skipped]
    lines += [
        "",
        "context = the slice's document tokens (target tokenizer); pages = first pages kept;"
        " tok/s = median new tokens / decode s;",
        "ratio = tok/s / target's at the same context; accept, acc/rnd = draft acceptance and"
        " accepted tokens per round (medians);",
        "prefill s = target + drafter prefill of the cold (first) run, the whole document"
        " read; e2e s = median end-to-end s; =target = same answer as target.",
    ]
    return "\n".join(lines)


def context_sweep_to_json(sweep: ContextSweep) -> dict[str, Any]:
    """``{"contexts": [{requested, pages, document_tokens, modes, report}], ...}``."""
    contexts = []
    for point in sweep.points:
        modes: dict[str, Any] = {}
        for mode in point.report.modes:
            s = point.report.summaries.get(mode)
            if s is None:
                continue
            modes[mode] = {
                "tokens_per_s": s.tokens_per_s,
                "ratio": s.ratio,
                "acceptance_rate": s.acceptance_rate,
                "mean_accepted_length": s.mean_accepted_length,
                "prefill_s": _cold_prefill(point.report, mode),
                "end_to_end_s": s.end_to_end_s,
                "same_answer_as_target": s.same_answer,
                "answers_compared": s.compared,
            }
        contexts.append(
            {
                "requested": point.requested,
                "pages": point.pages,
                "document_tokens": point.document_tokens,
                "modes": modes,
                "report": report_to_json(point.report),
            }
        )
    return {
        "document": sweep.document,
        "context_window": sweep.context_window,
        "max_document_tokens": sweep.max_document_tokens,
        "questions": list(sweep.questions),
        "modes": list(sweep.modes),
        "repeat": sweep.repeat,
        "max_new_tokens": sweep.max_new_tokens,
        "contexts": contexts,
        "skipped": [{"requested": s.requested, "reason": s.reason} for s in sweep.skipped],
    }
