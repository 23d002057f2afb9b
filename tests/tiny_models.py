"""Tiny random models for the tests: a 2-layer Llama with the SmolLM2 tokenizer, and a
noisy copy of it as a drafter, built from a config in the test (no download)."""

from __future__ import annotations

import copy
import time
from functools import lru_cache

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedModel, PreTrainedTokenizerBase

from core.config import TINY_MODEL
from core.models.loading import LoadedModel, load_tokenizer, place, wrap_loaded


@lru_cache(maxsize=1)
def _smollm2_tokenizer() -> PreTrainedTokenizerBase:
    return load_tokenizer(TINY_MODEL)


def tiny_llama(seed: int = 0, noise: float = 0.0, base: LoadedModel | None = None) -> LoadedModel:
    """A random tiny Llama with the SmolLM2 tokenizer (fp32, CPU).

    `seed` fixes the weights. With `base`, return a copy of it instead, each weight
    plus Gaussian noise of std `noise` × that tensor's std (drawn from `seed`): a
    "noisy drafter" so that both the accept and the reject paths run (greedy
    agreement with the base on random tokens: 69% at noise 0.02, 43% at 0.05, 14% at
    0.1, 2.5% at 0.2). A larger
    `initializer_range` than the default 0.02 keeps the model from repeating one token.
    All tiny models share one (cached) tokenizer object: do not mutate it.
    """
    if noise < 0:
        raise ValueError("noise must be >= 0")
    started = time.perf_counter()
    tokenizer = _smollm2_tokenizer()
    if base is None:
        config = LlamaConfig(
            vocab_size=len(tokenizer),  # 49152
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=128,
            max_position_embeddings=8192,
            initializer_range=0.2,
            tie_word_embeddings=True,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        config._attn_implementation = "sdpa"
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model: PreTrainedModel = LlamaForCausalLM(config)
        spec, name = f"tiny-llama:seed={seed}", f"tiny-llama-{seed}"
    else:
        model = copy.deepcopy(base.model)
        place(model, torch.device("cpu"), torch.float32)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for param in model.parameters():  # a tied embedding appears once
                scale = noise * float(param.float().std()) if param.numel() > 1 else 0.0
                param.add_(torch.randn(param.shape, generator=generator) * scale)
        spec, name = f"{base.spec}+noise={noise}:seed={seed}", f"{base.name}+noise{noise}"
    cpu = torch.device("cpu")
    return wrap_loaded(spec, name, model, tokenizer, cpu, torch.float32, started)
