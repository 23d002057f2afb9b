"""The GPU projection's KV caches (a preallocated cache beside transformers'
DynamicCache) and the folded-GQA attention it compares with SDPA."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import roofline as rl  # bench/roofline.py: the script's folder is on sys.path
import torch
import torch.nn.functional as F
from gpu_models import FOLD_NAME  # bench/gpu_models.py (bench/ is on sys.path)
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

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
