"""RapidQA's own decoding engine timed on a GPU: the checks, then step, verify and loop.

    python bench/gpu_speed.py [--contexts 8192,32768] [--no-checks] [--json OUT]
    python bench/gpu_speed.py --device cpu --tiny --contexts 512     # a smoke run

Runs on a machine with only torch and transformers (a GPU machine has no network and
receives the repository, nothing else): the models are built there from configs.

1. Checks (bench/gpu_checks.py): a tiny random Qwen2 model and a noisy copy of it as
   drafter run through the real `FastSequence`, drafters and `decode` loop in all four
   modes, greedy and sampled, self and two-model; greedy sd must equal target.
2. Timing, bf16, with a random model of Qwen2.5-Coder-1.5B's shape (the default
   target; random weights cost what real ones do) at each context (KV cache filled with
   random rows): the one-token step against its bound, bytes read / memory bandwidth
   (a large device copy, measured in the same run); verify of n = 2..8 tokens / step;
   and the `decode` loop itself in target mode (tokens/s x step: the loop's overhead).

Everything is CUDA-synchronised; each time is a median. About 1-2 minutes on an H200.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root

from bench.gpu_checks import run_checks
from core.bandwidth import bound_s, stream_bandwidth
from core.config import DecodeConfig
from core.decoding.fastlm import FastSequence, FastWeights
from core.decoding.lm import step_bytes
from core.decoding.loop import Detokenizer, LoopResult, decode

QWEN_1_5B = dict(  # Qwen2.5-Coder-1.5B-Instruct's config.json, the parts that cost time
    vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
    num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=32768,
    rope_theta=1e6, tie_word_embeddings=False,
)  # fmt: skip
TINY = dict(vocab_size=2048, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096)  # fmt: skip


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median(fn: Callable[[], None], device: torch.device, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def build(shape: dict[str, Any], device: torch.device, dtype: torch.dtype) -> FastWeights:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(**shape, use_sliding_window=False)
    config._attn_implementation = "sdpa"
    with torch.device(device):
        model = Qwen2ForCausalLM(config).to(dtype)
    model.eval()
    model.requires_grad_(False)
    return FastWeights(model)


def time_context(w: FastWeights, context: int, bandwidth: float, repeat: int) -> dict[str, Any]:
    device = w.device
    seq = FastSequence(w, context + 128)
    shape = (w.n_layers, w.n_kv, context, w.head_dim)
    seq.restore(torch.randn(shape, device=device, dtype=w.dtype),
                torch.randn(shape, device=device, dtype=w.dtype))  # fmt: skip
    ids = torch.randint(100, 2000, (16,), device=device)

    def forward(n: int) -> Callable[[], None]:
        def run() -> None:
            seq.forward(ids[:n], "all")
            seq.crop(context)

        return run

    step = _median(forward(1), device, repeat)
    read = step_bytes(seq)
    verify = {n: _median(forward(n), device, repeat) / step for n in range(2, 9)}
    # The loop itself, target mode: what a user's answer costs per token.
    new = 64
    cfg = DecodeConfig(mode="target", max_new_tokens=new, temperature=0.0)
    res = LoopResult(tokens=[])
    for _ in decode(seq, 1000, cfg, vocab=w.vocab_size, eos_ids=frozenset(),
                    detok=Detokenizer(lambda t: ""), result=res):  # fmt: skip
        pass
    loop_tok_s = len(res.tokens) / res.decode_s
    bound = bound_s(read, bandwidth)
    return {
        "context": context, "step_ms": step * 1e3, "bytes_read": read,
        "bound_ms": bound * 1e3, "step_over_bound": step / bound, "verify": verify,
        "loop_tokens_per_s": loop_tok_s, "loop_over_step": 1 / (loop_tok_s * step),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--contexts", default="8192,32768")
    ap.add_argument("--tiny", action="store_true", help="a tiny model (smoke run)")
    ap.add_argument("--no-checks", action="store_true")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    out: dict[str, Any] = {"device": torch.cuda.get_device_name(device)
                           if device.type == "cuda" else "cpu"}  # fmt: skip
    if not args.no_checks:
        t0 = time.perf_counter()
        run_checks(device)
        out["checks"] = f"passed ({time.perf_counter() - t0:.0f} s)"
        print(f"checks on {device}: {out['checks']}", flush=True)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    w = build(TINY if args.tiny else QWEN_1_5B, device, dtype)
    bandwidth = stream_bandwidth(device)
    out["bandwidth_gb_s"] = bandwidth / 1e9
    out["weights_mb"] = w.weight_bytes / 2**20
    rows = [time_context(w, int(c), bandwidth, args.repeat) for c in args.contexts.split(",")]
    out["rows"] = rows
    name = "tiny" if args.tiny else "Qwen2.5-Coder-1.5B shape"
    bw, mb = out["bandwidth_gb_s"], out["weights_mb"]
    print(f"\n{name}, {str(dtype).removeprefix('torch.')}, {out['device']}, "
          f"copy bandwidth {bw:.0f} GB/s, weights {mb:.0f} MB")  # fmt: skip
    head = (f"{'context':>8s} {'step ms':>8s} {'bound ms':>8s} {'/bound':>6s} "
            f"{'loop tok/s':>10s} {'loop/step':>9s}  verify n=2..8 / step")  # fmt: skip
    print(head + "\n" + "-" * len(head))
    for r in rows:
        curve = " ".join(f"{v:.2f}" for v in r["verify"].values())
        print(f"{r['context']:8d} {r['step_ms']:8.2f} {r['bound_ms']:8.2f} "
              f"{r['step_over_bound']:6.1f} {r['loop_tokens_per_s']:10.1f} "
              f"{r['loop_over_step']:9.2f}  {curve}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
