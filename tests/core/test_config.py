"""Tests of core/config.py: the retrieval budget formula and DecodeConfig's properties."""

from __future__ import annotations

import dataclasses

import pytest

from core.config import (
    MODES,
    DecodeConfig,
    IndexConfig,
    Mode,
    ModelConfig,
    default_budget,
)


@pytest.mark.parametrize(
    ("document_tokens", "expected"),
    [
        (0, 0),
        (7, 1),  # tiny: L/4 rounded down
        (100, 25),
        (6_873, 1_718),  # the bundled sample: a quarter of the document
        (16_384, 4_096),  # L/4 reaches the 4096 cap exactly
        (20_000, 4_096),  # capped: 4096 > L/24 = 833
        (98_304, 4_096),  # L/24 == 4096: both terms agree
        (100_000, 4_166),  # 100K+: the paper's L/24 takes over
        (131_072, 5_461),
        (1_000_000, 41_666),
    ],
)
def test_default_budget(document_tokens: int, expected: int) -> None:
    assert default_budget(document_tokens) == expected


@pytest.mark.parametrize("document_tokens", [1, 50, 999, 4_000, 16_383, 16_385, 50_000])
def test_default_budget_never_the_whole_document(document_tokens: int) -> None:
    budget = default_budget(document_tokens)
    assert budget <= document_tokens // 4
    assert budget < document_tokens


def test_default_budget_is_monotonic() -> None:
    budgets = [default_budget(n) for n in range(0, 200_000, 97)]
    assert budgets == sorted(budgets)


@pytest.mark.parametrize(
    ("mode", "eta", "expected"),
    [
        ("rapid", 5.0, 5.0),
        ("rapid", 0.0, 0.0),
        ("rapid", 20.0, 20.0),
        ("sd", 5.0, 0.0),  # sd is plain speculative decoding whatever eta says
        ("target", 5.0, 0.0),
        ("rag", 12.0, 0.0),
    ],
)
def test_effective_eta(mode: Mode, eta: float, expected: float) -> None:
    config = DecodeConfig(mode=mode, eta=eta)
    assert config.effective_eta == expected


def test_speculative_only_for_sd_and_rapid() -> None:
    assert {mode for mode in MODES if DecodeConfig(mode=mode).speculative} == {"sd", "rapid"}


def test_defaults() -> None:
    config = DecodeConfig()
    # sd by default: on the default pair eta > 0 answered worse and slower (benchmarks.md)
    assert config.mode == "sd" and config.speculative
    assert config.effective_eta == 0 < config.eta  # eta is kept for mode rapid
    assert dataclasses.replace(config, mode="rapid").effective_eta == config.eta
    assert config.temperature == 0.0  # greedy by default
    assert config.budget is None  # None = default_budget(L)
    assert 0.0 < config.alpha < 1.0
    assert IndexConfig().unit_word_pieces < 256  # fits all-MiniLM-L6-v2's window


@pytest.mark.parametrize(
    ("config", "field"),
    [
        (DecodeConfig(), "eta"),
        (ModelConfig(), "target"),
        (IndexConfig(), "chunk_tokens"),
    ],
)
def test_configs_are_frozen(config: object, field: str) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(config, field, 1)


def test_replace_makes_a_changed_copy() -> None:
    base = DecodeConfig()
    changed = dataclasses.replace(base, mode="rapid", gamma=3)
    assert (changed.mode, changed.gamma, changed.effective_eta) == ("rapid", 3, base.eta)
    assert (base.mode, base.gamma) == ("sd", 6)
    assert hash(base) == hash(DecodeConfig())  # frozen dataclasses are hashable
