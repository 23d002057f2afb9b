"""Speed benchmark: decoding modes interleaved in one process, medians per mode.

`run_speed_bench` asks every question in every mode, `repeat` times, interleaving the
modes (``for r: for q: for mode:``) so that drifts in machine speed hit all modes
alike. A short warm-up question runs first so that loading models and reading the
document never land in the table. Before the very first run of each mode the KV
caches are cleared, so that run measures a cold time to first token; every later run
on the same document (2nd+ question, 2nd+ repetition) reuses the document's KV. When a
clear came after the last mode that reads the whole document (an hf-* mode last in the
first row), the document is read again, untimed, before the next such run.

`summarize` is a pure function over the runs (tested on synthetic `Finished`
objects); `format_table` and `report_to_json` render a `SpeedReport`.
"""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import peers
from bench.peers import HF_MODES
from core.config import MODES, DecodeConfig
from core.errors import ConfigError, QuestionError
from core.events import Calibrated, Event, Finished, ModelLoaded, Notice

if TYPE_CHECKING:  # core.api imports the library (numpy, FAISS): the CLI's parser imports this
    from core.api import EngineAPI

BENCH_MODES: tuple[str, ...] = (*MODES, *HF_MODES)
BASELINE_MODE = "target"  # every ratio is against this mode's median decode tok/s
# Modes whose target reads the whole document and keeps its KV for the next question
# (`rag` reads per-question passages; the hf-* modes keep no KV between calls).
DOCUMENT_KV_MODES = frozenset({"target", "sd", "rapid"})
WARMUP_QUESTION = "What is this document about?"
WARMUP_TOKENS = 4


@dataclass(frozen=True)
class RunRecord:
    """One timed run: which mode, question and repetition, and its totals."""

    mode: str
    question_index: int
    repeat: int
    finished: Finished
    cold: bool  # KV caches cleared just before this run
    kv_reused: bool  # the document's KV could be reused (2nd+ question or repetition)


@dataclass(frozen=True)
class ModeSummary:
    """Medians over one mode's runs (see `summarize`)."""

    mode: str
    runs: int
    new_tokens: float
    tokens_per_s: float  # decode only: new_tokens / decode_s
    ratio: float | None  # tokens_per_s / the baseline mode's tokens_per_s
    acceptance_rate: float | None  # None: the mode drafts nothing
    mean_accepted_length: float | None
    speedup_estimate: float  # against the calibrated target step (engine's estimate)
    target_prefill_s: float
    drafter_prefill_s: float
    end_to_end_s: float
    ttft_cold_s: float | None  # time to first token of the cold run
    ttft_warm_s: float | None  # median over the runs that reused the document KV
    second_question_ttft: float | None  # ttft_warm_s / ttft_cold_s
    same_answer: int  # runs whose answer equals the baseline's for the same question
    compared: int  # runs compared with the baseline (0 for the baseline itself)


@dataclass(frozen=True)
class MachineInfo:
    """Where the numbers were taken."""

    device: str
    dtype: str
    torch_threads: int
    cpu_count: int
    target: str
    drafter: str
    platform: str


@dataclass(frozen=True)
class SpeedReport:
    """Everything `format_table` and `report_to_json` need."""

    machine: MachineInfo
    document: str
    questions: tuple[str, ...]
    modes: tuple[str, ...]
    repeat: int
    max_new_tokens: int
    decode: DecodeConfig
    runs: tuple[RunRecord, ...]
    summaries: dict[str, ModeSummary]
    # The target's calibrated one-token steps in `target` runs, and the memory bandwidth
    # measured in the same run: step / (step_bytes / bandwidth) is the distance from the
    # physical bound (docs/benchmarks.md, "Compact weights").
    target_steps: tuple[Calibrated, ...] = ()
    bandwidth: float = 0.0


def bench_modes(modes: Iterable[str]) -> tuple[str, ...]:
    """Validated, de-duplicated modes with the baseline first (added if missing)."""
    chosen: list[str] = []
    for mode in modes:
        if mode not in BENCH_MODES:
            raise ConfigError(
                f"Unknown benchmark mode {mode!r}: choose from {', '.join(BENCH_MODES)}."
            )
        if mode not in chosen:
            chosen.append(mode)
    if BASELINE_MODE in chosen:
        chosen.remove(BASELINE_MODE)
    return (BASELINE_MODE, *chosen)


