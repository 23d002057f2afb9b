"""The benchmark plots in docs/plots/, drawn from the JSON the benchmarks write.

    .venv/bin/python bench/plots.py [--results bench/results] [--out docs/plots]

Each plot is drawn when its input is there and skipped (with a line saying so) when
not:

- `accuracy_per_mode.png` from `quality.json` (`rapidqa bench quality --json`):
  accuracy and token F1 per mode, over all questions and split by whether the
  document fits the target's window;
- `acceptance_vs_eta.png` from `sweep_eta.json` (`... --sweep eta=0,1,5,10,20 --json`):
  acceptance, accuracy and decode speed against target as eta grows;
- `speed_vs_gamma.png` from `sweep_gamma.json` (`... --sweep gamma=... --json`);
- `speedup_vs_context.png` from `context_sweep.json` (`rapidqa bench speed
  --contexts ... --json`), with the GPU projection of `gpu_speed.json`
  (`bench/gpu_speed.py --json`) beside it when that file exists.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

ROOT = Path(__file__).resolve().parent.parent
# Okabe-Ito, as the app's token colours.
COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
GROUP_NAMES = {"fits": "fits the window", "longer": "longer than the window"}


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def accuracy_per_mode(data: dict[str, Any]) -> Figure:
    """Bars: accuracy per mode, all questions and per document group; F1 as dots."""
    modes = list(data["modes"])
    columns = [("all questions", data["modes"])] + [
        (GROUP_NAMES.get(g, g), rows) for g, rows in data.get("groups", {}).items()
    ]
    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=120)
    width = 0.8 / len(modes)
    for i, mode in enumerate(modes):
        xs = [c + (i - (len(modes) - 1) / 2) * width for c in range(len(columns))]
        acc = [100 * rows[mode]["accuracy"] if mode in rows else 0.0 for _, rows in columns]
        f1 = [100 * rows[mode]["f1"] if mode in rows else 0.0 for _, rows in columns]
        ax.bar(xs, acc, width * 0.92, color=COLOURS[i % len(COLOURS)], label=mode)
        ax.plot(xs, f1, "o", color="black", markersize=3.5)
        for x, value in zip(xs, acc, strict=True):
            ax.text(x, value + 1, f"{value:.0f}", ha="center", va="bottom", fontsize=7)
    counts = [next(iter(rows.values()))["questions"] for _, rows in columns]
    ax.set_xticks(
        range(len(columns)),
        [f"{name}\n({n} questions)" for (name, _), n in zip(columns, counts, strict=True)],
    )
    ax.set_ylabel("answers containing a reference (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Accuracy per mode (bars); token F1 x 100 (dots)")
    ax.legend(fontsize=8, ncols=len(modes), loc="upper center")
    fig.tight_layout()
    return fig


def _sweep_rows(data: dict[str, Any], name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    rows = list(data["modes"].values())
    return rows[0], sorted(rows[1:], key=lambda r: r[name])


def sweep(data: dict[str, Any], name: str, symbol: str) -> Figure:
    """Acceptance, accuracy and decode speed vs target, against one swept setting."""
    base, rows = _sweep_rows(data, name)
    xs = [r[name] for r in rows]
    fig, left = plt.subplots(figsize=(7, 4), dpi=120)
    acceptance = [100 * (r["acceptance_rate"] or 0.0) for r in rows]
    accuracy = [100 * r["accuracy"] for r in rows]
    left.plot(xs, acceptance, "o-", color=COLOURS[0], label="acceptance of drafts (%)")
    left.plot(xs, accuracy, "s-", color=COLOURS[2], label="accuracy of rapid (%)")
    left.axhline(100 * base["accuracy"], color=COLOURS[2], ls=":", label="accuracy of target")
    left.set_xlabel(symbol)
    left.set_ylabel("%")
    left.set_ylim(0, 100)
    right = left.twinx()
    ratios = [r["tokens_per_s"] / base["tokens_per_s"] for r in rows]
    right.plot(xs, ratios, "^--", color=COLOURS[1], label="decode speed vs target (right)")
    right.axhline(1.0, color=COLOURS[1], ls=":", lw=0.8)
    right.set_ylabel("decode tok/s ratio to target")
    right.set_ylim(0, max(2.0, max(ratios, default=1.0) * 1.15))
    handles = left.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    left.legend(handles=handles, fontsize=8, loc="lower left")
    n = base["questions"]
    left.set_title(f"rapid against {symbol} ({n} questions, greedy)")
    fig.tight_layout()
    return fig


def speedup_vs_context(data: dict[str, Any], gpu: dict[str, Any] | None) -> Figure:
    """Decode speed of each mode relative to target, against the context length."""
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    by_mode: dict[str, list[tuple[float, float]]] = {}
    for point in data["contexts"]:
        for mode, row in point["modes"].items():
            if mode != "target" and row.get("ratio") is not None:
                by_mode.setdefault(mode, []).append((point["document_tokens"], row["ratio"]))
    for i, (mode, pts) in enumerate(by_mode.items()):
        pts.sort()
        ax.plot(*zip(*pts, strict=True), "o-", color=COLOURS[i % len(COLOURS)],
                label=f"{mode}, measured (CPU)")  # fmt: skip
    if gpu:
        for j, (model, pts) in enumerate(gpu_projection_points(gpu).items()):
            ax.plot(*zip(*pts, strict=True), "s--", color=COLOURS[(j + 3) % len(COLOURS)],
                    label=f"rapid, projected ({model}, {gpu.get('device', 'GPU')})")  # fmt: skip
    ax.axhline(1.0, color="grey", ls=":", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("context the target reads (tokens)")
    ax.set_ylabel("decode tok/s ratio to target")
    ax.set_title("Where speculative decoding starts to pay off")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def gpu_projection_points(gpu: dict[str, Any]) -> dict[str, list[tuple[float, float]]]:
    """(context, projected speedup) per model from bench/gpu_speed.py's JSON."""
    out: dict[str, list[tuple[float, float]]] = {}
    for model, rows in gpu.get("models", {}).items():
        pts = [(r["context"], r["projected_speedup"]) for r in rows if r.get("projected_speedup")]
        if pts:
            out[model] = sorted(pts)
    return out


PLOTS: dict[str, tuple[tuple[str, ...], Callable[..., Figure]]] = {
    "accuracy_per_mode.png": (("quality.json",), accuracy_per_mode),
    "acceptance_vs_eta.png": (("sweep_eta.json",), lambda d: sweep(d, "eta", "eta")),
    "speed_vs_gamma.png": (("sweep_gamma.json",), lambda d: sweep(d, "gamma", "gamma")),
    "speedup_vs_context.png": (("context_sweep.json", "gpu_speed.json"), speedup_vs_context),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "plots")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, (inputs, draw) in PLOTS.items():
        first = args.results / inputs[0]
        if not first.is_file():
            print(f"skipped {name}: no {first}")
            continue
        extra = [_load(args.results / f) if (args.results / f).is_file() else None
                 for f in inputs[1:]]  # fmt: skip
        fig = draw(_load(first), *extra)
        fig.savefig(args.out / name)
        plt.close(fig)
        print(f"wrote {args.out / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
