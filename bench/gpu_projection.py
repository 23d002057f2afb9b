"""Step costs of RAPID's kernels on a GPU at long context, with random-weight models built
from real configs (Llama-3.1-8B, Qwen2.5-7B), and the RAPID speedup they imply at a given
acceptance: a projection through transformers' forward. The engine itself is timed
by bench/gpu_speed.py.

    python bench/gpu_projection.py [--model llama-3.1-8b|qwen2.5-7b|all]
        [--contexts 8192,16384,32768,65536,131072] [--drafter-context 4096]
        [--gamma 2..8] [--acceptance FILE.json | --mean-accepted X | --accept-rate A]
        [--compile] [--repeat 10] [--json PATH]
    python bench/gpu_projection.py --device cpu --tiny --json OUT.json     # a smoke run, seconds

Imports only torch, transformers and the standard library (plus `bench/roofline.py`,
imported from the script's folder), so it runs on a GPU machine that has none of RapidQA's
other dependencies.
Written against the transformers 5.x cache API as found in 5.23 and kept to what 5.17
also has (see `PreallocLayer`).

What it measures, per target model and context L (bf16, SDPA attention):

* target 1-token step: one forward of 1 token over L cached tokens;
* verify of gamma drafts: one forward of k = gamma + 1 tokens over L, logits for all k;
* drafter step: one 1-token forward of the drafter at `--drafter-context` (RAPID's
  drafter reads only the retrieved ~4K tokens): the target itself (self-speculation, the
  paper's main setting) and, for Llama, Llama-3.2-1B (a smaller drafter, same vocabulary).

Each time is the median of `--repeat` CUDA-synchronised runs after warm-up; the cache is
rolled back to L after every run. The KV cache is not prefilled (too slow at 128K): each
layer's keys and values are random tensors of shape (1, kv_heads, L, head_dim) in a
preallocated buffer (`--cache prealloc`, a DynamicCache of `PreallocLayer`s: appending
is a slice copy, as in a serving engine). Weights are random too; neither changes the
cost of a step. Before measuring, each model's logits through that cache are checked
against transformers' own DynamicCache (`checks` in the JSON); if that fails on this
transformers version, the run falls back to the DynamicCache with a note. `--cache
dynamic` forces it: its `torch.cat` copies the whole KV every step (what HF `generate`
pays), which inflates every target step at long context.

Time and memory on an H100: the model is built in seconds; each context takes ~10-30 s
(2 variants × 8 forwards × (3 + 10) runs); the default run (2 targets, 5 contexts,
gamma 2..8) about 3-5 min. Peak memory: Llama-3.1-8B at 128K ≈ 16 GB weights + 16 GB
KV + the verify's `repeat_kv` copy of one layer's KV (2 GB).

Attention variants (both measured; the table shows both):

* `sdpa`: transformers' own SDPA path, as shipped. A 1-token step runs SDPA with GQA
  (no mask); a k-token verify carries an explicit mask, and transformers then copies the
  KV heads for grouped-query attention (`repeat_kv`): num_heads / kv_heads times the KV
  traffic (4× for Llama-3.1-8B, 7× for Qwen2.5-7B).
* `fold`: the same SDPA call with the query heads that share a KV head folded into the
  query-length axis (as RapidQA's CPU kernel does), so each KV row is read once. What an
  engine with a GQA-aware verify kernel (FlashAttention, vLLM) would pay.

Projection: for each context, drafter, variant and gamma, `rapid_round_projection`
(bench/roofline.py): tokens per round = mean accepted + 1; round time = gamma · t_draft +
t_verify(gamma + 1); speedup = (tokens per round / round time) · t_target_1. The mean
accepted length comes from `--acceptance` (a JSON written by the CPU benchmarks:
`{"mean_accepted_length": X}`, `{"modes": {"rapid": {"mean_accepted_length": X}}}` or a
bare number; used for every gamma, capped at gamma), `--accept-rate A` (each draft
accepted independently with probability A: E = A(1 - A^gamma)/(1 - A)), or
`--mean-accepted` (default 2.0, a placeholder, not a measurement). The best gamma is
reported.

JSON (`--json`): `models` maps a series label (the target's name for self-speculation,
"<target> + <drafter> drafter" otherwise) to one row per context (the printed table:
`context`, `projected_speedup`, `fold_projected_speedup`, step times, roofline ...);
`details` holds every measurement per target (all gammas, both attention variants, the
roofline predictions with nominal and measured figures); `device` is the device's name.

`--compile` also times the 1-token step under `torch.compile(mode="reduce-overhead")`
where that works (each context is a recompile, ~1 min for an 8B model); failures are
printed as a note and skipped.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import roofline as rl  # bench/roofline.py: the script's folder is on sys.path
import torch
import transformers
from gpu_kv import CACHE_KINDS, register_fold_attention  # bench/gpu_kv.py (bench/ is on sys.path)
from gpu_measure import (  # bench/gpu_measure.py (bench/ is on sys.path)
    Settings,
    best,
    measure_target,
    predicted_ms,
)
from gpu_models import (  # bench/gpu_models.py (bench/ is on sys.path)
    ATTENTIONS,
    DEFAULT_MEAN_ACCEPTED,
    TARGETS,
)
from gpu_timing import (  # bench/gpu_timing.py (bench/ is on sys.path)
    Acceptance,
    Timer,
    load_acceptance,
)

# --------------------------------------------------------------------------- output


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = [" | ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def series_label(target: str, drafter: str) -> str:
    """The name of one target/drafter pair in the JSON's `models` summary."""
    return target if drafter == "self" else f"{target} + {drafter} drafter"