def run_speed_bench(
    engine: EngineAPI,
    pdf: Path,
    questions: Sequence[str],
    modes: Sequence[str],
    repeat: int,
    max_new_tokens: int,
    decode_base: DecodeConfig,
    *,
    password: str | None = None,
    log: Callable[[str], None] | None = None,
    warmup: bool = True,
    models: Mapping[str, ModelLoaded] | None = None,
) -> SpeedReport:
    """Run every (repetition, question, mode) once, modes interleaved; summarize.

    `models`: the `ModelLoaded` events of an earlier `load_models()` (the engine
    announces its models only once), for the report's machine info."""
    say = log if log is not None else (lambda _line: None)
    questions = tuple(q.strip() for q in questions)
    if not questions or not all(questions):
        raise QuestionError("Give at least one non-empty question (-q).")
    if repeat < 1:
        raise ConfigError(f"repeat must be at least 1 (got {repeat}).")
    if max_new_tokens < 1:
        raise ConfigError(f"max_new_tokens must be at least 1 (got {max_new_tokens}).")
    order = bench_modes(modes)
    documents = (pdf,)

    loaded: dict[str, ModelLoaded] = dict(models or {})
    for event in engine.load_models():
        if isinstance(event, ModelLoaded):
            loaded[event.role] = event
    bandwidth = _bandwidth(loaded)
    steps: list[Calibrated] = []
    if warmup:
        # One short question, in a drafting mode if there is one, so that reading the
        # document and loading the drafter and the embedder happen outside the table.
        warm_mode = next((m for m in order if m in ("sd", "rapid", "rag")), BASELINE_MODE)
        say(f"warm-up ({warm_mode}, {WARMUP_TOKENS} tokens)")
        warm_events = _mode_events(
            engine, warm_mode, WARMUP_QUESTION, documents, decode_base, WARMUP_TOKENS, password
        )
        _drain(warm_events, say, loaded)

    runs: list[RunRecord] = []
    total = repeat * len(questions) * len(order)
    kv_ready = False  # the document's KV is cached (a full-document mode ran since a clear)
    for r in range(repeat):
        for qi, question in enumerate(questions):
            for mode in order:
                cold = r == 0 and qi == 0
                if cold:
                    engine.clear_kv_cache(memory=True, disk=True)
                    kv_ready = False
                elif not kv_ready and mode in DOCUMENT_KV_MODES:
                    # The last cold clear came after the last full-document run (an hf-*
                    # mode was last in the first row): read the document again, untimed,
                    # so that this run measures KV reuse as its label says.
                    say(f"re-reading the document ({BASELINE_MODE}, {WARMUP_TOKENS} tokens)")
                    rewarm = _mode_events(
                        engine, BASELINE_MODE, WARMUP_QUESTION, documents, decode_base,
                        WARMUP_TOKENS, password,
                    )  # fmt: skip
                    _drain(rewarm, say, loaded)
                    kv_ready = True
                events = _mode_events(
                    engine, mode, question, documents, decode_base, max_new_tokens, password
                )
                finished = _drain(events, say, loaded, steps if mode == BASELINE_MODE else None)
                kv_ready = kv_ready or mode in DOCUMENT_KV_MODES
                runs.append(RunRecord(mode, qi, r, finished, cold=cold, kv_reused=not cold))
                say(
                    f"[{len(runs)}/{total}] {mode:<11} q{qi + 1} r{r + 1}: "
                    f"{finished.new_tokens} tokens, {finished.tokens_per_s:.1f} tok/s, "
                    f"TTFT {finished.time_to_first_token_s:.2f} s"
                )

    return SpeedReport(
        machine=_machine_info(loaded),
        document=str(pdf),
        questions=questions,
        modes=order,
        repeat=repeat,
        max_new_tokens=max_new_tokens,
        decode=replace(decode_base, max_new_tokens=max_new_tokens),
        runs=tuple(runs),
        summaries=summarize(runs, order),
        target_steps=tuple(steps),
        bandwidth=bandwidth,
    )


