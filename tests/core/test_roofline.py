"""Tests of bench/roofline.py (formulas on a hand-computable config, bound switching, the
RAPID round projection) and a CPU smoke run of bench/gpu_projection.py (--device cpu --tiny),
which must import nothing but torch, transformers and the standard library."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"


# The bench scripts import each other as top-level modules: their folder is sys.path[0]
# when they run as scripts; here it is put there.
sys.path.insert(0, str(BENCH))


def _load(name: str) -> ModuleType:
    return importlib.import_module(name)


rl = _load("roofline")

# hidden 8, 2 layers, 2 heads, 1 KV head, head_dim 4, MLP 16, vocab 10, untied.
TINY = {
    "hidden_size": 8,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 4,
    "intermediate_size": 16,
    "vocab_size": 10,
    "tie_word_embeddings": False,
}


def test_parameter_counts_by_hand() -> None:
    s = rl.ModelShape.from_config(TINY)
    # q 8·2·4 + k,v 2·8·1·4 + o 2·4·8 = 192; MLP 3·8·16 = 384; norms 2·8 = 16
    assert s.params_per_layer == 192 + 384 + 16 == 592
    assert s.params_nonembedding == 2 * 592 + 8 == 1192
    assert s.params_total == 1192 + 80 + 80  # untied: embedding and head
    assert rl.ModelShape.from_config({**TINY, "tie_word_embeddings": True}).params_total == 1272
    assert s.kv_elements_per_token() == 2 * 2 * 1 * 4
    # Qwen2 carries a QKV bias: (H + 2G)·D per layer
    qwen = rl.ModelShape.from_config({**TINY, "model_type": "qwen2"})
    assert qwen.qkv_bias and qwen.params_per_layer == 592 + (2 + 2) * 4
    # an object config; head_dim and KV heads defaulted from hidden / heads
    obj = SimpleNamespace(**{**TINY, "head_dim": None, "num_key_value_heads": None})
    s2 = rl.ModelShape.from_config(obj)
    assert (s2.head_dim, s2.num_kv_heads) == (4, 2)


def test_smollm2_size() -> None:
    smol = rl.ModelShape.from_config(
        {
            "hidden_size": 576,
            "num_hidden_layers": 30,
            "num_attention_heads": 9,
            "num_key_value_heads": 3,
            "intermediate_size": 1536,
            "vocab_size": 49152,
            "tie_word_embeddings": True,
        }
    )
    assert smol.params_total == 134_515_008  # SmolLM2-135M
    # docs/architecture.md, "Speed": K+V of a 7,000-token context in fp32 is 322 MB
    cost = rl.step_cost(smol, 4, 7000, 1)
    assert cost.kv_read_bytes == pytest.approx(322.56e6)


def test_step_cost_bytes_and_flops_exact() -> None:
    s = rl.ModelShape.from_config(TINY)
    c = rl.step_cost(s, 2, context=100, new_tokens=3)
    assert c.weight_bytes == 2 * (1192 + 80)
    assert c.embedding_bytes == 2 * 3 * 8
    assert c.kv_read_bytes == 2 * 16 * 100
    assert c.kv_write_bytes == 2 * 16 * 3
    assert c.total_bytes == 2544 + 48 + 3200 + 96
    assert c.linear_flops == 2 * 1192 * 3
    assert c.head_flops == 2 * 8 * 10 * 3
    assert c.attention_flops == 4 * 2 * 2 * 4 * 100 * 3
    assert c.total_flops == 7152 + 480 + 19200
    # logits_to_keep=1, a trimmed head of 5 rows, an fp32 KV cache
    c1 = rl.step_cost(s, 2, 100, 3, logits_rows=1, head_rows=5, kv_dtype_bytes=4)
    assert c1.head_flops == 2 * 8 * 5 * 1
    assert c1.weight_bytes == 2 * (1192 + 5 * 8)
    assert c1.kv_read_bytes == 4 * 16 * 100
    with pytest.raises(ValueError):
        rl.step_cost(s, 2, 100, 0)


def test_roofline_bound_switches() -> None:
    s = rl.ModelShape.from_config(TINY)
    c = rl.step_cost(s, 2, 100, 3)
    slow_memory = rl.DeviceSpec("m", bandwidth=1.0, peak_flops=1e12, source="test")
    slow_compute = rl.DeviceSpec("c", bandwidth=1e12, peak_flops=1.0, source="test")
    p = rl.predict(c, slow_memory)
    assert p.bound == "memory" and p.seconds == pytest.approx(c.total_bytes)
    q = rl.predict(c, slow_compute)
    assert q.bound == "compute" and q.seconds == pytest.approx(c.total_flops)
    # A real case: Llama-3.1-8B on a nominal H100 is memory-bound at decode, compute-bound
    # for a 4,096-token block.
    llama = rl.ModelShape.from_config(
        {
            "hidden_size": 4096,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "intermediate_size": 14336,
            "vocab_size": 128256,
        }
    )
    assert 7.9e9 < llama.params_total < 8.1e9
    decode = rl.predict_step(llama, rl.H100_SXM, 2, 8192, 1)
    assert decode.bound == "memory"
    assert 4.5e-3 < decode.seconds < 5.5e-3  # ~16 GB weights + 1 GB KV at 3.35 TB/s
    assert rl.predict_step(llama, rl.H100_SXM, 2, 8192, 4096).bound == "compute"


def test_nominal_devices() -> None:
    assert rl.nominal_device("NVIDIA H100 80GB HBM3") is rl.H100_SXM
    assert rl.nominal_device("NVIDIA H100 PCIe") is rl.H100_PCIE
    assert rl.nominal_device("NVIDIA H200") is rl.H200
    assert rl.nominal_device("NVIDIA A10G") is None
    assert rl.H100_SXM.bandwidth == 3.35e12 and rl.H200.bandwidth == 4.8e12
    assert rl.H100_SXM.peak_flops == rl.H200.peak_flops == 989e12


def test_projection_formula() -> None:
    p = rl.rapid_round_projection(
        t_verify_k=0.012, t_target_1=0.010, t_draft=0.002, gamma=4, mean_accepted=2.5
    )
    assert p.tokens_per_round == 3.5
    assert p.round_s == pytest.approx(4 * 0.002 + 0.012)
    assert p.speedup == pytest.approx(3.5 / 0.020 * 0.010)
    # nothing accepted: a round costs more than a step and yields one token
    none = rl.rapid_round_projection(0.011, 0.010, 0.0005, gamma=4, mean_accepted=0.0)
    assert none.speedup < 1
    # everything accepted, cheap drafts, verify ≈ one step
    big = rl.rapid_round_projection(0.0105, 0.010, 0.0005, gamma=8, mean_accepted=8.0)
    assert big.speedup > 1 and big.speedup == pytest.approx(9 * 0.010 / (8 * 0.0005 + 0.0105))
    with pytest.raises(ValueError):
        rl.rapid_round_projection(0.01, 0.01, 0.001, gamma=2, mean_accepted=3.0)
    with pytest.raises(ValueError):
        rl.rapid_round_projection(0.01, 0.01, 0.001, gamma=0, mean_accepted=0.0)


def test_expected_accepted() -> None:
    assert rl.expected_accepted(0.5, 3) == pytest.approx(0.875)
    assert rl.expected_accepted(1.0, 5) == 5.0
    assert rl.expected_accepted(0.0, 5) == 0.0
    with pytest.raises(ValueError):
        rl.expected_accepted(1.5, 2)


def test_measurements_run() -> None:
    bw = rl.measure_bandwidth("cpu", nbytes=4 * 1024**2, repeat=1)
    assert bw.read > 1e7 and bw.copy > 1e7
    assert rl.measure_flops(device="cpu", n=64, repeat=1) > 1e6


FORBIDDEN = {"faiss", "fitz", "pymupdf", "PySide6", "shiboken6", "sentence_transformers"}
FORBIDDEN_FIRST_PARTY = {"core", "app"}


def _imported_modules(importtime_stderr: str) -> set[str]:
    """Top-level module names from `python -X importtime` output."""
    names = set()
    for line in importtime_stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name and name != "package":
                names.add(name.split(".")[0])
    return names


def test_gpu_speed_tiny_cpu_run(tmp_path: Path) -> None:
    out = tmp_path / "gpu_speed.json"
    acceptance = tmp_path / "acc.json"
    acceptance.write_text(json.dumps({"modes": {"rapid": {"mean_accepted_length": 1.5}}}))
    cmd = [
        sys.executable,
        "-X",
        "importtime",
        str(BENCH / "gpu_projection.py"),
        "--device", "cpu", "--tiny",
        "--contexts", "64,128", "--drafter-context", "32",
        "--gamma", "2,4", "--repeat", "2", "--warmup", "1",
        "--acceptance", str(acceptance),
        "--json", str(out),
    ]  # fmt: skip
    t0 = time.monotonic()
    proc = subprocess.run(
        cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert elapsed < 60, f"tiny CPU run took {elapsed:.0f} s"

    imported = _imported_modules(proc.stderr)
    assert "torch" in imported and "transformers" in imported
    assert not imported & FORBIDDEN, imported & FORBIDDEN
    assert not imported & FORBIDDEN_FIRST_PARTY, imported & FORBIDDEN_FIRST_PARTY

    assert "PROJECTION: step costs measured with random weights on cpu" in proc.stdout
    data = json.loads(out.read_text())
    for key in ("projection_header", "versions", "device", "settings", "acceptance", "models"):
        assert key in data
    assert data["device"].startswith("cpu")
    # the preallocated cache gives transformers' own DynamicCache logits, so it was used
    assert data["settings"]["cache"] == "prealloc", data["notes"]
    diffs = data["checks"]
    assert len(diffs) == 2 and all(d < 1e-4 for d in diffs.values()), diffs
    assert data["acceptance"]["mean_accepted"] == 1.5
    assert "modes.rapid" in data["acceptance"]["source"]
    # the summary: one series per target/drafter pair, one row per context
    assert set(data["models"]) == {
        "llama-3.1-8b",
        "llama-3.1-8b + llama-3.2-1b drafter",
        "qwen2.5-7b",
    }
    for rows in data["models"].values():
        assert [r["context"] for r in rows] == [64, 128]
        for r in rows:
            assert r["projected_speedup"] > 0 and r["fold_projected_speedup"] > 0
            assert r["gamma"] in (2, 4) and r["mean_accepted"] <= r["gamma"]
            assert r["roofline_bound"] in ("memory", "compute")
    # the details: every measurement
    assert set(data["details"]) == {"llama-3.1-8b", "qwen2.5-7b"}
    assert set(data["details"]["llama-3.1-8b"]["drafters"]) == {"self", "llama-3.2-1b"}
    for model in data["details"].values():
        for ctx in model["contexts"]:
            for attn in ("sdpa", "fold"):
                assert ctx["target_1tok_ms"][attn] > 0
                assert set(ctx["verify_ms"][attn]) == {"3", "5"}
        assert {r["mean_accepted"] for r in model["projection"]} == {1.5}
        # the folded-GQA attention computes what transformers' SDPA path computes
        check = model["check"]
        assert check["max_abs_logit_diff"] < 1e-3 * max(1.0, check["max_abs_logit"])


def test_gpu_speed_acceptance_files(tmp_path: Path) -> None:
    gs = _load("gpu_timing")
    gp = _load("gpu_projection")
    f = tmp_path / "a.json"
    f.write_text("2.5")
    assert gs.load_acceptance(str(f)).mean_accepted == 2.5
    f.write_text(json.dumps({"mean_accepted_length": 1.25}))
    acc = gs.load_acceptance(str(f))
    assert acc.mean_accepted == 1.25 and acc.at(1) == 1.0  # capped at gamma
    f.write_text(json.dumps({"modes": {"sd": {"mean_accepted_length": 0.7}, "target": {}}}))
    assert gs.load_acceptance(str(f)).mean_accepted == 0.7
    f.write_text(json.dumps({"other": 1}))
    with pytest.raises(ValueError):
        gs.load_acceptance(str(f))
    assert gp.parse_ints("2..5") == [2, 3, 4, 5] and gp.parse_ints("2,8") == [2, 8]
    assert gs.Acceptance(None, 0.5, "x").at(3) == pytest.approx(0.875)


def test_roofline_projection_pays_off_more_at_longer_contexts(tmp_path: Path) -> None:
    """bench/roofline_projection.py: at the same acceptance, a same-size drafter on a
    4K context gains as the target's KV grows; a perfect drafter approaches its bound."""
    module = _load("roofline_projection")
    out = tmp_path / "p.json"
    assert module.main(["--accept-rate", "0.9", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    self_llama = [r for r in rows if r["target"] == "llama-3.1-8b" and r["drafter"] == "self"]
    speedups = [r["projected_speedup"] for r in self_llama]
    assert [r["context"] for r in self_llama] == sorted(r["context"] for r in self_llama)
    assert speedups == sorted(speedups) and speedups[-1] > 1.0
    small = [r for r in rows if r["drafter"] == "llama-3.2-1b"]
    assert all(s["projected_speedup"] > r["projected_speedup"]
               for s, r in zip(small, self_llama, strict=True))  # fmt: skip
