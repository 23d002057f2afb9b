"""`rapidqa bench quality`: every decoding mode on a labelled question set.

Each question is asked once per mode about its own document (added to the library
first, once). The engine keeps the document's prefill in its KV cache, so a
document is read once for all its questions and modes. Scores: accuracy and token
F1 (core/quality.py), answer length, acceptance and mean accepted length, and decode
speed as a ratio to `target` on the same questions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from core.config import MODES, DecodeConfig
from core.errors import ConfigError
from core.events import Event, Finished
from core.quality import ModeSummary, QAItem, QASetError, Scored, score, summarise

BASELINE = "target"


class QualityEngine(Protocol):
    """The part of `core.api.Engine` this benchmark drives."""

    def ask(
        self, question: str, documents: Sequence[Path | str] = ..., decode_cfg: Any = ...
    ) -> Iterator[Event]: ...


@dataclass(frozen=True)
class QualityReport:
    """Per-question results and the table rows."""

    results: tuple[Scored, ...]
    summary: tuple[ModeSummary, ...]
    tokens_per_s: dict[str, float]  # decode tok/s per mode over all its answers


def pick(items: Sequence[QAItem], subset: int | None) -> list[QAItem]:
    """`subset` questions spread evenly over the set (all of them when None)."""
    if subset is None or subset >= len(items):
        return list(items)
    if subset < 1:
        raise ConfigError(f"--subset must be at least 1 (got {subset}).")
    step = len(items) / subset
    return [items[int(i * step)] for i in range(subset)]


def run_quality_bench(
    engine: QualityEngine,
    items: Sequence[QAItem],
    docs_dir: Path,
    modes: Sequence[str],
    decode_base: DecodeConfig,
    *,
    log: Callable[[str], None] | None = None,
) -> QualityReport:
    """Ask every item in every mode (the baseline first); score the answers."""
    say = log if log is not None else (lambda _line: None)
    order = [BASELINE] + [m for m in dict.fromkeys(modes) if m != BASELINE]
    for mode in order:
        if mode not in MODES:
            raise ConfigError(f"Unknown mode {mode!r}: choose from {', '.join(MODES)}.")
    missing = sorted({i.doc for i in items if not (docs_dir / i.doc).is_file()})
    if missing:
        raise QASetError(
            f"{len(missing)} document(s) of the set are not in {docs_dir}: "
            f"{', '.join(missing)}. Install them (the R manuals: apt-get install r-doc-pdf) "
            "or point --docs at their folder."
        )
    results: list[Scored] = []
    tokens: dict[str, int] = dict.fromkeys(order, 0)
    seconds: dict[str, float] = dict.fromkeys(order, 0.0)
    for n, item in enumerate(items, start=1):
        for mode in order:
            cfg = replace(decode_base, mode=mode)  # type: ignore[arg-type]
            finished = _answer(engine, item, docs_dir / item.doc, cfg)
            results.append(
                score(
                    item,
                    mode,
                    finished.answer,
                    finished.new_tokens,
                    finished.drafted,
                    finished.accepted,
                    finished.rounds,
                )
            )
            tokens[mode] += finished.new_tokens
            seconds[mode] += finished.decode_s
        say(
            f"[{n}/{len(items)}] {item.qid}: "
            + ", ".join(f"{r.mode} {'ok' if r.correct else '--'}" for r in results[-len(order) :])
        )
    speed = {m: tokens[m] / seconds[m] if seconds[m] > 0 else 0.0 for m in order}
    return QualityReport(tuple(results), tuple(summarise(results)), speed)


def _answer(engine: QualityEngine, item: QAItem, pdf: Path, cfg: DecodeConfig) -> Finished:
    finished = None
    for event in engine.ask(item.question, (pdf,), cfg):
        if isinstance(event, Finished):
            finished = event
    assert finished is not None, "Engine.ask always ends with Finished"
    return finished


def format_quality(report: QualityReport) -> str:
    """The table: one row per mode, speed as a ratio to `target`."""
    base = report.tokens_per_s.get(BASELINE, 0.0)
    lines = [
        "| mode | questions | accuracy | token F1 | answer tokens | acceptance "
        "| accepted/round | tok/s | vs target |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report.summary:
        tps = report.tokens_per_s.get(row.mode, 0.0)
        acc = "-" if row.acceptance_rate is None else f"{row.acceptance_rate:.0%}"
        mal = "-" if row.mean_accepted_length is None else f"{row.mean_accepted_length:.2f}"
        ratio = f"{tps / base:.2f}x" if base else "-"
        lines.append(
            f"| {row.mode} | {row.questions} | {row.accuracy:.0%} | {row.f1:.3f} | "
            f"{row.mean_answer_tokens:.1f} | {acc} | {mal} | {tps:.1f} | {ratio} |"
        )
    return "\n".join(lines)


def quality_to_json(report: QualityReport) -> dict[str, Any]:
    return {
        "modes": {
            row.mode: {**row.__dict__, "tokens_per_s": report.tokens_per_s.get(row.mode, 0.0)}
            for row in report.summary
        },
        "results": [r.__dict__ for r in report.results],
    }