def _bandwidth(loaded: dict[str, ModelLoaded]) -> float:
    """Bytes/s of a large copy on the target's device (0 when it has no known device)."""
    from core.bandwidth import stream_bandwidth  # imports torch; keep this module light

    target = loaded.get("target")
    device = target.device if target is not None else "cpu"
    return stream_bandwidth(device) if device.startswith(("cpu", "cuda")) else 0.0


def _mode_events(
    engine: EngineAPI,
    mode: str,
    question: str,
    documents: Sequence[Path],
    decode_base: DecodeConfig,
    max_new_tokens: int,
    password: str | None,
) -> Iterator[Event]:
    for kind in HF_MODES:
        if mode == kind:
            # looked up at call time: a test scripts the peer with monkeypatch
            return peers.hf_baseline(engine, question, documents, kind, max_new_tokens, password)
    for known in MODES:
        if mode == known:
            decode = replace(decode_base, mode=known, max_new_tokens=max_new_tokens)
            return engine.ask(question, documents, decode, password)
    raise ConfigError(f"Unknown benchmark mode {mode!r}.")


def _drain(
    events: Iterator[Event],
    say: Callable[[str], None],
    loaded: dict[str, ModelLoaded],
    steps: list[Calibrated] | None = None,
) -> Finished:
    """Consume one run's events; return its `Finished` (calibrations go to `steps`)."""
    finished: Finished | None = None
    for event in events:
        if isinstance(event, Calibrated) and steps is not None:
            steps.append(event)
        elif isinstance(event, Finished):
            finished = event
        elif isinstance(event, Notice):
            say(f"{event.level}: {event.message}")
        elif isinstance(event, ModelLoaded):
            loaded[event.role] = event
    if finished is None:
        raise RuntimeError("the engine's event stream ended without a Finished event")
    if finished.stop_reason == "cancelled":
        raise KeyboardInterrupt
    return finished


def _machine_info(loaded: dict[str, ModelLoaded]) -> MachineInfo:
    import torch  # the engine has imported it already; keep `bench.speed` light to import

    target = loaded.get("target")
    drafter = loaded.get("drafter")
    drafter_name = "?"
    if drafter is not None:
        drafter_name = "same as target" if drafter.shared_with_target else drafter.name
    return MachineInfo(
        device=target.device if target else "?",
        dtype=target.dtype if target else "?",
        torch_threads=torch.get_num_threads(),
        cpu_count=os.cpu_count() or 0,
        target=target.name if target else "?",
        drafter=drafter_name,
        platform=f"{platform.system()} {platform.machine()}",
    )


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else 0.0


def summarize(
    runs: Sequence[RunRecord], modes: Sequence[str] | None = None, baseline: str = BASELINE_MODE
) -> dict[str, ModeSummary]:
    """Per-mode medians, ratios to `baseline`, second-question TTFT, answer agreement."""
    order = list(modes) if modes is not None else list(dict.fromkeys(r.mode for r in runs))
    reference = {
        (r.repeat, r.question_index): r.finished.answer for r in runs if r.mode == baseline
    }
    by_mode = {mode: [r for r in runs if r.mode == mode] for mode in order}
    base_runs = by_mode.get(baseline, [])
    base_tps = _median([r.finished.tokens_per_s for r in base_runs])

    summaries: dict[str, ModeSummary] = {}
    for mode, mode_runs in by_mode.items():
        if not mode_runs:
            continue
        fins = [r.finished for r in mode_runs]
        tps = _median([f.tokens_per_s for f in fins])
        drafts = any(f.drafted > 0 for f in fins)
        cold = [r.finished.time_to_first_token_s for r in mode_runs if r.cold]
        warm = [r.finished.time_to_first_token_s for r in mode_runs if r.kv_reused]
        ttft_cold = cold[0] if cold else None
        ttft_warm = _median(warm) if warm else None
        second = ttft_warm / ttft_cold if ttft_warm is not None and ttft_cold else None
        compared = same = 0
        if mode != baseline:
            for r in mode_runs:
                ref = reference.get((r.repeat, r.question_index))
                if ref is not None:
                    compared += 1
                    same += int(r.finished.answer == ref)
        summaries[mode] = ModeSummary(
            mode=mode,
            runs=len(mode_runs),
            new_tokens=_median([f.new_tokens for f in fins]),
            tokens_per_s=tps,
            ratio=tps / base_tps if base_tps > 0 else None,
            acceptance_rate=_median([f.acceptance_rate for f in fins]) if drafts else None,
            mean_accepted_length=(
                _median([f.mean_accepted_length for f in fins]) if drafts else None
            ),
            speedup_estimate=_median([f.speedup_estimate for f in fins]),
            target_prefill_s=_median([f.target_prefill_s for f in fins]),
            drafter_prefill_s=_median([f.drafter_prefill_s for f in fins]),
            end_to_end_s=_median([f.end_to_end_s for f in fins]),
            ttft_cold_s=ttft_cold,
            ttft_warm_s=ttft_warm,
            second_question_ttft=second,
            same_answer=same,
            compared=compared,
        )
    return summaries


