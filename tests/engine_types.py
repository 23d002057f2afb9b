"""Static check, run by mypy (scripts/test.sh), not by pytest: the engine and every
fake that stands in for it (the window tests' and the speed benchmark's) implement
`core.protocol.EngineAPI`. A fake that lacks a method, or whose signature drifts from
the engine's, fails `mypy` here."""

from __future__ import annotations

from core.engine import Engine
from core.protocol import EngineAPI
from tests.app.fake_engine import FakeEngine
from tests.core.scripted_engine import ScriptedEngine


def engine_is_an_engine_api(engine: Engine) -> EngineAPI:
    return engine


def fake_is_an_engine_api(fake: FakeEngine) -> EngineAPI:
    return fake


def scripted_is_an_engine_api(scripted: ScriptedEngine) -> EngineAPI:
    return scripted
