"""Typed events the engine yields; the CLI and GUI only render these.

One event type per thing that happens. A decoding round is one `DraftStep`, carrying
the texts of its tokens so that a view needs no tokenizer.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Literal, TypeVar

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")


def drain(
    stream: Generator[_Item, None, _Result], each: Callable[[_Item], object] | None = None
) -> _Result:
    """Run an event generator to its end, handing each item to `each`; returns the
    generator's return value (e.g. the `DocumentInfo` of `Engine.add`)."""
    while True:
        try:
            item = next(stream)
        except StopIteration as stop:
            result: _Result = stop.value
            return result
        if each is not None:
            each(item)


TokenKind = Literal["target", "correction", "bonus"]
"""How the target's own token of a round came about: `target` = plain autoregressive
step (no draft), `correction` = drawn after the first rejected draft token, `bonus` =
drawn after all drafted tokens were accepted."""

DraftSource = Literal["none", "lookup", "model"]


@dataclass(frozen=True)
class Status:
    """A short line of what the engine is doing (loading a model, reading a PDF ...)."""

    message: str


@dataclass(frozen=True)
class Notice:
    """Something the user should know about the answer (e.g. document truncated)."""

    message: str
    level: Literal["info", "warning"] = "info"


@dataclass(frozen=True)
class LoadProgress:
    """Progress of preparing or loading a model: `stage` is "checking" (hashing a
    GGUF), "preparing" (joining an offline model's parts), "reading metadata",
    "reading the tokenizer", "reading the tensor table" (the first-use conversion)
    or "loading weights"; `done` of `total` in that stage's units (bytes or steps)."""

    name: str
    stage: str
    done: int
    total: int
    seconds: float  # since this stage began

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0

    @property
    def eta_s(self) -> float | None:
        """Seconds left at this stage's pace so far (None before it can tell)."""
        if self.done <= 0 or self.seconds < 0.5:
            return None
        return self.seconds * (self.total - self.done) / self.done

    def describe(self) -> str:
        """One line for a status bar or a terminal."""
        first_use = " (first use only)" if self.stage not in ("loading weights",) else ""
        eta = self.eta_s
        left = f", {eta:.0f} s left" if eta is not None and self.done < self.total else ""
        return f"{self.name}: {self.stage}{first_use} {100 * self.fraction:.0f}%{left}"


@dataclass(frozen=True)
class ModelLoaded:
    """A model is ready."""

    role: Literal["target", "drafter"]
    name: str
    device: str
    dtype: str
    parameters: int
    context_window: int
    seconds: float
    shared_with_target: bool = False


@dataclass(frozen=True)
class DocumentRead:
    """A PDF was read into text."""

    doc_id: str
    title: str
    pages: int
    tokens: int  # in the target's tokenizer


IngestStage = Literal["read", "split", "embed", "save"]


@dataclass(frozen=True)
class IngestProgress:
    """Adding a PDF to the library: `done` of `total` pages (read) or units (embed)."""

    title: str
    stage: IngestStage
    done: int
    total: int
    eta_s: float | None = None  # seconds left for the whole add, when known

    @property
    def fraction(self) -> float:
        """Share of the whole add done: reading is ~10%, splitting 5%, embedding 80%."""
        base, width = {"read": (0.0, 0.10), "split": (0.10, 0.05), "embed": (0.15, 0.80),
                       "save": (0.95, 0.05)}[self.stage]  # fmt: skip
        return base + width * (self.done / self.total if self.total else 1.0)


