"""Timing of the GPU projection's steps (CUDA events or the wall clock) and the
acceptance it projects with (from a quality benchmark's JSON, or given)."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import roofline as rl  # bench/roofline.py: the script's folder is on sys.path
import torch
from gpu_kv import KV  # bench/gpu_kv.py (bench/ is on sys.path)

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
