"""The console renderer of the engine's events: progress lines, the streamed answer
in colour (accepted drafts, corrections, bonus tokens), its statistics, and the
`--json` form of a finished answer."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from core.events import (
    Calibrated,
    DocumentRead,
    DraftStep,
    Event,
    Finished,
    IngestProgress,
    LoadProgress,
    ModelLoaded,
    Notice,
    PrefillProgress,
    PreliminaryAnswer,
    PreliminaryToken,
    Retrieved,
    Status,
)

# ANSI colours of the streamed answer (draft tokens the target accepted, the target's
# correction after a rejection, the bonus token after a fully accepted draft).
GREEN = "\x1b[32m"
YELLOW = "\x1b[33m"
CYAN = "\x1b[36m"
DIM = "\x1b[2m"
RESET = "\x1b[0m"


def close_events(events: Iterator[Event]) -> None:
    close = getattr(events, "close", None)
    if callable(close):
        try:
            close()
        except Exception:  # already cancelling; nothing more to do
            pass


def use_colour(choice: str, out: TextIO) -> bool:
    if choice == "always":
        return True
    if choice == "never":
        return False
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(out, "isatty", None)
    return bool(isatty()) if callable(isatty) else False


def finished_to_json(f: Finished) -> dict[str, Any]:
    """The flat `--json` object of `rapidqa ask`."""
    return {
        "answer": f.answer,
        "mode": f.mode,
        "stop_reason": f.stop_reason,
        "new_tokens": f.new_tokens,
        "rounds": f.rounds,
        "drafted": f.drafted,
        "accepted": f.accepted,
        "acceptance_rate": f.acceptance_rate,
        "mean_accepted_length": f.mean_accepted_length,
        "target_prefill_s": f.target_prefill_s,
        "drafter_prefill_s": f.drafter_prefill_s,
        "decode_s": f.decode_s,
        "tokens_per_s": f.tokens_per_s,
        "speedup_estimate": f.speedup_estimate,
        "end_to_end_s": f.end_to_end_s,
        "time_to_first_token_s": f.time_to_first_token_s,
        "chunks": [
            {"n": i + 1, "doc": c.title or c.doc_id, "pages": list(c.pages), "score": c.score}
            for i, c in enumerate(f.chunks)
        ],
        "citations": [
            {
                "sentence": f.answer[c.start : c.end],
                "start": c.start,
                "end": c.end,
                "supported": c.supported,
                "passages": [j + 1 for j in c.passages],
                "spots": [
                    {
                        "passage": j + 1,
                        "doc": s.title or s.doc_id,
                        "pages": list(s.pages),
                        "text": s.text,
                        "rects": [list(r) for r in s.rects],
                    }
                    for j, s in zip(c.passages, c.spots, strict=False)
                ],
                "drafted": round(c.drafted, 3),
            }
            for c in f.citations
        ],
        "beyond": [
            {
                "text": f.answer[b.start : b.end],
                "start": b.start,
                "end": b.end,
                "tokens": [b.first, b.last],
                "corrections": b.corrections,
            }
            for b in f.beyond
        ],
        "preliminary": f.preliminary,
    }


def format_citations(f: Finished) -> list[str]:
    """The citations block under an answer: each sentence, its marks and pages."""
    lines = []
    for i, c in enumerate(f.citations, 1):
        sentence = f.answer[c.start : c.end]
        short = sentence if len(sentence) <= 70 else sentence[:67] + "..."
        if c.supported:
            where = " ".join(
                f"[{j + 1}] {s.page_text}" for j, s in zip(c.passages, c.spots, strict=False)
            )
        else:
            where = "no retrieved passage supports it"
        lines.append(f"  {i}. {short!r}: {where}")
    for b in f.beyond:
        lines.append(
            f"  read beyond the passages: {f.answer[b.start : b.end]!r} "
            f"({b.corrections} corrections by the target)"
        )
    return lines


def format_pages(pages: Iterable[int]) -> str:
    """``[3, 5, 6, 7]`` -> ``"p. 3, 5–7"`` (sorted, de-duplicated, ranges collapsed)."""
    ordered = sorted(set(pages))
    if not ordered:
        return ""
    parts: list[str] = []
    start = prev = ordered[0]
    for page in [*ordered[1:], None]:
        if page is not None and page == prev + 1:
            prev = page
            continue
        parts.append(str(start) if start == prev else f"{start}\u2013{prev}")
        if page is not None:
            start = prev = page
    return ("pp. " if len(ordered) > 1 else "p. ") + ", ".join(parts)


def format_stats(f: Finished) -> str:
    """The stats line printed after an answer."""
    if f.drafted:
        accept = f"acceptance {100 * f.acceptance_rate:.0f}%"
        mean = f"{f.mean_accepted_length:.2f} accepted/round"
    else:
        accept, mean = "acceptance n/a", "no drafts"
    speedup = f"{f.speedup_estimate:.2f}x est." if f.speedup_estimate > 0 else "n/a"
    prefill = f"prefill {f.target_prefill_s:.2f} s"
    if f.drafter_prefill_s > 0:
        prefill += f" (+ drafter {f.drafter_prefill_s:.2f} s)"
    parts = [
        f"[{f.mode}]",
        f"{f.new_tokens} new tokens",
        f"{f.rounds} rounds",
        accept,
        mean,
        f"{f.tokens_per_s:.1f} tok/s",
        f"speedup {speedup}",
        prefill,
        f"end-to-end {f.end_to_end_s:.2f} s",
    ]
    if f.stop_reason != "eos":
        parts.append("stopped: " + f.stop_reason.replace("_", " "))
    return " · ".join(parts)


class Console:
    """Renders engine events: the answer on `out`, everything else on `err`."""

    def __init__(
        self, out: TextIO, err: TextIO, *, colour: bool, stream_answer: bool = True
    ) -> None:
        self.out = out
        self.err = err
        self.colour = colour
        self.stream_answer = stream_answer
        self._err_tty = bool(getattr(err, "isatty", lambda: False)())
        self._progress_open = False
        self._answer_started = False
        self._leading = True
        self._preliminary_open = False

    # stderr lines ---------------------------------------------------------------

    def end_progress(self) -> None:
        if self._progress_open:
            self.err.write("\n")
            self._progress_open = False

    def _line(self, text: str) -> None:
        self.end_progress()
        if self._answer_started and self.stream_answer:
            self.out.write("\n")  # keep a log line from landing inside the answer
            self.out.flush()
            self._answer_started = False
        self.err.write(text + "\n")
        self.err.flush()

    def _progress(self, text: str, done: bool) -> None:
        if self._err_tty:
            self.err.write("\r\x1b[K" + text)
            self._progress_open = not done
            if done:
                self.err.write("\n")
        else:
            self.err.write(text + "\n")
        self.err.flush()

    # events -------------------------------------------------------------------------

    def show(self, event: Event) -> Finished | None:
        """Render one event; return it if it is the `Finished` one."""
        if isinstance(event, DraftStep):
            self._step(event)
        elif isinstance(event, PrefillProgress):
            total = max(event.total_tokens, 1)
            pct = 100 * event.done_tokens / total
            cached = f", {event.cached_tokens} cached" if event.cached_tokens else ""
            eta = event.eta_s
            left = f", {duration(eta)} left" if eta is not None else ""
            self._progress(
                f"prefill {event.role}: {pct:3.0f}% ({event.done_tokens}/"
                f"{event.total_tokens} tokens{cached}, {event.seconds:.1f} s{left})",
                done=event.done_tokens >= event.total_tokens,
            )
        elif isinstance(event, LoadProgress):
            self._progress(event.describe(), done=event.done >= event.total)
        elif isinstance(event, Status):
            self._line(event.message)
        elif isinstance(event, Notice):
            self._line(f"{'warning' if event.level == 'warning' else 'note'}: {event.message}")
        elif isinstance(event, ModelLoaded):
            shared = ", shares the target's weights" if event.shared_with_target else ""
            self._line(
                f"{event.role}: {event.name} on {event.device} ({event.dtype}, "
                f"{event.parameters / 1e6:.0f}M parameters, {event.context_window}-token "
                f"window{shared}) in {event.seconds:.1f} s"
            )
        elif isinstance(event, DocumentRead):
            self._line(f"read {event.title}: {event.pages} pages, {event.tokens} tokens")
        elif isinstance(event, Retrieved):
            self._line(
                f"retrieved {len(event.chunks)} passages for the {event.role} "
                f"({event.context_tokens} of {event.budget_tokens} budget tokens, "
                f"{format_pages(p for c in event.chunks for p in c.pages) or 'no pages'})"
            )
        elif isinstance(event, IngestProgress):
            self._progress(format_ingest(event), done=event.done >= event.total)
        elif isinstance(event, Calibrated):
            pass  # folded into the speedup estimate of the stats line
        elif isinstance(event, PreliminaryToken):
            self._preliminary(event.text)
        elif isinstance(event, PreliminaryAnswer):
            self._preliminary_done(event)
        elif isinstance(event, Finished):
            self._finish(event)
            return event
        return None

    def _preliminary(self, text: str) -> None:
        """The drafter's preliminary answer, on stderr (stdout gets the final one)."""
        if not self._preliminary_open:
            self.end_progress()
            self.err.write(f"{DIM}preliminary, from the retrieved passages only:{RESET} "
                           if self.colour else "preliminary, from the retrieved passages "
                           "only: ")  # fmt: skip
            self._preliminary_open = True
            text = text.lstrip()
        self.err.write(f"{DIM}{text}{RESET}" if self.colour else text)
        self.err.flush()

    def _preliminary_done(self, event: PreliminaryAnswer) -> None:
        if self._preliminary_open:
            self.err.write("\n")
            self._preliminary_open = False
        self._line(
            f"preliminary answer in {event.seconds:.1f} s; the target is reading the whole "
            "document for the full answer"
        )

    def _step(self, step: DraftStep) -> None:
        if not self.stream_answer:
            return
        if not self._answer_started:
            self.end_progress()
            if self.colour:
                self.err.write(
                    f"{DIM}colours:{RESET} {GREEN}accepted draft{RESET} "
                    f"{YELLOW}correction{RESET} {CYAN}bonus{RESET} target\n"
                )
                self.err.flush()
            self._answer_started = True
        accepted = "".join(step.drafted_texts[: step.accepted])
        pieces: list[tuple[str, str]] = [(GREEN, accepted)]
        if step.token_id is not None:
            kind_colour = {"correction": YELLOW, "bonus": CYAN}.get(step.token_kind, "")
            pieces.append((kind_colour, step.token_text))
        for colour, text in pieces:
            if self._leading:  # the answer starts at its first visible character
                text = text.lstrip()
                self._leading = not text
            if not text:
                continue
            self.out.write(f"{colour}{text}{RESET}" if self.colour and colour else text)
        self.out.flush()

    def _finish(self, f: Finished) -> None:
        self.end_progress()
        if self.stream_answer:
            if not self._answer_started and f.answer:
                self.out.write(f.answer)  # an engine that streamed no rounds
            self.out.write("\n")
            self.out.flush()
            self._answer_started = False
        self.err.write(format_stats(f) + "\n")
        pages = format_pages(p for c in f.chunks for p in c.pages)
        if pages:
            self.err.write(f"Sources: {pages}\n")
        cites = format_citations(f)
        if cites:
            self.err.write("Citations (passage numbers as in --json):\n" + "\n".join(cites) + "\n")
        self.err.flush()


def format_ingest(event: IngestProgress) -> str:
    """One progress line of adding a PDF."""
    what = {"read": "reading", "split": "cutting", "embed": "embedding", "save": "saving"}
    unit = {"read": " pages", "embed": " passages"}.get(event.stage, "")
    counts = f" {event.done}/{event.total}{unit}" if unit else ""
    eta = f", {duration(event.eta_s)} left" if event.eta_s and event.done < event.total else ""
    return f"{what[event.stage]} {event.title}:{counts} ({100 * event.fraction:.0f}%){eta}"


def duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"
