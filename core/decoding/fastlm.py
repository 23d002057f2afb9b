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
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

LogitsWanted = Literal["all", "last", "none"]

SUPPORTED_TYPES = ("llama", "mistral", "qwen2", "qwen3")
SHORT_BLOCK = 16  # query blocks up to this length take the head-folding attention path


@dataclass
class _Layer:
    ln1: Tensor  # [hidden]
    qkv: Tensor  # [(H + 2 KV) * D, hidden]
    qkv_bias: Tensor | None
    o: Tensor  # [hidden, H * D]
    ln2: Tensor
    gate_up: Tensor  # [2 * I, hidden]
    down: Tensor  # [hidden, I]
    q_norm: Tensor | None  # [D] (Qwen3)
    k_norm: Tensor | None


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
    """A Llama-family model's weights, laid out for decoding; shared by all sequences."""

    def __init__(self, model: Any) -> None:
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
        self.embed: Tensor = inner.embed_tokens.weight.data
        self.norm: Tensor = inner.norm.weight.data
        self.lm_head: Tensor = model.lm_head.weight.data
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
                    qkv=_fuse([p.weight for p in projs]),
                    qkv_bias=bias,
                    o=att.o_proj.weight.data,
                    ln2=layer.post_attention_layernorm.weight.data,
                    gate_up=_fuse([mlp.gate_proj.weight, mlp.up_proj.weight]),
                    down=mlp.down_proj.weight.data,
                    q_norm=att.q_norm.weight.data if hasattr(att, "q_norm") else None,
                    k_norm=att.k_norm.weight.data if hasattr(att, "k_norm") else None,
                )
            )
        self._rotary = inner.rotary_emb
        self.prefill_dtype: torch.dtype = self.dtype  # see `use_fast_prefill`
        self._low: list[_Layer] | None = None
        self._cos = torch.empty(0, self.head_dim, device=self.device, dtype=self.dtype)
        self._sin = torch.empty(0, self.head_dim, device=self.device, dtype=self.dtype)

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
        lo = self.prefill_dtype
        self._low = [
            _Layer(
                ln1=x.ln1,
                qkv=x.qkv.to(lo),
                qkv_bias=None if x.qkv_bias is None else x.qkv_bias.to(lo),
                o=x.o.to(lo),
                ln2=x.ln2,
                gate_up=x.gate_up.to(lo),
                down=x.down.to(lo),
                q_norm=x.q_norm,
                k_norm=x.k_norm,
            )
            for x in self.layers
        ]

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