def fmt_optional(value: float | None, spec: str, suffix: str = "") -> str:
    """`value` formatted with `spec` and `suffix`, or "-" when there is none."""
    return "-" if value is None else f"{value:{spec}}{suffix}"


def fmt_percent(share: float | None) -> str:
    """A share in [0, 1] as a whole percentage, or "-" when there is none."""
    return fmt_optional(None if share is None else 100 * share, ".0f", "%")


def table_row(cells: Sequence[str], columns: Sequence[tuple[str, int]]) -> str:
    """One line of a fixed-width table: the "mode" column left-aligned, the rest right."""
    return "  ".join(
        cell.ljust(width) if name == "mode" else cell.rjust(width)
        for cell, (name, width) in zip(cells, columns, strict=True)
    )


_COLUMNS: tuple[tuple[str, int], ...] = (
    ("mode", 11),
    ("runs", 4),
    ("tok/s", 7),
    ("ratio", 6),
    ("accept", 6),
    ("acc/rnd", 7),
    ("est.", 6),
    ("prefill s", 9),
    ("e2e s", 7),
    ("TTFT s", 7),
    ("2nd-q TTFT", 10),
    ("=target", 7),
)


def format_table(report: SpeedReport) -> str:
    """A fixed-width table, headed by the machine and the settings."""
    m = report.machine
    d = report.decode
    lines = [
        f"RapidQA speed bench - {m.device} ({m.dtype}), torch threads {m.torch_threads}"
        f" of {m.cpu_count} CPUs, {m.platform}",
        f"target: {m.target}   drafter: {m.drafter}",
        f"document: {Path(report.document).name}   questions: {len(report.questions)}"
        f"   repeat: {report.repeat}   max new tokens: {report.max_new_tokens}"
        f"   gamma {d.gamma}   eta {d.eta:g}   temperature {d.temperature:g}",
        "",
    ]
    header = table_row([name for name, _ in _COLUMNS], _COLUMNS)
    lines += [header, "-" * len(header)]
    for mode in report.modes:
        s = report.summaries.get(mode)
        if s is None:
            continue
        cells = (
            s.mode,
            str(s.runs),
            f"{s.tokens_per_s:.2f}",
            fmt_optional(s.ratio, ".2f", "x"),
            fmt_percent(s.acceptance_rate),
            fmt_optional(s.mean_accepted_length, ".2f"),
            fmt_optional(s.speedup_estimate or None, ".2f", "x"),
            f"{s.target_prefill_s + s.drafter_prefill_s:.2f}",
            f"{s.end_to_end_s:.2f}",
            fmt_optional(s.ttft_cold_s, ".2f"),
            fmt_optional(s.second_question_ttft, ".3f", "x"),
            f"{s.same_answer}/{s.compared}" if s.compared else "-",
        )
        lines.append(table_row(cells, _COLUMNS))
    lines += [
        "",
        "medians over runs; tok/s = new tokens / decode s (prefill excluded); ratio = tok/s"
        f" / {BASELINE_MODE}'s; est. = engine's speedup estimate vs the calibrated target step;",
        "prefill s = target + drafter; TTFT s = cold time to first token; 2nd-q TTFT ="
        " TTFT with the document KV reused / cold TTFT; =target = same answer as target.",
    ]
    bound = bound_line(report)
    if bound:
        lines += ["", bound]
    return "\n".join(lines)