def summarize(details: dict[str, Any], s: Settings) -> dict[str, list[dict[str, Any]]]:
    """One row per context for each target/drafter pair: the printed table.

    `projected_speedup` is for transformers' own SDPA path at the best gamma;
    `fold_projected_speedup` for the folded-GQA verify (None when not measured).
    """
    out: dict[str, list[dict[str, Any]]] = {}
    for res in details.values():
        for drafter, d in res["drafters"].items():
            rows = []
            for ctx in res["contexts"]:
                one = ctx["target_1tok_ms"]["sdpa"]
                b = best(res["projection"], ctx["context"], drafter, "sdpa")
                k = b["gamma"] + 1
                tv = ctx["verify_ms"]["sdpa"][str(k)]
                pred_ms, bound = predicted_ms(ctx["predicted_1tok"])
                row: dict[str, Any] = {
                    "context": ctx["context"],
                    "target": res["model"],
                    "drafter": d["model"],
                    "self_speculation": drafter == "self",
                    "target_1tok_ms": one,
                    "gamma": b["gamma"],
                    "verify_ms": tv,
                    "verify_over_1tok": round(tv / one, 4),
                    "drafter_step_ms": d["step_ms"],
                    "drafter_context": d["context"],
                    "roofline_1tok_ms": pred_ms,
                    "roofline_bound": bound,
                    "measured_over_predicted": round(one / pred_ms, 4),
                    "mean_accepted": b["mean_accepted"],
                    "projected_speedup": b["speedup"],
                    "fold_gamma": None,
                    "fold_verify_over_1tok": None,
                    "fold_projected_speedup": None,
                }
                if "fold" in s.attentions:
                    bf = best(res["projection"], ctx["context"], drafter, "fold")
                    kf = bf["gamma"] + 1
                    ratio = ctx["verify_ms"]["fold"][str(kf)] / ctx["target_1tok_ms"]["fold"]
                    row["fold_gamma"] = bf["gamma"]
                    row["fold_verify_over_1tok"] = round(ratio, 4)
                    row["fold_projected_speedup"] = bf["speedup"]
                rows.append(row)
            out[series_label(res["model"], drafter)] = rows
    return out


