"""`rapidqa bench quality`: decoding modes (or one setting swept) on labelled questions.

Each question is asked once per variant (a mode, `rapid` at one eta or gamma, or a
row of the RAPID paper's Table 1 with its own model pair) about its own document,
added to the library first, once. Variants with another model pair run on their own
engine (`engine_for`), in the same process. What repeats is read once:

- per question, the variants run target-context modes first and `rag` last, so the
  target's prefilled context (the document, or its best sections when it is longer
  than the window) is reused by every variant but `rag`, and the drafter's retrieved
  context is reused by `sd`, `rapid` and every swept setting (`Engine` keeps both);
- per document that fits the window, the target's prefill is reused by every
  question (the engine's KV store keys it by the document prefix).

Scores: accuracy and token F1 (bench/scoring.py), answer length, acceptance and mean
accepted length, and decode speed as a ratio to the target-only run of the same target
model on the same questions; for all questions and split by whether the document fits
the target's window.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

from bench.scoring import ModeSummary, QAItem, QASetError, Scored, score, summarise
from bench.speed import fmt_optional, fmt_percent
from core.api import EngineAPI
from core.config import MAX_GAMMA, MODES, SAME_AS_TARGET, DecodeConfig, Mode, ModelConfig
from core.errors import ConfigError
from core.events import Finished, Retrieved

BASELINE: Mode = "target"
SWEEPABLE = ("eta", "gamma")
Group = Literal["fits", "longer"]
GROUP_TITLES: dict[Group, str] = {
    "fits": "documents that fit the target's window (the target reads all of it)",
    "longer": "documents longer than the window (the target reads its best sections)",
}
# Where the bundled sets' documents come from, for the missing-document message.
_PACKAGES = (
    ("/usr/share/R/", "r-doc-pdf"),
    ("/usr/share/doc/gnuplot", "gnuplot-doc"),
    ("/usr/share/texlive/", "texlive-latex-base-doc texlive-latex-recommended-doc"),
)
# Sets whose documents a script makes (page ranges of the manuals, needles in them).
_MADE_BY = (("long-", "bench/qa/long_docs.py"), ("needle-", "bench/qa/needle.py"))


@dataclass(frozen=True)
class Variant:
    """One row of the table: a label and the decoding settings it runs with."""

    label: str
    decode: DecodeConfig
    models: ModelConfig | None = None  # None: the engine's own pair
    baseline: str = BASELINE  # the target-only variant its speed is compared with


def table1_variants(base: DecodeConfig, pair: ModelConfig) -> list[Variant]:
    """The RAPID paper's Table 1 on a target/drafter pair: LC (the target alone), RAG
    (the target on the retrieved passages), SD (eta 0), RAPID with the target drafting
    for itself, RAPID downward (the smaller drafter), and upward speculation: the
    small model as the long-context target with the large one drafting from the
    passages, against the small model alone."""
    if pair.drafter == SAME_AS_TARGET:
        raise ConfigError("Table 1 needs a drafter other than the target: give --drafter.")
    small = replace(pair, target=pair.drafter, drafter=SAME_AS_TARGET)
    small_lc = f"target ({pair.drafter})"
    return [
        Variant(BASELINE, replace(base, mode="target")),
        Variant("rag", replace(base, mode="rag")),
        Variant("sd", replace(base, mode="sd")),
        Variant("rapid self", replace(base, mode="rapid"), replace(pair, drafter=SAME_AS_TARGET)),
        Variant("rapid down", replace(base, mode="rapid")),
        Variant(small_lc, replace(base, mode="target"), small, small_lc),
        Variant(
            "rapid up", replace(base, mode="rapid"),
            replace(pair, target=pair.drafter, drafter=pair.target), small_lc,
        ),
    ]  # fmt: skip


@dataclass(frozen=True)
class Answered:
    """One question answered by one variant, scored."""

    scored: Scored
    doc: str
    group: Group
    answer: str
    decode_s: float


@dataclass(frozen=True)
class QualityReport:
    """Per-question results and the table rows."""

    variants: tuple[Variant, ...]
    answers: tuple[Answered, ...]
    summary: tuple[ModeSummary, ...]
    tokens_per_s: dict[str, float]  # decode tok/s per variant over all its answers
    groups: dict[Group, tuple[tuple[ModeSummary, ...], dict[str, float]]]
    seconds: float  # wall time of the whole run


def mode_variants(modes: Sequence[str], base: DecodeConfig) -> list[Variant]:
    """One variant per mode, `target` (the baseline) first."""
    order = [BASELINE] + [m for m in dict.fromkeys(modes) if m != BASELINE]
    for mode in order:
        if mode not in MODES:
            raise ConfigError(f"Unknown mode {mode!r}: choose from {', '.join(MODES)}.")
    return [Variant(m, replace(base, mode=m)) for m in order]  # type: ignore[arg-type]


def sweep_variants(spec: str, base: DecodeConfig) -> list[Variant]:
    """`target`, then each value of `spec`: "eta=0,1,5" in `rapid`, "gamma=2,4" in
    `base`'s mode when it drafts (else `rapid`)."""
    name, _, values = spec.partition("=")
    name = name.strip()
    if name not in SWEEPABLE or not values.strip():
        raise ConfigError(
            f"Cannot sweep {spec!r}: write {SWEEPABLE[0]}=0,1,5,10,20 or {SWEEPABLE[1]}=2,4,6,8."
        )
    variants = [Variant(BASELINE, replace(base, mode=BASELINE))]
    for raw in values.split(","):
        try:
            value = float(raw) if name == "eta" else int(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw.strip()!r} is not a number.") from None
        if value < 0 or (name == "gamma" and not 1 <= value <= MAX_GAMMA):
            raise ConfigError(f"{name}={raw.strip()} is out of range.")
        if name == "eta":  # eta only acts in rapid mode
            cfg = replace(base, mode="rapid", eta=float(value))
        else:  # gamma in the mode asked for (the default: sd), rapid if not speculative
            cfg = replace(base, mode=base.mode if base.speculative else "rapid", gamma=int(value))
        variants.append(Variant(f"{cfg.mode} {name}={value:g}", cfg))
    return variants


