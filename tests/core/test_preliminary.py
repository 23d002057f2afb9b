"""The preliminary answer (core/preliminary.py) through the engine, with a tiny real
model on a real PDF: the drafter's answer streams first, then the target reads the
document (to its on-disk KV cache), then the speculative answer; in that order."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from core.api import Engine
from core.config import DecodeConfig, ModelConfig
from core.events import (
    DraftStep,
    Event,
    Finished,
    PrefillProgress,
    PreliminaryAnswer,
    PreliminaryToken,
    Retrieved,
)

PARAGRAPH = (
    "The Ostrava tide gauge was installed in 1903 by the harbour board. Keeper Ilse Marten "
    "kept the gauge log from 1921 to 1950, and her notebooks describe the storm surge of 1938."
)
QUESTION = "Who kept the gauge log?"


@pytest.fixture(scope="module")
def pdf(make_pdf: Callable[..., Path]) -> Path:
    return make_pdf(["\n\n".join([PARAGRAPH] * 5)] * 4, name="gauge-prelim.pdf")


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAPIDQA_CACHE", str(tmp_path / "cache"))


def _engine(folder: Path, drafter: str = "same") -> Engine:
    return Engine(ModelConfig(target=str(folder), drafter=drafter))


def _kind(e: Event) -> str:
    if isinstance(e, PrefillProgress):
        return f"prefill-{e.role}"
    if isinstance(e, Retrieved):
        return f"retrieved-{e.role}"
    return type(e).__name__


_PHASES = {"retrieved-drafter", "prefill-drafter", "prefill-target", "PreliminaryToken",
           "PreliminaryAnswer", "DraftStep", "Finished"}  # fmt: skip


def _phases(events: list[Event]) -> list[str]:
    """The kinds of events in order, runs of one kind collapsed."""
    out: list[str] = []
    for e in events:
        k = _kind(e)
        if k in _PHASES and (not out or out[-1] != k):
            out.append(k)
    return out


def test_preliminary_then_final_in_strict_order(tiny_model_dir: Path, pdf: Path) -> None:
    cfg = DecodeConfig(mode="sd", max_new_tokens=12, preliminary_min_tokens=1)
    engine = _engine(tiny_model_dir)
    events = list(engine.ask(QUESTION, [pdf], cfg))
    assert _phases(events) == [
        "retrieved-drafter", "prefill-drafter", "PreliminaryToken", "PreliminaryAnswer",
        "prefill-target", "prefill-drafter", "DraftStep", "Finished",
    ]  # fmt: skip
    # the drafter's passages were read once, for the preliminary answer
    reads = [e for e in events if isinstance(e, PrefillProgress) and e.role == "drafter"]
    assert reads[0].cached_tokens == 0 and reads[-1].cached_tokens == reads[-1].total_tokens
    tokens = "".join(e.text for e in events if isinstance(e, PreliminaryToken))
    (done,) = [e for e in events if isinstance(e, PreliminaryAnswer)]
    fin = events[-1]
    assert isinstance(fin, Finished) and fin.stop_reason != "cancelled"
    assert done.answer == tokens.strip() == fin.preliminary and done.tokens > 0
    assert done.chunks and done.chunks == fin.chunks
    # The speculative answer is the target's own (lossless sd), preliminary or not.
    plain = list(_engine(tiny_model_dir).ask(QUESTION, [pdf], DecodeConfig(
        mode="target", max_new_tokens=12)))[-1]  # fmt: skip
    assert isinstance(plain, Finished) and fin.answer == plain.answer
    # The read went to the KV cache: asked again, no preliminary.
    again = list(engine.ask(QUESTION, [pdf], cfg))
    assert not [e for e in again if isinstance(e, PreliminaryToken | PreliminaryAnswer)]
    assert isinstance(again[-1], Finished) and again[-1].preliminary == ""


def test_no_preliminary_when_off_short_or_not_speculative(tiny_model_dir: Path, pdf: Path) -> None:
    engine = _engine(tiny_model_dir)
    for cfg in (
        DecodeConfig(mode="sd", max_new_tokens=4, preliminary=False),
        DecodeConfig(mode="sd", max_new_tokens=4, preliminary_min_tokens=10**6),
        DecodeConfig(mode="target", max_new_tokens=4, preliminary_min_tokens=1),
    ):
        engine.clear_kv_cache(disk=True)
        events = list(engine.ask(QUESTION, [pdf], cfg))
        assert not [e for e in events if isinstance(e, PreliminaryToken | PreliminaryAnswer)]


def test_cancel_during_the_preliminary_answer(tiny_model_dir: Path, pdf: Path) -> None:
    """Cancelled while the preliminary streams: the answer ends cancelled, nothing of
    the target was read, and the next question works (and gets its preliminary)."""
    engine = _engine(tiny_model_dir)
    cfg = DecodeConfig(mode="sd", max_new_tokens=12, preliminary_min_tokens=1)
    events: list[Event] = []
    for e in engine.ask(QUESTION, [pdf], cfg):
        events.append(e)
        if isinstance(e, PreliminaryToken):
            engine.cancel()
    fin = events[-1]
    assert isinstance(fin, Finished) and fin.stop_reason == "cancelled"
    assert not [e for e in events if _kind(e) in ("prefill-target", "DraftStep")]
    after = list(engine.ask(QUESTION, [pdf], cfg))
    assert isinstance(after[-1], Finished) and after[-1].stop_reason != "cancelled"
    assert [e for e in after if isinstance(e, PreliminaryAnswer)]
    assert [e for e in after if isinstance(e, DraftStep)]


def test_cancel_while_the_target_reads_keeps_the_preliminary(
    tiny_model_dir: Path, pdf: Path
) -> None:
    engine = _engine(tiny_model_dir)
    cfg = DecodeConfig(mode="sd", max_new_tokens=12, preliminary_min_tokens=1,
                       prefill_chunk=64)  # fmt: skip
    events: list[Event] = []
    for e in engine.ask(QUESTION, [pdf], cfg):
        events.append(e)
        if isinstance(e, PrefillProgress) and e.role == "target":
            engine.cancel()
    fin = events[-1]
    (early,) = [e for e in events if isinstance(e, PreliminaryAnswer)]
    assert isinstance(fin, Finished) and fin.stop_reason == "cancelled"
    assert fin.preliminary == early.answer and fin.chunks == early.chunks
