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


class Sequence(Protocol):
    """A model context; `length` tokens are in its KV cache."""

    length: int

    def forward(
        self, ids: Tensor, logits: LogitsWanted = "all", head: Tensor | None = None
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
        self, ids: Tensor, logits: LogitsWanted = "all", head: Tensor | None = None
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
        weight = self.model.lm_head.weight if head is None else head
        out: Tensor = torch.nn.functional.linear(h, weight)
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


class SequenceFactory:
    """Makes sequences for one model, sharing its (fused) weights between them."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.fast: FastWeights | None = FastWeights(model) if FastWeights.supports(model) else None

    @property
    def vocab_size(self) -> int:
        return int(self.model.config.vocab_size)

    @property
    def lm_head(self) -> Tensor:
        weight: Tensor = self.model.lm_head.weight
        return weight

    def new(self, capacity: int = 1024) -> Sequence:
        if self.fast is not None:
            return FastSequence(self.fast, capacity)
        return HFSequence(self.model)