def report(out: dict[str, Any], s: Settings) -> str:
    parts = [out["projection_header"]]
    for label, rows in out["models"].items():
        if not rows:
            parts.append(f"\n{label}: no context measured (see the notes)")
            continue
        first = rows[0]
        drafter = "self (same model)" if first["self_speculation"] else first["drafter"]
        parts.append(
            f"\n{label} — drafter: {drafter} @ {first['drafter_context']} "
            f"({first['drafter_step_ms']:.2f} ms/step)"
        )
        header = [
            "context",
            "target 1-tok ms",
            "γ",
            "verify k ms",
            "verify/1-tok",
            "drafter step ms",
            "roofline 1-tok ms",
            "meas/pred",
            "proj. speedup",
        ]
        if "fold" in s.attentions:
            header += ["fold verify/1-tok", "fold speedup (γ)"]
        table = []
        for r in rows:
            line = [
                str(r["context"]),
                f"{r['target_1tok_ms']:.2f}",
                str(r["gamma"]),
                f"{r['verify_ms']:.2f} (k={r['gamma'] + 1})",
                f"{r['verify_over_1tok']:.2f}",
                f"{r['drafter_step_ms']:.2f}",
                f"{r['roofline_1tok_ms']:.2f} ({r['roofline_bound'][:3]})",
                f"{r['measured_over_predicted']:.2f}",
                f"{r['projected_speedup']:.2f}x",
            ]
            if "fold" in s.attentions:
                line += [
                    f"{r['fold_verify_over_1tok']:.2f} (k={r['fold_gamma'] + 1})",
                    f"{r['fold_projected_speedup']:.2f}x ({r['fold_gamma']})",
                ]
            table.append(line)
        parts.append(_table(header, table))
    ks = sorted({g + 1 for g in s.gammas})
    for res in out["details"].values():
        detail = []
        for ctx in res["contexts"]:
            for attn in s.attentions:
                one = ctx["target_1tok_ms"][attn]
                line = [str(ctx["context"]), attn, f"{one:.2f}"]
                line += [f"{ctx['verify_ms'][attn][str(k)] / one:.2f}" for k in ks]
                if s.compile:
                    compiled = ctx.get("compiled_1tok_ms")
                    line.append(f"{compiled:.2f}" if compiled and attn == "sdpa" else "-")
                detail.append(line)
        header = ["context", "attention", "1-tok ms"] + [f"k={k}" for k in ks]
        header += ["compiled 1-tok ms"] if s.compile else []
        parts.append(f"\n{res['model']} — verify of k tokens / 1-token step")
        parts.append(_table(header, detail))
        if "check" in res:
            c = res["check"]
            parts.append(
                f"fold vs sdpa verify logits: max |diff| {c['max_abs_logit_diff']:.2e} "
                f"(max |logit| {c['max_abs_logit']:.2f})"
            )
    for note in s.notes:
        parts.append(f"note: {note}")
    return "\n".join(parts)


