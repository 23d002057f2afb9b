"""SmolLM2-135M (the tiny offline model, fp32) on the bundled 7K-token sample: lossless `sd`
and a working `rapid` against HF `generate`.

The drafter reads ~1.7K tokens of retrieved passages while the target reads the whole
document, so drafts are rejected and caches are cropped for real.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.api import Engine
from core.config import DecodeConfig, ModelConfig
from core.events import DraftStep, Finished, Retrieved
from core.models.prompts import build_prompt
from core.pdf.reader import read_pdf

SAMPLE = Path(__file__).parents[2] / "resources" / "sample" / "harrow-point-handbook.pdf"
QUESTION = "What does the keeper do when fog comes in?"
# docs/architecture.md, "Properties the tests pin": ~1e-4; a little margin for the fused
# kernels' rounding
NEAR_TIE = 1e-3

pytestmark = pytest.mark.slow


def _smollm2_fp32(fast_prefill: bool) -> Engine:
    """SmolLM2 as its own drafter, float32 weights, documents read in bf16 or not."""
    config = ModelConfig(target="smollm2-135m", drafter="same", device="cpu",
                         precision="float32", fast_prefill=fast_prefill)  # fmt: skip
    return Engine(config)


@pytest.fixture(scope="module")
def engine() -> Engine:
    # Exact (fp32) prefill: the comparison is with HF's fp32 forward.
    return _smollm2_fp32(fast_prefill=False)


def test_sd_greedy_equals_generate(engine: Engine) -> None:
    steps: list[DraftStep] = []
    fin = None
    drafter_tokens = 0
    for ev in engine.ask(QUESTION, [SAMPLE], DecodeConfig(mode="sd", max_new_tokens=48)):
        if isinstance(ev, DraftStep):
            steps.append(ev)
        if isinstance(ev, Retrieved) and ev.role == "drafter":
            drafter_tokens = ev.context_tokens
        fin = ev
    assert isinstance(fin, Finished)
    got = [t for s in steps for t in s.emitted_ids]
    target = engine.target
    assert target is not None
    doc = read_pdf(SAMPLE)
    prompt = build_prompt(target.tokenizer, doc.text, QUESTION).ids
    assert drafter_tokens < len(prompt) / 3  # the drafter's context is much shorter
    model = target.model
    with torch.inference_mode():
        out = model.generate(  # type: ignore[operator]
            torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
            max_new_tokens=48, do_sample=False, eos_token_id=list(target.eos_ids),
            pad_token_id=target.eos_ids[0],
        )  # fmt: skip
    want = out[0, len(prompt) :].tolist()
    mismatch = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), None)
    if mismatch is None:
        assert got == want
    else:  # allowed only where the target's top-2 logits nearly tie
        with torch.inference_mode():
            logits = model(torch.tensor([prompt + want[:mismatch]])).logits[0, -1]
        top = logits.topk(2).values
        assert float(top[0] - top[1]) < NEAR_TIE, (mismatch, got, want)
    assert fin.rounds < fin.new_tokens
    assert any(s.accepted < len(s.drafted_ids) for s in steps)  # rejections happened


def test_fast_prefill_gives_the_same_answer() -> None:
    fast = _smollm2_fp32(fast_prefill=True)
    exact = _smollm2_fp32(fast_prefill=False)
    cfg = DecodeConfig(mode="target", max_new_tokens=24)
    answers = []
    for engine in (fast, exact):
        fin = list(engine.ask(QUESTION, [SAMPLE], cfg))[-1]
        assert isinstance(fin, Finished)
        answers.append(fin.answer)
    assert answers[0] == answers[1]


def test_rapid_answers_and_differs_in_acceptance(engine: Engine) -> None:
    fin = None
    for ev in engine.ask(QUESTION, [SAMPLE], DecodeConfig(mode="rapid", max_new_tokens=32)):
        fin = ev
    assert isinstance(fin, Finished)
    assert fin.answer.strip()
    assert fin.drafted > 0 and fin.accepted > 0
    assert fin.chunks and all(c.pages for c in fin.chunks)
