"""The Engine facade end to end: real PDFs, real retrieval, a tiny real model.

The tiny model is random, so answers are gibberish; what is tested is the machinery:
KV reuse (memory and disk), cancellation, window overflow, both drafter contexts, the
lossless property of `sd` through the whole engine, and user errors.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from core.api import Engine
from core.config import DecodeConfig, IndexConfig, ModelConfig
from core.errors import ConfigError, DocumentError, QuestionError
from core.events import (
    DocumentRead,
    DraftStep,
    Event,
    Finished,
    Notice,
    PrefillProgress,
    Retrieved,
    drain,
)

PARAGRAPHS = [
    "The Ostrava tide gauge was installed in 1903 by the harbour board. It records the water "
    "level every six minutes and has done so, with two breaks, for more than a century.",
    "Keeper Ilse Marten kept the gauge log from 1921 to 1950. Her notebooks describe the storm "
    "surge of 12 February 1938, when the water rose 2.4 metres above the predicted tide.",
    "The gauge well is a vertical pipe of cast iron, 60 centimetres wide, connected to the sea "
    "by a narrow inlet that damps the waves so that only the slow rise and fall remains.",
    "In 1987 the float and chart recorder were replaced by a pressure sensor and a data logger, "
    "and the readings have been sent by radio to the weather service ever since.",
]
QUESTION = "Who kept the gauge log?"


def _tiny(folder: Path) -> ModelConfig:
    """The tiny test model as its own drafter (self-speculation)."""
    return ModelConfig(target=str(folder), drafter="same")


@pytest.fixture(scope="module")
def pdf(make_pdf: Callable[..., Path]) -> Path:
    pages = ["\n\n".join(PARAGRAPHS[i % 4] for i in range(p, p + 6)) for p in range(6)]
    return make_pdf(pages, name="gauge.pdf", title="The Ostrava tide gauge")


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAPIDQA_CACHE", str(tmp_path / "cache"))


def _ask(engine: Engine, pdf: Path, **kw: object) -> tuple[Finished, list[Event]]:
    events = list(engine.ask(QUESTION, [pdf], DecodeConfig(**kw)))  # type: ignore[arg-type]
    fin = events[-1]
    assert isinstance(fin, Finished)
    return fin, events


def _cached(events: list[Event]) -> int:
    return max((e.cached_tokens for e in events if isinstance(e, PrefillProgress)
                and e.role == "target"), default=0)  # fmt: skip


def test_sd_equals_target_through_the_engine(tiny_model_dir: Path, pdf: Path) -> None:
    engine = Engine(_tiny(tiny_model_dir))
    base, _ = _ask(engine, pdf, mode="target", max_new_tokens=24)
    for drafter_kv in ("select", "prefill"):
        sd, events = _ask(engine, pdf, mode="sd", max_new_tokens=24, drafter_kv=drafter_kv)
        assert sd.answer == base.answer
        assert sd.new_tokens == base.new_tokens
        retrieved = [e for e in events if isinstance(e, Retrieved) and e.role == "drafter"]
        assert retrieved and retrieved[0].chunks
        assert all(c.pages for c in retrieved[0].chunks)
    assert base.speedup_estimate > 0 and base.baseline_step_s > 0


def test_second_question_reuses_the_document_kv(tiny_model_dir: Path, pdf: Path) -> None:
    engine = Engine(_tiny(tiny_model_dir))
    first, ev1 = _ask(engine, pdf, mode="target", max_new_tokens=4)
    second, ev2 = _ask(engine, pdf, mode="target", max_new_tokens=4)
    assert _cached(ev1) == 0
    assert _cached(ev2) > 0
    assert second.answer == first.answer
    # A new engine (the app reopened) finds the prefix on disk.
    third, ev3 = _ask(Engine(_tiny(tiny_model_dir)), pdf, mode="target",
                      max_new_tokens=4)  # fmt: skip
    assert _cached(ev3) == _cached(ev2)
    assert third.answer == first.answer


def _drafter_cached(events: list[Event]) -> int:
    return max((e.cached_tokens for e in events if isinstance(e, PrefillProgress)
                and e.role == "drafter"), default=0)  # fmt: skip


def test_other_modes_and_gammas_reuse_both_contexts(tiny_model_dir: Path, pdf: Path) -> None:
    """The quality benchmark asks one question in several modes and settings: the
    target's document KV and the drafter's retrieved-context KV are each read once."""
    engine = Engine(_tiny(tiny_model_dir))
    # Adaptive gamma learns step costs across questions: off, so runs compare exactly.
    kw: dict[str, object] = {"max_new_tokens": 12, "drafter_kv": "prefill", "adaptive_gamma": False}
    sd, ev1 = _ask(engine, pdf, mode="sd", gamma=4, **kw)
    assert _drafter_cached(ev1) == 0
    rapid, ev2 = _ask(engine, pdf, mode="rapid", gamma=2, **kw)
    assert _cached(ev2) > 0 and _drafter_cached(ev2) > 0
    again, ev3 = _ask(engine, pdf, mode="sd", gamma=4, **kw)
    assert _drafter_cached(ev3) > 0
    assert (again.answer, again.drafted, again.accepted) == (sd.answer, sd.drafted, sd.accepted)
    fresh_engine = Engine(_tiny(tiny_model_dir))
    fresh, _ = _ask(fresh_engine, pdf, mode="rapid", gamma=2, **kw)
    assert (fresh.answer, fresh.drafted, fresh.accepted) == (
        rapid.answer,
        rapid.drafted,
        rapid.accepted,
    )


def test_rapid_does_not_copy_the_question(tiny_model_dir: Path, pdf: Path) -> None:
    """Under eta > 0 lookup drafts never come from the question: a random model with a
    strong eta accepts nearly any draft, and answers used to restate the question."""
    engine = Engine(_tiny(tiny_model_dir))
    question = "Did quokka marmalade zeppelins visit Ostrava?"
    for drafter_kv in ("select", "prefill"):
        cfg = DecodeConfig(mode="rapid", eta=40.0, max_new_tokens=24, drafter_kv=drafter_kv)
        fin = list(engine.ask(question, [pdf], cfg))[-1]
        assert isinstance(fin, Finished) and fin.accepted > 0
        assert "marmalade" not in fin.answer and "Question" not in fin.answer, fin.answer


def test_cancel_during_decode_then_ask_again(tiny_model_dir: Path, pdf: Path) -> None:
    engine = Engine(_tiny(tiny_model_dir))
    fresh, _ = _ask(Engine(_tiny(tiny_model_dir)), pdf, mode="sd",
                    max_new_tokens=20)  # fmt: skip
    steps = 0
    fin = None
    for ev in engine.ask(QUESTION, [pdf], DecodeConfig(mode="sd", max_new_tokens=20)):
        if isinstance(ev, DraftStep):
            steps += 1
            if steps == 2:
                engine.cancel()
        fin = ev
    assert isinstance(fin, Finished) and fin.stop_reason == "cancelled"
    again, _ = _ask(engine, pdf, mode="sd", max_new_tokens=20)
    assert again.stop_reason != "cancelled"
    assert again.answer == fresh.answer


def test_cancel_during_prefill_then_ask_again(tiny_model_dir: Path, pdf: Path) -> None:
    engine = Engine(_tiny(tiny_model_dir))
    events = []
    for ev in engine.ask(QUESTION, [pdf], DecodeConfig(mode="target", max_new_tokens=8,
                                                      prefill_chunk=64)):  # fmt: skip
        events.append(ev)
        if isinstance(ev, PrefillProgress) and ev.done_tokens < ev.total_tokens:
            engine.cancel()
    fin = events[-1]
    assert isinstance(fin, Finished) and fin.stop_reason == "cancelled"
    assert fin.new_tokens == 0
    again, ev2 = _ask(engine, pdf, mode="target", max_new_tokens=8)
    assert _cached(ev2) == 0  # the half-read prefix was not kept
    fresh, _ = _ask(Engine(_tiny(tiny_model_dir)), pdf, mode="target",
                    max_new_tokens=8)  # fmt: skip
    assert again.answer == fresh.answer


def test_document_longer_than_the_window(tmp_path: Path, tiny_model_dir: Path, pdf: Path) -> None:
    small = tmp_path / "small-window"
    small.mkdir()
    for f in tiny_model_dir.iterdir():
        (small / f.name).write_bytes(f.read_bytes())
    config = json.loads((small / "config.json").read_text())
    config["max_position_embeddings"] = 640
    (small / "config.json").write_text(json.dumps(config))
    engine = Engine(_tiny(small))
    fin, events = _ask(engine, pdf, mode="sd", max_new_tokens=16)
    notices = [e for e in events if isinstance(e, Notice)]
    assert any("window" in n.message for n in notices)
    target_ctx = [e for e in events if isinstance(e, Retrieved) and e.role == "target"]
    assert target_ctx and target_ctx[0].context_tokens <= 640
    assert fin.new_tokens > 0


def test_user_errors(tiny_model_dir: Path, pdf: Path, tmp_path: Path) -> None:
    engine = Engine(_tiny(tiny_model_dir))
    with pytest.raises(QuestionError, match="empty"):
        list(engine.ask("   ", [pdf]))
    with pytest.raises(ConfigError, match="gamma"):
        list(engine.ask(QUESTION, [pdf], DecodeConfig(gamma=0)))
    with pytest.raises(ConfigError, match="temperature"):
        list(engine.ask(QUESTION, [pdf], DecodeConfig(temperature=-1)))
    with pytest.raises(DocumentError):
        list(engine.ask(QUESTION, [tmp_path / "missing.pdf"]))
    not_pdf = tmp_path / "notes.pdf"
    not_pdf.write_text("just text")
    with pytest.raises(DocumentError, match="not a PDF"):
        list(engine.ask(QUESTION, [not_pdf]))
    # The engine still works after errors.
    fin, _ = _ask(engine, pdf, mode="target", max_new_tokens=2)
    assert fin.new_tokens == 2


def test_sampling_is_reproducible_with_a_seed(tiny_model_dir: Path, pdf: Path) -> None:
    engine = Engine(_tiny(tiny_model_dir))
    a, _ = _ask(engine, pdf, mode="rapid", temperature=0.8, seed=7, max_new_tokens=16)
    b, _ = _ask(engine, pdf, mode="rapid", temperature=0.8, seed=7, max_new_tokens=16)
    assert a.answer == b.answer


def test_rapid_greedy_is_reproducible(tiny_model_dir: Path, pdf: Path) -> None:
    # p_hat depends on the drafts, so the draft path must not depend on timings.
    engine = Engine(_tiny(tiny_model_dir))
    a, _ = _ask(engine, pdf, mode="rapid", max_new_tokens=24)
    other = Engine(_tiny(tiny_model_dir))
    b, _ = _ask(other, pdf, mode="rapid", max_new_tokens=24)
    assert a.answer == b.answer


def test_ask_across_the_library_without_a_pdf(
    tmp_path: Path, tiny_model_dir: Path, pdf: Path, make_pdf: Callable[..., Path]
) -> None:
    other = make_pdf(["The ferry to Ostrava leaves at nine from pier four."] * 2, name="ferry.pdf")
    engine = Engine(_tiny(tiny_model_dir), IndexConfig(library=tmp_path / "lib"))
    with pytest.raises(QuestionError, match="is empty"):
        list(engine.ask(QUESTION))
    for path in (pdf, other):
        drain(engine.add(path))
    assert [d.title for d in engine.documents()] == ["The Ostrava tide gauge", "ferry"]
    events = list(engine.ask(QUESTION, (), DecodeConfig(mode="sd", max_new_tokens=4)))
    fin = events[-1]
    assert isinstance(fin, Finished) and fin.new_tokens >= 1
    read = [e for e in events if isinstance(e, DocumentRead)]
    assert [e.title for e in read] == ["The Ostrava tide gauge", "ferry"]  # both documents
    assert fin.chunks and all(c.rects and c.labels for c in fin.chunks)
    by_id = list(engine.ask(QUESTION, [engine.documents()[1].doc_id[:8]], DecodeConfig(
        mode="target", max_new_tokens=2)))  # fmt: skip
    assert [e.title for e in by_id if isinstance(e, DocumentRead)] == ["ferry"]
    hits = engine.search("When does the ferry leave?", 1)
    assert hits[0].ref.title == "ferry"
    engine.close()


def test_kv_store_is_keyed_by_model_content_not_name(
    tiny_model_dir: Path, pdf: Path, tmp_path: Path
) -> None:
    """Issue 15, defect 4: two different models in folders of the same name must not
    reuse each other's document KV from the disk store (it was keyed by the name)."""
    from tests.tiny_models import tiny_llama

    other = tiny_llama(seed=7)
    folder = tmp_path / "elsewhere" / tiny_model_dir.name  # same display name
    other.model.save_pretrained(folder)
    other.tokenizer.save_pretrained(folder)
    first = Engine(_tiny(tiny_model_dir))
    _ask(first, pdf, mode="target", max_new_tokens=12)  # stores the document's KV
    second = Engine(_tiny(folder))
    fin, events = _ask(second, pdf, mode="target", max_new_tokens=12)
    assert _cached(events) == 0  # nothing of the other model's KV was reused
    # the same model in a new engine does reuse its own KV
    _, again = _ask(Engine(_tiny(tiny_model_dir)), pdf, mode="target", max_new_tokens=12)
    assert _cached(again) > 0
    second.clear_kv_cache(disk=True)
    fresh, _ = _ask(second, pdf, mode="target", max_new_tokens=12)
    assert fin.answer == fresh.answer


def test_lookup_under_eta_reads_only_the_passages(
    tiny_model_dir: Path, pdf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 15, defect 3: under eta > 0 lookup drafts come from the retrieved passages
    and the document, never the question, in both drafter contexts (the KV-select
    drafter's token list included the question)."""
    import core.session as facade

    seen: list[list[list[int]]] = []
    real = facade.LookupDrafter

    def spy(sources: list[list[int]], **kw: object) -> object:
        seen.append([list(s) for s in sources])
        return real(sources, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(facade, "LookupDrafter", spy)
    engine = Engine(_tiny(tiny_model_dir))
    question = "Did quokka marmalade zeppelins visit Ostrava?"
    for drafter_kv in ("select", "prefill"):
        cfg = DecodeConfig(mode="rapid", eta=5.0, max_new_tokens=4, drafter_kv=drafter_kv)
        list(engine.ask(question, [pdf], cfg))
        assert engine.target is not None
        q_ids = engine.target.tokenizer.encode(" marmalade zeppelins", add_special_tokens=False)
        passages = seen[-1][0]
        n = len(q_ids)
        grams = {tuple(passages[i : i + n]) for i in range(len(passages) - n + 1)}
        assert tuple(q_ids) not in grams, drafter_kv
    assert len(seen) == 2
