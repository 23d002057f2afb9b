"""Step costs of RAPID's kernels on a GPU at long context, with random-weight models built
from real configs (Llama-3.1-8B, Qwen2.5-7B), and the RAPID speedup they imply at a given
acceptance: a projection through transformers' forward. The engine itself is timed
by bench/gpu_speed.py.

    python bench/gpu_projection.py [--model llama-3.1-8b|qwen2.5-7b|all]
        [--contexts 8192,16384,32768,65536,131072] [--drafter-context 4096]
        [--gamma 2..8] [--acceptance FILE.json | --mean-accepted X | --accept-rate A]
        [--compile] [--repeat 10] [--json PATH]
    python bench/gpu_projection.py --device cpu --tiny --json OUT.json     # a smoke run, seconds

Imports only torch, transformers and the standard library (plus `bench/roofline.py`,
imported from the script's folder), so it runs on a GPU machine that has none of RapidQA's
other dependencies.
Written against the transformers 5.x cache API as found in 5.23 and kept to what 5.17
also has (see `PreallocLayer`).

What it measures, per target model and context L (bf16, SDPA attention):

* target 1-token step: one forward of 1 token over L cached tokens;
* verify of gamma drafts: one forward of k = gamma + 1 tokens over L, logits for all k;
* drafter step: one 1-token forward of the drafter at `--drafter-context` (RAPID's
  drafter reads only the retrieved ~4K tokens): the target itself (self-speculation, the
  paper's main setting) and, for Llama, Llama-3.2-1B (a smaller drafter, same vocabulary).

Each time is the median of `--repeat` CUDA-synchronised runs after warm-up; the cache is
rolled back to L after every run. The KV cache is not prefilled (too slow at 128K): each
layer's keys and values are random tensors of shape (1, kv_heads, L, head_dim) in a
preallocated buffer (`--cache prealloc`, a DynamicCache of `PreallocLayer`s: appending
is a slice copy, as in a serving engine). Weights are random too; neither changes the
cost of a step. Before measuring, each model's logits through that cache are checked
against transformers' own DynamicCache (`checks` in the JSON); if that fails on this
transformers version, the run falls back to the DynamicCache with a note. `--cache
dynamic` forces it: its `torch.cat` copies the whole KV every step (what HF `generate`
pays), which inflates every target step at long context.

Time and memory on an H100: the model is built in seconds; each context takes ~10-30 s
(2 variants × 8 forwards × (3 + 10) runs); the default run (2 targets, 5 contexts,
gamma 2..8) about 3-5 min. Peak memory: Llama-3.1-8B at 128K ≈ 16 GB weights + 16 GB
KV + the verify's `repeat_kv` copy of one layer's KV (2 GB).

Attention variants (both measured; the table shows both):

* `sdpa`: transformers' own SDPA path, as shipped. A 1-token step runs SDPA with GQA
  (no mask); a k-token verify carries an explicit mask, and transformers then copies the
  KV heads for grouped-query attention (`repeat_kv`): num_heads / kv_heads times the KV
  traffic (4× for Llama-3.1-8B, 7× for Qwen2.5-7B).
* `fold`: the same SDPA call with the query heads that share a KV head folded into the
  query-length axis (as RapidQA's CPU kernel does), so each KV row is read once. What an
  engine with a GQA-aware verify kernel (FlashAttention, vLLM) would pay.

Projection: for each context, drafter, variant and gamma, `rapid_round_projection`
(bench/roofline.py): tokens per round = mean accepted + 1; round time = gamma · t_draft +
t_verify(gamma + 1); speedup = (tokens per round / round time) · t_target_1. The mean
accepted length comes from `--acceptance` (a JSON written by the CPU benchmarks:
`{"mean_accepted_length": X}`, `{"modes": {"rapid": {"mean_accepted_length": X}}}` or a
bare number; used for every gamma, capped at gamma), `--accept-rate A` (each draft
accepted independently with probability A: E = A(1 - A^gamma)/(1 - A)), or
`--mean-accepted` (default 2.0, a placeholder, not a measurement). The best gamma is
reported.

JSON (`--json`): `models` maps a series label (the target's name for self-speculation,
"<target> + <drafter> drafter" otherwise) to one row per context (the printed table:
`context`, `projected_speedup`, `fold_projected_speedup`, step times, roofline ...);
`details` holds every measurement per target (all gammas, both attention variants, the
roofline predictions with nominal and measured figures); `device` is the device's name.

`--compile` also times the 1-token step under `torch.compile(mode="reduce-overhead")`
where that works (each context is a recompile, ~1 min for an 8B model); failures are
printed as a note and skipped.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import roofline as rl  # bench/roofline.py: the script's folder is on sys.path
import torch
import torch.nn.functional as F
import transformers
from transformers import AutoConfig, AutoModelForCausalLM, DynamicCache
from transformers.cache_utils import DynamicLayer

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


# --------------------------------------------------------------------------- KV cache


class PreallocLayer(DynamicLayer):  # type: ignore[no-untyped-call]
    """A DynamicCache layer over a preallocated buffer: appending is a slice copy, rolling
    back is free, and `keys`/`values` are views of the first `length` rows.

    Written against the transformers 5.x layer interface (5.17 and 5.23): `update` takes
    `*args, **kwargs` (5.17 passes `cache_kwargs`), `get_mask_sizes` accepts a query length
    (5.23) or a `cache_position` tensor (older 5.x). Everything else (`get_seq_length`,
    `is_sliding`, offloading hooks) is DynamicLayer's or overridden here.
    """

    _layer_type = None  # never register in transformers' layer-type mappings
    is_sliding = False
    is_compileable = False

    def __init__(self, k_buf: torch.Tensor, v_buf: torch.Tensor, length: int) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.k_buf, self.v_buf = k_buf, v_buf
        self.dtype, self.device = k_buf.dtype, k_buf.device
        self.is_initialized = True
        self.length = 0
        self.set_length(length)

    def set_length(self, length: int) -> None:
        if not 0 <= length <= self.k_buf.shape[2]:
            raise ValueError(f"length {length} outside the buffer (0..{self.k_buf.shape[2]})")
        self.length = length
        self.keys = self.k_buf[:, :, :length]
        self.values = self.v_buf[:, :, :length]

    def lazy_initialization(self, *args: Any, **kwargs: Any) -> None:
        del args, kwargs  # the buffers exist from the start

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        del args, kwargs
        start = self.length
        end = start + int(key_states.shape[-2])
        if end > self.k_buf.shape[2]:
            raise RuntimeError(f"KV buffer full: {end} > {self.k_buf.shape[2]}")
        self.k_buf[:, :, start:end].copy_(key_states)
        self.v_buf[:, :, start:end].copy_(value_states)
        self.set_length(end)
        return self.k_buf[:, :, :end], self.v_buf[:, :, :end]

    def get_seq_length(self, *args: Any, **kwargs: Any) -> int:
        return self.length

    def get_mask_sizes(self, query: int | torch.Tensor, *args: Any) -> tuple[int, int]:
        q = int(query.shape[0]) if isinstance(query, torch.Tensor) else int(query)
        return self.length + q, 0

    def crop(self, tokens: int) -> None:
        """Negative: drop that many tokens (5.23's convention); positive: keep that many."""
        self.set_length(self.length + tokens if tokens < 0 else min(tokens, self.length))


@dataclass
class KV:
    """A KV cache filled with random K/V up to `context`, rolled back there after a step.

    kind "prealloc": a DynamicCache of PreallocLayers (appending is a slice copy).
    kind "dynamic": transformers' own DynamicCache, as `generate` uses it: each step
    `torch.cat`s the whole cache (copies all of it), rolled back with `crop(-n)` (the
    convention both 5.17 and 5.23 accept). Only a fallback and a comparison point.
    """

    cache: Any
    layers: list[PreallocLayer]
    context: int
    kind: str = "prealloc"

    def rollback(self) -> None:
        if self.kind == "dynamic":
            extra = int(self.cache.get_seq_length()) - self.context
            if extra > 0:
                self.cache.crop(-extra)
            return
        for layer in self.layers:
            layer.set_length(self.context)


CACHE_KINDS = ("prealloc", "dynamic")


def make_kv(
    model: Any,
    context: int,
    extra: int,
    device: torch.device,
    kind: str = "prealloc",
    seed: int | None = None,
) -> KV:
    """Random keys/values (1, kv_heads, context, head_dim) per layer, `extra` free rows
    (prealloc). `seed` makes the values reproducible (for comparing cache kinds)."""
    shape = rl.ModelShape.from_config(model.config)
    dtype = next(model.parameters()).dtype
    gen = None
    if seed is not None:
        gen = torch.Generator(device=device).manual_seed(seed)
    size = context + (extra if kind == "prealloc" else 0)
    bufs: list[tuple[torch.Tensor, torch.Tensor]] = []
    for _ in range(shape.num_layers):
        pair = []
        for _kv in range(2):
            # drawn contiguous, then copied: the same values for both cache kinds
            rand = torch.randn(
                1, shape.num_kv_heads, context, shape.head_dim, generator=gen, device=device
            ).to(dtype)
            if kind == "dynamic":
                pair.append(rand)
                continue
            buf = torch.empty(
                1, shape.num_kv_heads, size, shape.head_dim, dtype=dtype, device=device
            )
            buf[:, :, :context].copy_(rand)
            pair.append(buf)
            del rand
        bufs.append((pair[0], pair[1]))
    cache = DynamicCache()
    if kind == "dynamic":
        for i, (k, v) in enumerate(bufs):
            cache.update(k, v, i)
        return KV(cache=cache, layers=[], context=context, kind=kind)
    layers = [PreallocLayer(k, v, context) for k, v in bufs]
    cache.layers = list(layers)
    if hasattr(cache, "layer_class_to_replicate"):
        cache.layer_class_to_replicate = None  # all layers exist; never append
    return KV(cache=cache, layers=layers, context=context, kind=kind)


# --------------------------------------------------------------------------- attention


def fold_gqa_attention(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """SDPA without copying KV heads: the `rep` query heads of each KV head become `rep`
    blocks of query rows, (b, H, q, d) → (b, G, rep·q, d), and the mask's rows are
    repeated to match; output reshaped back to transformers' (b, q, H, d)."""
    del dropout, is_causal, kwargs  # eval only; causality comes from the mask
    b, h, q, d = query.shape
    g, s = key.shape[1], key.shape[2]
    rep = h // g
    mask = attention_mask
    if mask is not None and mask.dim() == 4 and mask.shape[1] != 1:
        raise ValueError("fold_gqa_attention needs a mask shared by all heads")
    if mask is None and q > 1:  # causal, the q new tokens last
        rows = torch.arange(s - q, s, device=query.device)[:, None]
        mask = (torch.arange(s, device=query.device)[None, :] <= rows)[None, None]
    folded = query.reshape(b, g, rep * q, d)
    if mask is not None and rep > 1:
        mask = _folded_mask(mask, b, q, s, rep)
    out = F.scaled_dot_product_attention(folded, key, value, attn_mask=mask, scale=scaling)
    return out.reshape(b, h, q, d).transpose(1, 2).contiguous(), None


_FOLDED: list[Any] = [None, None]  # [the mask transformers passed, its folded copy]


def _folded_mask(mask: torch.Tensor, b: int, q: int, s: int, rep: int) -> torch.Tensor:
    """Row r·q + i of the result is row i of `mask`. One forward passes the same mask
    object to every layer: fold it once (the reference held keeps the object alive, so
    an identity match cannot be a recycled tensor)."""
    if _FOLDED[0] is mask and _FOLDED[1] is not None and _FOLDED[1].shape[2] == rep * q:
        return _FOLDED[1]  # type: ignore[no-any-return]
    folded = mask.expand(b, 1, q, s).repeat(1, 1, rep, 1)
    _FOLDED[0], _FOLDED[1] = mask, folded
    return folded


def register_fold_attention() -> str | None:
    """Register `fold_gqa_attention` (and SDPA's mask builder) under FOLD_NAME; returns
    a note when this transformers version refuses."""
    try:
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

        AttentionInterface.register(FOLD_NAME, fold_gqa_attention)
        AttentionMaskInterface.register(FOLD_NAME, sdpa_mask)
    except Exception as err:  # an API this transformers lacks
        return f"fold attention unavailable ({type(err).__name__}: {err})"
    return None


# --------------------------------------------------------------------------- timing


class Timer:
    """Median wall time of a callable: CUDA events on a GPU, perf_counter on a CPU."""

    def __init__(self, device: torch.device, warmup: int, repeat: int) -> None:
        self.device, self.warmup, self.repeat = device, warmup, repeat

    def __call__(self, fn: Callable[[], object]) -> float:
        for _ in range(self.warmup):
            fn()
        times: list[float] = []
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            for _ in range(self.repeat):
                start = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
                end = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
                start.record()
                fn()
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end) / 1e3)
        else:
            for _ in range(self.repeat):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
        return float(statistics.median(times))


