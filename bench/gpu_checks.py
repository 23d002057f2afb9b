"""The decoding engine end to end on any device, with models built from configs.

Runs RapidQA's own `FastSequence`, drafters and `decode` loop (no re-implementation)
on `device` in every mode (target, rag, sd, rapid), greedy and sampled, with the target
as its own drafter (reading the retrieved rows of its KV cache, `select_from`) and with
a second model as drafter. Checks, per combination:

* the fast forward equals the HF forward of the same model on the device;
* the loop finishes with in-vocabulary tokens and its accounting adds up;
* greedy `sd` gives the `target` tokens one for one (speculative decoding is lossless);
* a seeded sampled run repeats itself exactly (the loop's random numbers come from one
  CPU generator whatever the device).

Needs only torch and transformers, so the GPU machine (no network, none of the app's
other dependencies) runs it from `bench/gpu_speed.py --checks`; pytest runs it on the
CPU in CI and on CUDA where there is one (tests/core/test_gpu.py).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

from core.config import DecodeConfig, Mode
from core.decoding.fastlm import FastSequence, FastWeights
from core.decoding.lm import COMPACT_ATTR, SequenceFactory
from core.decoding.lookup import LookupDrafter
from core.decoding.loop import Detokenizer, LoopResult, decode
from core.decoding.proposers import ModelDrafter
from core.decoding.qlinear import WeightKind

VOCAB = 512
EOS = 2


def tiny_qwen(seed: int, device: torch.device, dtype: torch.dtype = torch.float32) -> object:
    """A random Qwen2-shaped model (QKV bias, grouped-query attention), eval mode."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=VOCAB, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
        initializer_range=0.2, tie_word_embeddings=False, use_sliding_window=False,
        bos_token_id=1, eos_token_id=EOS,
    )  # fmt: skip
    config._attn_implementation = "sdpa"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
    model.to(device=device, dtype=dtype)  # type: ignore[call-arg]
    model.eval()  # type: ignore[no-untyped-call]
    model.requires_grad_(False)
    return model


def noisy_copy(model: object, seed: int, noise: float = 0.02) -> object:
    """`model` with Gaussian noise of `noise` x each weight's std added: a second model
    that drafts well for it (some drafts accepted, some rejected)."""
    import copy

    other = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in other.parameters():  # type: ignore[attr-defined]
            n = torch.randn(p.shape, generator=g).to(p.device, p.dtype)
            p.add_(n * noise * p.float().std().to(p.dtype))
    return other


@dataclass(frozen=True)
class Case:
    mode: Mode
    temperature: float
    drafter: str  # "self" or "other"

    def __str__(self) -> str:
        return f"{self.mode}/T={self.temperature:g}/{self.drafter}"


CASES = [Case(m, t, d) for m, t, d in itertools.product(
    ("target", "rag", "sd", "rapid"), (0.0, 0.8), ("self", "other"))]  # fmt: skip


