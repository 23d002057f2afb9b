"""A static-KV-cache forward pass for Llama-family models, built for short query blocks.

Speculative decoding lives or dies by two costs: a one-token step and a verify step of
a few tokens. The Hugging Face forward pays for generality there: it copies the KV
heads for grouped-query attention (`repeat_kv`), grows the cache with `torch.cat`, and
builds an explicit mask. This module runs the same weights with

- one preallocated cache per sequence (`[layers, kv_heads, capacity, head_dim]`), so
  appending is a slice copy and rolling back after a rejection is free (`crop`);
- grouped-query attention without copying heads: the query heads that share a KV head
  are folded into the query-length axis, so each K/V row is read once;
- fused QKV and gate/up projections (fewer, larger matrix products). The fused
  tensors are installed back into the Hugging Face modules as views, so the weights
  exist once in memory and the HF model (used by tests and baselines) stays usable.

Supported: `LlamaForCausalLM` and close relatives (Mistral without sliding window,
Qwen2 with QKV bias, Qwen3 with per-head q/k norms). `FastWeights.supports` says
whether a model qualifies; the engine falls back to `HFSequence` otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from core.decoding.kernels import (
    add_linear,
    linear,
    long_block_attention,
    rms_norm,
    rotate,
    short_block_attention,
)
from core.decoding.qlinear import (
    COMPACT_WEIGHT,
    KERNEL_ROWS,
    DenseWeight,
    Weight,
    WeightKind,
    concat,
    head_kind,
    quantize,
)

LogitsWanted = Literal["all", "last", "none"]

SUPPORTED_TYPES = ("llama", "mistral", "qwen2", "qwen3")
SHORT_BLOCK = 16  # query blocks up to this length take the head-folding attention path


@dataclass
class _Layer:
    ln1: Tensor  # [hidden]
    qkv: Weight  # [(H + 2 KV) * D, hidden]
    qkv_bias: Tensor | None
    o: Weight  # [hidden, H * D]
    ln2: Tensor
    gate_up: Weight  # [2 * I, hidden]
    down: Weight  # [hidden, I]
    q_norm: Tensor | None  # [D] (Qwen3)
    k_norm: Tensor | None

    def dense(self, dtype: torch.dtype) -> _Layer:
        """This layer with every projection as a plain matrix in `dtype` (a temporary
        copy, for a long prefill block; dense layers are returned as they are)."""
        mats = (self.qkv, self.o, self.gate_up, self.down)
        if all(isinstance(m, DenseWeight) and m.w.dtype == dtype for m in mats):
            return self
        qkv, o, gate_up, down = (DenseWeight(m.dense(dtype)) for m in mats)
        bias = None if self.qkv_bias is None else self.qkv_bias.to(dtype)
        return _Layer(self.ln1, qkv, bias, o, self.ln2, gate_up, down, self.q_norm, self.k_norm)


def _fuse(parts: list[torch.nn.Parameter]) -> Tensor:
    """Concatenate parameters along dim 0 and make each original a view of the result."""
    fused = torch.cat([p.data for p in parts], dim=0).contiguous()
    offset = 0
    for p in parts:
        n = p.shape[0]
        p.data = fused[offset : offset + n]
        offset += n
    return fused


class FastWeights:
    """A Llama-family model's weights, laid out for decoding; shared by all sequences.

    `weights` = "int4" or "int8" stores every projection and the LM head compactly
    (qlinear.py; the head in int8 either way: the GGUFs keep it at 6-8 bits, and the
    drafter takes row subsets of it) and frees the HF model's copies of them, so the HF
    forward no longer runs (`compact` says so). Activations and the KV cache stay in the
    model's dtype (bf16).
    """

    def __init__(self, model: Any, weights: WeightKind = "dense") -> None:
        cfg = model.config
        if not self.supports(model):
            raise ValueError(f"unsupported architecture {cfg.model_type!r}")
        inner = model.model
        self.n_layers: int = cfg.num_hidden_layers
        self.n_heads: int = cfg.num_attention_heads
        self.n_kv: int = getattr(cfg, "num_key_value_heads", None) or self.n_heads
        self.head_dim: int = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.n_heads
        self.hidden: int = cfg.hidden_size
        self.eps: float = cfg.rms_norm_eps
        self.vocab_size: int = cfg.vocab_size
        self.max_positions: int = cfg.max_position_embeddings
        self.scale: float = 1.0 / math.sqrt(self.head_dim)
        self.device: torch.device = inner.embed_tokens.weight.device
        self.dtype: torch.dtype = inner.embed_tokens.weight.dtype
        self.kind: WeightKind = weights
        self.embed: Tensor = inner.embed_tokens.weight.data
        self.norm: Tensor = inner.norm.weight.data
        self.intermediate: int = cfg.intermediate_size
        self.layers: list[_Layer] = []
        for layer in inner.layers:
            att, mlp = layer.self_attn, layer.mlp
            projs = [att.q_proj, att.k_proj, att.v_proj]
            bias = None
            if att.q_proj.bias is not None:
                bias = _fuse([p.bias for p in projs])
            self.layers.append(
                _Layer(
                    ln1=layer.input_layernorm.weight.data,
                    qkv=self._store(projs),
                    qkv_bias=bias,
                    o=self._store([att.o_proj]),
                    ln2=layer.post_attention_layernorm.weight.data,
                    gate_up=self._store([mlp.gate_proj, mlp.up_proj]),
                    down=self._store([mlp.down_proj]),
                    q_norm=att.q_norm.weight.data if hasattr(att, "q_norm") else None,
                    k_norm=att.k_norm.weight.data if hasattr(att, "k_norm") else None,
                )
            )
        head = model.lm_head
        if hasattr(head, COMPACT_WEIGHT):  # packed while loading (gguf_model.load)
            self.lm_head: Weight = getattr(head, COMPACT_WEIGHT)
            delattr(head, COMPACT_WEIGHT)
        else:
            tied = head.weight is inner.embed_tokens.weight
            self.lm_head = quantize(head.weight.data, head_kind(weights), self.dtype)
            if weights != "dense" and not tied:
                head.weight.data = torch.empty(0, dtype=self.dtype, device=self.device)
        self.compact = weights != "dense"
        self._rotary = inner.rotary_emb
        self.prefill_dtype: torch.dtype = self.dtype  # see `use_fast_prefill`
        self._low: list[_Layer] | None = None
        self._cos = torch.empty(0, self.head_dim, device=self.device, dtype=self.dtype)
        self._sin = torch.empty(0, self.head_dim, device=self.device, dtype=self.dtype)

    def _store(self, modules: list[Any]) -> Weight:
        """The weight of `modules` (stacked), as this model keeps it: their packed parts
        when a compact load made them, else their matrices (fused: the HF modules keep
        views of it), packed here for compact storage, which then frees the HF copies."""
        if all(hasattr(m, COMPACT_WEIGHT) for m in modules):
            parts = [getattr(m, COMPACT_WEIGHT) for m in modules]
            for m in modules:
                delattr(m, COMPACT_WEIGHT)
            return parts[0] if len(parts) == 1 else concat(parts)
        w = _fuse([m.weight for m in modules]) if len(modules) > 1 else modules[0].weight.data
        if self.kind == "dense":
            return DenseWeight(w)
        stored = quantize(w, self.kind, self.dtype)
        for m in modules:  # drop the HF module's view of the dense matrix
            m.weight.data = torch.empty(0, dtype=w.dtype, device=w.device)
        return stored

    @property
    def weight_bytes(self) -> int:
        """Bytes a decode step reads from weights (every layer and the head; the
        embedding is one row per token)."""
        per_layer = sum(x.qkv.nbytes + x.o.nbytes + x.gate_up.nbytes + x.down.nbytes
                        for x in self.layers)  # fmt: skip
        return per_layer + self.lm_head.nbytes

    def use_fast_prefill(self, dtype: torch.dtype | None) -> None:
        """Run prefill chunks (long blocks) with weights and attention in `dtype`
        (bf16 on a CPU with AMX/AVX512-BF16: ~2x faster first read of a document).

        The KV cache and every decode/verify step stay in the model's dtype, so all
        modes still share one target; only the document's KV differs from an fp32
        prefill by bf16 rounding. None restores full-precision prefill.
        """
        self.prefill_dtype = dtype or self.dtype
        if self.prefill_dtype == self.dtype or self._low is not None:
            return
        self._low = [x.dense(self.prefill_dtype) for x in self.layers]

    def layers_for(self, n: int) -> tuple[list[_Layer], torch.dtype]:
        """The layer weights and compute dtype for a block of n tokens."""
        if n > SHORT_BLOCK and self._low is not None and self.prefill_dtype != self.dtype:
            return self._low, self.prefill_dtype
        return self.layers, self.dtype

    @staticmethod
    def supports(model: Any) -> bool:
        """True when this module can run `model` exactly like its HF forward."""
        cfg = getattr(model, "config", None)
        if cfg is None or getattr(cfg, "model_type", None) not in SUPPORTED_TYPES:
            return False
        if getattr(cfg, "sliding_window", None) and getattr(cfg, "use_sliding_window", True):
            if cfg.model_type != "llama":
                return False
        if getattr(cfg, "hidden_act", "silu") != "silu" or getattr(cfg, "mlp_bias", False):
            return False
        att = model.model.layers[0].self_attn
        return getattr(att, "o_proj", None) is not None and att.o_proj.bias is None

    def rope(self, start: int, n: int) -> tuple[Tensor, Tensor]:
        """cos/sin tables for positions [start, start + n): each [n, 1, D]."""
        end = start + n
        if end > self._cos.shape[0]:
            cap = max(end, 2 * self._cos.shape[0], 1024)
            pos = torch.arange(cap, device=self.device)[None]
            probe = torch.empty(1, device=self.device, dtype=self.dtype)
            cos, sin = self._rotary(probe, pos)
            self._cos, self._sin = cos[0].contiguous(), sin[0].contiguous()
        return self._cos[start:end, None, :], self._sin[start:end, None, :]


class KVCache:
    """Preallocated keys and values of one sequence: `[layers, kv_heads, capacity, D]`."""

    def __init__(self, w: FastWeights, capacity: int) -> None:
        shape = (w.n_layers, w.n_kv, capacity, w.head_dim)
        self.k = torch.empty(shape, device=w.device, dtype=w.dtype)
        self.v = torch.empty(shape, device=w.device, dtype=w.dtype)

    @property
    def capacity(self) -> int:
        return int(self.k.shape[2])

    def grow(self, capacity: int, keep: int) -> None:
        """Reallocate to at least `capacity` positions, keeping the first `keep`."""
        if capacity <= self.capacity:
            return
        new_cap = max(capacity, self.capacity + self.capacity // 2)
        shape = (self.k.shape[0], self.k.shape[1], new_cap, self.k.shape[3])
        k = torch.empty(shape, device=self.k.device, dtype=self.k.dtype)
        v = torch.empty(shape, device=self.v.device, dtype=self.v.dtype)
        k[:, :, :keep].copy_(self.k[:, :, :keep])
        v[:, :, :keep].copy_(self.v[:, :, :keep])
        self.k, self.v = k, v


class FastSequence:
    """One model context (target or drafter): shared weights + its own KV cache."""

    def __init__(self, weights: FastWeights, capacity: int = 1024) -> None:
        self.w = weights
        self.cache = KVCache(weights, capacity)
        self.length = 0
        self.offset = 0  # position of cache row i is i + offset (see `select_from`)

    @classmethod
    def select_from(cls, source: FastSequence, positions: Tensor, extra: int) -> FastSequence:
        """A sequence whose cache holds `source`'s rows at `positions` (sorted), keeping
        their original positions: new tokens continue at source.length.

        This is a drafter that reads only the retrieved passages of the target's
        prefilled document, with no prefill of its own (self-speculation). Keys were
        rotated at their document positions; gaps between passages are gaps in the
        positions, and the new tokens' positions follow the target's.
        """
        n = int(positions.shape[0])
        assert n == 0 or int(positions.max()) < source.length, "rows beyond the cache"
        positions = positions.to(source.cache.k.device)
        seq = cls(source.w, n + extra)
        seq.cache.k[:, :, :n].copy_(source.cache.k.index_select(2, positions))
        seq.cache.v[:, :, :n].copy_(source.cache.v.index_select(2, positions))
        seq.length = n
        seq.offset = source.length - n
        return seq

    def crop(self, length: int) -> None:
        """Forget every position from `length` on (a rejected draft's KV)."""
        assert 0 <= length <= self.length, (length, self.length)
        self.length = length

    def reserve(self, capacity: int) -> None:
        self.cache.grow(capacity, self.length)

    def snapshot(self) -> tuple[Tensor, Tensor]:
        """Copies of the cached keys/values (for the document-prefix KV store)."""
        n = self.length
        return self.cache.k[:, :, :n].clone(), self.cache.v[:, :, :n].clone()

    def restore(self, k: Tensor, v: Tensor) -> None:
        """Load a snapshot as this sequence's first positions."""
        n = int(k.shape[2])
        self.reserve(n + 64)
        self.cache.k[:, :, :n].copy_(k)
        self.cache.v[:, :, :n].copy_(v)
        self.length = n

    @torch.inference_mode()
    def forward(
        self, ids: Tensor, logits: LogitsWanted = "all", head: Weight | None = None,
        probe: Tensor | None = None,
    ) -> Tensor:  # fmt: skip
        """Append `ids` ([n] long) and return their next-token logits ([n or 1, V]).

        `head` replaces the LM head (e.g. its rows for a subset of the vocabulary).
        `probe` ([n, length after the call], float32), when given, receives each new
        token's attention weights over the cache rows, averaged over heads and summed
        over layers (where the model looked: core/evidence.py).
        """
        w, n, start = self.w, int(ids.shape[0]), self.length
        if start + n > self.cache.capacity:
            self.reserve(start + n + 256)
        cos, sin = w.rope(start + self.offset, n)
        h = F.embedding(ids, w.embed)  # [n, hidden]
        layers, cdt = w.layers_for(n)
        if cdt != w.dtype:
            cos, sin = cos.to(cdt), sin.to(cdt)
        for i, layer in enumerate(layers):
            h = self._layer(i, layer, h, start, cos, sin, cdt, probe)
        self.length = start + n
        if logits == "none":
            return h[:0, :0]
        if logits == "last":
            h = h[-1:]
        return (w.lm_head if head is None else head).mm(rms_norm(h, w.norm, w.eps))

    @torch.inference_mode()
    def prefill(self, ids: Tensor, chunk: int) -> Iterator[float]:
        """Append a long block layer by layer, `chunk` tokens at a time; yields the
        fraction done after each chunk (stop iterating to cancel: the sequence is then
        invalid). For compact weights: each layer is dequantized once for the whole
        block instead of once per chunk, which halves a document's first read."""
        w, n, start = self.w, int(ids.shape[0]), self.length
        self.reserve(start + n + 256)
        layers, cdt = w.layers_for(SHORT_BLOCK + 1)
        cos, sin = (t.to(cdt) for t in w.rope(start + self.offset, n))
        h = F.embedding(ids, w.embed)
        chunks = range(0, n, chunk)
        steps = len(layers) * len(chunks)
        for i, layer in enumerate(layers):
            # a short block (a question) runs the packed kernels: no dequantization
            dense = layer.dense(cdt) if n > KERNEL_ROWS else layer
            for j, c in enumerate(chunks):
                part = slice(c, min(c + chunk, n))
                h[part] = self._layer(i, dense, h[part], start + c, cos[part], sin[part], cdt)
                yield (i * len(chunks) + j + 1) / steps
        self.length = start + n

    def _layer(
        self, i: int, layer: _Layer, h: Tensor, start: int, cos: Tensor, sin: Tensor,
        cdt: torch.dtype, probe: Tensor | None = None,
    ) -> Tensor:  # fmt: skip
        """Layer i on the hidden states h of the tokens at [start, start + n)."""
        w, n = self.w, int(h.shape[0])
        end, long = start + n, n > SHORT_BLOCK
        nh, nkv, d = w.n_heads, w.n_kv, w.head_dim
        x = rms_norm(h, layer.ln1, w.eps).to(cdt)
        qkv = linear(x, layer.qkv, long, layer.qkv_bias)  # [n, (H + 2 KV) * D]
        v = qkv[:, (nh + nkv) * d :].view(n, nkv, d)
        if layer.q_norm is not None and layer.k_norm is not None:
            q = rotate(rms_norm(qkv[:, : nh * d].view(n, nh, d), layer.q_norm, w.eps), cos, sin)
            k = rotate(
                rms_norm(qkv[:, nh * d : (nh + nkv) * d].view(n, nkv, d), layer.k_norm, w.eps),
                cos, sin,
            )  # fmt: skip
        else:  # rotate queries and keys in one go: [n, H + KV, D]
            qk = rotate(qkv[:, : (nh + nkv) * d].view(n, nh + nkv, d), cos, sin)
            q, k = qk[:, :nh], qk[:, nh:]
        kc, vc = self.cache.k[i], self.cache.v[i]  # [KV, capacity, D]
        kc[:, start:end].copy_(k.transpose(0, 1))
        vc[:, start:end].copy_(v.transpose(0, 1))
        if probe is not None:
            probe += attention_weights(q, kc[:, :end], start, w.scale)
        attend = long_block_attention if long else short_block_attention
        # fast prefill: attention in the low dtype too (.to is a no-op otherwise)
        att = attend(q, kc[:, :end].to(cdt), vc[:, :end].to(cdt), n, w.scale)
        h = add_linear(h, att, layer.o, long)
        x = rms_norm(h, layer.ln2, w.eps).to(cdt)
        gu = linear(x, layer.gate_up, long)  # [n, 2 I]
        act = F.silu(gu[:, : w.intermediate]).mul_(gu[:, w.intermediate :])
        return add_linear(h, act, layer.down, long)


def attention_weights(q: Tensor, k: Tensor, start: int, scale: float) -> Tensor:
    """Causal attention weights of queries `q` ([n, H, D], at positions start..) over
    keys `k` ([KV, end, D]), averaged over the heads: [n, end], float32 (grouped-query
    heads share their key head, as in the attention kernels)."""
    n, nh, d = q.shape
    nkv, end = int(k.shape[0]), int(k.shape[1])
    qg = q.float().reshape(n, nkv, nh // nkv, d)
    scores = torch.einsum("ngqd,ged->gqne", qg, k.float()) * scale  # [KV, G, n, end]
    future = torch.arange(end, device=q.device)[None, :] > (
        start + torch.arange(n, device=q.device)[:, None]
    )
    scores.masked_fill_(future, float("-inf"))
    return scores.softmax(-1).mean(dim=(0, 1))