def pick(items: Sequence[QAItem], subset: int | None) -> list[QAItem]:
    """`subset` questions spread evenly over the set (all of them when None)."""
    if subset is None or subset >= len(items):
        return list(items)
    if subset < 1:
        raise ConfigError(f"--subset must be at least 1 (got {subset}).")
    step = len(items) / subset
    return [items[int(i * step)] for i in range(subset)]


def resolve_documents(items: Sequence[QAItem], folders: Sequence[Path]) -> dict[str, Path]:
    """Each item's PDF: its `doc` as an absolute path, or under the first folder that
    has it. `QASetError` lists the missing ones and what to install."""
    found: dict[str, Path] = {}
    missing: list[str] = []
    packages: set[str] = set()
    scripts: set[str] = set()
    for doc in dict.fromkeys(i.doc for i in items):
        path = Path(doc)
        candidates = [path] if path.is_absolute() else [f / path for f in folders]
        hit = next((c for c in candidates if c.is_file()), None)
        if hit is not None:
            found[doc] = hit
            continue
        missing.append(doc)
        made = {script for prefix, script in _MADE_BY if path.name.startswith(prefix)}
        scripts |= made
        if not made:
            packages |= {
                pkg for c in candidates for pre, pkg in _PACKAGES if str(c).startswith(pre)
            }
    if missing:
        where = ", ".join(str(f) for f in folders) or "the given paths"
        install = " Add them"
        if packages:
            install = f" Install them (apt-get install {' '.join(sorted(packages))})"
        if scripts:
            install = f" Make them (python {' and python '.join(sorted(scripts))})"
        raise QASetError(
            f"{len(missing)} document(s) of the set are not in {where}: {', '.join(missing)}."
            f"{install} or point --docs at their folder."
        )
    return found


def run_quality_bench(
    engine: EngineAPI,
    items: Sequence[QAItem],
    folders: Sequence[Path],
    variants: Sequence[Variant],
    *,
    log: Callable[[str], None] | None = None,
    engine_for: Callable[[ModelConfig], EngineAPI] | None = None,
) -> QualityReport:
    """Ask every item with every variant (see the module docstring for the order).
    `engine_for` gives the engine of a variant with its own model pair."""
    say = log if log is not None else (lambda _line: None)
    if not variants or variants[0].label != BASELINE:
        raise ConfigError("The first variant must be the target-only baseline.")
    pdfs = resolve_documents(items, folders)
    # rag reads another target context: run it last so the others share one prefill.
    # Variants of one pair run together, rag last in each.
    pairs = list(dict.fromkeys(v.models for v in variants))
    run_order = sorted(variants, key=lambda v: (pairs.index(v.models), v.decode.mode == "rag"))
    if engine_for is None and any(v.models is not None for v in variants):
        raise ConfigError("Variants with their own model pair need `engine_for`.")
    t0 = time.perf_counter()
    answers: list[Answered] = []
    for n, item in enumerate(items, start=1):
        mine: dict[str, Answered] = {}
        for variant in run_order:
            eng = (
                engine
                if variant.models is None or engine_for is None
                else engine_for(variant.models)
            )
            finished, group = _answer(eng, item, pdfs[item.doc], variant.decode)
            mine[variant.label] = Answered(
                score(
                    item, variant.label, finished.answer, finished.new_tokens,
                    finished.drafted, finished.accepted, finished.rounds,
                ),
                item.doc, group, finished.answer, finished.decode_s,
            )  # fmt: skip
        answers += [mine[v.label] for v in variants]
        say(
            f"[{n}/{len(items)}] {item.qid} ({time.perf_counter() - t0:.0f} s): "
            + ", ".join(f"{v.label} {'ok' if mine[v.label].scored.correct else '--'}"
                        for v in variants)
        )  # fmt: skip
    summary, speed = _rows(answers)
    for v in variants:
        if v.baseline not in speed:
            raise ConfigError(f"{v.label}: no target-only variant {v.baseline!r} to compare.")
    groups: dict[Group, tuple[tuple[ModeSummary, ...], dict[str, float]]] = {}
    for group in GROUP_TITLES:
        subset = [a for a in answers if a.group == group]
        if subset:
            groups[group] = _rows(subset)
    return QualityReport(
        tuple(variants), tuple(answers), summary, speed, groups, time.perf_counter() - t0
    )


