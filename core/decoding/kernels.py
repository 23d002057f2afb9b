"""The arithmetic of one decoding layer, on plain tensors: RMS norm, rotary embedding,
attention for short (decode, verify) and long (prefill) blocks, and linear layers over
any weight storage (qlinear.py). `fastlm.FastSequence` composes them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from core.decoding.qlinear import DenseWeight, Weight


def rms_norm(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    # HF's LlamaRMSNorm: fp32 statistics, then weight * x. One fused kernel for fp32.
    if x.dtype == torch.float32:
        return F.rms_norm(x, (x.shape[-1],), weight, eps)
    xf = x.float()
    xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return weight * xf.to(x.dtype)


def linear(x: Tensor, weight: Weight, long: bool, bias: Tensor | None = None) -> Tensor:
    """x @ W^T (+ bias). A long block (prefill) multiplies by the dequantized matrix: one
    bf16 GEMM beats the compact kernels, which are built for a few rows, by ~2x there."""
    if isinstance(weight, DenseWeight):
        return F.linear(x, weight.w, bias)
    y = weight.mm_long(x) if long else weight.mm(x)
    return y if bias is None else y + bias


def add_linear(h: Tensor, x: Tensor, weight: Weight, long: bool) -> Tensor:
    """h + x @ W^T: one fused addmm in the residual's dtype, else computed in x's."""
    if x.dtype == h.dtype and isinstance(weight, DenseWeight):
        return torch.addmm(h, x, weight.w.t())
    return h + linear(x, weight, long).to(h.dtype)


def rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    # x: [n, heads, D]; cos/sin: [n, 1, D]; HF's rotate_half convention.
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


def short_block_attention(q: Tensor, k: Tensor, v: Tensor, n: int, scale: float) -> Tensor:
    """Attention of n new queries over L cached keys, without copying KV heads.

    q: [n, H, D]; k, v: [KV, L, D] (the last n rows are the new tokens). Returns [n, H*D].
    """
    kv, length, d = k.shape
    heads = q.shape[1]
    group = heads // kv
    # Fold the `group` query heads of each KV head into the row axis: [KV, group * n, D].
    qq = (q * scale).view(n, kv, group, d).permute(1, 2, 0, 3).reshape(kv, group * n, d)
    if k.dtype != torch.float32:  # bf16/fp16: one 2-D product per KV head (see below)
        out = torch.stack([_head_attention(qq[h], k[h], v[h], n) for h in range(kv)])
        return out.view(kv, group, n, d).permute(2, 0, 1, 3).reshape(n, heads * d)
    scores = torch.matmul(qq, k.transpose(1, 2))  # [KV, group * n, L]
    if n > 1:  # causal mask inside the new block only; the cached prefix is fully visible
        block = torch.ones(n, n, dtype=torch.bool, device=q.device).triu(1)
        tail = scores.view(kv, group, n, length)[..., length - n :]
        tail.masked_fill_(block, float("-inf"))
    probs = torch.softmax(scores.float(), dim=-1).to(v.dtype)
    out = torch.matmul(probs, v)  # [KV, group * n, D]
    return out.view(kv, group, n, d).permute(2, 0, 1, 3).reshape(n, heads * d)


def _head_attention(q: Tensor, k: Tensor, v: Tensor, n: int) -> Tensor:
    """One KV head: q [group * n, D] over k, v [L, D] -> [group * n, D].

    The cache slice k[:L] of a [KV, capacity, D] buffer has a batch stride of
    capacity * D, and a batched bf16 matmul copies such operands first (at 8K tokens
    that copy was two thirds of the attention time); two plain matrix products per
    head read the slice in place, ~3x faster. fp32 keeps the batched form (faster there).
    """
    scores = torch.mm(q, k.t())  # [group * n, L]
    if n > 1:
        length = k.shape[0]
        block = torch.ones(n, n, dtype=torch.bool, device=q.device).triu(1)
        scores.view(-1, n, length)[..., length - n :].masked_fill_(block, float("-inf"))
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(v.dtype)
    return torch.mm(probs, v)


def long_block_attention(q: Tensor, k: Tensor, v: Tensor, n: int, scale: float) -> Tensor:
    """Prefill-chunk attention through SDPA (its fused CPU/GPU kernels), causal offset mask."""
    length = k.shape[1]
    mask = torch.ones(n, length, dtype=torch.bool, device=q.device).tril(length - n)
    out = F.scaled_dot_product_attention(
        q.transpose(0, 1)[None], k[None], v[None], attn_mask=mask, scale=scale, enable_gqa=True
    )  # [1, H, n, D]
    return out[0].transpose(0, 1).reshape(n, -1)