def step_fn(
    model: Any, kv: KV, k: int, device: torch.device, runner: Any | None = None
) -> Callable[[], object]:
    """One forward of k tokens at the KV's context (logits for all k), then roll back."""
    ids = torch.randint(0, int(model.config.vocab_size), (1, k), device=device)
    pos = torch.arange(kv.context, kv.context + k, device=device)[None]
    call = model if runner is None else runner

    def run() -> object:
        with torch.inference_mode():
            out = call(input_ids=ids, position_ids=pos, past_key_values=kv.cache, use_cache=True)
        kv.rollback()
        return out

    return run


def verify_logits(model: Any, kv: KV, k: int, device: torch.device, seed: int = 0) -> torch.Tensor:
    g = torch.Generator(device="cpu").manual_seed(seed)
    ids = torch.randint(0, int(model.config.vocab_size), (1, k), generator=g).to(device)
    pos = torch.arange(kv.context, kv.context + k, device=device)[None]
    with torch.inference_mode():
        out = model(input_ids=ids, position_ids=pos, past_key_values=kv.cache, use_cache=True)
    kv.rollback()
    logits: torch.Tensor = out.logits.float()
    return logits


# --------------------------------------------------------------------------- acceptance


@dataclass(frozen=True)
class Acceptance:
    """How many drafts a round accepts: a fixed mean (capped at gamma) or an iid rate."""

    mean_accepted: float | None
    rate: float | None
    source: str

    def at(self, gamma: int) -> float:
        if self.rate is not None:
            return float(rl.expected_accepted(self.rate, gamma))
        assert self.mean_accepted is not None
        return min(self.mean_accepted, float(gamma))


