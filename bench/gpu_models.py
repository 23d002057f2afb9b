"""The models of the GPU projection: real configs (Llama-3.1-8B, Qwen2.5-7B and
their drafters) built with random weights, or tiny for a CPU smoke run; the attention
implementation chosen per run (bench/gpu_projection.py)."""

from __future__ import annotations

from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM

# --------------------------------------------------------------------------- configs

_LLAMA3_ROPE_8B = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8192,
}
_LLAMA3_ROPE_1B = {**_LLAMA3_ROPE_8B, "factor": 32.0}

# Real sizes (from the models' config.json files).
CONFIGS: dict[str, dict[str, Any]] = {
    "llama-3.1-8b": {
        "model_type": "llama",
        "hidden_size": 4096,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "intermediate_size": 14336,
        "vocab_size": 128256,
        "max_position_embeddings": 131072,
        "rope_theta": 500000.0,
        "rope_scaling": _LLAMA3_ROPE_8B,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": False,
    },
    "qwen2.5-7b": {
        "model_type": "qwen2",
        "hidden_size": 3584,
        "num_hidden_layers": 28,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
        "intermediate_size": 18944,
        "vocab_size": 152064,
        "max_position_embeddings": 131072,
        "rope_theta": 1000000.0,
        "rms_norm_eps": 1e-6,
        "use_sliding_window": False,
        "tie_word_embeddings": False,
    },
    "llama-3.2-1b": {
        "model_type": "llama",
        "hidden_size": 2048,
        "num_hidden_layers": 16,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": 64,
        "intermediate_size": 8192,
        "vocab_size": 128256,
        "max_position_embeddings": 131072,
        "rope_theta": 500000.0,
        "rope_scaling": _LLAMA3_ROPE_1B,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": True,
    },
}

# Tiny stand-ins with the same head ratios (GQA groups 4 and 7) and MLP/hidden ratios,
# for a CPU smoke run.
TINY_CONFIGS: dict[str, dict[str, Any]] = {
    "llama-3.1-8b": {
        **CONFIGS["llama-3.1-8b"],
        "hidden_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "intermediate_size": 448,
        "vocab_size": 4008,
    },
    "qwen2.5-7b": {
        **CONFIGS["qwen2.5-7b"],
        "hidden_size": 112,
        "num_hidden_layers": 2,
        "num_attention_heads": 7,
        "num_key_value_heads": 1,
        "intermediate_size": 592,
        "vocab_size": 4752,
    },
    "llama-3.2-1b": {
        **CONFIGS["llama-3.2-1b"],
        "hidden_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "head_dim": 8,
        "intermediate_size": 256,
        "vocab_size": 4008,
    },
}

TARGETS = ("llama-3.1-8b", "qwen2.5-7b")
DRAFTERS: dict[str, tuple[str, ...]] = {
    "llama-3.1-8b": ("self", "llama-3.2-1b"),
    "qwen2.5-7b": ("self",),
}
ATTENTIONS = ("sdpa", "fold")
FOLD_NAME = "rapidqa_fold_gqa"
DEFAULT_MEAN_ACCEPTED = 2.0


def make_config(name: str, tiny: bool) -> Any:
    kwargs = dict((TINY_CONFIGS if tiny else CONFIGS)[name])
    model_type = kwargs.pop("model_type")
    try:
        return AutoConfig.for_model(model_type, **kwargs)
    except Exception:  # a transformers that reads rope settings differently: RoPE's
        kwargs.pop("rope_scaling", None)  # variant does not change a step's cost
        return AutoConfig.for_model(model_type, **kwargs)


def build_model(name: str, tiny: bool, device: torch.device, dtype: torch.dtype) -> Any:
    """A random-weight model on `device` (weights created there, not copied)."""
    config = make_config(name, tiny)
    if tiny:
        config.initializer_range = 0.2  # make the tiny models' logits differ visibly
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(  # type: ignore[no-untyped-call]
            config, dtype=dtype, attn_implementation="sdpa"
        )
    if next(model.parameters()).device.type != device.type:
        model.to(device)
    return model.eval()


def set_attention(model: Any, name: str) -> None:
    """Switch the attention function (the modules read config._attn_implementation)."""
    try:
        model.set_attn_implementation(name)
    except Exception:  # a version without it, or one that refuses a registered name
        model.config._attn_implementation = name
