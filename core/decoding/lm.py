"""The sequence seam: one model context with a KV cache that can append and roll back.

`FastSequence` (fastlm.py) serves Llama-family models; `HFSequence` serves any other
causal LM through its own forward and `DynamicCache`. The decoding loops see only
this interface: `forward(ids) -> logits`, `crop(length)`, `snapshot()`, `restore()`.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import Tensor

from core.decoding.fastlm import FastSequence, FastWeights, LogitsWanted
from core.decoding.qlinear import DenseWeight, Weight


class Sequence(Protocol):
    """A model context; `length` tokens are in its KV cache."""

    length: int

    def forward(
        self, ids: Tensor, logits: LogitsWanted = "all", head: Weight | None = None
    ) -> Tensor: ...

    def crop(self, length: int) -> None: ...

    def reserve(self, capacity: int) -> None: ...

    def snapshot(self) -> tuple[Tensor, Tensor]: ...

    def restore(self, k: Tensor, v: Tensor) -> None: ...


class HFSequence:
    """Any HF causal LM through its own forward and `DynamicCache` (the fallback path)."""

    def __init__(self, model: Any) -> None:
        from transformers import DynamicCache

        self.model = model
        self.cache = DynamicCache(config=model.config)
        self.length = 0

    def reserve(self, capacity: int) -> None:
        del capacity  # DynamicCache grows by itself

    def crop(self, length: int) -> None:
        assert 0 <= length <= self.length, (length, self.length)
        if length < self.length:
            # transformers 5.23 refuses positive values here: pass how many to drop.
            self.cache.crop(-(self.length - length))
        self.length = length

    @torch.inference_mode()
    def forward(
        self, ids: Tensor, logits: LogitsWanted = "all", head: Weight | None = None
    ) -> Tensor:
        n = int(ids.shape[0])
        pos = torch.arange(self.length, self.length + n, device=ids.device)[None]
        hidden = self.model.model(
            input_ids=ids[None], past_key_values=self.cache, use_cache=True, position_ids=pos
        )
        self.length += n
        h: Tensor = hidden.last_hidden_state[0]
        if logits == "none":
            return h[:0, :0]
        if logits == "last":
            h = h[-1:]
        if head is not None:
            return head.mm(h)
        out: Tensor = torch.nn.functional.linear(h, self.model.lm_head.weight)
        return out

    def snapshot(self) -> tuple[Tensor, Tensor]:
        layers: list[Any] = list(self.cache.layers)
        ks = torch.stack([layer.keys[0] for layer in layers])
        vs = torch.stack([layer.values[0] for layer in layers])
        return ks.clone(), vs.clone()

    def restore(self, k: Tensor, v: Tensor) -> None:
        from transformers import DynamicCache

        self.cache = DynamicCache(config=self.model.config)
        for i in range(k.shape[0]):
            self.cache.update(k[i][None].clone(), v[i][None].clone(), i)
        self.length = int(k.shape[2])


def sequence_device(seq: Sequence) -> torch.device:
    """The device a sequence's model runs on."""
    w = getattr(seq, "w", None)
    if w is not None:
        device: torch.device = w.device
        return device
    return torch.device(seq.model.device)  # type: ignore[attr-defined]


def step_bytes(seq: Sequence) -> int:
    """Bytes a one-token step of `seq` reads: every weight once (as stored; the
    embedding is one row) and the whole KV cache. 0 when unknown (HF fallback)."""
    if not isinstance(seq, FastSequence):
        return 0
    w, k = seq.w, seq.cache.k
    kv = 2 * w.n_layers * w.n_kv * (seq.length + 1) * w.head_dim * k.element_size()
    return w.weight_bytes + kv


COMPACT_ATTR = "rapidqa_fast"  # a model's FastWeights, made at load time (compact weights)


class SequenceFactory:
    """Makes sequences for one model, sharing its (fused) weights between them.

    A model loaded with compact weights carries its `FastWeights` (made while loading,
    so the dense copy is freed before the next model loads; `core.models.loading`)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        fast: FastWeights | None = getattr(model, COMPACT_ATTR, None)
        if fast is None and FastWeights.supports(model):
            fast = FastWeights(model)
        self.fast = fast

    @property
    def vocab_size(self) -> int:
        return int(self.model.config.vocab_size)

    @property
    def lm_head(self) -> Weight:
        if self.fast is not None:
            return self.fast.lm_head
        return DenseWeight(self.model.lm_head.weight)

    def new(self, capacity: int = 1024) -> Sequence:
        if self.fast is not None:
            return FastSequence(self.fast, capacity)
        return HFSequence(self.model)