def bound_line(report: SpeedReport) -> str:
    """The target's decode step against its physical bound, or "" when not measured."""
    steps = [c for c in report.target_steps if c.step_bytes]
    if not steps or report.bandwidth <= 0:
        return ""
    step = _median([c.step_s for c in steps])
    read = _median([c.step_bytes for c in steps])
    context = int(_median([c.context_tokens for c in steps]))
    bound = read / report.bandwidth
    return (
        f"target step at {context:,} tokens: {step * 1e3:.1f} ms; bandwidth bound "
        f"{bound * 1e3:.1f} ms ({read / 1e9:.2f} GB read per step / {report.bandwidth / 1e9:.1f}"
        f" GB/s copy bandwidth measured now); step / bound = {step / bound:.2f}"
    )


def _run_json(run: RunRecord) -> dict[str, Any]:
    f = run.finished
    return {
        "mode": run.mode,
        "question_index": run.question_index,
        "repeat": run.repeat,
        "cold": run.cold,
        "kv_reused": run.kv_reused,
        "stop_reason": f.stop_reason,
        "new_tokens": f.new_tokens,
        "rounds": f.rounds,
        "drafted": f.drafted,
        "accepted": f.accepted,
        "acceptance_rate": f.acceptance_rate,
        "mean_accepted_length": f.mean_accepted_length,
        "tokens_per_s": f.tokens_per_s,
        "speedup_estimate": f.speedup_estimate,
        "target_prefill_s": f.target_prefill_s,
        "drafter_prefill_s": f.drafter_prefill_s,
        "decode_s": f.decode_s,
        "end_to_end_s": f.end_to_end_s,
        "time_to_first_token_s": f.time_to_first_token_s,
        "answer": f.answer,
    }


def report_to_json(report: SpeedReport) -> dict[str, Any]:
    """``{"modes": {MODE: {...}}, ...}`` with the machine, settings and every run."""
    modes: dict[str, Any] = {}
    for mode in report.modes:
        s = report.summaries.get(mode)
        if s is None:
            continue
        modes[mode] = {
            "runs": s.runs,
            "new_tokens": s.new_tokens,
            "tokens_per_s": s.tokens_per_s,
            "ratio": s.ratio,
            "acceptance_rate": s.acceptance_rate,
            "mean_accepted_length": s.mean_accepted_length,
            "speedup_estimate": s.speedup_estimate,
            "target_prefill_s": s.target_prefill_s,
            "drafter_prefill_s": s.drafter_prefill_s,
            "end_to_end_s": s.end_to_end_s,
            "ttft_cold_s": s.ttft_cold_s,
            "ttft_warm_s": s.ttft_warm_s,
            "second_question_ttft": s.second_question_ttft,
            "same_answer_as_target": s.same_answer,
            "answers_compared": s.compared,
        }
    m = report.machine
    d = report.decode
    return {
        "modes": modes,
        "machine": {
            "device": m.device,
            "dtype": m.dtype,
            "torch_threads": m.torch_threads,
            "cpu_count": m.cpu_count,
            "target": m.target,
            "drafter": m.drafter,
            "platform": m.platform,
        },
        "document": report.document,
        "bandwidth_bytes_per_s": report.bandwidth,
        "target_steps": [
            {"context_tokens": c.context_tokens, "step_s": c.step_s, "step_bytes": c.step_bytes}
            for c in report.target_steps
        ],
        "bound": bound_line(report),
        "questions": list(report.questions),
        "repeat": report.repeat,
        "max_new_tokens": report.max_new_tokens,
        "decode": {
            "gamma": d.gamma,
            "adaptive_gamma": d.adaptive_gamma,
            "eta": d.eta,
            "alpha": d.alpha,
            "temperature": d.temperature,
            "seed": d.seed,
            "budget": d.budget,
            "lookup": d.lookup,
        },
        "runs": [_run_json(r) for r in report.runs],
    }
