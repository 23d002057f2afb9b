"""The GPU projection's measurements: the target's one-token and verify steps per
context and attention, the drafter's step, and the RAPID speedup they project."""

from __future__ import annotations

import gc
import math
import time
from dataclasses import dataclass, field
from typing import Any

import roofline as rl  # bench/roofline.py: the script's folder is on sys.path
import torch
from gpu_kv import KV, make_kv  # bench/gpu_kv.py (bench/ is on sys.path)
from gpu_models import (  # bench/gpu_models.py (bench/ is on sys.path)
    ATTENTIONS,
    CONFIGS,
    DRAFTERS,
    FOLD_NAME,
    TINY_CONFIGS,
    build_model,
    set_attention,
)
from gpu_timing import (  # bench/gpu_timing.py (bench/ is on sys.path)
    Acceptance,
    Timer,
    step_fn,
    verify_logits,
)

# --------------------------------------------------------------------------- the run


@dataclass
class Settings:
    device: torch.device
    dtype: torch.dtype
    tiny: bool
    contexts: list[int]
    drafter_context: int
    gammas: list[int]
    acceptance: Acceptance
    timer: Timer
    compile: bool
    nominal: Any  # rl.DeviceSpec | None
    measured: Any  # rl.DeviceSpec
    attentions: list[str] = field(default_factory=lambda: list(ATTENTIONS))
    cache: str = "prealloc"
    notes: list[str] = field(default_factory=list)
    checks: dict[str, float] = field(default_factory=dict)

    def note(self, text: str) -> None:
        print("note: " + text, flush=True)
        self.notes.append(text)


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _ms(seconds: float) -> float:
    return round(seconds * 1e3, 4)


def _predictions(shape: Any, s: Settings, context: int, k: int) -> dict[str, Any]:
    dtype_bytes = torch.finfo(s.dtype).bits // 8
    cost = rl.step_cost(shape, dtype_bytes, context, k)
    out: dict[str, Any] = {"bytes": cost.total_bytes, "flops": cost.total_flops}
    for key, spec in (("nominal", s.nominal), ("measured", s.measured)):
        if spec is not None:
            p = rl.predict(cost, spec)
            out[key] = {"ms": _ms(p.seconds), "bound": p.bound}
    return out


def predicted_ms(pred: dict[str, Any]) -> tuple[float, str]:
    best = pred.get("nominal") or pred["measured"]
    return float(best["ms"]), str(best["bound"])


def measure_drafter(target: Any, name: str, drafter: str, s: Settings) -> dict[str, Any]:
    """One 1-token drafter step at the drafter context (sdpa)."""
    model = target if drafter == "self" else build_model(drafter, s.tiny, s.device, s.dtype)
    label = name if drafter == "self" else drafter
    set_attention(model, "sdpa")
    kv = make_kv(model, s.drafter_context, 16, s.device, s.cache)
    t = s.timer(step_fn(model, kv, 1, s.device))
    shape = rl.ModelShape.from_config(model.config, label)
    pred = _predictions(shape, s, s.drafter_context, 1)
    result = {
        "drafter": drafter,
        "model": label,
        "context": s.drafter_context,
        "step_ms": _ms(t),
        "predicted": pred,
        "params": shape.params_total,
    }
    del kv
    if model is not target:
        del model
    _free(s.device)
    return result


_COMPILED: dict[int, Any] = {}  # id(model) -> its torch.compile wrapper


def try_compile(model: Any, kv: KV, s: Settings) -> tuple[float | None, str | None]:
    """The 1-token step under torch.compile(mode="reduce-overhead"), or a note why not."""
    try:
        import torch._dynamo

        for knob in ("cache_size_limit", "recompile_limit"):
            if hasattr(torch._dynamo.config, knob):
                setattr(torch._dynamo.config, knob, 64)
        for layer in kv.layers:
            torch._dynamo.mark_static_address(layer.k_buf)
            torch._dynamo.mark_static_address(layer.v_buf)
        runner = _COMPILED.get(id(model))
        if runner is None:
            runner = torch.compile(model, mode="reduce-overhead")
            _COMPILED[id(model)] = runner
        fn = step_fn(model, kv, 1, s.device, runner)
        t0 = time.perf_counter()
        fn()
        compile_s = time.perf_counter() - t0
        t = s.timer(fn)
        print(
            f"    compiled 1-token step at {kv.context}: {t * 1e3:.2f} ms "
            f"(first call {compile_s:.0f} s)",
            flush=True,
        )
        return t, None
    except Exception as err:  # compile is optional
        return None, f"--compile skipped at {kv.context}: {type(err).__name__}: {err}"[:400]