def _rows(answers: Sequence[Answered]) -> tuple[tuple[ModeSummary, ...], dict[str, float]]:
    tokens: dict[str, int] = {}
    seconds: dict[str, float] = {}
    for a in answers:
        label = a.scored.mode
        tokens[label] = tokens.get(label, 0) + a.scored.answer_tokens
        seconds[label] = seconds.get(label, 0.0) + a.decode_s
    speed = {m: tokens[m] / seconds[m] if seconds[m] > 0 else 0.0 for m in tokens}
    return tuple(summarise([a.scored for a in answers])), speed


def _answer(
    engine: EngineAPI, item: QAItem, pdf: Path, cfg: DecodeConfig
) -> tuple[Finished, Group]:
    finished = None
    group: Group = "fits"
    for event in engine.ask(item.question, (pdf,), cfg):
        if isinstance(event, Finished):
            finished = event
        elif isinstance(event, Retrieved) and event.role == "target":
            group = "longer"  # the target read retrieved sections, not the whole document
    assert finished is not None, "Engine.ask always ends with Finished"
    if finished.stop_reason == "cancelled":
        raise KeyboardInterrupt
    return finished, group


def _table(
    summary: Sequence[ModeSummary], speed: dict[str, float], variants: Sequence[Variant]
) -> list[str]:
    baseline = {v.label: v.baseline for v in variants}
    lines = [
        "| mode | questions | accuracy | token F1 | answer tokens | acceptance "
        "| accepted/round | tok/s | vs target |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in summary:
        tps = speed.get(row.mode, 0.0)
        base = speed.get(baseline.get(row.mode, BASELINE), 0.0)
        acc = fmt_percent(row.acceptance_rate)
        mal = fmt_optional(row.mean_accepted_length, ".2f")
        ratio = f"{tps / base:.2f}x" if base else "-"
        if baseline.get(row.mode, BASELINE) != BASELINE:
            ratio += f" (vs {baseline[row.mode]})"
        lines.append(
            f"| {row.mode} | {row.questions} | {row.accuracy:.0%} | {row.f1:.3f} | "
            f"{row.mean_answer_tokens:.1f} | {acc} | {mal} | {tps:.1f} | {ratio} |"
        )
    return lines


def format_quality(report: QualityReport) -> str:
    """The table over all questions, then one per document group (when both occur)."""
    lines = _table(report.summary, report.tokens_per_s, report.variants)
    if len(report.groups) > 1:
        for group, (summary, speed) in report.groups.items():
            table = _table(summary, speed, report.variants)
            lines += ["", f"{GROUP_TITLES[group]}:", "", *table]
    minutes = report.seconds / 60
    lines += ["", f"{len(report.answers)} answers in {minutes:.1f} min."]
    return "\n".join(lines)


def _summary_json(
    summary: Sequence[ModeSummary], speed: dict[str, float], variants: Sequence[Variant]
) -> dict[str, Any]:
    settings = {v.label: v for v in variants}
    out: dict[str, Any] = {}
    for row in summary:
        variant = settings[row.mode]
        cfg = variant.decode
        base = speed.get(variant.baseline, 0.0)
        out[row.mode] = {
            **asdict(row),
            "tokens_per_s": speed.get(row.mode, 0.0),
            "decode_mode": cfg.mode,
            "eta": cfg.effective_eta,
            "gamma": cfg.gamma,
            "baseline": variant.baseline,
            "speed_vs_baseline": speed.get(row.mode, 0.0) / base if base else None,
            "target": variant.models.target if variant.models else None,
            "drafter": variant.models.drafter if variant.models else None,
        }
    return out


def quality_to_json(report: QualityReport) -> dict[str, Any]:
    """``{"modes": {LABEL: {...}}, "groups": {...}, "results": [...], "seconds": S}``."""
    return {
        "modes": _summary_json(report.summary, report.tokens_per_s, report.variants),
        "groups": {
            group: _summary_json(summary, speed, report.variants)
            for group, (summary, speed) in report.groups.items()
        },
        "results": [
            {
                **asdict(a.scored),
                "doc": a.doc,
                "group": a.group,
                "answer": a.answer,
                "decode_s": a.decode_s,
            }
            for a in report.answers
        ],
        "seconds": report.seconds,
    }
