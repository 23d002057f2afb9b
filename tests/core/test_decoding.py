"""The decoding loop on a tiny random Llama: greedy equality, crops, EOS, eta effect."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
import torch

from core.config import DecodeConfig
from core.decoding.fastlm import FastWeights
from core.decoding.lm import HFSequence, Sequence, SequenceFactory
from core.decoding.lookup import LookupDrafter
from core.decoding.loop import Detokenizer, LoopResult, decode
from core.decoding.proposers import ModelDrafter
from core.events import DraftStep
from core.models.loading import LoadedModel
from tests.tiny_models import tiny_llama

TEXT = (
    "The keeper wrote in the log at dusk. The lamp was lit at six and the fog bell rang "
    "twice an hour. The relief boat came on Tuesday with oil, bread and letters. "
) * 6


@pytest.fixture(scope="module")
def target() -> LoadedModel:
    return tiny_llama(seed=0)


@pytest.fixture(scope="module")
def drafter(target: LoadedModel) -> LoadedModel:
    return tiny_llama(seed=1, noise=0.03, base=target)


@pytest.fixture(scope="module")
def prompt(target: LoadedModel) -> list[int]:
    ids: list[int] = target.tokenizer.encode(TEXT, add_special_tokens=False)
    return ids


def _generate(m: LoadedModel, prompt: list[int], n: int) -> list[int]:
    ref = copy.deepcopy(m.model)  # HF's own forward, untouched by weight fusing
    out = ref.generate(
        torch.tensor([prompt]), max_new_tokens=n, min_new_tokens=n, do_sample=False,
        attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
    )  # fmt: skip
    return [int(t) for t in out[0, len(prompt) :]]


def _run(
    target: LoadedModel,
    prompt: list[int],
    cfg: DecodeConfig,
    drafter: LoadedModel | None = None,
    lookup: bool = False,
    eos: frozenset[int] = frozenset(),
    hf: bool = False,
) -> tuple[LoopResult, list[DraftStep], Sequence]:
    f = SequenceFactory(target.model)
    seq: Sequence = HFSequence(target.model) if hf else f.new(64)
    seq.forward(torch.tensor(prompt[:-1]), "none")
    md = None
    if drafter is not None:
        fd = SequenceFactory(drafter.model)
        ctx = prompt[len(prompt) // 2 :]  # the drafter sees a shorter context
        dseq = fd.new(64)
        dseq.forward(torch.tensor(ctx[:-1]), "none")
        md = ModelDrafter(dseq, fd.lm_head, f.vocab_size, None)
        md.pending = [ctx[-1]]
    lk = LookupDrafter([prompt], tail=prompt) if lookup else None
    res = LoopResult(tokens=[])
    steps = [
        ev
        for ev in decode(
            seq,
            prompt[-1],
            cfg,
            vocab=f.vocab_size,
            eos_ids=eos,
            detok=Detokenizer(target.tokenizer.decode),
            drafter=md,
            lookup=lk,
            result=res,
        )
        if isinstance(ev, DraftStep)
    ]
    return res, steps, seq


N = 40


def test_fast_forward_matches_hf(target: LoadedModel, prompt: list[int]) -> None:
    ref = copy.deepcopy(target.model)
    want = ref(torch.tensor([prompt])).logits[0]
    seq = SequenceFactory(target.model).new(16)  # grows on demand
    a = seq.forward(torch.tensor(prompt[:50]), "all")  # long block (SDPA path)
    b = seq.forward(torch.tensor(prompt[50:54]), "all")  # short block
    seq.crop(52)  # roll back two positions
    c = seq.forward(torch.tensor(prompt[52:]), "all")
    got = torch.cat([a, b[:2], c])
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-4, rtol=1e-4)
    assert FastWeights.supports(target.model)


@pytest.mark.parametrize("mode", ["target", "sd"])
def test_greedy_equals_generate(
    target: LoadedModel, drafter: LoadedModel, prompt: list[int], mode: str
) -> None:
    want = _generate(target, prompt, N)
    cfg = DecodeConfig(mode=mode, max_new_tokens=N, gamma=4, eta=0.0)  # type: ignore[arg-type]
    spec = mode == "sd"
    res, steps, _ = _run(target, prompt, cfg, drafter if spec else None, lookup=spec)
    assert res.tokens == want
    if spec:
        # Rejections and crops happened, and drafts were accepted too.
        assert res.rounds < len(res.tokens)
        assert any(s.accepted < len(s.drafted_ids) for s in steps)
        assert res.accepted > 0


def test_hf_fallback_sequence_equals_generate(
    target: LoadedModel, drafter: LoadedModel, prompt: list[int]
) -> None:
    want = _generate(target, prompt, 20)
    cfg = DecodeConfig(mode="sd", max_new_tokens=20, gamma=3)
    res, _, _ = _run(target, prompt, cfg, drafter, hf=True)
    assert res.tokens == want


def test_kv_cache_valid_after_rejections(
    target: LoadedModel, drafter: LoadedModel, prompt: list[int]
) -> None:
    cfg = DecodeConfig(mode="sd", max_new_tokens=N, gamma=5)
    res, _, seq = _run(target, prompt, cfg, drafter)
    full = prompt + res.tokens
    # The cache holds every committed token but the last: its next logits must equal a
    # fresh forward over the whole text.
    assert seq.length == len(full) - 1
    got = seq.forward(torch.tensor(full[-1:]), "last")[0]
    want = copy.deepcopy(target.model)(torch.tensor([full])).logits[0, -1]
    assert torch.allclose(got, want, atol=1e-4)


def test_eos_inside_a_draft_stops_there(target: LoadedModel, prompt: list[int]) -> None:
    want = _generate(target, prompt, 30)
    eos_pos = next(i for i in range(6, 30) if want[i] not in want[:i])
    eos = frozenset({want[eos_pos]})
    same = tiny_llama(seed=2, noise=0.0, base=target)  # drafts all accepted
    cfg = DecodeConfig(mode="sd", max_new_tokens=30, gamma=8, adaptive_gamma=False)
    res, steps, _ = _run(target, prompt, cfg, same, eos=eos)
    assert res.tokens == want[: eos_pos + 1]
    assert res.stop_reason == "eos"
    last = steps[-1]
    assert last.token_id is None or last.token_id == want[eos_pos]


def test_rapid_greedy_differs_from_sd(target: LoadedModel, prompt: list[int]) -> None:
    # The random model's distributions are nearly flat over 49K tokens, so q - p is ~1e-3
    # and eta has nothing to act on. Sharpen its logits (scale the final norm) so that,
    # as with a real LM, q is peaked and drafted tokens are a few logits off the top.
    flat = tiny_llama(seed=3, noise=0.0, base=target)
    with torch.no_grad():
        flat.model.model.norm.weight.mul_(3.0)
    noisy = tiny_llama(seed=4, noise=0.03, base=flat)
    # Fixed draft length (no gate, no planner): both modes draft the same way.
    fixed = {"max_new_tokens": N, "adaptive_gamma": False, "gamma": 4}
    sd, _, _ = _run(flat, prompt, DecodeConfig(mode="sd", **fixed), noisy, True)  # type: ignore[arg-type]
    rapid, _, _ = _run(flat, prompt, DecodeConfig(mode="rapid", eta=8.0, **fixed), noisy, True)  # type: ignore[arg-type]
    assert sd.tokens == _generate(flat, prompt, N)
    assert rapid.tokens != sd.tokens
    assert rapid.accepted / max(rapid.drafted, 1) > sd.accepted / max(sd.drafted, 1)


def test_cancel_stops_between_rounds(target: LoadedModel, prompt: list[int]) -> None:
    f = SequenceFactory(target.model)
    seq = f.new(64)
    seq.forward(torch.tensor(prompt[:-1]), "none")
    calls = iter(range(1000))

    def cancelled() -> bool:
        return next(calls) >= 5

    res = LoopResult(tokens=[])
    events: Iterator[object] = decode(
        seq, prompt[-1], DecodeConfig(mode="target", max_new_tokens=100), vocab=f.vocab_size,
        eos_ids=frozenset(), detok=Detokenizer(target.tokenizer.decode), cancelled=cancelled,
        result=res,
    )  # fmt: skip
    list(events)
    assert res.stop_reason == "cancelled"
    assert len(res.tokens) == 5
    assert seq.length == len(prompt) - 1 + 5 - 1 + 1  # consistent: all but the last token


def test_lookup_does_not_repeat_the_answer_under_eta() -> None:
    doc = [5, 6, 7, 8, 9, 5, 6, 7, 8, 9, 5, 6, 7, 8, 9]  # a repeated header, as in PDFs
    guarded = LookupDrafter([doc], search_answer=False)
    guarded.extend_answer([5, 6, 7, 8, 9])
    # After "7 8 9" the document continues "5 6 7 8": the draft stops before the "8"
    # that would complete "5 6 7 8", a 4-gram the answer already contains.
    assert guarded.match([7, 8, 9], 4) == [5, 6, 7]
    free = LookupDrafter([doc], search_answer=True)
    free.extend_answer([5, 6, 7, 8, 9])
    assert free.match([7, 8, 9], 4) == [5, 6, 7, 8]
