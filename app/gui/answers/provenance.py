"""The answer on screen (`Answer`) and what the window does with where it came from:
`EvidenceFinder` runs `Engine.evidence` for a run the target wrote beyond the
passages (a job on the engine's thread, cancellable, its progress in the ask panel),
hands the result to the PDF side as a heat overlay, says in the answer view when the
evidence lies outside the retrieved passages, and cites it there on "Cite it" (a new
numbered mark, kept with the answer's history record)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal

from app.gui import jobs
from app.gui.answers.ask_panel import AskPanel
from app.gui.answers.citations import EvidenceNote
from app.gui.answers.view import AnswerView
from app.gui.banner import MessageBanner
from app.gui.history import AddedCitation, AnswerRecord, HistoryStore, sentence_at
from app.gui.ops import Op, OpRunner
from app.gui.settings import Settings
from core.events import BeyondRun, ChunkRef, Event, Evidence, Finished, PrefillProgress, Status

NO_TOKENS = (
    "This answer was kept before RapidQA recorded its tokens, so where the target looked "
    "cannot be worked out: ask the question again."
)


@dataclass
class Answer:
    """One answer (or a comparison's baseline) as the window keeps it."""

    question: str
    doc_ids: tuple[str, ...]
    settings: Settings
    finished: Finished | None = None
    chunks: tuple[ChunkRef, ...] = ()
    record: AnswerRecord | None = None  # once kept in the history
    of: Answer | None = None  # a comparison: the answer it measures
    evidence: Evidence | None = None  # where the target looked for a run, when asked
    added: tuple[AddedCitation, ...] = ()  # citations added from the evidence


def _short(text: str, size: int = 32) -> str:
    text = " ".join(text.split())
    return text if len(text) <= size else text[: size - 1] + "…"


class EvidenceFinder(QObject):
    """Where the target looked for a run of the answer on screen, and "Cite it".

    Signals: `evidence_changed(evidence or None)` for the PDF side's heat overlay,
    `message(text, ms)` for the status bar, `history_changed()` after a record changed.
    """

    evidence_changed = Signal(object)
    message = Signal(str, int)
    history_changed = Signal()

    def __init__(
        self,
        ops: OpRunner,
        view: AnswerView,
        ask: AskPanel,
        banner: MessageBanner,
        history: HistoryStore,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._ops, self._view, self._ask = ops, view, ask
        self._banner, self._history = banner, history

    def find(self, answer: Answer, run: BeyondRun, over: Callable[[], None]) -> int | None:
        """Submit the evidence job for `run` of `answer`; `over` runs when it ends
        (done, failed or cancelled). Returns the job id, or None when it cannot run."""
        fin = answer.finished
        if fin is None:
            return None
        if not fin.answer_ids:
            self._banner.show_message(NO_TOKENS, "info")
            return None
        self.clear()
        what = _short(fin.answer[run.start : run.end])

        def started() -> None:
            self._ask.show_progress(f"Finding where the target looked for “{what}”…", None)

        def on_event(event: Event) -> None:
            if isinstance(event, PrefillProgress):
                total = event.total_tokens
                self._ask.show_progress(
                    f"Evidence for “{what}”: reading the document, {event.done_tokens:,} "
                    f"of {total:,} tokens · Esc cancels",
                    event.done_tokens / total if total else 1.0,
                )
            elif isinstance(event, Status):
                self._ask.show_progress(f"{event.message} · Esc cancels", None)
            elif isinstance(event, Evidence):
                self._found(answer, event)

        def failed(message: str) -> None:
            self._banner.show_message(message, "error")
            over()

        def cancelled() -> None:
            self.clear()
            self.message.emit("Cancelled: no evidence shown.", 5000)
            over()

        cfg = answer.settings.decode_config()
        read = tuple(c for c in fin.chunks if c.origin == "retrieved")  # what the drafter read
        op = Op(
            "evidence",
            jobs.evidence(answer.question, answer.doc_ids, fin.answer_ids, run, read, cfg),
            on_started=started,
            on_event=on_event,
            on_done=lambda _result: over(),
            on_failed=failed,
            on_cancelled=cancelled,
        )
        return self._ops.submit(op)

    def _found(self, answer: Answer, evidence: Evidence) -> None:
        answer.evidence = evidence
        self.evidence_changed.emit(evidence)
        if not evidence.spots:
            self.message.emit("The target's attention points to no place in particular.", 8000)
            return
        top = evidence.spots[0].ref
        if evidence.outside and answer.finished is not None:
            run = evidence.run
            text = answer.finished.answer[run.start : run.end]
            cited = next((n for n, a in enumerate(answer.added, 1) if a.ref == top), 0)
            cited_as = len(answer.finished.chunks) + cited if cited else 0
            self._view.set_evidence_note(EvidenceNote(text, top.page_text or top.title, cited_as))
        else:
            self.message.emit(
                f"The target looked mostly inside the retrieved passages ({top.page_text}).",
                8000,
            )

    def cite(self, answer: Answer) -> None:
        """Add the strongest spot of the evidence shown (outside the passages) as a
        citation of the sentence holding its run."""
        ev, fin = answer.evidence, answer.finished
        if ev is None or fin is None or not ev.outside:
            return
        top = ev.spots[0]
        if any(a.ref == top.ref for a in answer.added):
            return
        sentence = sentence_at(fin.citations, ev.run.start)
        if sentence < 0:
            self.message.emit("This answer has no sentences to cite it for.", 5000)
            return
        answer.added = (*answer.added, AddedCitation(sentence, top.ref, top.weight))
        number = len(fin.chunks) + len(answer.added)
        self._view.set_added(answer.added)
        text = fin.answer[ev.run.start : ev.run.end]
        self._view.set_evidence_note(EvidenceNote(text, top.ref.page_text, number))
        if answer.record is not None:
            try:
                answer.record = self._history.update(answer.record, added=answer.added)
            except OSError as err:
                self._banner.show_message(f"The history could not be saved ({err}).", "warning")
            self.history_changed.emit()
        self.message.emit(f"Cited {top.ref.page_text} as [{number}].", 5000)

    def clear(self) -> None:
        """No evidence on screen: the note and the heat overlay go."""
        self._view.set_evidence_note(None)
        self.evidence_changed.emit(None)