@dataclass(frozen=True)
class PrefillProgress:
    """Chunked prefill of one model's prompt; `cached` = served from the KV cache."""

    role: Literal["target", "drafter"]
    done_tokens: int
    total_tokens: int
    seconds: float
    cached_tokens: int = 0

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the pace of the tokens read so far (None before a second
        has passed). A slight underestimate on long documents: each chunk attends to
        all the chunks before it."""
        read = self.done_tokens - self.cached_tokens
        if read <= 0 or self.seconds < 1.0 or self.done_tokens >= self.total_tokens:
            return None
        return self.seconds * (self.total_tokens - self.done_tokens) / read


@dataclass(frozen=True)
class ChunkRef:
    """A retrieved passage: where it is and how well it matched."""

    doc_id: str
    title: str
    pages: tuple[int, ...]  # 1-based page numbers
    score: float
    text: str
    tokens: int
    start_char: int = 0  # character span in the document text
    end_char: int = 0
    # (page, x0, y0, x1, y1) of each line the passage covers, in PDF points on the
    # page as displayed (rotation applied, origin top-left): what a viewer highlights.
    rects: tuple[tuple[int, float, float, float, float], ...] = ()
    labels: tuple[str, ...] = ()  # the printed page labels of `pages` ("iv", "12" ...)
    # "retrieved": a passage a model read as retrieved context; "document": found in the
    # document afterwards, to cite a sentence no retrieved passage supports
    origin: Literal["retrieved", "document"] = "retrieved"

    @property
    def page_text(self) -> str:
        """ "p. 12" or "pp. 12-13", by printed labels where the PDF has them."""
        shown = self.labels or tuple(str(p) for p in self.pages)
        if not shown:
            return ""
        return f"p. {shown[0]}" if len(shown) == 1 else f"pp. {shown[0]}-{shown[-1]}"


@dataclass(frozen=True)
class Retrieved:
    """The passages the drafter (and, for a long document, the target) will read."""

    role: Literal["target", "drafter"]
    chunks: tuple[ChunkRef, ...]
    budget_tokens: int
    context_tokens: int


@dataclass(frozen=True)
class Calibrated:
    """Target's one-token step time at the current context (median of >= 3 steps).

    `step_bytes`: what that step reads from memory (weights, as stored, and the KV
    cache); step_bytes / memory bandwidth is the step's physical lower bound (0: unknown).
    """

    context_tokens: int
    step_s: float
    step_bytes: int = 0


@dataclass(frozen=True)
class DraftStep:
    """One decoding round: drafted tokens, how many were accepted, the target's token.

    Emitted tokens of the round = drafted[:accepted] + (token_id,), unless `token_id`
    is None (the round ended at EOS or max tokens inside the accepted draft).
    """

    round: int
    drafted_ids: tuple[int, ...]
    drafted_texts: tuple[str, ...]
    accepted: int
    token_id: int | None
    token_text: str
    token_kind: TokenKind
    source: DraftSource
    p_target: tuple[float, ...]  # p(d_i) for each drafted token
    p_draft: tuple[float, ...]  # q(d_i)
    p_hat: tuple[float, ...]  # p_hat(d_i)
    token_p_target: float  # p of the target's own token
    token_p_hat: float
    draft_s: float
    verify_s: float
    context_tokens: int  # target context length after the round

    @property
    def emitted_ids(self) -> tuple[int, ...]:
        tail = () if self.token_id is None else (self.token_id,)
        return self.drafted_ids[: self.accepted] + tail

    @property
    def emitted_texts(self) -> tuple[str, ...]:
        tail = () if self.token_id is None else (self.token_text,)
        return self.drafted_texts[: self.accepted] + tail


@dataclass(frozen=True)
class SentenceCitation:
    """The passages one sentence of an answer comes from (docs/architecture.md,
    "Citations").

    `start`/`end`: the sentence's character span in `Finished.answer`. `passages`:
    0-based indices into `Finished.chunks`, shown as marks [i + 1]; empty = no
    support found (the sentence is marked unsupported). `spots[j]` narrows
    `passages[j]` to the lines that match the sentence (its own span, pages and
    rects): what a click highlights. `drafted`: the share of the sentence's tokens
    that were accepted drafts (proposed from the passages).
    """

    start: int
    end: int
    passages: tuple[int, ...]
    spots: tuple[ChunkRef, ...] = ()
    drafted: float = 0.0

    @property
    def supported(self) -> bool:
        return bool(self.passages)


@dataclass(frozen=True)
class BeyondRun:
    """A run of answer tokens the target wrote against the drafter: corrections and
    rounds of low acceptance, where the retrieved passages were not enough.

    `first`/`last`: emitted-token indices [first, last); `start`/`end`: its character
    span in `Finished.answer`; `corrections`: rejected drafts inside it.
    """

    first: int
    last: int
    start: int
    end: int
    corrections: int


@dataclass(frozen=True)
class PreliminaryToken:
    """Text of the preliminary answer, streaming: the drafter alone on the retrieved
    passages while the target reads a long document (appended in order)."""

    text: str


@dataclass(frozen=True)
class PreliminaryAnswer:
    """The preliminary answer is complete; the target's read continues and the RAPID
    answer (`DraftStep`s, then `Finished`) replaces it."""

    answer: str
    tokens: int
    seconds: float  # from the question to this answer
    chunks: tuple[ChunkRef, ...] = ()


@dataclass(frozen=True)
class EvidenceSpot:
    """A place the target looked while writing a `BeyondRun`: a span of the document
    (`ref`, with its pages and line rects) and its share of the run's attention mass
    over the document (0-1). `retrieved`: inside the passages the drafter read."""

    ref: ChunkRef
    weight: float
    retrieved: bool


@dataclass(frozen=True)
class Evidence:
    """Where the target looked for one run (`Engine.evidence`), strongest first.
    `outside`: the strongest spot lies outside the retrieved passages (offered as a
    citation)."""

    run: BeyondRun
    spots: tuple[EvidenceSpot, ...]
    seconds: float

    @property
    def outside(self) -> bool:
        return bool(self.spots) and not self.spots[0].retrieved


@dataclass(frozen=True)
class Finished:
    """The answer is complete; totals of the run."""

    answer: str
    mode: str
    stop_reason: Literal["eos", "max_tokens", "cancelled"]
    new_tokens: int
    rounds: int
    drafted: int
    accepted: int
    target_prefill_s: float
    drafter_prefill_s: float
    decode_s: float
    end_to_end_s: float
    baseline_step_s: float  # calibrated target one-token step (median)
    chunks: tuple[ChunkRef, ...] = field(default_factory=tuple)
    time_to_first_token_s: float = 0.0
    # Provenance (core/citations.py): each sentence's passages (indices into `chunks`),
    # the runs the target wrote against the drafter, the emitted token ids (what
    # `Engine.evidence` re-reads) and the preliminary answer shown while the target
    # read the document ("" when there was none).
    citations: tuple[SentenceCitation, ...] = ()
    beyond: tuple[BeyondRun, ...] = ()
    answer_ids: tuple[int, ...] = ()
    preliminary: str = ""

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.drafted if self.drafted else 0.0

    @property
    def mean_accepted_length(self) -> float:
        return self.accepted / self.rounds if self.rounds else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.new_tokens / self.decode_s if self.decode_s > 0 else 0.0

    @property
    def speedup_estimate(self) -> float:
        """Decode tok/s against the calibrated target-only step (an estimate)."""
        if self.baseline_step_s <= 0 or self.decode_s <= 0:
            return 0.0
        return self.tokens_per_s * self.baseline_step_s


Event = (
    Status
    | LoadProgress
    | IngestProgress
    | Notice
    | ModelLoaded
    | DocumentRead
    | PrefillProgress
    | Retrieved
    | Calibrated
    | DraftStep
    | PreliminaryToken
    | PreliminaryAnswer
    | Evidence
    | Finished
)