def load_acceptance(path: str) -> Acceptance:
    """A bare number, {"mean_accepted_length": X}, or a speed-bench report
    {"modes": {MODE: {"mean_accepted_length": X}}} (rapid preferred, then sd)."""
    data = json.loads(Path(path).read_text())
    if isinstance(data, int | float) and not isinstance(data, bool):
        return Acceptance(float(data), None, path)
    if isinstance(data, dict):
        value = data.get("mean_accepted_length")
        if isinstance(value, int | float):
            return Acceptance(float(value), None, f"{path}: mean_accepted_length")
        modes = data.get("modes")
        if isinstance(modes, dict):
            order = ["rapid", "sd", *[m for m in modes if m not in ("rapid", "sd")]]
            for mode in order:
                entry = modes.get(mode)
                if isinstance(entry, dict) and isinstance(
                    entry.get("mean_accepted_length"), int | float
                ):
                    value = float(entry["mean_accepted_length"])
                    return Acceptance(value, None, f"{path}: modes.{mode}.mean_accepted_length")
    raise ValueError(f"{path}: no mean_accepted_length found")


# --------------------------------------------------------------------------- the run


@dataclass
class Settings:
    device: torch.device
    dtype: torch.dtype
    tiny: bool
    contexts: list[int]
    drafter_context: int
    gammas: list[int]
    acceptance: Acceptance
    timer: Timer
    compile: bool
    nominal: Any  # rl.DeviceSpec | None
    measured: Any  # rl.DeviceSpec
    attentions: list[str] = field(default_factory=lambda: list(ATTENTIONS))
    cache: str = "prealloc"
    notes: list[str] = field(default_factory=list)
    checks: dict[str, float] = field(default_factory=dict)

    def note(self, text: str) -> None:
        print("note: " + text, flush=True)
        self.notes.append(text)


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _ms(seconds: float) -> float:
    return round(seconds * 1e3, 4)