def parse_ints(text: str) -> list[int]:
    """ "2..8" (inclusive range), "2,4,8" or "4"."""
    if ".." in text:
        lo, hi = text.split("..", 1)
        return list(range(int(lo), int(hi) + 1))
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--model", default="all", choices=[*TARGETS, "all"])
    ap.add_argument("--contexts", default=None, help="comma list (default 8K..128K; tiny 256,512)")
    ap.add_argument("--drafter-context", type=int, default=None, help="default 4096 (tiny 128)")
    ap.add_argument("--gamma", default="2..8", help='drafts per round: "2..8", "2,4" or "4"')
    acc = ap.add_mutually_exclusive_group()
    acc.add_argument("--acceptance", help="JSON with the mean accepted length per round")
    acc.add_argument("--mean-accepted", type=float, help=f"default {DEFAULT_MEAN_ACCEPTED}")
    acc.add_argument("--accept-rate", type=float, help="iid per-draft acceptance probability")
    ap.add_argument("--attention", default="sdpa,fold", help="sdpa, fold or both")
    ap.add_argument(
        "--cache",
        default="prealloc",
        choices=CACHE_KINDS,
        help="prealloc (default: a preallocated cache) or dynamic (transformers' DynamicCache, "
        "which copies the whole KV every step)",
    )
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--device", default=None, help="cuda (default when present) or cpu")
    ap.add_argument("--tiny", action="store_true", help="tiny configs: a CPU smoke run")
    ap.add_argument("--dtype", default=None, help="bfloat16 (default on cuda) or float32")
    ap.add_argument("--repeat", type=int, default=None, help="timed runs (default 10, tiny 3)")
    ap.add_argument("--warmup", type=int, default=None, help="default 3 (tiny 1)")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (tiny default 1)")
    ap.add_argument("--json", dest="json_path", help="write everything here")
    args = ap.parse_args(argv)
    if args.threads or (args.tiny and args.device == "cpu"):
        # one thread keeps a CPU smoke run from stalling on a busy machine
        torch.set_num_threads(args.threads or 1)

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cpu" and not args.tiny:
        ap.error("full-size models on a CPU need 16-30 GB and minutes per step: add --tiny")
    dtype_name = args.dtype or ("bfloat16" if device.type == "cuda" else "float32")
    dtype = getattr(torch, dtype_name)
    contexts = parse_ints(
        args.contexts or ("256,512" if args.tiny else "8192,16384,32768,65536,131072")
    )
    drafter_context = args.drafter_context or (128 if args.tiny else 4096)
    gammas = parse_ints(args.gamma)
    if not gammas or min(gammas) < 1:
        ap.error("--gamma needs values >= 1")
    if args.acceptance:
        acceptance = load_acceptance(args.acceptance)
    elif args.accept_rate is not None:
        acceptance = Acceptance(None, args.accept_rate, f"--accept-rate {args.accept_rate}")
    elif args.mean_accepted is not None:
        acceptance = Acceptance(args.mean_accepted, None, f"--mean-accepted {args.mean_accepted}")
    else:
        acceptance = Acceptance(
            DEFAULT_MEAN_ACCEPTED,
            None,
            f"default --mean-accepted {DEFAULT_MEAN_ACCEPTED} (a placeholder, NOT measured)",
        )
    attentions = [a for a in args.attention.split(",") if a]
    if not attentions or attentions[0] != "sdpa" or any(a not in ATTENTIONS for a in attentions):
        ap.error("--attention: 'sdpa' or 'sdpa,fold'")
    notes: list[str] = []
    if "fold" in attentions:
        note = register_fold_attention()
        if note is not None:
            notes.append(note)
            attentions = ["sdpa"]

    if device.type == "cuda":
        device_name = torch.cuda.get_device_name(device)
        nominal = rl.nominal_device(device_name)
    else:
        device_name = f"cpu ({platform.machine()}, threads={torch.get_num_threads()})"
        nominal = None
    print(
        f"device: {device_name}; torch {torch.__version__}, transformers "
        f"{transformers.__version__}; {dtype_name}; measuring bandwidth ...",
        flush=True,
    )
    if args.tiny:
        bw = rl.measure_bandwidth(device, nbytes=64 * 1024**2, repeat=2)
        flops = rl.measure_flops(dtype, device, n=512, repeat=2)
    else:
        bw = rl.measure_bandwidth(device)
        flops = rl.measure_flops(dtype, device)
    measured = rl.DeviceSpec(
        device_name, bw.read, flops, f"measured (x.sum() read, {dtype_name} matmul)"
    )
    print(
        f"measured: read {bw.read / 1e9:.0f} GB/s, copy {bw.copy / 1e9:.0f} GB/s, "
        f"matmul {flops / 1e9:,.0f} GFLOP/s"
        + (
            f"; nominal {nominal.bandwidth / 1e12:.2f} TB/s, {nominal.peak_flops / 1e12:.0f} "
            f"TFLOP/s"
            if nominal
            else ""
        ),
        flush=True,
    )

    s = Settings(
        device=device,
        dtype=dtype,
        tiny=args.tiny,
        contexts=contexts,
        drafter_context=drafter_context,
        gammas=gammas,
        acceptance=acceptance,
        timer=Timer(
            device,
            args.warmup if args.warmup is not None else (1 if args.tiny else 3),
            args.repeat or (3 if args.tiny else 10),
        ),
        compile=args.compile,
        nominal=nominal,
        measured=measured,
        attentions=attentions,
        cache=args.cache,
        notes=notes,
    )
    header = (
        f"PROJECTION: step costs measured with random weights on {device_name}"
        f"{' (TINY configs)' if args.tiny else ''}; acceptance measured on CPU with real "
        f"weights ({acceptance.source})"
    )
    names = list(TARGETS) if args.model == "all" else [args.model]
    details: dict[str, Any] = {}
    started = time.perf_counter()
    for name in names:
        details[name] = measure_target(name, s)
    out: dict[str, Any] = {
        "script": "bench/gpu_projection.py",
        "projection_header": header,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },
        "device": device_name,
        "device_info": {
            "type": device.type,
            "name": device_name,
            "nominal": None if nominal is None else rl.to_dict(nominal),
            "measured": rl.to_dict(measured),
            "bandwidth_copy": bw.copy,
        },
        "settings": {
            "dtype": dtype_name,
            "tiny": args.tiny,
            "contexts": contexts,
            "drafter_context": drafter_context,
            "gammas": gammas,
            "attentions": attentions,
            "repeat": s.timer.repeat,
            "warmup": s.timer.warmup,
            "compile": args.compile,
            "cache": s.cache,
            "kv_cache": (
                "random K/V in a preallocated DynamicCache (PreallocLayer), no prefill"
                if s.cache == "prealloc"
                else "random K/V in transformers' DynamicCache (torch.cat per step), no prefill"
            ),
        },
        "checks": s.checks,
        "acceptance": {
            "mean_accepted": acceptance.mean_accepted,
            "accept_rate": acceptance.rate,
            "source": acceptance.source,
        },
        "models": summarize(details, s),
        "details": details,
        "notes": notes,
        "wall_s": round(time.perf_counter() - started, 2),
    }
    print()
    print(report(out, s))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(out, indent=1, default=_json_default))
        print(f"\nwrote {args.json_path}")
    return out


def _json_default(obj: object) -> object:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return str(obj)


if __name__ == "__main__":
    main()
