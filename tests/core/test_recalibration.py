"""Issue 15, defect 5: after a recalibration the draft planner must price a verify
and a drafter step against the same baseline step, so that the untimed path (eta > 0,
sampling) does not depend on how fast the machine happened to be at each calibration."""

from __future__ import annotations

import itertools

import pytest
import torch

from bench.gpu_checks import Case, Rig
from core.decoding import planner

_LENGTH = planner.DraftPlanner.length  # the real method, before the test wraps it


def test_draft_and_verify_costs_share_the_recalibrated_baseline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the machine gets slower and faster: each recalibration returns another step time
    values = itertools.chain([0.01, 0.05, 0.2, 0.01], itertools.repeat(1.0))
    monkeypatch.setattr(planner, "calibrate", lambda *_a, **_k: next(values))
    monkeypatch.setattr(planner, "RECALIBRATE_GROWTH", 4)
    ratios: list[float] = []

    def spy(self: planner.DraftPlanner, source: str, limit: int, draft_step_s: float = 0.0) -> int:
        if source == "model":
            ratios.append(draft_step_s / self.base)
        return _LENGTH(self, source, limit, draft_step_s)

    monkeypatch.setattr(planner.DraftPlanner, "length", spy)
    res = Rig(torch.device("cpu")).run(Case("rapid", 0.0, "other"), max_new=40, use_lookup=False)
    assert res.rounds > 5 and len(ratios) > 5
    assert ratios == pytest.approx([planner.DRAFT_STEP_RATIO] * len(ratios))
