"""GGUF models: torch dequantization against gguf-py (the oracle), the streaming loader
against transformers' own GGUF loader, the content-keyed conversion cache, and bad
files that must fail clearly without leaving anything half-written."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

from core.errors import ModelError
from core.models import gguf as gguf_model
from core.models.gguf_quants import dequantize_tensor, supported_in_torch
from core.models.loading import load_model, models_dir
from core.models.packaged import OFFLINE_MODELS, offline_gguf

Q = GGMLQuantizationType
# Byte ranges of each block format's fp16 fields (the rest are codes and 6-bit scales).
FP16_FIELDS = {
    Q.Q4_0: [0], Q.Q4_1: [0, 2], Q.Q5_0: [0], Q.Q5_1: [0, 2], Q.Q8_0: [0],
    Q.Q4_K: [0, 2], Q.Q5_K: [0, 2], Q.Q6_K: [208],
}  # fmt: skip


def _random_blocks(qtype: GGMLQuantizationType, n: int, seed: int) -> np.ndarray:
    """n blocks of random bytes (every code and scale bit pattern) with finite fp16
    scales, as a GGUF would hold them."""
    rng = np.random.default_rng(seed)
    block_bytes = GGML_QUANT_SIZES[qtype][1]
    raw = rng.integers(0, 256, (n, block_bytes), dtype=np.uint8)
    for at in FP16_FIELDS[qtype]:
        scale = rng.normal(0, 0.05, n).astype(np.float16)
        raw[:, at : at + 2] = scale.view(np.uint8).reshape(n, 2)
    return raw


@pytest.mark.parametrize("qtype", list(FP16_FIELDS), ids=lambda q: q.name)
def test_block_formats_match_gguf_py(qtype: GGMLQuantizationType) -> None:
    """Bit-identical to gguf-py's numpy dequantizer on random blocks, in fp32; bf16 is
    the fp32 result rounded once. 5,000 blocks span several torch chunks."""
    assert supported_in_torch(qtype)
    block_elems = GGML_QUANT_SIZES[qtype][0]
    raw = _random_blocks(qtype, 5000, seed=int(qtype))
    want = torch.from_numpy(gguf.quants.dequantize(raw, qtype).reshape(-1, 32))
    shape = (5000 * block_elems // 32, 32)
    got = dequantize_tensor(raw.reshape(-1), qtype, shape, torch.float32)
    assert torch.equal(got, want)
    assert torch.equal(dequantize_tensor(raw, qtype, shape, torch.bfloat16), want.bfloat16())


@pytest.mark.parametrize("qtype", [Q.F32, Q.F16, Q.BF16], ids=lambda q: q.name)
def test_float_formats(qtype: GGMLQuantizationType) -> None:
    values = torch.randn(64, 48, generator=torch.Generator().manual_seed(0))
    raw = values.to({Q.F32: torch.float32, Q.F16: torch.float16, Q.BF16: torch.bfloat16}[qtype])
    got = dequantize_tensor(raw.view(torch.uint8).numpy(), qtype, (64, 48), torch.float32)
    assert torch.equal(got, raw.float())


def test_wrong_length_is_an_error() -> None:
    raw = _random_blocks(Q.Q8_0, 4, seed=0)
    with pytest.raises(ValueError, match="holds 128 values"):
        dequantize_tensor(raw, Q.Q8_0, (3, 32), torch.float32)


# --- the loader on the real SmolLM2 GGUF ----------------------------------------------


@pytest.fixture(scope="module")
def smollm2_gguf() -> Path:
    return offline_gguf(OFFLINE_MODELS["smollm2-135m"], models_dir())


@pytest.mark.slow
def test_streaming_load_equals_transformers(smollm2_gguf: Path) -> None:
    """Every weight equals what transformers' own GGUF loader makes (fp32), Llama's
    Q/K row order and the tied head included."""
    from transformers import AutoModelForCausalLM

    loaded = load_model("smollm2-135m", device="cpu", precision="float32").model
    reference = AutoModelForCausalLM.from_pretrained(
        str(smollm2_gguf.parent), gguf_file=smollm2_gguf.name, dtype=torch.float32
    )
    ours, theirs = loaded.state_dict(), reference.state_dict()
    assert set(ours) == set(theirs)
    for name, value in theirs.items():
        assert torch.equal(ours[name], value), name
    assert loaded.lm_head.weight.data_ptr() == loaded.model.embed_tokens.weight.data_ptr()


@pytest.mark.slow
def test_conversion_in_a_fresh_cache(
    smollm2_gguf: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """First use converts (config, tokenizer, tensor table) into a folder named by the
    file's sha256; a crashed conversion's stale temp folder is removed, a fresh one
    (maybe another process at work) is left; the next load only loads weights."""
    parent = tmp_path / "models"
    monkeypatch.setenv("RAPIDQA_MODEL_CACHE", str(parent))
    stale, fresh = parent / ".tmp-gguf-v1-crashed", parent / ".tmp-gguf-v1-running"
    for leftover in (stale, fresh):
        leftover.mkdir(parents=True)
        (leftover / "config.json").write_text("{}")
    os.utime(stale, (time.time() - 7200,) * 2)
    stages: list[str] = []
    first = load_model(
        str(smollm2_gguf), device="cpu", precision="bfloat16",
        on_progress=lambda n, st, d, t: stages.append(st),
    )  # fmt: skip
    assert {"checking", "reading the tokenizer", "loading weights"} <= set(stages)
    sha = OFFLINE_MODELS["smollm2-135m"].sha256
    folder = parent / f"gguf-v1-{sha[:16]}"
    assert (folder / gguf_model.TABLE).is_file() and (folder / "tokenizer.json").is_file()
    assert not stale.exists() and fresh.exists()
    stages.clear()
    again = load_model(
        str(smollm2_gguf), device="cpu", precision="bfloat16",
        on_progress=lambda n, st, d, t: stages.append(st),
    )  # fmt: skip
    assert set(stages) == {"loading weights"}  # the hash is remembered, the folder reused
    ids = torch.tensor([[1, 504, 3458, 282]])
    with torch.no_grad():
        assert torch.equal(first.model(ids).logits, again.model(ids).logits)


# --- bad files --------------------------------------------------------------------


def _nothing_written(cache: Path) -> bool:
    parent = cache / "models"
    return not list(parent.glob("gguf-v1-*")) and not list(parent.glob(".tmp-*"))


def test_not_a_gguf(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RAPIDQA_MODEL_CACHE", str(tmp_path / "cache" / "models"))
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(ModelError, match=r"not a readable GGUF|cannot run"):
        load_model(str(junk), device="cpu")
    assert _nothing_written(tmp_path / "cache")


def test_truncated_gguf(
    smollm2_gguf: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A partial download: the header is there, the weights are cut off."""
    monkeypatch.setenv("RAPIDQA_MODEL_CACHE", str(tmp_path / "cache" / "models"))
    cut = tmp_path / "partial.gguf"
    with smollm2_gguf.open("rb") as f:
        cut.write_bytes(f.read(smollm2_gguf.stat().st_size // 2))
    with pytest.raises(ModelError, match=r"truncated|corrupt") as info:
        load_model(str(cut), device="cpu")
    assert "reinstall" in str(info.value) or "Download" in str(info.value)
    assert _nothing_written(tmp_path / "cache")


def test_gguf_of_another_architecture(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A valid GGUF of an architecture RapidQA cannot run (here a made-up one)."""
    monkeypatch.setenv("RAPIDQA_MODEL_CACHE", str(tmp_path / "cache" / "models"))
    path = tmp_path / "other.gguf"
    writer = gguf.GGUFWriter(str(path), "rwkv-nonesuch")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((8, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ModelError, match="cannot run") as info:
        load_model(str(path), device="cpu")
    assert "rwkv-nonesuch" in str(info.value)
    assert _nothing_written(tmp_path / "cache")


def test_changed_file_after_conversion(
    smollm2_gguf: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The loader refuses a file whose size no longer matches its conversion."""
    folder = gguf_model.converted_dir(models_dir(), OFFLINE_MODELS["smollm2-135m"].sha256)
    load_model("smollm2-135m", device="cpu")  # converted (once, in the user cache)
    other = tmp_path / "other.gguf"
    shutil.copyfile(smollm2_gguf, other)
    with other.open("ab") as f:
        f.write(b"\0" * 32)
    with pytest.raises(ModelError, match="changed since it was converted"):
        gguf_model.load(folder, other, torch.float32)
