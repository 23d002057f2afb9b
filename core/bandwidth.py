"""This machine's memory bandwidth, measured the way a decode step uses memory.

A decode step streams every weight and the KV cache once, so its time cannot be below
bytes read / bandwidth. `stream_bandwidth` measures the bandwidth with a STREAM-style
copy of a buffer far larger than the caches (reads + writes counted), with the threads
torch uses; the speed benchmark prints each step against that bound in the same run.
"""

from __future__ import annotations

import statistics
import time

import torch

STREAM_BYTES = 512 * 2**20  # per buffer: well past any L3


def stream_bandwidth(device: str | torch.device = "cpu", repeat: int = 7) -> float:
    """Bytes per second of a large tensor copy (read + write), median of `repeat`."""
    dev = torch.device(device)
    n = STREAM_BYTES // 4
    src = torch.ones(n, dtype=torch.float32, device=dev)
    dst = torch.empty_like(src)
    times = []
    for i in range(repeat + 1):
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        dst.copy_(src)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        if i:  # the first copy also pays for page faults
            times.append(time.perf_counter() - t0)
    return 2 * STREAM_BYTES / statistics.median(times)


def bound_s(step_bytes: int, bandwidth: float) -> float:
    """The lower bound of a step that reads `step_bytes` at `bandwidth` bytes/s."""
    return step_bytes / bandwidth if bandwidth > 0 else 0.0