def measure_target(name: str, s: Settings) -> dict[str, Any]:
    print(f"[{name}] building (random weights, {s.dtype}) ...", flush=True)
    t0 = time.perf_counter()
    model = build_model(name, s.tiny, s.device, s.dtype)
    shape = rl.ModelShape.from_config(model.config, name)
    probe_cache(model, name, s)
    print(
        f"[{name}] {shape.params_total / 1e6:,.1f} M params, built in "
        f"{time.perf_counter() - t0:.1f} s",
        flush=True,
    )
    result: dict[str, Any] = {
        "model": name,
        "config": {k: v for k, v in (TINY_CONFIGS if s.tiny else CONFIGS)[name].items()},
        "params_total": shape.params_total,
        "params_nonembedding": shape.params_nonembedding,
        "kv_bytes_per_token": shape.kv_elements_per_token() * (torch.finfo(s.dtype).bits // 8),
        "drafters": {},
        "contexts": [],
    }
    for drafter in DRAFTERS[name]:
        d = measure_drafter(model, name, drafter, s)
        result["drafters"][drafter] = d
        print(
            f"[{name}] drafter {d['model']} step @ {s.drafter_context}: {d['step_ms']:.2f} ms",
            flush=True,
        )
    ks = sorted({g + 1 for g in s.gammas})
    compile_broken = False
    for context in s.contexts:
        row: dict[str, Any] | None = None
        try:
            row = measure_context(model, shape, context, ks, s)
        except Exception as err:  # e.g. out of memory at the longest context: go on
            s.note(f"{name} at {context}: {type(err).__name__}: {err}"[:400])
        if row is None:
            _free(s.device)  # outside the except block, which holds the failed frame's KV
            continue
        if s.compile and not compile_broken:
            kv = make_kv(model, context, 2, s.device, s.cache)
            t, note = try_compile(model, kv, s)
            del kv
            if note is not None:
                s.note(note)
                compile_broken = True
            row["compiled_1tok_ms"] = None if t is None else _ms(t)
        one = row["target_1tok_ms"]["sdpa"]
        pred_ms, bound = predicted_ms(row["predicted_1tok"])
        verify_txt = ", ".join(f"{k}:{row['verify_ms']['sdpa'][str(k)] / one:.2f}" for k in ks)
        print(
            f"[{name}] L={context}: 1-tok {one:.2f} ms (roofline {pred_ms:.2f} ms, {bound}); "
            f"verify/1-tok by k (sdpa) {verify_txt}",
            flush=True,
        )
        result["contexts"].append(row)
        _free(s.device)
    if "fold" in s.attentions:
        result["check"] = fold_check(model, s)
    result["cache"] = s.cache
    if s.device.type == "cuda":
        result["max_memory_allocated_bytes"] = torch.cuda.max_memory_allocated(s.device)
        torch.cuda.reset_peak_memory_stats(s.device)
    _COMPILED.pop(id(model), None)
    del model
    _free(s.device)
    result["projection"] = project(result, s)
    return result


def measure_context(
    model: Any, shape: Any, context: int, ks: list[int], s: Settings
) -> dict[str, Any]:
    """Target 1-token step and verify of each k at `context`, for each attention variant."""
    kv = make_kv(model, context, max(ks) + 1, s.device, s.cache)
    row: dict[str, Any] = {
        "context": context,
        "kv_cache_bytes": context
        * shape.kv_elements_per_token()
        * (torch.finfo(s.dtype).bits // 8),
        "target_1tok_ms": {},
        "verify_ms": {},
        "predicted_1tok": _predictions(shape, s, context, 1),
        "predicted_verify": {str(k): _predictions(shape, s, context, k) for k in ks},
    }
    for attn in list(s.attentions):
        set_attention(model, FOLD_NAME if attn == "fold" else "sdpa")
        try:
            row["target_1tok_ms"][attn] = _ms(s.timer(step_fn(model, kv, 1, s.device)))
            row["verify_ms"][attn] = {
                str(k): _ms(s.timer(step_fn(model, kv, k, s.device))) for k in ks
            }
        except Exception as err:
            if attn == "sdpa":
                raise
            kv.rollback()
            s.note(f"fold attention failed, dropped: {type(err).__name__}: {err}"[:400])
            s.attentions.remove(attn)
    set_attention(model, "sdpa")
    del kv
    return row


def probe_cache(model: Any, name: str, s: Settings) -> None:
    """Check that the PreallocLayer cache gives transformers' own DynamicCache logits;
    fall back to the DynamicCache (with a note) when it fails on this version."""
    if s.cache != "prealloc":
        return
    try:
        set_attention(model, "sdpa")
        kv = make_kv(model, 48, 8, s.device, "prealloc", seed=1)
        a = verify_logits(model, kv, 3, s.device)
        a1 = verify_logits(model, kv, 1, s.device)
        ref = make_kv(model, 48, 0, s.device, "dynamic", seed=1)
        b = verify_logits(model, ref, 3, s.device)
        b1 = verify_logits(model, ref, 1, s.device)
        if kv.cache.get_seq_length() != 48 or ref.cache.get_seq_length() != 48:
            raise RuntimeError("the cache did not roll back to its context")
        diff = max(float((a - b).abs().max()), float((a1 - b1).abs().max()))
        scale = max(1.0, float(b.abs().max()))
        s.checks[f"{name}: prealloc_vs_dynamic_max_abs_logit_diff"] = diff
        if not math.isfinite(diff):
            s.note("prealloc cache check inconclusive: non-finite logits (random weights)")
        elif diff > 0.25 * scale:  # a wrong cache length or mask: logits unrelated
            raise RuntimeError(f"logits differ from DynamicCache's by {diff:.3g}")
        elif diff > 2e-2 * scale:  # kernels on differently strided K/V may round apart
            s.note(f"{name}: prealloc vs DynamicCache logits differ by {diff:.3g} (kept)")
    except Exception as err:
        s.note(f"prealloc cache unusable here ({type(err).__name__}: {err}); "[:300]
               + "using transformers' DynamicCache (torch.cat per step)")  # fmt: skip
        s.cache = "dynamic"
    _free(s.device)


def fold_check(model: Any, s: Settings) -> dict[str, float]:
    """Logits of a verify forward under `sdpa` and `fold` (they must agree)."""
    kv = make_kv(model, s.contexts[0], 16, s.device, s.cache)
    set_attention(model, "sdpa")
    a = verify_logits(model, kv, 5, s.device)
    set_attention(model, FOLD_NAME)
    b = verify_logits(model, kv, 5, s.device)
    set_attention(model, "sdpa")
    return {"max_abs_logit_diff": float((a - b).abs().max()), "max_abs_logit": float(a.abs().max())}


def project(result: dict[str, Any], s: Settings) -> list[dict[str, Any]]:
    rows = []
    for ctx in result["contexts"]:
        for drafter, d in result["drafters"].items():
            for attn in s.attentions:
                one = ctx["target_1tok_ms"][attn] / 1e3
                for gamma in s.gammas:
                    tv = ctx["verify_ms"][attn][str(gamma + 1)] / 1e3
                    m = s.acceptance.at(gamma)
                    p = rl.rapid_round_projection(tv, one, d["step_ms"] / 1e3, gamma, m)
                    rows.append(
                        {
                            "context": ctx["context"],
                            "drafter": drafter,
                            "attention": attn,
                            "gamma": gamma,
                            "mean_accepted": round(m, 4),
                            "round_ms": _ms(p.round_s),
                            "tokens_per_round": p.tokens_per_round,
                            "speedup": round(p.speedup, 4),
                        }
                    )
    return rows


def best(rows: list[dict[str, Any]], context: int, drafter: str, attn: str) -> dict[str, Any]:
    mine = [
        r
        for r in rows
        if r["context"] == context and r["drafter"] == drafter and r["attention"] == attn
    ]
    return max(mine, key=lambda r: r["speedup"])