def _rms_norm(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    # HF's LlamaRMSNorm: fp32 statistics, then weight * x. One fused kernel for fp32.
    if x.dtype == torch.float32:
        return F.rms_norm(x, (x.shape[-1],), weight, eps)
    xf = x.float()
    xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return weight * xf.to(x.dtype)


def _add_linear(h: Tensor, x: Tensor, weight: Tensor) -> Tensor:
    """h + x @ W^T: one fused addmm in the residual's dtype, else computed in x's."""
    if x.dtype == h.dtype:
        return torch.addmm(h, x, weight.t())
    return h + F.linear(x, weight).to(h.dtype)


def _rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    # x: [n, heads, D]; cos/sin: [n, 1, D]; HF's rotate_half convention.
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


def _short_block_attention(q: Tensor, k: Tensor, v: Tensor, n: int, scale: float) -> Tensor:
    """Attention of n new queries over L cached keys, without copying KV heads.

    q: [n, H, D]; k, v: [KV, L, D] (the last n rows are the new tokens). Returns [n, H*D].
    """
    kv, length, d = k.shape
    heads = q.shape[1]
    group = heads // kv
    # Fold the `group` query heads of each KV head into the row axis: [KV, group * n, D].
    qq = (q * scale).view(n, kv, group, d).permute(1, 2, 0, 3).reshape(kv, group * n, d)
    # scores: [KV, group * n, L]
    scores = torch.matmul(qq, k.transpose(1, 2))  # [KV, group * n, L]
    if n > 1:  # causal mask inside the new block only; the cached prefix is fully visible
        block = torch.ones(n, n, dtype=torch.bool, device=q.device).triu(1)
        tail = scores.view(kv, group, n, length)[..., length - n :]
        tail.masked_fill_(block, float("-inf"))
    probs = torch.softmax(scores.float(), dim=-1).to(v.dtype)
    out = torch.matmul(probs, v)  # [KV, group * n, D]
    return out.view(kv, group, n, d).permute(2, 0, 1, 3).reshape(n, heads * d)


def _long_block_attention(q: Tensor, k: Tensor, v: Tensor, n: int, scale: float) -> Tensor:
    """Prefill-chunk attention through SDPA (its fused CPU/GPU kernels), causal offset mask."""
    length = k.shape[1]
    mask = torch.ones(n, length, dtype=torch.bool, device=q.device).tril(length - n)
    out = F.scaled_dot_product_attention(
        q.transpose(0, 1)[None], k[None], v[None], attn_mask=mask, scale=scale, enable_gqa=True
    )  # [1, H, n, D]
    return out[0].transpose(0, 1).reshape(n, -1)


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
        self, ids: Tensor, logits: LogitsWanted = "all", head: Tensor | None = None
    ) -> Tensor:
        """Append `ids` ([n] long) and return their next-token logits ([n or 1, V]).

        `head` replaces the LM head (e.g. its rows for a subset of the vocabulary).
        """
        w, n, start = self.w, int(ids.shape[0]), self.length
        end = start + n
        if end > self.cache.capacity:
            self.reserve(end + 256)
        cos, sin = w.rope(start + self.offset, n)
        h = F.embedding(ids, w.embed)  # [n, hidden]
        nh, nkv, d = w.n_heads, w.n_kv, w.head_dim
        attend = _short_block_attention if n <= SHORT_BLOCK else _long_block_attention
        layers, cdt = w.layers_for(n)
        if cdt != w.dtype:
            cos, sin = cos.to(cdt), sin.to(cdt)
        for i, layer in enumerate(layers):
            x = _rms_norm(h, layer.ln1, w.eps).to(cdt)
            qkv = F.linear(x, layer.qkv, layer.qkv_bias)  # [n, (H + 2 KV) * D]
            v = qkv[:, (nh + nkv) * d :].view(n, nkv, d)
            if layer.q_norm is not None and layer.k_norm is not None:
                q = _rotate(
                    _rms_norm(qkv[:, : nh * d].view(n, nh, d), layer.q_norm, w.eps), cos, sin
                )
                k = _rotate(
                    _rms_norm(qkv[:, nh * d : (nh + nkv) * d].view(n, nkv, d), layer.k_norm, w.eps),
                    cos, sin,
                )  # fmt: skip
            else:  # rotate queries and keys in one go: [n, H + KV, D]
                qk = _rotate(qkv[:, : (nh + nkv) * d].view(n, nh + nkv, d), cos, sin)
                q, k = qk[:, :nh], qk[:, nh:]
            kc, vc = self.cache.k[i], self.cache.v[i]  # [KV, capacity, D]
            kc[:, start:end].copy_(k.transpose(0, 1))
            vc[:, start:end].copy_(v.transpose(0, 1))
            # fast prefill: attention in the low dtype too (.to is a no-op otherwise)
            att = attend(q, kc[:, :end].to(cdt), vc[:, :end].to(cdt), n, w.scale)
            h = _add_linear(h, att, layer.o)
            x = _rms_norm(h, layer.ln2, w.eps).to(cdt)
            gu = F.linear(x, layer.gate_up)  # [n, 2 I]
            act = F.silu(gu[:, : w.intermediate]).mul_(gu[:, w.intermediate :])
            h = _add_linear(h, act, layer.down)
        self.length = end
        if logits == "none":
            return h[:0, :0]
        if logits == "last":
            h = h[-1:]
        return F.linear(_rms_norm(h, w.norm, w.eps), w.lm_head if head is None else head)
