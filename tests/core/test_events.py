"""Progress events: the fraction, the time left and the line a status bar shows."""

from __future__ import annotations

from core.events import LoadProgress, PrefillProgress


def test_load_progress() -> None:
    start = LoadProgress("Qwen-1.5B", "preparing", 0, 1000, 0.0)
    assert start.fraction == 0.0 and start.eta_s is None
    half = LoadProgress("Qwen-1.5B", "preparing", 500, 1000, 4.0)
    assert half.fraction == 0.5 and half.eta_s == 4.0
    assert half.describe() == "Qwen-1.5B: preparing (first use only) 50%, 4 s left"
    weights = LoadProgress("m", "loading weights", 10, 10, 2.0)
    assert weights.describe() == "m: loading weights 100%"  # every load: no "first use"
    assert LoadProgress("m", "converted", 0, 0, 0.0).fraction == 1.0


def test_prefill_eta_counts_only_what_was_read_this_time() -> None:
    assert PrefillProgress("target", 1024, 8192, 0.5).eta_s is None  # too early to tell
    assert PrefillProgress("target", 2048, 8192, 10.0).eta_s == 30.0
    # 4,096 tokens came from the KV cache in no time; 1,024 were read in 5 s
    assert PrefillProgress("target", 5120, 8192, 5.0, cached_tokens=4096).eta_s == 15.0
    assert PrefillProgress("target", 8192, 8192, 40.0).eta_s is None  # done
