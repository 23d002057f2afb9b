"""Decode cost per weight precision: the one-token step against its bandwidth bound, the
verify cost curve, prefill speed, and how often the compact model agrees with fp32.

    .venv/bin/python bench/step_costs.py [--model qwen-1.5b] [--context 8192]
        [--precisions float32,bfloat16,int8,int4] [--agreement 512] [--json OUT]

For each precision, in one process (one model loaded at a time):

* step: median one-token forward over `--context` cached tokens (the cache is filled
  with random keys and values: a step's cost does not depend on them);
* bound: bytes that step reads (weights as stored + KV cache) / memory bandwidth of a
  large copy measured in the same run (core/bandwidth.py), and step / bound;
* verify n: forward of n = 1..8 tokens / one-token step: the draft planner's cost curve;
* prefill: seconds for 1,024 tokens after 1,024 of context, in 512-token chunks
  (layer by layer for compact weights, as the engine reads a document);
* top-1 agreement: the share of `--agreement` positions of the bundled sample document
  (teacher-forced) where the model's greedy next token equals the fp32 model's.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from core.bandwidth import bound_s, stream_bandwidth
from core.decoding.fastlm import FastSequence
from core.decoding.lm import SequenceFactory, step_bytes
from core.models.loading import load_model

SAMPLE = Path(__file__).resolve().parent.parent / "resources" / "sample"


def _median_time(fn: Callable[[], None], repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _sample_ids(tokenizer: Any, n: int) -> torch.Tensor:
    import fitz  # PyMuPDF, the app's PDF reader

    pdf = next(SAMPLE.glob("*.pdf"))
    with fitz.open(pdf) as doc:
        text = "\n".join(page.get_text() for page in doc)
    ids = tokenizer(text, add_special_tokens=False).input_ids[: n + 1]
    return torch.tensor(ids, dtype=torch.long)


def _greedy(seq: FastSequence, ids: torch.Tensor) -> torch.Tensor:
    """Teacher-forced greedy next tokens after each of `ids` (prefill-sized blocks)."""
    out = []
    for s in range(0, len(ids), 256):
        out.append(seq.forward(ids[s : s + 256], "all").argmax(-1))
    return torch.cat(out)


def measure(model: str, precision: str, args: argparse.Namespace, bandwidth: float,
            ref: torch.Tensor | None) -> dict[str, Any]:  # fmt: skip
    m = load_model(model, device="cpu", precision=precision)
    f = SequenceFactory(m.model)
    assert f.fast is not None, "bench/step_costs.py times the FastSequence path"
    w = f.fast
    g = torch.Generator().manual_seed(0)
    seq = FastSequence(w, args.context + 64)
    shape = (w.n_layers, w.n_kv, args.context, w.head_dim)
    seq.restore(
        torch.randn(shape, generator=g).to(w.dtype), torch.randn(shape, generator=g).to(w.dtype)
    )
    ids = torch.randint(100, 20000, (16,), generator=g)

    def forward(n: int) -> Callable[[], None]:
        def run() -> None:
            seq.forward(ids[:n], "all")
            seq.crop(args.context)

        return run

    step = _median_time(forward(1), args.repeat)
    read = step_bytes(seq)
    verify = {n: _median_time(forward(n), args.repeat) / step for n in range(2, 9)}
    pre = FastSequence(w, 2048)
    chunk = torch.randint(100, 20000, (2048,), generator=g)
    pre.forward(chunk[:1024], "none")

    def prefill() -> None:  # as the engine reads a document: 512-token chunks
        if w.compact:  # layer by layer (FastSequence.prefill)
            for _ in pre.prefill(chunk[1024:], 512):
                pass
        else:
            for c in range(1024, 2048, 512):
                pre.forward(chunk[c : c + 512], "none")
        pre.crop(1024)

    prefill_s = _median_time(prefill, 2)  # 1,024 tokens
    agree = None
    tokens: torch.Tensor | None = None
    if args.agreement:
        sample = _sample_ids(m.tokenizer, args.agreement)
        tokens = _greedy(FastSequence(w, len(sample) + 8), sample[:-1])
        if ref is not None:
            agree = float((tokens == ref).float().mean())
    bound = bound_s(read, bandwidth)
    row = {
        "model": m.name, "precision": m.precision, "weight_mb": w.weight_bytes / 2**20,
        "step_ms": step * 1e3, "bound_ms": bound * 1e3, "step_over_bound": step / bound,
        "verify": verify, "prefill_s_per_1k": prefill_s, "agreement": agree,
        "tokens": tokens,
    }  # fmt: skip
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="qwen-1.5b")
    ap.add_argument("--precisions", default="float32,bfloat16,int8,int4")
    ap.add_argument("--context", type=int, default=8192)
    ap.add_argument("--agreement", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    bandwidth = stream_bandwidth()
    rows: list[dict[str, Any]] = []
    ref = None
    for precision in args.precisions.split(","):
        row = measure(args.model, precision, args, bandwidth, ref)
        gc.collect()  # the model is gone with `measure`'s frame: free it before the next
        if precision == "float32":
            ref = row["tokens"]
        rows.append(row)
        print(f"... {row['precision']}: step {row['step_ms']:.1f} ms", flush=True)
    fp32 = next((r["step_ms"] for r in rows if r["precision"] == "float32"), None)
    print(
        f"\n{rows[0]['model']} @ {args.context} tokens of context, "
        f"{torch.get_num_threads()} threads, copy bandwidth {bandwidth / 1e9:.1f} GB/s"
    )
    head = (f"{'precision':10s} {'weights MB':>10s} {'step ms':>8s} {'bound ms':>8s} "
            f"{'/bound':>6s} {'x fp32':>6s} {'prefill s/1K':>12s} {'top-1 = fp32':>12s}  "
            "verify n=2..8 / step")  # fmt: skip
    print(head + "\n" + "-" * len(head))
    for r in rows:
        speed = f"{fp32 / r['step_ms']:.2f}" if fp32 else "-"
        agree = "-" if r["agreement"] is None else f"{r['agreement']:.1%}"
        curve = " ".join(f"{v:.2f}" for v in r["verify"].values())
        print(f"{r['precision']:10s} {r['weight_mb']:10.0f} {r['step_ms']:8.1f} "
              f"{r['bound_ms']:8.1f} {r['step_over_bound']:6.2f} {speed:>6s} "
              f"{r['prefill_s_per_1k']:12.2f} {agree:>12s}  {curve}")  # fmt: skip
    if args.json:
        for r in rows:
            r.pop("tokens")
        out = {"context": args.context, "bandwidth": bandwidth, "rows": rows}
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