def _predictions(shape: Any, s: Settings, context: int, k: int) -> dict[str, Any]:
    dtype_bytes = torch.finfo(s.dtype).bits // 8
    cost = rl.step_cost(shape, dtype_bytes, context, k)
    out: dict[str, Any] = {"bytes": cost.total_bytes, "flops": cost.total_flops}
    for key, spec in (("nominal", s.nominal), ("measured", s.measured)):
        if spec is not None:
            p = rl.predict(cost, spec)
            out[key] = {"ms": _ms(p.seconds), "bound": p.bound}
    return out


def _predicted_ms(pred: dict[str, Any]) -> tuple[float, str]:
    best = pred.get("nominal") or pred["measured"]
    return float(best["ms"]), str(best["bound"])


def measure_drafter(target: Any, name: str, drafter: str, s: Settings) -> dict[str, Any]:
    """One 1-token drafter step at the drafter context (sdpa)."""
    model = target if drafter == "self" else build_model(drafter, s.tiny, s.device, s.dtype)
    label = name if drafter == "self" else drafter
    set_attention(model, "sdpa")
    kv = make_kv(model, s.drafter_context, 16, s.device, s.cache)
    t = s.timer(step_fn(model, kv, 1, s.device))
    shape = rl.ModelShape.from_config(model.config, label)
    pred = _predictions(shape, s, s.drafter_context, 1)
    result = {
        "drafter": drafter,
        "model": label,
        "context": s.drafter_context,
        "step_ms": _ms(t),
        "predicted": pred,
        "params": shape.params_total,
    }
    del kv
    if model is not target:
        del model
    _free(s.device)
    return result


_COMPILED: dict[int, Any] = {}  # id(model) -> its torch.compile wrapper


def try_compile(model: Any, kv: KV, s: Settings) -> tuple[float | None, str | None]:
    """The 1-token step under torch.compile(mode="reduce-overhead"), or a note why not."""
    try:
        import torch._dynamo

        for knob in ("cache_size_limit", "recompile_limit"):
            if hasattr(torch._dynamo.config, knob):
                setattr(torch._dynamo.config, knob, 64)
        for layer in kv.layers:
            torch._dynamo.mark_static_address(layer.k_buf)
            torch._dynamo.mark_static_address(layer.v_buf)
        runner = _COMPILED.get(id(model))
        if runner is None:
            runner = torch.compile(model, mode="reduce-overhead")
            _COMPILED[id(model)] = runner
        fn = step_fn(model, kv, 1, s.device, runner)
        t0 = time.perf_counter()
        fn()
        compile_s = time.perf_counter() - t0
        t = s.timer(fn)
        print(
            f"    compiled 1-token step at {kv.context}: {t * 1e3:.2f} ms "
            f"(first call {compile_s:.0f} s)",
            flush=True,
        )
        return t, None
    except Exception as err:  # compile is optional
        return None, f"--compile skipped at {kv.context}: {type(err).__name__}: {err}"[:400]


