"""Compact weights (core/decoding/qlinear.py, core/models/precision.py) against oracles.

- the packed int4 layout unpacks to the codes it was given, and the kernels compute
  x @ W^T of the dequantized matrix W (the formula, written out here);
- round-to-nearest never moves a weight by more than half a quantization step;
- a whole model in int4 equals the HF forward of the same model whose weights are
  replaced by their dequantized values (the compact model is exactly "that model");
- the decode loop on an int4 target: greedy sd == target, sampled runs repeat;
- the offline model loads in int4, the engine answers with it, and sd == target.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from bench.gpu_checks import Rig, run_checks, tiny_qwen
from bench.peers import hf_baseline
from core.decoding.fastlm import FastSequence, FastWeights
from core.decoding.qlinear import (
    GROUP,
    KERNEL_ROWS,
    DenseWeight,
    Int4Weight,
    Int8Weight,
    concat,
    quantize,
)

BF16 = torch.bfloat16


def _w(n: int, k: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, k, generator=torch.Generator().manual_seed(seed)) * 0.05


def test_int4_layout_round_trips_codes() -> None:
    codes = torch.randint(0, 16, (192, 256), dtype=torch.uint8)
    scale = torch.rand(192, 256 // GROUP) + 0.5
    w = Int4Weight.pack(codes, scale, torch.zeros_like(scale), BF16)
    assert torch.equal(w.codes(), codes)


def test_int4_dense_and_mm_follow_the_formula() -> None:
    w = _w(128, 256)
    q = Int4Weight.quantize(w, BF16)
    sz = q.scales_zeros.float()  # [K/32, N, 2]
    scale, zero = sz[..., 0].t(), sz[..., 1].t()  # [N, K/32]
    codes = q.codes().float().view(128, 256 // GROUP, GROUP)
    want = ((codes - 8) * scale[..., None] + zero[..., None]).view(128, 256)
    assert torch.allclose(q.dense(torch.float32), want, atol=1e-6)
    # round to nearest on the stored grid: at most half a step (+ float rounding)
    step = scale.repeat_interleave(GROUP, dim=1)
    assert bool(((want - w).abs() <= 0.5 * step + 1e-6).all())
    x = torch.randn(5, 256).to(BF16)
    ref = x.float() @ want.t()
    got = q.mm(x).float()
    assert (got - ref).norm() / ref.norm() < 1e-2  # bf16 activations and output


def test_int8_follows_the_formula() -> None:
    w = _w(96, 208)
    q = Int8Weight.quantize(w, BF16)
    want = q.q.float() * q.scale.float()[:, None]
    assert torch.allclose(q.dense(torch.float32), want)
    assert bool(((want - w).abs() <= q.scale.float()[:, None] * 0.5 + 1e-6).all())
    x = torch.randn(3, 208).to(BF16)
    ref = x.float() @ want.t()
    assert (q.mm(x).float() - ref).norm() / ref.norm() < 1e-2
    rows = torch.tensor([5, 0, 77])
    assert torch.equal(q.rows(rows).dense(BF16), q.dense(BF16)[rows])


def test_quantize_falls_back_where_int4_cannot_pack() -> None:
    assert isinstance(quantize(_w(128, 256), "int4", BF16), Int4Weight)
    assert isinstance(quantize(_w(128, 576), "int4", BF16), Int8Weight)  # K % 128 != 0
    assert isinstance(quantize(_w(100, 256), "int4", BF16), Int8Weight)  # N % 64 != 0
    # the int8 kernel returns garbage for K % 16 != 0 (measured): those stay dense
    assert isinstance(quantize(_w(96, 200), "int8", BF16), DenseWeight)
    dense = quantize(_w(8, 8), "dense", BF16)
    assert isinstance(dense, DenseWeight) and dense.w.dtype == BF16


@pytest.mark.parametrize("kind", ["int4", "int8"])
def test_compact_model_is_its_dequantized_model(kind: str) -> None:
    """Oracle: HF's forward with every projection and the head set to the dequantized
    matrices gives the compact FastSequence's logits, for a decode step and a prefill."""
    model = tiny_qwen(0, torch.device("cpu"), BF16)
    oracle = tiny_qwen(0, torch.device("cpu"), BF16)
    w = FastWeights(model, kind)  # type: ignore[arg-type]
    assert w.compact and model.model.layers[0].mlp.down_proj.weight.numel() == 0  # type: ignore[attr-defined]
    for layer, mine in zip(oracle.model.layers, w.layers, strict=True):  # type: ignore[attr-defined]
        att, mlp = layer.self_attn, layer.mlp
        qkv = mine.qkv.dense(torch.float32)
        sizes = [att.q_proj.weight.shape[0], att.k_proj.weight.shape[0]]
        q, k, v = qkv.split([sizes[0], sizes[1], qkv.shape[0] - sum(sizes)])
        gate, up = mine.gate_up.dense(torch.float32).chunk(2)
        o, down = mine.o.dense(torch.float32), mine.down.dense(torch.float32)
        pairs = [(att.q_proj, q), (att.k_proj, k), (att.v_proj, v), (att.o_proj, o),
                 (mlp.gate_proj, gate), (mlp.up_proj, up), (mlp.down_proj, down)]  # fmt: skip
        for mod, mat in pairs:
            mod.weight.data = mat.to(BF16)
    oracle.lm_head.weight.data = w.lm_head.dense(BF16)  # type: ignore[attr-defined]
    n = KERNEL_ROWS + 60
    ids = torch.randint(3, 500, (n,), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = oracle(input_ids=ids[None]).logits[0].float()  # type: ignore[operator]
    seq = FastSequence(w, n + 8)
    long = KERNEL_ROWS + 20
    prefill = seq.forward(ids[:long], "all").float()  # a long block: dequantized GEMM
    block = seq.forward(ids[long : n - 8], "all").float()  # a question: packed kernel
    steps = torch.cat([seq.forward(ids[i : i + 1], "all").float() for i in range(n - 8, n)])
    got = torch.cat([prefill, block, steps])
    rel = (got - want).norm(dim=-1) / want.norm(dim=-1)
    # Two bf16 computations of one model: this random model amplifies bf16 rounding to
    # ~3% of the logits' norm (the dense bf16 fast path vs HF shows the same spread),
    # up to ~7% at the worst of 300 positions; a wrong weight gives ~100%.
    assert float(rel.mean()) < 0.04 and float(rel.max()) < 0.1, rel
    assert float((got.argmax(-1) == want.argmax(-1)).float().mean()) >= 0.9


@pytest.mark.parametrize("kind", ["int4", "int8"])
def test_decode_loop_on_compact_weights(kind: str) -> None:
    """All four modes, greedy and sampled, self and two-model, on compact weights:
    greedy sd equals target token for token on the same compact target."""
    report = run_checks(torch.device("cpu"), say=lambda _: None, weights=kind)  # type: ignore[arg-type]
    assert report["device"] == "cpu"
    rig = Rig(torch.device("cpu"), weights=kind)  # type: ignore[arg-type]
    assert rig.factories[rig.target].fast.kind == kind  # type: ignore[union-attr]


def test_step_bytes_shrink_with_the_weights() -> None:
    from core.decoding.lm import step_bytes

    sizes = {}
    for kind in ("dense", "int8", "int4"):
        model = tiny_qwen(0, torch.device("cpu"), BF16)
        w = FastWeights(model, kind)  # type: ignore[arg-type]
        seq = FastSequence(w, 16)
        sizes[kind] = step_bytes(seq)
    assert sizes["int4"] < sizes["int8"] < sizes["dense"]


def test_offline_model_in_int4_answers_and_sd_is_exact(
    make_pdf: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SmolLM2 from its GGUF in int4 (auto on a CPU): packed at load, the engine answers,
    greedy sd gives the target's tokens, and transformers' generate is refused clearly."""
    from core.api import Engine
    from core.config import DecodeConfig, IndexConfig, ModelConfig
    from core.errors import ConfigError
    from core.events import Finished, ModelLoaded

    monkeypatch.setenv("RAPIDQA_CACHE", str(tmp_path / "cache"))
    pdf = make_pdf(["The Ostrava tide gauge was installed in 1903 by the harbour board. "
                    "Keeper Ilse Marten kept the gauge log from 1921 to 1950."] * 4)  # fmt: skip
    engine = Engine(ModelConfig(target="smollm2-135m", drafter="same", device="cpu"),
                    IndexConfig(library=tmp_path / "library"))  # fmt: skip
    answers = {}
    for mode in ("target", "sd"):
        events = list(engine.ask("Who kept the gauge log?", [pdf],
                                 DecodeConfig(mode=mode, max_new_tokens=24)))  # type: ignore[arg-type]  # fmt: skip
        answers[mode] = [e for e in events if isinstance(e, Finished)][-1].answer
        loaded = [e for e in events if isinstance(e, ModelLoaded)]
        if loaded:
            assert loaded[0].dtype == "int4"
    assert engine.target is not None and engine.target.weights == "int4"
    assert answers["sd"] == answers["target"] and answers["target"]
    with pytest.raises(ConfigError, match="--precision bfloat16"):
        list(hf_baseline(engine, "Who kept the gauge log?", [pdf], "hf-generate", 8))


@pytest.mark.parametrize("kind", ["dense", "int4"])
def test_layer_by_layer_prefill_equals_chunk_by_chunk(kind: str) -> None:
    """`FastSequence.prefill` runs the same chunks in another order (layer-major): the
    same KV cache and the same next-token logits; bit for bit with dense fp32 weights."""
    dtype = torch.float32 if kind == "dense" else BF16
    w = FastWeights(tiny_qwen(0, torch.device("cpu"), dtype), kind)  # type: ignore[arg-type]
    ids = torch.randint(3, 500, (100,), generator=torch.Generator().manual_seed(2))
    a, b = FastSequence(w, 128), FastSequence(w, 128)
    for c in range(0, 90, 32):
        a.forward(ids[c : min(c + 32, 90)], "none")
    fractions = list(b.prefill(ids[:90], 32))
    assert fractions[-1] == 1.0 and len(fractions) == w.n_layers * 3
    assert b.length == a.length == 90
    la, lb = a.forward(ids[90:], "all"), b.forward(ids[90:], "all")
    if kind == "dense":
        assert torch.equal(a.cache.k[:, :, :100], b.cache.k[:, :, :100]) and torch.equal(la, lb)
    else:
        assert torch.allclose(a.cache.k[:, :, :100].float(), b.cache.k[:, :, :100].float(),
                              atol=0.05, rtol=0.05)  # fmt: skip
        assert float((la.argmax(-1) == lb.argmax(-1)).float().mean()) >= 0.8


def test_concat_keeps_packed_storage() -> None:
    """Fusing q, k, v (or gate and up) of packed parts: the same matrix as packing
    the stacked dense matrix, without unpacking anything."""
    parts = [_w(128, 256, 1), _w(64, 256, 2), _w(64, 256, 3)]
    for cls in (Int4Weight, Int8Weight):
        fused = concat([cls.quantize(p, BF16) for p in parts])
        assert isinstance(fused, cls) and fused.shape == (256, 256)
        whole = torch.cat([cls.quantize(p, BF16).dense(torch.float32) for p in parts])
        assert torch.equal(fused.dense(torch.float32), whole)
    mixed = concat([Int4Weight.quantize(parts[0], BF16), Int8Weight.quantize(parts[1], BF16)])
    assert isinstance(mixed, Int4Weight) and mixed.shape == (192, 256)


def test_compact_gguf_load_never_holds_the_dense_model() -> None:
    """SmolLM2's GGUF in int4: projections are packed as they are read (the HF modules
    keep empty matrices), and the model equals packing after a dense load."""
    from core.models.loading import load_model

    packed = load_model("smollm2-135m", device="cpu", precision="int4")
    dense = load_model("smollm2-135m", device="cpu", precision="bfloat16")
    layer = packed.model.model.layers[0]
    assert layer.mlp.down_proj.weight.numel() == 0 and packed.weights == "int4"
    fast = packed.model.rapidqa_fast
    later = FastWeights(dense.model, "int4")
    for a, b in zip(fast.layers, later.layers, strict=True):
        for x, y in ((a.qkv, b.qkv), (a.gate_up, b.gate_up), (a.down, b.down), (a.o, b.o)):
            assert type(x) is type(y) and torch.equal(x.dense(BF16), y.dense(BF16))
    assert torch.equal(fast.lm_head.dense(BF16), later.lm_head.dense(BF16))


def test_packed_models_count_their_parameters() -> None:
    from core.models.loading import load_model

    packed = load_model("smollm2-135m", device="cpu", precision="int4")
    dense = load_model("smollm2-135m", device="cpu", precision="bfloat16")
    assert packed.parameters == dense.parameters and packed.precision == "int4"
