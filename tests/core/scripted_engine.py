"""The speed benchmark's scripted engine: every answer instant, every call logged in
order (`log`), so a test can check the benchmark's run order and its cold clears. It
implements `core.protocol.EngineAPI` (checked by mypy: tests/engine_types.py)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from core.config import DecodeConfig
from core.events import Calibrated, Event, Finished, ModelLoaded, Notice, Status
from tests.app.fake_engine import FakeEngine


def fin(
    mode: str = "target",
    *,
    new_tokens: int = 10,
    decode_s: float = 1.0,
    rounds: int | None = None,
    drafted: int = 0,
    accepted: int = 0,
    ttft: float = 1.0,
    prefill: float = 2.0,
    e2e: float = 4.0,
    answer: str = "an answer",
) -> Finished:
    """A finished answer of `mode` with the given figures (the rest fixed)."""
    return Finished(
        answer=answer,
        mode=mode,
        stop_reason="max_tokens",
        new_tokens=new_tokens,
        rounds=new_tokens if rounds is None else rounds,
        drafted=drafted,
        accepted=accepted,
        target_prefill_s=prefill,
        drafter_prefill_s=0.0,
        decode_s=decode_s,
        end_to_end_s=e2e,
        baseline_step_s=0.1,
        time_to_first_token_s=ttft,
    )


class ScriptedEngine(FakeEngine):
    """Answers every question instantly; records what it was asked, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[tuple[str, ...]] = []

    def load_models(self) -> Iterator[Event]:
        self.log.append(("load",))
        yield Status("loading")
        yield ModelLoaded("target", "tiny", "cpu", "float32", 1000, 2048, 0.1)
        yield ModelLoaded("drafter", "tiny", "cpu", "float32", 1000, 2048, 0.0, True)

    def ask(
        self,
        question: str,
        documents: Sequence[Path | str] = (),
        decode_cfg: DecodeConfig | None = None,
        password: str | None = None,
    ) -> Iterator[Event]:
        decode = decode_cfg or DecodeConfig()
        self.log.append(("ask", decode.mode, question, str(decode.max_new_tokens)))
        yield Notice("a notice")
        yield Calibrated(4000, 0.2 if decode.mode == "target" else 9.0, 2_000_000_000)
        drafted = 8 if decode.speculative else 0
        yield fin(decode.mode, new_tokens=decode.max_new_tokens, drafted=drafted, accepted=4)

    def hf_baseline(
        self,
        question: str,
        documents: Sequence[Path],
        kind: str,
        max_new_tokens: int,
        password: str | None = None,
    ) -> Iterator[Event]:
        self.log.append(("hf", kind, question, str(max_new_tokens)))
        yield fin(kind, new_tokens=max_new_tokens)

    def clear_kv_cache(self, memory: bool = True, disk: bool = False) -> None:
        self.log.append(("clear", str(memory), str(disk)))