def measure_target(name: str, s: Settings) -> dict[str, Any]:
    print(f"[{name}] building (random weights, {s.dtype}) ...", flush=True)
    t0 = time.perf_counter()
    model = build_model(name, s.tiny, s.device, s.dtype)
    shape = rl.ModelShape.from_config(model.config, name)
    probe_cache(model, name, s)
    print(
        f"[{name}] {shape.params_total / 1e6:,.1f} M params, built in "
        f"{time.perf_counter() - t0:.1f} s",
        flush=True,
    )
    result: dict[str, Any] = {
        "model": name,
        "config": {k: v for k, v in (TINY_CONFIGS if s.tiny else CONFIGS)[name].items()},
        "params_total": shape.params_total,
        "params_nonembedding": shape.params_nonembedding,
        "kv_bytes_per_token": shape.kv_elements_per_token() * (torch.finfo(s.dtype).bits // 8),
        "drafters": {},
        "contexts": [],
    }
    for drafter in DRAFTERS[name]:
        d = measure_drafter(model, name, drafter, s)
        result["drafters"][drafter] = d
        print(
            f"[{name}] drafter {d['model']} step @ {s.drafter_context}: {d['step_ms']:.2f} ms",
            flush=True,
        )
    ks = sorted({g + 1 for g in s.gammas})
    compile_broken = False
    for context in s.contexts:
        row: dict[str, Any] | None = None
        try:
            row = measure_context(model, shape, context, ks, s)
        except Exception as err:  # e.g. out of memory at the longest context: go on
            s.note(f"{name} at {context}: {type(err).__name__}: {err}"[:400])
        if row is None:
            _free(s.device)  # outside the except block, which holds the failed frame's KV
            continue
        if s.compile and not compile_broken:
            kv = make_kv(model, context, 2, s.device, s.cache)
            t, note = try_compile(model, kv, s)
            del kv
            if note is not None:
                s.note(note)
                compile_broken = True
            row["compiled_1tok_ms"] = None if t is None else _ms(t)
        one = row["target_1tok_ms"]["sdpa"]
        pred_ms, bound = _predicted_ms(row["predicted_1tok"])
        verify_txt = ", ".join(f"{k}:{row['verify_ms']['sdpa'][str(k)] / one:.2f}" for k in ks)
        print(
            f"[{name}] L={context}: 1-tok {one:.2f} ms (roofline {pred_ms:.2f} ms, {bound}); "
            f"verify/1-tok by k (sdpa) {verify_txt}",
            flush=True,
        )
        result["contexts"].append(row)
        _free(s.device)
    if "fold" in s.attentions:
        result["check"] = fold_check(model, s)
    result["cache"] = s.cache
    if s.device.type == "cuda":
        result["max_memory_allocated_bytes"] = torch.cuda.max_memory_allocated(s.device)
        torch.cuda.reset_peak_memory_stats(s.device)
    _COMPILED.pop(id(model), None)
    del model
    _free(s.device)
    result["projection"] = project(result, s)
    return result


def measure_context(
    model: Any, shape: Any, context: int, ks: list[int], s: Settings
) -> dict[str, Any]:
    """Target 1-token step and verify of each k at `context`, for each attention variant."""
    kv = make_kv(model, context, max(ks) + 1, s.device, s.cache)
    row: dict[str, Any] = {
        "context": context,
        "kv_cache_bytes": context
        * shape.kv_elements_per_token()
        * (torch.finfo(s.dtype).bits // 8),
        "target_1tok_ms": {},
        "verify_ms": {},
        "predicted_1tok": _predictions(shape, s, context, 1),
        "predicted_verify": {str(k): _predictions(shape, s, context, k) for k in ks},
    }
    for attn in list(s.attentions):
        set_attention(model, FOLD_NAME if attn == "fold" else "sdpa")
        try:
            row["target_1tok_ms"][attn] = _ms(s.timer(step_fn(model, kv, 1, s.device)))
            row["verify_ms"][attn] = {
                str(k): _ms(s.timer(step_fn(model, kv, k, s.device))) for k in ks
            }
        except Exception as err:
            if attn == "sdpa":
                raise
            kv.rollback()
            s.note(f"fold attention failed, dropped: {type(err).__name__}: {err}"[:400])
            s.attentions.remove(attn)
    set_attention(model, "sdpa")
    del kv
    return row


def probe_cache(model: Any, name: str, s: Settings) -> None:
    """Check that the PreallocLayer cache gives transformers' own DynamicCache logits;
    fall back to the DynamicCache (with a note) when it fails on this version."""
    if s.cache != "prealloc":
        return
    try:
        set_attention(model, "sdpa")
        kv = make_kv(model, 48, 8, s.device, "prealloc", seed=1)
        a = verify_logits(model, kv, 3, s.device)
        a1 = verify_logits(model, kv, 1, s.device)
        ref = make_kv(model, 48, 0, s.device, "dynamic", seed=1)
        b = verify_logits(model, ref, 3, s.device)
        b1 = verify_logits(model, ref, 1, s.device)
        if kv.cache.get_seq_length() != 48 or ref.cache.get_seq_length() != 48:
            raise RuntimeError("the cache did not roll back to its context")
        diff = max(float((a - b).abs().max()), float((a1 - b1).abs().max()))
        scale = max(1.0, float(b.abs().max()))
        s.checks[f"{name}: prealloc_vs_dynamic_max_abs_logit_diff"] = diff
        if not math.isfinite(diff):
            s.note("prealloc cache check inconclusive: non-finite logits (random weights)")
        elif diff > 0.25 * scale:  # a wrong cache length or mask: logits unrelated
            raise RuntimeError(f"logits differ from DynamicCache's by {diff:.3g}")
        elif diff > 2e-2 * scale:  # kernels on differently strided K/V may round apart
            s.note(f"{name}: prealloc vs DynamicCache logits differ by {diff:.3g} (kept)")
    except Exception as err:
        s.note(f"prealloc cache unusable here ({type(err).__name__}: {err}); "[:300]
               + "using transformers' DynamicCache (torch.cat per step)")  # fmt: skip
        s.cache = "dynamic"
    _free(s.device)


def fold_check(model: Any, s: Settings) -> dict[str, float]:
    """Logits of a verify forward under `sdpa` and `fold` (they must agree)."""
    kv = make_kv(model, s.contexts[0], 16, s.device, s.cache)
    set_attention(model, "sdpa")
    a = verify_logits(model, kv, 5, s.device)
    set_attention(model, FOLD_NAME)
    b = verify_logits(model, kv, 5, s.device)
    set_attention(model, "sdpa")
    return {"max_abs_logit_diff": float((a - b).abs().max()), "max_abs_logit": float(a.abs().max())}


def project(result: dict[str, Any], s: Settings) -> list[dict[str, Any]]:
    rows = []
    for ctx in result["contexts"]:
        for drafter, d in result["drafters"].items():
            for attn in s.attentions:
                one = ctx["target_1tok_ms"][attn] / 1e3
                for gamma in s.gammas:
                    tv = ctx["verify_ms"][attn][str(gamma + 1)] / 1e3
                    m = s.acceptance.at(gamma)
                    p = rl.rapid_round_projection(tv, one, d["step_ms"] / 1e3, gamma, m)
                    rows.append(
                        {
                            "context": ctx["context"],
                            "drafter": drafter,
                            "attention": attn,
                            "gamma": gamma,
                            "mean_accepted": round(m, 4),
                            "round_ms": _ms(p.round_s),
                            "tokens_per_round": p.tokens_per_round,
                            "speedup": round(p.speedup, 4),
                        }
                    )
    return rows


def best(rows: list[dict[str, Any]], context: int, drafter: str, attn: str) -> dict[str, Any]:
    mine = [
        r
        for r in rows
        if r["context"] == context and r["drafter"] == drafter and r["attention"] == attn
    ]
    return max(mine, key=lambda r: r["speedup"])


# --------------------------------------------------------------------------- output


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = [" | ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def series_label(target: str, drafter: str) -> str:
    """The name of one target/drafter pair in the JSON's `models` summary."""
    return target if drafter == "self" else f"{target} + {drafter} drafter"


def summarize(details: dict[str, Any], s: Settings) -> dict[str, list[dict[str, Any]]]:
    """One row per context for each target/drafter pair: the printed table.

    `projected_speedup` is for transformers' own SDPA path at the best gamma;
    `fold_projected_speedup` for the folded-GQA verify (None when not measured).
    """
    out: dict[str, list[dict[str, Any]]] = {}
    for res in details.values():
        for drafter, d in res["drafters"].items():
            rows = []
            for ctx in res["contexts"]:
                one = ctx["target_1tok_ms"]["sdpa"]
                b = best(res["projection"], ctx["context"], drafter, "sdpa")
                k = b["gamma"] + 1
                tv = ctx["verify_ms"]["sdpa"][str(k)]
                pred_ms, bound = _predicted_ms(ctx["predicted_1tok"])
                row: dict[str, Any] = {
                    "context": ctx["context"],
                    "target": res["model"],
                    "drafter": d["model"],
                    "self_speculation": drafter == "self",
                    "target_1tok_ms": one,
                    "gamma": b["gamma"],
                    "verify_ms": tv,
                    "verify_over_1tok": round(tv / one, 4),
                    "drafter_step_ms": d["step_ms"],
                    "drafter_context": d["context"],
                    "roofline_1tok_ms": pred_ms,
                    "roofline_bound": bound,
                    "measured_over_predicted": round(one / pred_ms, 4),
                    "mean_accepted": b["mean_accepted"],
                    "projected_speedup": b["speedup"],
                    "fold_gamma": None,
                    "fold_verify_over_1tok": None,
                    "fold_projected_speedup": None,
                }
                if "fold" in s.attentions:
                    bf = best(res["projection"], ctx["context"], drafter, "fold")
                    kf = bf["gamma"] + 1
                    ratio = ctx["verify_ms"]["fold"][str(kf)] / ctx["target_1tok_ms"]["fold"]
                    row["fold_gamma"] = bf["gamma"]
                    row["fold_verify_over_1tok"] = round(ratio, 4)
                    row["fold_projected_speedup"] = bf["speedup"]
                rows.append(row)
            out[series_label(res["model"], drafter)] = rows
    return out


def report(out: dict[str, Any], s: Settings) -> str:
    parts = [out["projection_header"]]
    for label, rows in out["models"].items():
        if not rows:
            parts.append(f"\n{label}: no context measured (see the notes)")
            continue
        first = rows[0]
        drafter = "self (same model)" if first["self_speculation"] else first["drafter"]
        parts.append(
            f"\n{label} — drafter: {drafter} @ {first['drafter_context']} "
            f"({first['drafter_step_ms']:.2f} ms/step)"
        )
        header = [
            "context",
            "target 1-tok ms",
            "γ",
            "verify k ms",
            "verify/1-tok",
            "drafter step ms",
            "roofline 1-tok ms",
            "meas/pred",
            "proj. speedup",
        ]
        if "fold" in s.attentions:
            header += ["fold verify/1-tok", "fold speedup (γ)"]
        table = []
        for r in rows:
            line = [
                str(r["context"]),
                f"{r['target_1tok_ms']:.2f}",
                str(r["gamma"]),
                f"{r['verify_ms']:.2f} (k={r['gamma'] + 1})",
                f"{r['verify_over_1tok']:.2f}",
                f"{r['drafter_step_ms']:.2f}",
                f"{r['roofline_1tok_ms']:.2f} ({r['roofline_bound'][:3]})",
                f"{r['measured_over_predicted']:.2f}",
                f"{r['projected_speedup']:.2f}x",
            ]
            if "fold" in s.attentions:
                line += [
                    f"{r['fold_verify_over_1tok']:.2f} (k={r['fold_gamma'] + 1})",
                    f"{r['fold_projected_speedup']:.2f}x ({r['fold_gamma']})",
                ]
            table.append(line)
        parts.append(_table(header, table))
    ks = sorted({g + 1 for g in s.gammas})
    for res in out["details"].values():
        detail = []
        for ctx in res["contexts"]:
            for attn in s.attentions:
                one = ctx["target_1tok_ms"][attn]
                line = [str(ctx["context"]), attn, f"{one:.2f}"]
                line += [f"{ctx['verify_ms'][attn][str(k)] / one:.2f}" for k in ks]
                if s.compile:
                    compiled = ctx.get("compiled_1tok_ms")
                    line.append(f"{compiled:.2f}" if compiled and attn == "sdpa" else "-")
                detail.append(line)
        header = ["context", "attention", "1-tok ms"] + [f"k={k}" for k in ks]
        header += ["compiled 1-tok ms"] if s.compile else []
        parts.append(f"\n{res['model']} — verify of k tokens / 1-token step")
        parts.append(_table(header, detail))
        if "check" in res:
            c = res["check"]
            parts.append(
                f"fold vs sdpa verify logits: max |diff| {c['max_abs_logit_diff']:.2e} "
                f"(max |logit| {c['max_abs_logit']:.2f})"
            )
    for note in s.notes:
        parts.append(f"note: {note}")
    return "\n".join(parts)


def parse_ints(text: str) -> list[int]:
    """ "2..8" (inclusive range), "2,4,8" or "4"."""
    if ".." in text:
        lo, hi = text.split("..", 1)
        return list(range(int(lo), int(hi) + 1))
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--model", default="all", choices=[*TARGETS, "all"])
    ap.add_argument("--contexts", default=None, help="comma list (default 8K..128K; tiny 256,512)")
    ap.add_argument("--drafter-context", type=int, default=None, help="default 4096 (tiny 128)")
    ap.add_argument("--gamma", default="2..8", help='drafts per round: "2..8", "2,4" or "4"')
    acc = ap.add_mutually_exclusive_group()
    acc.add_argument("--acceptance", help="JSON with the mean accepted length per round")
    acc.add_argument("--mean-accepted", type=float, help=f"default {DEFAULT_MEAN_ACCEPTED}")
    acc.add_argument("--accept-rate", type=float, help="iid per-draft acceptance probability")
    ap.add_argument("--attention", default="sdpa,fold", help="sdpa, fold or both")
    ap.add_argument(
        "--cache",
        default="prealloc",
        choices=CACHE_KINDS,
        help="prealloc (default: a preallocated cache) or dynamic (transformers' DynamicCache, "
        "which copies the whole KV every step)",
    )
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--device", default=None, help="cuda (default when present) or cpu")
    ap.add_argument("--tiny", action="store_true", help="tiny configs: a CPU smoke run")
    ap.add_argument("--dtype", default=None, help="bfloat16 (default on cuda) or float32")
    ap.add_argument("--repeat", type=int, default=None, help="timed runs (default 10, tiny 3)")
    ap.add_argument("--warmup", type=int, default=None, help="default 3 (tiny 1)")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (tiny default 1)")
    ap.add_argument("--json", dest="json_path", help="write everything here")
    args = ap.parse_args(argv)
    if args.threads or (args.tiny and args.device == "cpu"):
        # one thread keeps a CPU smoke run from stalling on a busy machine
        torch.set_num_threads(args.threads or 1)

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cpu" and not args.tiny:
        ap.error("full-size models on a CPU need 16-30 GB and minutes per step: add --tiny")
    dtype_name = args.dtype or ("bfloat16" if device.type == "cuda" else "float32")
    dtype = getattr(torch, dtype_name)
    contexts = parse_ints(
        args.contexts or ("256,512" if args.tiny else "8192,16384,32768,65536,131072")
    )
    drafter_context = args.drafter_context or (128 if args.tiny else 4096)
    gammas = parse_ints(args.gamma)
    if not gammas or min(gammas) < 1:
        ap.error("--gamma needs values >= 1")
    if args.acceptance:
        acceptance = load_acceptance(args.acceptance)
    elif args.accept_rate is not None:
        acceptance = Acceptance(None, args.accept_rate, f"--accept-rate {args.accept_rate}")
    elif args.mean_accepted is not None:
        acceptance = Acceptance(args.mean_accepted, None, f"--mean-accepted {args.mean_accepted}")
    else:
        acceptance = Acceptance(
            DEFAULT_MEAN_ACCEPTED,
            None,
            f"default --mean-accepted {DEFAULT_MEAN_ACCEPTED} (a placeholder, NOT measured)",
        )
    attentions = [a for a in args.attention.split(",") if a]
    if not attentions or attentions[0] != "sdpa" or any(a not in ATTENTIONS for a in attentions):
        ap.error("--attention: 'sdpa' or 'sdpa,fold'")
    notes: list[str] = []
    if "fold" in attentions:
        note = register_fold_attention()
        if note is not None:
            notes.append(note)
            attentions = ["sdpa"]

    if device.type == "cuda":
        device_name = torch.cuda.get_device_name(device)
        nominal = rl.nominal_device(device_name)
    else:
        device_name = f"cpu ({platform.machine()}, threads={torch.get_num_threads()})"
        nominal = None
    print(
        f"device: {device_name}; torch {torch.__version__}, transformers "
        f"{transformers.__version__}; {dtype_name}; measuring bandwidth ...",
        flush=True,
    )
    if args.tiny:
        bw = rl.measure_bandwidth(device, nbytes=64 * 1024**2, repeat=2)
        flops = rl.measure_flops(dtype, device, n=512, repeat=2)
    else:
        bw = rl.measure_bandwidth(device)
        flops = rl.measure_flops(dtype, device)
    measured = rl.DeviceSpec(
        device_name, bw.read, flops, f"measured (x.sum() read, {dtype_name} matmul)"
    )
    print(
        f"measured: read {bw.read / 1e9:.0f} GB/s, copy {bw.copy / 1e9:.0f} GB/s, "
        f"matmul {flops / 1e9:,.0f} GFLOP/s"
        + (
            f"; nominal {nominal.bandwidth / 1e12:.2f} TB/s, {nominal.peak_flops / 1e12:.0f} "
            f"TFLOP/s"
            if nominal
            else ""
        ),
        flush=True,
    )

    s = Settings(
        device=device,
        dtype=dtype,
        tiny=args.tiny,
        contexts=contexts,
        drafter_context=drafter_context,
        gammas=gammas,
        acceptance=acceptance,
        timer=Timer(
            device,
            args.warmup if args.warmup is not None else (1 if args.tiny else 3),
            args.repeat or (3 if args.tiny else 10),
        ),
        compile=args.compile,
        nominal=nominal,
        measured=measured,
        attentions=attentions,
        cache=args.cache,
        notes=notes,
    )
    header = (
        f"PROJECTION: step costs measured with random weights on {device_name}"
        f"{' (TINY configs)' if args.tiny else ''}; acceptance measured on CPU with real "
        f"weights ({acceptance.source})"
    )
    names = list(TARGETS) if args.model == "all" else [args.model]
    details: dict[str, Any] = {}
    started = time.perf_counter()
    for name in names:
        details[name] = measure_target(name, s)
    out: dict[str, Any] = {
        "script": "bench/gpu_projection.py",
        "projection_header": header,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },
        "device": device_name,
        "device_info": {
            "type": device.type,
            "name": device_name,
            "nominal": None if nominal is None else rl.to_dict(nominal),
            "measured": rl.to_dict(measured),
            "bandwidth_copy": bw.copy,
        },
        "settings": {
            "dtype": dtype_name,
            "tiny": args.tiny,
            "contexts": contexts,
            "drafter_context": drafter_context,
            "gammas": gammas,
            "attentions": attentions,
            "repeat": s.timer.repeat,
            "warmup": s.timer.warmup,
            "compile": args.compile,
            "cache": s.cache,
            "kv_cache": (
                "random K/V in a preallocated DynamicCache (PreallocLayer), no prefill"
                if s.cache == "prealloc"
                else "random K/V in transformers' DynamicCache (torch.cat per step), no prefill"
            ),
        },
        "checks": s.checks,
        "acceptance": {
            "mean_accepted": acceptance.mean_accepted,
            "accept_rate": acceptance.rate,
            "source": acceptance.source,
        },
        "models": summarize(details, s),
        "details": details,
        "notes": notes,
        "wall_s": round(time.perf_counter() - started, 2),
    }
    print()
    print(report(out, s))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(out, indent=1, default=_json_default))
        print(f"\nwrote {args.json_path}")
    return out


def _json_default(obj: object) -> object:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return str(obj)


if __name__ == "__main__":
    main()
