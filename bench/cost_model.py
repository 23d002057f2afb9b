"""The roofline model of bench/roofline.py against measured step costs of the real default
model (SmolLM2-135M) on this CPU.

    .venv/bin/python bench/cost_model.py [--quick] [--json PATH] [--repeat 5]

At the start the run measures this machine's read bandwidth (`x.sum()` over 256 MB) and
matmul FLOP/s in the model's decode dtype; every prediction uses those two figures, so
measured/predicted says how far a kernel is from streaming its bytes at that bandwidth.

Measured as `bench/step_costs.py` does (the engine's `SequenceFactory` sequences, median of
`--repeat` runs after one warm-up, the cache cropped back after each run):

* target forward of n = 1, 2, 4, 7 tokens (logits for all n) at contexts 1K, 2K, 4K,
  7.5K; n = 1 is the plain decoding step, n = k + 1 the verify of k drafts;
* drafter step (1 token, last logits) at 1,750 tokens, with the full LM head and with
  the trimmed head (`trimmed_head_ids`) that the self-drafter uses. Its cache holds the
  first 1,750 rows of the target's (`FastSequence.select_from`, as the engine's
  self-drafter reads retrieved rows), so there is no second prefill.

The contexts are reached by prefilling one sequence in 512-token chunks. The rows of one
context are timed round-robin (repeat 1 of every row, then repeat 2 ...), and the drafter
rows round-robin with the target's 1-token step at the longest context, so a change of
load during the run moves a group together: the "÷ 1-tok" column (each row against the
1-token step of its group) is the figure to trust on a busy machine; measured/predicted
moves with the load. `--quick`: contexts 1K and 4K, 3 repeats; `--threads N` sets torch's
threads (1 keeps a run sane when other processes hold the cores).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import roofline as rl  # bench/roofline.py: the script's folder is on sys.path
import torch

from core.decoding.fastlm import FastSequence
from core.decoding.lm import Sequence, SequenceFactory
from core.decoding.proposers import trimmed_head_ids
from core.models.loading import load_model

CONTEXTS = (1024, 2048, 4096, 7680)
QUICK_CONTEXTS = (1024, 4096)
TOKENS = (1, 2, 4, 7)
DRAFTER_CONTEXT = 1750


def _interleaved(fns: list[Callable[[], None]], repeat: int) -> list[float]:
    """Median time of each callable; the repeats go round-robin over them, so a change
    of load on the machine hits every row of a group alike (their ratios stay sound)."""
    for fn in fns:
        fn()  # warm-up
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - t0)
    return [float(statistics.median(t)) for t in times]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--quick", action="store_true", help="contexts 1K and 4K, 3 repeats")
    ap.add_argument("--repeat", type=int, default=None, help="timed runs per row (default 5)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--json", dest="json_path", help="write the results here")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    contexts = QUICK_CONTEXTS if args.quick else CONTEXTS
    repeat = args.repeat or (3 if args.quick else 5)
    started = time.perf_counter()
    phases: dict[str, float] = {}

    loaded = load_model(args.model)
    factory = SequenceFactory(loaded.model)
    dtype: torch.dtype = factory.fast.dtype if factory.fast else loaded.model.dtype
    dtype_bytes = torch.finfo(dtype).bits // 8
    phases["load_s"] = time.perf_counter() - started
    print(f"measuring this machine ({torch.get_num_threads()} threads) ...", flush=True)
    t0 = time.perf_counter()
    device, bw = rl.measured_device("cpu", dtype, quick=args.quick)
    phases["machine_s"] = time.perf_counter() - t0
    shape = rl.ModelShape.from_config(loaded.model.config, loaded.name)
    print(
        f"read {bw.read / 1e9:.1f} GB/s, copy {bw.copy / 1e9:.1f} GB/s, "
        f"{dtype} matmul {device.peak_flops / 1e9:.0f} GFLOP/s; model {loaded.name}: "
        f"{shape.params_total / 1e6:.1f} M params, {dtype}",
        flush=True,
    )

    g = torch.Generator().manual_seed(0)
    top = max(contexts)
    ids = torch.randint(100, min(40000, factory.vocab_size), (top + 16,), generator=g)
    seq = factory.new(top + 32)
    rows: list[dict[str, Any]] = []
    phases["prefill_s"] = 0.0

    def prefill_to(n: int) -> None:
        t = time.perf_counter()
        while seq.length < n:
            seq.forward(ids[seq.length : min(seq.length + 512, n)], "none")
        phases["prefill_s"] += time.perf_counter() - t

    def forward(
        s: Sequence, n: int, logits: str = "all", head: torch.Tensor | None = None
    ) -> Callable[[], None]:
        def run() -> None:
            base = s.length
            s.forward(ids[base : base + n], logits, head)  # type: ignore[arg-type]
            s.crop(base)

        return run

    def row(what: str, context: int, t: float, cost: Any, base: float) -> dict[str, Any]:
        p = rl.predict(cost, device)
        print(f"  {what:44s} {t * 1e3:8.1f} ms (predicted {p.seconds * 1e3:.1f})", flush=True)
        return {
            "what": what,
            "context": context,
            "new_tokens": cost.new_tokens,
            "predicted_ms": p.seconds * 1e3,
            "bound": p.bound,
            "measured_ms": t * 1e3,
            "measured_over_predicted": t / p.seconds,
            "bytes": cost.total_bytes,
            "flops": cost.total_flops,
            "measured_over_1tok": t / base,
        }

    t0 = time.perf_counter()
    for context in contexts:
        prefill_to(context)
        costs = [rl.step_cost(shape, dtype_bytes, context, n) for n in TOKENS]
        times = _interleaved([forward(seq, n) for n in TOKENS], repeat)
        for n, t, cost in zip(TOKENS, times, costs, strict=True):
            label = "target 1-token step" if n == 1 else f"target forward n={n} (verify {n - 1})"
            rows.append(row(f"{label} @ {context}", context, t, cost, times[0]))

    # The drafter (the same model, self-speculation) at DRAFTER_CONTEXT tokens, timed
    # round-robin with the target's 1-token step at the longest context: the ratio a
    # speculative round pays. Its cache holds rows of the target's (as the engine's
    # self-drafter does), so there is no second prefill.
    if isinstance(seq, FastSequence):
        positions = torch.arange(DRAFTER_CONTEXT)
        drafter: Sequence = FastSequence.select_from(seq, positions, 32)
    else:
        drafter = factory.new(DRAFTER_CONTEXT + 32)
        t = time.perf_counter()
        drafter.forward(ids[:DRAFTER_CONTEXT], "none")
        phases["prefill_s"] += time.perf_counter() - t
    head_ids = trimmed_head_ids(ids[:DRAFTER_CONTEXT].tolist(), factory.vocab_size)
    head = factory.lm_head[head_ids].contiguous()
    t_target, t_full, t_trim = _interleaved(
        [forward(seq, 1), forward(drafter, 1, "last"), forward(drafter, 1, "last", head)], repeat
    )
    full = rl.step_cost(shape, dtype_bytes, DRAFTER_CONTEXT, 1, logits_rows=1)
    trim = rl.step_cost(
        shape, dtype_bytes, DRAFTER_CONTEXT, 1, logits_rows=1, head_rows=len(head_ids)
    )
    rows.append(
        row(f"drafter step @ {DRAFTER_CONTEXT}, full head", DRAFTER_CONTEXT, t_full, full, t_target)
    )
    rows.append(
        row(
            f"drafter step @ {DRAFTER_CONTEXT}, head {len(head_ids)} rows",
            DRAFTER_CONTEXT,
            t_trim,
            trim,
            t_target,
        )
    )
    phases["measure_s"] = time.perf_counter() - t0 - phases["prefill_s"]

    weight_mb = (
        dtype_bytes * (shape.params_nonembedding + shape.vocab_size * shape.hidden_size) / 1e6
    )
    print()
    print(
        f"machine: {platform.machine()}, {torch.get_num_threads()} threads; measured read "
        f"bandwidth {bw.read / 1e9:.1f} GB/s (copy {bw.copy / 1e9:.1f} GB/s), {dtype} matmul "
        f"{device.peak_flops / 1e9:.0f} GFLOP/s; model {loaded.name} ({dtype}, "
        f"{weight_mb:.0f} MB of weights read per step, KV "
        f"{dtype_bytes * shape.kv_elements_per_token() / 1e3:.1f} kB/token)"
    )
    print(
        f"{'what':46s} {'pred ms':>8s} {'bound':>7s} {'meas ms':>8s} {'meas/pred':>9s} "
        f"{'÷ 1-tok':>8s}"
    )
    for r in rows:
        print(
            f"{r['what']:46s} {r['predicted_ms']:8.1f} {r['bound']:>7s} {r['measured_ms']:8.1f} "
            f"{r['measured_over_predicted']:9.2f} {r['measured_over_1tok']:8.2f}"
        )
    print(
        "(÷ 1-tok: against the target 1-token step at the same context, timed round-robin with "
        f"it; drafter rows against the one at {top} ({t_target * 1e3:.1f} ms in that group))"
    )
    print("time: " + ", ".join(f"{k} {v:.0f}" for k, v in phases.items()))
    out = {
        "script": "bench/cost_model.py",
        "model": loaded.name,
        "dtype": str(dtype),
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "bandwidth_read_Bps": bw.read,
        "bandwidth_copy_Bps": bw.copy,
        "matmul_flops": device.peak_flops,
        "shape": rl.to_dict(shape),
        "repeat": repeat,
        "rows": rows,
        "target_1tok_ms_with_drafter": t_target * 1e3,
        "phases_s": phases,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(out, indent=1))
        print(f"wrote {args.json_path}")
    return out


if __name__ == "__main__":
    main()
