"""Attention evidence (core/evidence.py): the probe against HF's eager attention
weights, and a tiny model built so that one region of a real PDF carries the answer
(its attention goes to the tokens equal to its own): the evidence must point there."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from core.api import Engine
from core.config import DecodeConfig, ModelConfig
from core.decoding.fastlm import FastSequence
from core.decoding.lm import SequenceFactory
from core.events import BeyondRun, DocumentRead, Evidence, Finished
from core.evidence import attention_to_context
from core.models.loading import load_tokenizer
from tests.tiny_models import tiny_llama

FILLER = [
    "The harbour board met on the first Monday of every month to review the accounts.",
    "A new slipway was laid in the spring, and the old crane was taken down for scrap.",
    "Fishing boats landed herring and mackerel on the north quay through the summer.",
    "The customs house kept its ledgers in a strong room under the main staircase.",
]
MARKER = "The zeppelin zeppelin zeppelin hangar held one zeppelin and zeppelin spares."


def test_probe_equals_hf_eager_attention_weights() -> None:
    """Mean over heads, summed over layers, of HF's `output_attentions`, for the last
    5 tokens of a 40-token sequence whose first 35 are in the KV cache."""
    loaded = tiny_llama(seed=3)
    model = loaded.model
    seq = SequenceFactory(model).new(64)
    assert isinstance(seq, FastSequence)
    ids = torch.randint(0, 49152, (40,), generator=torch.Generator().manual_seed(0))
    seq.forward(ids[:30], "none")
    got = attention_to_context(seq, ids[30:35].tolist(), ids[35:].tolist())
    model.config._attn_implementation = "eager"
    try:
        with torch.no_grad():
            out = model(ids[None], output_attentions=True)
    finally:
        model.config._attn_implementation = "sdpa"
    want = sum(a[0, :, 35:, :35].mean(0).sum(0) for a in out.attentions)
    assert got.shape == (35,)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def _matcher(folder: Path) -> Path:
    """A 2-layer Llama whose attention heads look for tokens equal to the query's
    (q = k = 2 x 64 dims of the normalised embedding: a match scores 32, another token
    about N(0, 4); rope_theta huge so that positions barely rotate them), with attention
    and MLP outputs zeroed so both layers see the embeddings. SmolLM2's tokenizer."""
    tok = load_tokenizer("smollm2-135m")
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=256, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, intermediate_size=32, max_position_embeddings=8192,
        rope_theta=1e12, tie_word_embeddings=True, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    eye = 2.0 * torch.eye(64)
    with torch.no_grad():
        model.model.embed_tokens.weight.normal_(0.0, 1.0)
        for layer in model.model.layers:
            att = layer.self_attn
            q, k = torch.zeros(256, 256), torch.zeros(128, 256)
            for head, dims in ((0, 0), (1, 0), (2, 128), (3, 128)):  # a KV head's heads alike
                q[64 * head : 64 * head + 64, dims : dims + 64] = eye
            k[:64, :64], k[64:, 128:192] = eye, eye
            att.q_proj.weight.copy_(q)
            att.k_proj.weight.copy_(k)
            att.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def marked_pdf(make_pdf: Callable[..., Path]) -> Path:
    pages = [
        "\n\n".join(FILLER * 3),
        "\n\n".join([*FILLER[:2], MARKER, *FILLER[2:]]),
        "\n\n".join(FILLER[::-1] * 3),
    ]
    return make_pdf(pages, name="harbour.pdf", title="The harbour")


def test_evidence_points_at_the_region_that_carries_the_answer(
    tmp_path: Path, marked_pdf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAPIDQA_CACHE", str(tmp_path / "cache"))
    engine = Engine(ModelConfig(target=str(_matcher(tmp_path / "matcher")), drafter="same"))
    cfg = DecodeConfig(mode="sd", max_new_tokens=4, preliminary=False)
    events = list(engine.ask("What was in the hangar?", [marked_pdf], cfg))
    fin = events[-1]
    assert isinstance(fin, Finished)
    (doc_id,) = [e.doc_id for e in events if isinstance(e, DocumentRead)]
    tok = engine.target.tokenizer if engine.target else None
    assert tok is not None
    answer = list(fin.answer_ids) + tok.encode(" zeppelin zeppelin", add_special_tokens=False)
    n = len(fin.answer_ids)
    run = BeyondRun(n, len(answer), 0, 0, 2)
    events = list(engine.evidence("What was in the hangar?", [doc_id], answer, run, (), cfg))
    ev = events[-1]
    assert isinstance(ev, Evidence) and ev.run == run
    best = ev.spots[0]
    assert "zeppelin" in best.ref.text and best.ref.pages == (2,)
    assert best.ref.rects and all(r[0] == 2 for r in best.ref.rects)
    assert best.weight > 3 * ev.spots[1].weight  # far ahead of any other span
    assert ev.outside and not best.retrieved  # no passages given: all outside
    assert abs(sum(s.weight for s in ev.spots) - 1.0) < 1.0  # shares of the document
    # inside the drafter's passages when they hold it
    inside = list(engine.evidence("What was in the hangar?", [doc_id], answer, run,
                                  (best.ref,), cfg))[-1]  # fmt: skip
    assert isinstance(inside, Evidence) and inside.spots[0].retrieved and not inside.outside