class Rig:
    """Target and drafter models on a device, a prompt, and the retrieved positions."""

    def __init__(
        self, device: torch.device, prompt_len: int = 300, seed: int = 0,
        weights: WeightKind = "dense",
    ) -> None:  # fmt: skip
        """`weights` "int4"/"int8": both models in compact storage, bf16 (CPU only)."""
        self.device = device
        self.target = tiny_qwen(seed, device)
        self.other = noisy_copy(self.target, seed + 1)  # agrees often: drafts get accepted
        self.weights = weights
        if weights != "dense":
            for m in (self.target, self.other):
                m.to(dtype=torch.bfloat16)  # type: ignore[attr-defined]
                setattr(m, COMPACT_ATTR, FastWeights(m, weights))
        g = torch.Generator().manual_seed(seed)
        # A prompt that repeats itself, so lookup drafts find matches and get accepted.
        base = torch.randint(3, VOCAB, (prompt_len // 3,), generator=g)
        self.prompt = torch.cat([base, base, base])[:prompt_len].tolist()
        # "retrieved" rows of the prefilled prompt[:-1] (a CPU tensor, as the engine has)
        self.positions = torch.arange(prompt_len // 3, prompt_len - 1)
        self.factories = {m: SequenceFactory(m) for m in (self.target, self.other)}

    def check_forward(self) -> float:
        """Max |fast - HF| logit difference on the device (fp32)."""
        f = self.factories[self.target]
        assert f.fast is not None
        seq = FastSequence(f.fast, 512)
        ids = torch.tensor(self.prompt[:64], device=self.device)
        fast = seq.forward(ids, "all")
        with torch.no_grad():
            hf = self.target(input_ids=ids[None]).logits[0]  # type: ignore[operator]
        return float((fast - hf).abs().max())

    def run(
        self, case: Case, max_new: int = 24, seed: int = 0, use_lookup: bool = True
    ) -> LoopResult:
        cfg = DecodeConfig(mode=case.mode, temperature=case.temperature, seed=seed,
                           max_new_tokens=max_new, gamma=4)  # fmt: skip
        tf = self.factories[self.target]
        target = tf.new(len(self.prompt) + 64)
        ids = torch.tensor(self.prompt[:-1], device=self.device)
        if case.mode == "rag":  # the target reads the retrieved rows only
            sel = self.positions.tolist()
            ids = torch.tensor([self.prompt[i] for i in sel], device=self.device)
        target.forward(ids, "none")
        drafter = lookup = None
        if cfg.speculative:
            drafter, d_ids = self._drafter(case, target)
            if use_lookup:
                lookup = LookupDrafter(
                    [d_ids], search_answer=cfg.effective_eta == 0, tail=self.prompt
                )
        result = LoopResult(tokens=[])
        detok = Detokenizer(lambda toks: " ".join(map(str, toks)))
        for _ in decode(target, self.prompt[-1], cfg, vocab=VOCAB, eos_ids=frozenset({EOS}),
                        detok=detok, drafter=drafter, lookup=lookup, result=result):  # fmt: skip
            pass
        return result

    def _drafter(self, case: Case, target: object) -> tuple[ModelDrafter, list[int]]:
        d_ids = [self.prompt[i] for i in self.positions.tolist()] + [self.prompt[-1]]
        if case.drafter == "self":
            assert isinstance(target, FastSequence)
            dseq = FastSequence.select_from(target, self.positions, 64)
            f = self.factories[self.target]
        else:
            f = self.factories[self.other]
            dseq = f.new(len(d_ids) + 64)  # type: ignore[assignment]
            dseq.forward(torch.tensor(d_ids[:-1], device=self.device), "none")
        drafter = ModelDrafter(dseq, f.lm_head, VOCAB, None)
        drafter.pending = [d_ids[-1]]
        return drafter, d_ids


def run_checks(
    device: torch.device, say: object = print, weights: WeightKind = "dense"
) -> dict[str, object]:
    """Every check above on `device`; raises AssertionError on the first failure."""
    rig = Rig(device, weights=weights)
    report: dict[str, object] = {"device": str(device)}
    if weights == "dense":  # compact storage frees the HF copies of the weights
        diff = rig.check_forward()
        assert diff < 1e-3, f"fast forward differs from HF on {device}: {diff}"
        report["fast_vs_hf_max_abs"] = diff
    greedy: dict[str, list[int]] = {}
    for case in CASES:
        res = rig.run(case)
        toks = res.tokens
        assert toks and all(0 <= t < VOCAB for t in toks), (str(case), toks)
        assert res.accepted <= res.drafted, str(case)
        if case.mode in ("target", "rag"):
            assert res.drafted == 0, str(case)
        if case.temperature == 0:
            greedy[str(case)] = toks
        else:
            again = rig.run(case).tokens
            assert again == toks, f"{case}: a seeded sampled run did not repeat itself"
        report[str(case)] = {"tokens": len(toks), "drafted": res.drafted,
                             "accepted": res.accepted}  # fmt: skip
        say(f"ok {case}: {len(toks)} tokens, {res.accepted}/{res.drafted} drafts accepted")  # type: ignore[operator]
    for d in ("self", "other"):
        sd, tgt = greedy[f"sd/T=0/{d}"], greedy[f"target/T=0/{d}"]
        assert sd == tgt, f"greedy sd != target with the {d} drafter on {device}"
    return report
