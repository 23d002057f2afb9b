"""`rapidqa bench speed|quality`: the benchmarks (the `bench` package) on an engine."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, cast

from app.cli import common
from app.cli.common import EXIT_INTERRUPTED, EXIT_OK, UsageError, check_pdf, engine_for
from app.cli.parser import DEFAULT_BENCH_MODES, DEFAULT_SWEEP_MODES, mode_list
from bench import scoring
from core.config import DecodeConfig, ModelConfig

if TYPE_CHECKING:  # core.api imports the library (numpy, FAISS): not at start-up
    from core.api import EngineAPI


def cmd_bench_quality(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from bench import quality as bq

    sets = args.sets or sorted(
        p for p in scoring.QA_SETS_DIR.glob("*.jsonl") if p.name not in scoring.QA_MADE_SETS
    )
    items = bq.pick([item for path in sets for item in scoring.load_qa_set(path)], args.subset)
    decode = _bench_decoding(args, max_new_tokens=args.max_new_tokens)
    folders = args.docs or list(scoring.QA_DOC_FOLDERS)
    engine = engine_for(args)
    if args.table1:
        variants = bq.table1_variants(decode, engine.models_cfg)
    elif args.sweep:
        variants = bq.sweep_variants(args.sweep, decode)
    else:
        variants = bq.mode_variants(args.modes, decode)
    engines: dict[ModelConfig, EngineAPI] = {engine.models_cfg: engine}

    def engine_of_pair(models: ModelConfig) -> EngineAPI:  # one engine per model pair, kept
        if models not in engines:
            # looked up at call time: tests replace common.make_engine with a fake
            engines[models] = common.make_engine(models, engine.index_cfg)
        return engines[models]

    def run(log: Callable[[str], None]) -> Any:
        return bq.run_quality_bench(
            engine, items, folders, variants, log=log, engine_for=engine_of_pair
        )

    try:
        return _run_bench(engine, run, args.json, bq.quality_to_json, bq.format_quality, out, err)
    finally:
        for other in engines.values():
            if other is not engine:
                other.close()


def cmd_bench_speed(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    questions = [q.strip() for q in args.questions]
    if not all(questions):
        raise UsageError('a question is empty: pass each question with -q "..."')
    check_pdf(args.pdf)
    from bench import context as bc
    from bench import speed

    sweep = args.contexts is not None
    modes = args.modes or mode_list(DEFAULT_SWEEP_MODES if sweep else DEFAULT_BENCH_MODES)
    repeat = args.repeat or (1 if sweep else 3)
    engine = engine_for(args)
    decode = _bench_decoding(args)

    def run(log: Callable[[str], None]) -> Any:
        shared = (questions, modes, repeat, args.max_new_tokens, decode)
        report: Any
        if sweep:  # the engine is core.api.Engine, whose `target` the sweep reads
            report = bc.run_context_sweep(
                cast(bc.SweepEngine, engine), args.pdf, args.contexts, *shared,
                password=args.password, log=log,
            )  # fmt: skip
        else:
            report = speed.run_speed_bench(
                engine, args.pdf, *shared, password=args.password, log=log
            )
        return report

    to_json = bc.context_sweep_to_json if sweep else speed.report_to_json
    table = bc.format_context_table if sweep else speed.format_table
    return _run_bench(engine, run, args.json, to_json, table, out, err)


def _bench_decoding(args: argparse.Namespace, **extra: Any) -> DecodeConfig:
    """The decoding options every benchmark takes (greedy: the runs are compared; no
    preliminary answer: a cold run times the target's read, not the drafter's answer)."""
    return DecodeConfig(
        gamma=args.gamma, eta=args.eta, budget=args.budget, temperature=0.0,
        drafter_kv=args.drafter_kv, lookup=args.lookup, preliminary=False, **extra,
    )  # fmt: skip


def _run_bench(
    engine: EngineAPI,
    run: Callable[[Callable[[str], None]], Any],
    json_arg: str | None,
    as_json: Callable[[Any], Any],
    as_table: Callable[[Any], str],
    out: TextIO,
    err: TextIO,
) -> int:
    """Run a benchmark with progress lines on `err`, then print its table, or its
    JSON for `--json`; `--json FILE` writes the JSON there (whole or not at all) and
    prints the table. Ctrl+C cancels the engine."""
    try:
        report = run(lambda line: print(line, file=err, flush=True))
    except KeyboardInterrupt:
        engine.cancel()
        print("\ncancelled", file=err)
        return EXIT_INTERRUPTED
    if json_arg == "-":
        out.write(json.dumps(as_json(report), ensure_ascii=False) + "\n")
    else:
        if json_arg is not None:
            path = Path(json_arg)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.part")
            tmp.write_text(json.dumps(as_json(report), ensure_ascii=False, indent=1) + "\n")
            tmp.replace(path)
            print(f"JSON written to {path}", file=err)
        out.write(as_table(report) + "\n")
    out.flush()
    return EXIT_OK
