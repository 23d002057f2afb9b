"""Step costs of the decoding kernels: target step and k-token verify at a long context,
drafter step at a short one; ratios against the target's one-token step.

    .venv/bin/python bench/step_costs.py [--model NAME] [--dtype auto|float32|bfloat16]
        [--context 7000] [--drafter-context 1750]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from core.decoding.drafters import trimmed_head_ids
from core.decoding.lm import SequenceFactory
from core.models import load_model


def _median_time(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16"))
    ap.add_argument("--context", type=int, default=7000)
    ap.add_argument("--drafter-context", type=int, default=1750)
    ap.add_argument("--repeat", type=int, default=9)
    args = ap.parse_args()
    m = load_model(args.model, device="cpu", dtype=args.dtype)
    f = SequenceFactory(m.model)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(100, 40000, (args.context + 16,), generator=g)
    seq = f.new(args.context + 32)
    for s in range(0, args.context, 512):
        seq.forward(ids[s : min(s + 512, args.context)], "none")
    rows = []

    def step(k: int):
        def run() -> None:
            base = seq.length
            seq.forward(ids[args.context : args.context + k], "all")
            seq.crop(base)

        return run

    base_t = _median_time(step(1), args.repeat)
    for k in (1, 2, 3, 4, 5, 7, 9):
        t = _median_time(step(k), args.repeat)
        rows.append((f"target forward of n={k} tokens @ {args.context}", t))
    dseq = f.new(args.drafter_context + 32)
    dseq.forward(ids[: args.drafter_context], "none")
    head_ids = trimmed_head_ids(ids[: args.drafter_context].tolist(), f.vocab_size)
    head = f.lm_head[head_ids].contiguous()

    def dstep(h):
        def run() -> None:
            b = dseq.length
            dseq.forward(ids[:1], "last", h)
            dseq.crop(b)

        return run

    rows.append(
        (
            f"drafter step @ {args.drafter_context}, full head",
            _median_time(dstep(None), args.repeat),
        )
    )
    rows.append(
        (
            f"drafter step @ {args.drafter_context}, head {len(head_ids)} rows",
            _median_time(dstep(head), args.repeat),
        )
    )
    print(
        f"{m.name} {str(m.dtype).removeprefix('torch.')}  threads={torch.get_num_threads()}  "
        f"target 1-token step = {base_t * 1e3:.1f} ms"
    )
    print(f"{'what':48s} {'ms':>8s} {'ratio':>7s}")
    for name, t in rows:
        print(f"{name:48s} {t * 1e3:8.1f} {t / base_t:7.2f}")


if __name__ == "__main__":
    main()
