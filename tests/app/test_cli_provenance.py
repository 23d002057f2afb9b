"""`rapidqa ask` with provenance: the preliminary answer on stderr only, the sentence
citations and read-beyond runs under the answer, and all of them in `--json`."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from app.cli import common
from app.cli import main as cli
from core.config import DecodeConfig
from core.events import (
    BeyondRun,
    ChunkRef,
    Event,
    Finished,
    PreliminaryAnswer,
    PreliminaryToken,
    SentenceCitation,
)
from tests.app.fake_engine import FakeEngine

ANSWER = "It was lit in 1871. Nobody knows why."
SPOT = ChunkRef("d1", "Handbook", (2,), 0.9, "The light was first lit in 1871.", 9, 40, 72,
                ((2, 50.0, 60.0, 300.0, 72.0),), ("2",))  # fmt: skip
CHUNKS = (
    ChunkRef("d1", "Handbook", (1,), 0.8, "Intro text.", 5, 0, 11),
    ChunkRef("d1", "Handbook", (2, 3), 0.9, "More. The light was first lit in 1871.", 12, 34, 72),
)
FINISHED = Finished(
    answer=ANSWER, mode="sd", stop_reason="eos", new_tokens=9, rounds=3, drafted=6,
    accepted=4, target_prefill_s=1.0, drafter_prefill_s=0.1, decode_s=0.5,
    end_to_end_s=2.0, baseline_step_s=0.1, chunks=CHUNKS,
    citations=(SentenceCitation(0, 19, (1,), (SPOT,), 0.75),
               SentenceCitation(20, 37, (), (), 0.0)),
    beyond=(BeyondRun(5, 9, 20, 37, 2),), answer_ids=tuple(range(9)),
    preliminary="Lit in 1871, perhaps.",
)  # fmt: skip
SCRIPT: tuple[Event, ...] = (
    PreliminaryToken(" Lit in"),
    PreliminaryToken(" 1871, perhaps."),
    PreliminaryAnswer("Lit in 1871, perhaps.", 5, 0.8, CHUNKS),
    FINISHED,
)


class ProvenanceEngine(FakeEngine):
    """Plays `SCRIPT` and records the decoding settings asked with."""

    def __init__(self) -> None:
        super().__init__()
        self.configs: list[DecodeConfig] = []

    def ask(
        self,
        question: str,
        documents: Sequence[Path | str] = (),
        decode_cfg: DecodeConfig | None = None,
        password: str | None = None,
    ) -> Iterator[Event]:
        self.configs.append(decode_cfg or DecodeConfig())
        yield from SCRIPT


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> ProvenanceEngine:
    fake = ProvenanceEngine()
    monkeypatch.setattr(common, "make_engine", lambda models, index: fake)
    return fake


@pytest.fixture
def pdf(tmp_path: Path) -> Path:
    import pymupdf

    path = tmp_path / "hb.pdf"
    doc = pymupdf.open()
    doc.new_page().insert_text((72, 72), "The light was first lit in 1871.")
    doc.save(path)
    doc.close()
    return path


def test_preliminary_on_stderr_citations_under_the_answer(
    capsys: pytest.CaptureFixture[str], engine: ProvenanceEngine, pdf: Path
) -> None:
    assert cli.main(["ask", str(pdf), "-q", "When?", "--color", "never"]) == 0
    out, err = capsys.readouterr()
    assert out == ANSWER + "\n"  # the final answer only: scripts read stdout
    assert "preliminary, from the retrieved passages only: Lit in 1871, perhaps.\n" in err
    assert "the target is reading the whole document" in err
    assert "  1. 'It was lit in 1871.': [2] p. 2\n" in err
    assert "  2. 'Nobody knows why.': no retrieved passage supports it\n" in err
    assert "read beyond the passages: 'Nobody knows why.' (2 corrections" in err
    assert engine.configs[0].preliminary


def test_no_preliminary_flag(engine: ProvenanceEngine, pdf: Path) -> None:
    assert cli.main(["ask", str(pdf), "-q", "When?", "--no-preliminary"]) == 0
    assert engine.configs[0].preliminary is False


def test_json_holds_citations_beyond_runs_and_the_preliminary(
    capsys: pytest.CaptureFixture[str], engine: ProvenanceEngine, pdf: Path
) -> None:
    assert cli.main(["ask", str(pdf), "-q", "When?", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [c["n"] for c in data["chunks"]] == [1, 2]
    first, second = data["citations"]
    assert first["sentence"] == "It was lit in 1871." and first["passages"] == [2]
    assert first["supported"] and first["drafted"] == 0.75
    assert first["spots"] == [{
        "passage": 2, "doc": "Handbook", "pages": [2],
        "text": "The light was first lit in 1871.", "rects": [[2, 50.0, 60.0, 300.0, 72.0]],
    }]  # fmt: skip
    assert second["passages"] == [] and not second["supported"]
    assert data["beyond"] == [{"text": "Nobody knows why.", "start": 20, "end": 37,
                               "tokens": [5, 9], "corrections": 2}]  # fmt: skip
    assert data["preliminary"] == "Lit in 1871, perhaps."
