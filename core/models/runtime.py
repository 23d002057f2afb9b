"""The model runtime: the target and drafter loaded once, their sequence factories,
and their prefills with the KV caches kept between questions.

Three levels of reuse, each keyed by content (docs/architecture.md, "KV reuse"):
the live sequence of the last question (a follow-up question on the same documents
re-reads only the question), the on-disk/in-memory document-prefix store
(`core/models/kvstore.py`, keyed by the model's content `LoadedModel.key`, its
prefill precision and the prefix tokens), and the learned verify-cost curves per
model, precision and context size, which the draft planner starts from.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

import torch

from core.config import DecodeConfig, ModelConfig
from core.decoding.fastlm import FastSequence
from core.decoding.lm import Sequence as LMSequence
from core.decoding.lm import SequenceFactory
from core.events import Event, LoadProgress, ModelLoaded, PrefillProgress, Status
from core.gc_quiet import quiet
from core.models.kvstore import KVStore, prefix_key
from core.models.loading import (
    LoadedModel,
    ProgressFn,
    StatusFn,
    cache_dir,
    cpu_has_bf16,
    load_pair,
)
from core.models.prompts import Prompt

CostKey = tuple[str, str, int]  # (model key, precision, context bucket of 2,048 tokens)


@dataclass
class _Live:
    """The target sequence of the last question, reusable when the prefix matches."""

    key: str
    seq: LMSequence
    prefix_len: int


class ModelRuntime:
    """The loaded pair and their prefills. One worker thread drives it; `cancel` (a
    `threading.Event` shared with the engine) stops a prefill at its next chunk."""

    def __init__(self, models: ModelConfig, cancel: threading.Event) -> None:
        self.models_cfg = models
        self.target: LoadedModel | None = None
        self.drafter: LoadedModel | None = None
        self._cancel = cancel
        self._factories: dict[int, SequenceFactory] = {}
        self._live: _Live | None = None
        self._live_drafter: _Live | None = None  # the drafter's sequence, likewise
        # Learned verify-cost curves (n tokens -> ratio to a one-token step), per target
        # model, precision and context bucket, so each question starts from what earlier
        # ones measured (int4's curve is steep, bf16's flat: docs/benchmarks.md).
        self.verify_costs: dict[CostKey, dict[int, float]] = {}
        self.kv = KVStore(cache_dir() / "kv")

    def clear_kv_cache(self, memory: bool = True, disk: bool = False) -> None:
        self.kv.clear(memory, disk)
        self._live = self._live_drafter = None

    def loaded(self) -> tuple[LoadedModel, LoadedModel]:
        """(target, drafter), after `load_models`."""
        assert self.target is not None and self.drafter is not None
        return self.target, self.drafter

    @quiet
    def load_models(self) -> Iterator[Event]:
        """Load target and drafter once (idempotent), with progress as it happens."""
        if self.target is not None:
            return
        cfg = self.models_cfg
        target, drafter = yield from streamed(
            lambda status, progress: load_pair(cfg, status, progress)
        )
        self.target, self.drafter = target, drafter
        shared = drafter is target
        for role, m in (("target", target), ("drafter", drafter)):
            yield ModelLoaded(
                role, m.name, str(m.device), m.precision,  # type: ignore[arg-type]
                m.parameters, m.context_window,
                m.load_seconds if not (shared and role == "drafter") else 0.0,
                shared_with_target=shared and role == "drafter",
            )  # fmt: skip

    def factory(self, m: LoadedModel) -> SequenceFactory:
        key = id(m.model)
        if key not in self._factories:
            f = SequenceFactory(m.model)
            if f.fast is not None and fast_prefill(self.models_cfg.fast_prefill, m):
                f.fast.use_fast_prefill(torch.bfloat16)
            self._factories[key] = f
        return self._factories[key]

    def prefill_tag(self, m: LoadedModel) -> str:
        f = self.factory(m)
        return "" if f.fast is None else f"{f.fast.kind}{f.fast.prefill_dtype}"

    def drafter_sequence(
        self, drafter: LoadedModel, d_ids: list[int], extra: int, cfg: DecodeConfig
    ) -> Generator[Event, None, LMSequence | None]:
        """A drafter sequence holding d_ids[:-1]: the last question's when its drafter
        context was the same (another mode or setting on the same question), else
        prefilled. None when cancelled."""
        key = self._prefix_key(drafter, d_ids)
        live, self._live_drafter = self._live_drafter, None
        cached = 0
        if live is not None and live.key == key:
            seq, cached = live.seq, live.prefix_len
            seq.crop(cached)
            seq.reserve(len(d_ids) + extra)
        else:
            seq = self.factory(drafter).new(len(d_ids) + extra)
        ok = yield from self.prefill(seq, d_ids[cached:-1], "drafter", cfg.prefill_chunk, cached)
        if not ok:
            return None
        self._live_drafter = _Live(key, seq, len(d_ids) - 1)
        return seq

    def prefill(
        self,
        seq: LMSequence,
        ids: list[int],
        role: Literal["target", "drafter"],
        chunk: int,
        cached: int,
    ) -> Generator[Event, None, bool]:
        """Feed `ids` in chunks with progress; False if cancelled (sequence then invalid)."""
        total = cached + len(ids)
        device = self._device()
        t0 = time.perf_counter()
        seq.reserve(seq.length + len(ids) + 64)
        if isinstance(seq, FastSequence) and seq.w.compact and ids:
            # Compact weights: layer by layer, each layer dequantized once (fastlm.py).
            for fraction in seq.prefill(torch.tensor(ids, device=device), chunk):
                if self._cancel.is_set():
                    return False
                done = cached + round(len(ids) * fraction)
                yield PrefillProgress(role, done, total, time.perf_counter() - t0, cached)
            return True
        for start in range(0, len(ids), chunk):
            if self._cancel.is_set():
                return False
            part = torch.tensor(ids[start : start + chunk], device=device)
            seq.forward(part, "none")
            done = cached + min(start + chunk, len(ids))
            yield PrefillProgress(role, done, total, time.perf_counter() - t0, cached)
        if not ids:
            yield PrefillProgress(role, total, total, 0.0, cached)
        return True

    def _device(self) -> torch.device:
        assert self.target is not None
        return self.target.device

    def _prefix_key(self, m: LoadedModel, ids: Sequence[int]) -> str:
        """The KV key of `ids` read by `m`: the model's content, how it runs, its dtype
        and the tokens."""
        return prefix_key(m.key + self.prefill_tag(m), m.dtype, ids)

    def uncached_prefix(self, target: LoadedModel, prompt: Prompt) -> int:
        """Tokens of `prompt`'s prefix the target would have to read (0 when its KV is
        live or stored)."""
        key = self._prefix_key(target, prompt.prefix)
        if (self._live is not None and self._live.key == key) or key in self.kv:
            return 0
        return len(prompt.prefix)

    def target_sequence(
        self, target: LoadedModel, prompt: Prompt, cfg: DecodeConfig
    ) -> Generator[Event, None, LMSequence | None]:
        """A target sequence holding prompt[:-1]: the prefix from the live sequence or
        the KV store when possible, else prefilled (and stored)."""
        f = self.factory(target)
        key = self._prefix_key(target, prompt.prefix)
        need = len(prompt) + cfg.max_new_tokens + cfg.gamma + 8
        live = self._live
        self._live = None  # invalid until this question's prefill completes
        cached = 0
        if live is not None and live.key == key:
            seq = live.seq
            seq.crop(live.prefix_len)
            cached = live.prefix_len
        else:
            seq = f.new(need)
            kv = self.kv.get(key, target.device)
            if kv is not None:
                seq.restore(*kv)
                cached = seq.length
        if not cached:
            ok = yield from self.prefill(seq, list(prompt.prefix), "target", cfg.prefill_chunk, 0)
            if not ok:
                return None
            self.kv.put(key, seq.snapshot())
        seq.reserve(need)
        ok = yield from self.prefill(
            seq, list(prompt.suffix[:-1]), "target", cfg.prefill_chunk, cached
        )
        if not ok:
            return None
        self._live = _Live(key, seq, len(prompt.prefix))
        return seq


_T = TypeVar("_T")


def streamed(work: Callable[[StatusFn, ProgressFn], _T]) -> Generator[Event, None, _T]:
    """Run `work(on_status, on_progress)` on a helper thread, yielding its messages and
    progress as events while it runs (a model's first-use conversion takes a minute,
    and the window shows how far it is); returns its result or raises its error."""
    events: queue.SimpleQueue[Event | None] = queue.SimpleQueue()
    result: list[_T] = []
    failure: list[BaseException] = []
    stage_start: dict[tuple[str, str], float] = {}
    last: dict[tuple[str, str], float] = {}

    def progress(name: str, stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        key = (name, stage)
        start = stage_start.setdefault(key, now)
        if done < total and now - last.get(key, 0.0) < 0.2:
            return  # at most five updates a second per stage
        last[key] = now
        events.put(LoadProgress(name, stage, done, total, now - start))

    def run() -> None:
        try:
            result.append(work(lambda m: events.put(Status(m)), progress))
        except BaseException as err:  # re-raised on the caller's thread
            failure.append(err)
        finally:
            events.put(None)

    worker = threading.Thread(target=run, name="rapidqa-model-load", daemon=True)
    worker.start()
    while (event := events.get()) is not None:
        yield event
    worker.join()
    if failure:
        raise failure[0]
    return result[0]


def fast_prefill(setting: bool | None, m: LoadedModel) -> bool:
    """bf16 prefill: as set, or (auto) for an fp32 model on a CPU with native bf16."""
    if setting is not None:
        return setting and m.dtype == torch.float32
    if m.device.type != "cpu" or m.dtype != torch.float32:
        return False
    return cpu_has_bf16()
