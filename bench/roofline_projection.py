"""RAPID on a GPU at the physical limit: the roofline step costs of real model sizes
(bench/rl.py, nominal datasheet bandwidth and FLOP/s) combined with an acceptance
measured here. No GPU and no weights needed; measured runs: bench/gpu_projection.py
(kernels through transformers) and bench/gpu_speed.py (the engine).

    .venv/bin/python bench/roofline_projection.py [--device h100-sxm|h200]
        [--acceptance bench/results/quality.json | --accept-rate P] [--max-gamma 8]
        [--contexts 8192,...,131072] [--drafter-context 4096] [--json PATH]

Per target / drafter pair and context: the predicted target step, the verify of
gamma + 1 tokens and the drafter step (the drafter reads `--drafter-context` tokens:
RAPID's retrieved context); the gamma with the best projected speedup when each draft
is accepted with the measured rate until the first rejection; and the accepted drafts
per round that gamma needs to break even at that context:

    break-even accepted/round = (gamma · t_draft + t_verify) / t_target - 1

Every figure is a projection and is labelled so: real kernels reach 60-90 % of the
bandwidth (bench/cost_model.py measures the gap on this CPU).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import gpu_models as gpu_speed  # the configs of the real models (bench/ is on sys.path)
import roofline as rl

HERE = Path(__file__).resolve().parent
CONTEXTS = (8192, 16384, 32768, 65536, 131072)


def project(
    device_key: str, rate: float, gammas: range, contexts: tuple[int, ...], d_ctx: int
) -> list[dict[str, Any]]:
    """One row per (pair, context): predicted times in ms and the best gamma's speedup,
    each draft accepted with probability `rate` until the first rejection."""
    device = {"h100-sxm": rl.H100_SXM, "h200": rl.H200}[device_key]
    bf16 = 2
    rows = []
    for target in gpu_speed.TARGETS:
        t_shape = rl.ModelShape.from_config(gpu_speed.CONFIGS[target], target)
        for drafter in gpu_speed.DRAFTERS[target]:
            d_name = target if drafter == "self" else drafter
            d_shape = rl.ModelShape.from_config(gpu_speed.CONFIGS[d_name], d_name)
            t_draft = rl.predict_step(d_shape, device, bf16, d_ctx, 1, logits_rows=1).seconds
            for ctx in contexts:
                t1 = rl.predict_step(t_shape, device, bf16, ctx, 1, logits_rows=1).seconds
                best = None
                for g in gammas:
                    tv = rl.predict_step(t_shape, device, bf16, ctx, g + 1).seconds
                    accepted = rl.expected_accepted(rate, g)
                    proj = rl.rapid_round_projection(tv, t1, t_draft, g, accepted)
                    if best is None or proj.speedup > best[0].speedup:
                        best = (proj, tv)
                assert best is not None
                proj, tv = best
                rows.append(
                    {
                        "target": target,
                        "drafter": drafter,
                        "context": ctx,
                        "target_1tok_ms": 1e3 * t1,
                        "verify_ms": 1e3 * tv,
                        "drafter_step_ms": 1e3 * t_draft,
                        "gamma": proj.gamma,
                        "mean_accepted": proj.mean_accepted,
                        "projected_speedup": proj.speedup,
                        "break_even_accepted": (proj.gamma * t_draft + tv) / t1 - 1,
                    }
                )
    return rows


def _rate(args: argparse.Namespace) -> tuple[float, str]:
    """The per-draft acceptance rate: --accept-rate, else the rapid (or sd) row of a
    quality or speed benchmark's JSON."""
    if args.accept_rate is not None:
        return args.accept_rate, "--accept-rate"
    data = json.loads(Path(args.acceptance).read_text(encoding="utf-8"))
    for mode in ("rapid", "sd"):
        value = data.get("modes", {}).get(mode, {}).get("acceptance_rate")
        if isinstance(value, int | float):
            return float(value), f"{args.acceptance}: modes.{mode}.acceptance_rate"
    raise SystemExit(f"{args.acceptance}: no acceptance_rate of rapid or sd found")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=("h100-sxm", "h200"), default="h100-sxm")
    ap.add_argument("--acceptance", default=str(HERE / "results" / "quality.json"))
    ap.add_argument("--accept-rate", type=float, default=None)
    ap.add_argument("--max-gamma", type=int, default=8)
    ap.add_argument("--contexts", default=",".join(map(str, CONTEXTS)))
    ap.add_argument("--drafter-context", type=int, default=4096)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    rate, source = _rate(args)
    contexts = tuple(int(c) for c in args.contexts.split(","))
    rows = project(args.device, rate, range(1, args.max_gamma + 1), contexts,
                   args.drafter_context)  # fmt: skip
    print(
        f"PROJECTION (roofline, nominal {args.device}, bf16; no measurement): each draft "
        f"accepted with p = {rate:.2f} ({source}); the best gamma <= {args.max_gamma}; "
        f"drafter context {args.drafter_context}"
    )
    print(
        f"{'target':<13} {'drafter':<13} {'context':>7} {'1-tok ms':>8} {'verify ms':>9} "
        f"{'draft ms':>8} {'gamma':>5} {'acc/rnd':>7} {'speedup':>7} {'break-even':>10}"
    )
    for r in rows:
        print(
            f"{r['target']:<13} {r['drafter']:<13} {r['context']:>7} {r['target_1tok_ms']:>8.2f} "
            f"{r['verify_ms']:>9.2f} {r['drafter_step_ms']:>8.2f} {r['gamma']:>5} "
            f"{r['mean_accepted']:>7.2f} {r['projected_speedup']:>6.2f}x "
            f"{r['break_even_accepted']:>10.2f}"
        )
    print("break-even = accepted drafts per round at which the best gamma's round pays off")
    if args.json is not None:
        data = {"device": args.device, "accept_rate": rate, "source": source, "rows": rows}
        args.json.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
