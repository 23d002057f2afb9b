"""The `rapidqa` command: ask a PDF, benchmark the decoding modes, open the GUI.

Talks to the engine only through `core.api`, `core.events`, `core.config` and
`core.errors`; Qt is imported only by the function that opens the GUI.

Exit codes: 0 ok, 1 a user error (`RapidQAError`), 2 bad usage, 70 an internal
error (a bug: the traceback is shown with ``--debug`` or ``RAPIDQA_DEBUG=1``),
130 interrupted (Ctrl+C).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TextIO

from core.config import (
    DEFAULT_DRAFTER,
    DEFAULT_TARGET,
    MODES,
    OFFLINE_MODEL_NAMES,
    PRECISIONS,
    QA_DOC_FOLDERS,
    SAME_AS_TARGET,
    DecodeConfig,
    IndexConfig,
    ModelConfig,
    default_drafter,
)
from core.errors import Cancelled, DocumentError, RapidQAError
from core.events import (
    Calibrated,
    DocumentRead,
    DraftStep,
    Event,
    Finished,
    IngestProgress,
    LoadProgress,
    ModelLoaded,
    Notice,
    PrefillProgress,
    Retrieved,
    Status,
    drain,
)

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130

BENCH_MODES = (*MODES, "hf-generate", "hf-lookup", "hf-assisted")
DEFAULT_BENCH_MODES = "target,sd,rapid,hf-generate,hf-lookup"
DEFAULT_SWEEP_MODES = "target,sd,rapid"  # bench speed --contexts
_PROJECT = Path(__file__).resolve().parent.parent
QA_SETS_DIR = _PROJECT / "bench" / "qa"  # every *.jsonl there is the default set...
QA_MADE_SETS = ("long.jsonl", "needle.jsonl")  # ...but these, whose PDFs a script makes
ISSUES_HINT = "This is a bug in RapidQA; please report it with the command you ran"

# ANSI colours of the streamed answer (draft tokens the target accepted, the target's
# correction after a rejection, the bonus token after a fully accepted draft).
GREEN = "\x1b[32m"
YELLOW = "\x1b[33m"
CYAN = "\x1b[36m"
DIM = "\x1b[2m"
RESET = "\x1b[0m"


class EngineLike(Protocol):
    """What the CLI needs of `core.api.Engine` (a fake engine in tests)."""

    def ask(
        self,
        question: str,
        documents: Sequence[Path],
        decode: DecodeConfig = ...,
        /,
        password: str | None = None,
    ) -> Iterator[Event]: ...

    def cancel(self) -> None: ...


class UsageError(Exception):
    """Bad arguments found after parsing (exit code 2)."""


def make_engine(models: ModelConfig, index: IndexConfig) -> Any:
    """Build the engine (tests replace this with a fake)."""
    from core.api import Engine  # imports torch: only when a command needs it

    return Engine(models, index)


# --- argument parsing -------------------------------------------------------------


def _int_range(lo: int, hi: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < lo or (hi is not None and value > hi):
            bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
            raise argparse.ArgumentTypeError(f"must be {bound} (got {value})")
        return value

    parse.__name__ = "integer"
    return parse


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0 (got {text})")
    return value


_non_negative_float.__name__ = "number"


def _mode_list(text: str) -> list[str]:
    modes = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in modes if m not in BENCH_MODES]
    if unknown or not modes:
        raise argparse.ArgumentTypeError(
            f"unknown mode(s) {', '.join(unknown) or '(none)'}; choose from {','.join(BENCH_MODES)}"
        )
    return modes


def _common_options() -> argparse.ArgumentParser:
    # SUPPRESS: a subcommand's copy must not overwrite a value given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--library",
        type=Path,
        metavar="DIR",
        default=argparse.SUPPRESS,
        help="document library folder (default: RAPIDQA_LIBRARY, else the user data folder)",
    )
    common.add_argument(
        "--embedder",
        default=argparse.SUPPRESS,
        metavar="MODEL",
        help="sentence-transformers model for retrieval (default: all-MiniLM-L6-v2, offline)",
    )
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show tracebacks of internal errors (also RAPIDQA_DEBUG=1)",
    )
    return common


def _model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("models")
    names = ", ".join(OFFLINE_MODEL_NAMES)
    group.add_argument(
        "--target",
        default=DEFAULT_TARGET,
        metavar="MODEL",
        help=f"target model: an offline model ({names}), a .gguf file, a model folder or a "
        f"hub id (default: {DEFAULT_TARGET}, reads 32K tokens)",
    )
    group.add_argument(
        "--drafter",
        default=None,
        metavar="MODEL",
        help=f"drafter model (same kinds), or '{SAME_AS_TARGET}' for self-speculation "
        f"(default: {DEFAULT_DRAFTER}, which reads the retrieved passages, with the "
        f"default target; '{SAME_AS_TARGET}' with any other)",
    )
    group.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    group.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="weights (default auto: int4 weights with bf16 activations and KV cache on a "
        "CPU for the GGUF models, about 4x faster decoding than float32; bfloat16 on a "
        "GPU; a float checkpoint keeps float32 on a CPU); int4/int8 run on the CPU only",
    )
    group.add_argument(  # RapidQA 0.2's name for dense precisions
        "--dtype", dest="precision", choices=PRECISIONS, help=argparse.SUPPRESS
    )
    group.add_argument(
        "--exact-prefill",
        action="store_true",
        help="read documents in the model's own precision (by default an fp32 model reads "
        "them in bf16 on CPUs with native bf16, about twice as fast; the offline GGUF "
        "models already run in bf16 there)",
    )


def _decoding_options(parser: argparse.ArgumentParser, *, full: bool) -> None:
    defaults = DecodeConfig()
    group = parser.add_argument_group("decoding")
    group.add_argument(
        "--eta",
        type=_non_negative_float,
        default=defaults.eta,
        help=f"RAPID strength for mode rapid (default {defaults.eta:g}; paper: 5-20)",
    )
    group.add_argument(
        "--gamma",
        type=_int_range(1, 32),
        default=defaults.gamma,
        help=f"most draft tokens per round, 1-32 (default {defaults.gamma})",
    )
    group.add_argument(
        "--budget",
        type=_int_range(1),
        default=None,
        metavar="TOKENS",
        help="drafter retrieval budget in tokens (default: max(L/24, min(4096, L/4)), L = "
        "the tokens the target reads)",
    )
    group.add_argument(
        "--drafter-kv",
        choices=("select", "prefill"),
        default=defaults.drafter_kv,
        help="self-speculation: the drafter reads the retrieved passages from the target's "
        "KV cache (select, default) or prefills its own prompt of them (prefill)",
    )
    group.add_argument(
        "--no-lookup",
        dest="lookup",
        action="store_false",
        help="no n-gram lookup drafts from the question, passages and document",
    )
    if full:
        group.add_argument(
            "--temperature",
            type=_non_negative_float,
            default=defaults.temperature,
            help="0 = greedy (default)",
        )
        group.add_argument("--seed", type=int, default=defaults.seed)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line (exposed for tests and for the docs)."""
    common = _common_options()
    parser = argparse.ArgumentParser(
        prog="rapidqa",
        description="Question answering over long PDFs with retrieval-augmented "
        "speculative decoding (RAPID). Without a command, opens the app window.",
        parents=[common],
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    gui = sub.add_parser("gui", parents=[common], help="open the app window (default)")
    gui.add_argument("pdf", nargs="?", type=Path, metavar="PDF", help="a PDF to open")
    gui.add_argument(
        "--quit-after",
        type=_non_negative_float,
        default=None,
        metavar="SECONDS",
        help="close the window after SECONDS (smoke tests)",
    )

    ask = sub.add_parser(
        "ask", parents=[common], help="answer a question about PDFs (none: the whole library)"
    )
    ask.add_argument(
        "pdfs", nargs="*", type=Path, metavar="PDF",
        help="PDFs to ask about (added to the library first); none = every library document",
    )  # fmt: skip
    ask.add_argument("-q", "--question", required=True)
    ask.add_argument("--mode", choices=MODES, default=DecodeConfig().mode)
    _decoding_options(ask, full=True)
    ask.add_argument("--max-new-tokens", type=_int_range(1), default=DecodeConfig().max_new_tokens)
    _model_options(ask)
    ask.add_argument("--password", default=None, help="password of an encrypted PDF")
    ask.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object with the answer and statistics (logs on stderr)",
    )
    ask.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour the streamed answer: auto = on a terminal unless NO_COLOR is set",
    )

    index = sub.add_parser("index", parents=[common], help="manage the document library")
    index_sub = index.add_subparsers(dest="index_command", metavar="ACTION", required=True)
    add = index_sub.add_parser("add", parents=[common], help="add PDFs to the library")
    add.add_argument("pdfs", nargs="+", type=Path, metavar="PDF")
    add.add_argument("--password", default=None, help="password of encrypted PDFs")
    add.add_argument(
        "--no-ocr", dest="ocr", action="store_false", default=None,
        help="skip scanned pages instead of reading them with Tesseract OCR",
    )  # fmt: skip
    _model_options(add)
    listing = index_sub.add_parser("list", parents=[common], help="list the library's documents")
    listing.add_argument("--json", action="store_true", help="print a JSON list")
    remove = index_sub.add_parser("remove", parents=[common], help="remove documents by id")
    remove.add_argument("ids", nargs="+", metavar="ID", help="id (or its first digits)")

    search = sub.add_parser("search", parents=[common], help="find passages (no LLM)")
    search.add_argument("-q", "--query", required=True)
    search.add_argument("--k", type=_int_range(1, 1000), default=5, help="results (default 5)")
    search.add_argument("--doc", action="append", default=None, metavar="ID",
                        help="only this document (repeat for more)")  # fmt: skip
    search.add_argument(
        "--dense", action="store_true",
        help="dense (embedding) search only; the default fuses it with BM25",
    )  # fmt: skip
    search.add_argument("--json", action="store_true",
                        help="print a JSON list of {doc, title, pages, score, text}")  # fmt: skip

    bench = sub.add_parser("bench", parents=[common], help="benchmarks")
    bench_sub = bench.add_subparsers(dest="bench_command", metavar="BENCH", required=True)
    speed = bench_sub.add_parser(
        "speed",
        parents=[common],
        help="decode speed of the modes, interleaved, medians per mode",
    )
    speed.add_argument("pdf", type=Path, metavar="PDF")
    speed.add_argument(
        "-q",
        "--question",
        action="append",
        required=True,
        dest="questions",
        help="a question (repeat -q for more; the 2nd+ measures KV reuse)",
    )
    speed.add_argument(
        "--modes",
        type=_mode_list,
        default=None,
        help=f"comma-separated, from {','.join(BENCH_MODES)} (target is always added; "
        "hf-*: transformers generate on the target's full prompt: plain, prompt lookup, "
        f"assisted by the drafter; default {DEFAULT_BENCH_MODES}, with --contexts "
        f"{DEFAULT_SWEEP_MODES})",
    )
    speed.add_argument(
        "--repeat", type=_int_range(1), default=None, help="default 3, with --contexts 1"
    )
    speed.add_argument("--max-new-tokens", type=_int_range(1), default=96)
    speed.add_argument(
        "--contexts",
        type=_context_list,
        default=None,
        metavar="N,N,...",
        help="context-length sweep: bench the first pages of PDF holding about N target "
        "tokens, for each N (temporary PDFs, removed from the library afterwards)",
    )
    _decoding_options(speed, full=False)
    _model_options(speed)
    speed.add_argument("--password", default=None, help="password of an encrypted PDF")
    _bench_json_option(speed, '{"modes": {MODE: {...}}}; with --contexts {"contexts": [...]}')

    quality = bench_sub.add_parser(
        "quality", parents=[common], help="accuracy and token F1 of the modes on a question set"
    )
    quality.add_argument(
        "--set",
        action="append",
        type=Path,
        dest="sets",
        metavar="JSONL",
        help=f"a question set (repeat for more; default: every set in {QA_SETS_DIR})",
    )
    quality.add_argument(
        "--docs",
        action="append",
        type=Path,
        metavar="DIR",
        help="a folder where the sets' PDFs are (repeat for more; default: "
        + ", ".join(str(d) for d in QA_DOC_FOLDERS)
        + ")",
    )
    quality.add_argument(
        "--sweep",
        default=None,
        metavar="NAME=V1,V2,...",
        help="instead of --modes: target, then rapid at each value (eta=0,1,5,10,20 or "
        "gamma=2,4,6,8)",
    )
    quality.add_argument(
        "--table1",
        action="store_true",
        help="instead of --modes: the RAPID paper's Table 1 on the target/drafter pair "
        "(LC, RAG, SD, RAPID self, downward, and upward with the drafter as target)",
    )
    quality.add_argument(
        "--modes",
        type=_mode_list,
        default=_mode_list("target,rag,sd,rapid"),
        help="comma-separated modes (target is always run: the baseline)",
    )
    quality.add_argument(
        "--subset",
        type=_int_range(1),
        default=None,
        metavar="N",
        help="N questions spread over the set (a quick run)",
    )
    quality.add_argument("--max-new-tokens", type=_int_range(1), default=64)
    _decoding_options(quality, full=False)
    _model_options(quality)
    _bench_json_option(quality, '{"modes": {...}, "groups": {...}, "results": [...]}')
    return parser


def _bench_json_option(parser: argparse.ArgumentParser, shape: str) -> None:
    """`--json [FILE]` of the benchmarks (see `_run_bench`)."""
    parser.add_argument(
        "--json",
        nargs="?",
        const="-",
        default=None,
        metavar="FILE",
        help=f"print the JSON ({shape}) instead of the table; with FILE, write it there and "
        "print the table",
    )


# --- entry point ----------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run `rapidqa`; return the exit code."""
    args_list = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2, message printed)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    debug = bool(getattr(args, "debug", False)) or os.environ.get("RAPIDQA_DEBUG") == "1"
    err = sys.stderr
    try:
        if args.command == "ask":
            return _cmd_ask(args, sys.stdout, err)
        if args.command == "bench" and args.bench_command == "quality":
            return _cmd_bench_quality(args, sys.stdout, err)
        if args.command == "bench":
            return _cmd_bench_speed(args, sys.stdout, err)
        if args.command == "index":
            return _cmd_index(args, sys.stdout, err)
        if args.command == "search":
            return _cmd_search(args, sys.stdout, err)
        return _cmd_gui(
            getattr(args, "pdf", None), getattr(args, "quit_after", None),
            getattr(args, "library", None), err,
        )  # fmt: skip
    except UsageError as exc:
        parser.print_usage(err)
        print(f"rapidqa: error: {exc}", file=err)
        return EXIT_USAGE
    except Cancelled:
        print("cancelled", file=err)
        return EXIT_INTERRUPTED
    except RapidQAError as exc:
        if debug:
            traceback.print_exc(file=err)
        print(f"error: {exc}", file=err)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("\ncancelled", file=err)
        return EXIT_INTERRUPTED
    except Exception as exc:  # the one place that turns bugs into a message
        if debug:
            traceback.print_exc(file=err)
        print(f"internal error: {type(exc).__name__}: {exc}", file=err)
        hint = "" if debug else " (rerun with --debug for the traceback)"
        print(f"{ISSUES_HINT}{hint}.", file=err)
        return EXIT_INTERNAL


def _engine_for(args: argparse.Namespace) -> Any:
    target = getattr(args, "target", ModelConfig().target)
    models = ModelConfig(
        target=target,
        drafter=getattr(args, "drafter", None) or default_drafter(target),
        device=getattr(args, "device", ModelConfig().device),
        precision=getattr(args, "precision", ModelConfig().precision),
        fast_prefill=False if getattr(args, "exact_prefill", False) else None,
    )
    index = IndexConfig(
        library=getattr(args, "library", None),
        embedder=getattr(args, "embedder", IndexConfig().embedder),
        hybrid=not getattr(args, "dense", False),
    )
    return make_engine(models, index)


def _check_pdf(pdf: Path) -> None:
    if not pdf.exists():
        raise DocumentError(f"No such file: {pdf}. Check the path and try again.")
    if not pdf.is_file():
        raise DocumentError(f"{pdf} is not a file: give the path of a PDF.")


# --- ask ------------------------------------------------------------------------------


def _cmd_ask(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    question = args.question.strip()
    if not question:
        raise UsageError('the question is empty: pass a question with -q "..."')
    for pdf in args.pdfs:
        _check_pdf(pdf)
    decode = DecodeConfig(
        mode=args.mode,
        gamma=args.gamma,
        eta=args.eta,
        temperature=args.temperature,
        seed=args.seed,
        max_new_tokens=args.max_new_tokens,
        budget=args.budget,
        drafter_kv=args.drafter_kv,
        lookup=args.lookup,
    )
    engine: EngineLike = _engine_for(args)
    colour = _use_colour(args.color, out)
    console = Console(out, err, colour=colour, stream_answer=not args.json)
    finished: Finished | None = None
    events = engine.ask(question, list(args.pdfs), decode, password=args.password)
    try:
        for event in events:
            result = console.show(event)
            if result is not None:
                finished = result
    except KeyboardInterrupt:
        engine.cancel()
        _close(events)
        console.end_progress()
        print("\ncancelled", file=err)
        return EXIT_INTERRUPTED
    if finished is None:
        raise RuntimeError("the engine's event stream ended without a Finished event")
    if args.json:
        out.write(json.dumps(finished_to_json(finished), ensure_ascii=False) + "\n")
        out.flush()
    if finished.stop_reason == "cancelled":
        return EXIT_INTERRUPTED
    return EXIT_OK


def _close(events: Iterator[Event]) -> None:
    close = getattr(events, "close", None)
    if callable(close):
        try:
            close()
        except Exception:  # already cancelling; nothing more to do
            pass


def _use_colour(choice: str, out: TextIO) -> bool:
    if choice == "always":
        return True
    if choice == "never":
        return False
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(out, "isatty", None)
    return bool(isatty()) if callable(isatty) else False


def finished_to_json(f: Finished) -> dict[str, Any]:
    """The flat `--json` object of `rapidqa ask`."""
    return {
        "answer": f.answer,
        "mode": f.mode,
        "stop_reason": f.stop_reason,
        "new_tokens": f.new_tokens,
        "rounds": f.rounds,
        "drafted": f.drafted,
        "accepted": f.accepted,
        "acceptance_rate": f.acceptance_rate,
        "mean_accepted_length": f.mean_accepted_length,
        "target_prefill_s": f.target_prefill_s,
        "drafter_prefill_s": f.drafter_prefill_s,
        "decode_s": f.decode_s,
        "tokens_per_s": f.tokens_per_s,
        "speedup_estimate": f.speedup_estimate,
        "end_to_end_s": f.end_to_end_s,
        "time_to_first_token_s": f.time_to_first_token_s,
        "chunks": [
            {"doc": c.title or c.doc_id, "pages": list(c.pages), "score": c.score} for c in f.chunks
        ],
    }


def format_pages(pages: Iterable[int]) -> str:
    """``[3, 5, 6, 7]`` -> ``"p. 3, 5–7"`` (sorted, de-duplicated, ranges collapsed)."""
    ordered = sorted(set(pages))
    if not ordered:
        return ""
    parts: list[str] = []
    start = prev = ordered[0]
    for page in [*ordered[1:], None]:
        if page is not None and page == prev + 1:
            prev = page
            continue
        parts.append(str(start) if start == prev else f"{start}\u2013{prev}")
        if page is not None:
            start = prev = page
    return ("pp. " if len(ordered) > 1 else "p. ") + ", ".join(parts)


def format_stats(f: Finished) -> str:
    """The stats line printed after an answer."""
    if f.drafted:
        accept = f"acceptance {100 * f.acceptance_rate:.0f}%"
        mean = f"{f.mean_accepted_length:.2f} accepted/round"
    else:
        accept, mean = "acceptance n/a", "no drafts"
    speedup = f"{f.speedup_estimate:.2f}x est." if f.speedup_estimate > 0 else "n/a"
    prefill = f"prefill {f.target_prefill_s:.2f} s"
    if f.drafter_prefill_s > 0:
        prefill += f" (+ drafter {f.drafter_prefill_s:.2f} s)"
    parts = [
        f"[{f.mode}]",
        f"{f.new_tokens} new tokens",
        f"{f.rounds} rounds",
        accept,
        mean,
        f"{f.tokens_per_s:.1f} tok/s",
        f"speedup {speedup}",
        prefill,
        f"end-to-end {f.end_to_end_s:.2f} s",
    ]
    if f.stop_reason != "eos":
        parts.append("stopped: " + f.stop_reason.replace("_", " "))
    return " · ".join(parts)


class Console:
    """Renders engine events: the answer on `out`, everything else on `err`."""

    def __init__(
        self, out: TextIO, err: TextIO, *, colour: bool, stream_answer: bool = True
    ) -> None:
        self.out = out
        self.err = err
        self.colour = colour
        self.stream_answer = stream_answer
        self._err_tty = bool(getattr(err, "isatty", lambda: False)())
        self._progress_open = False
        self._answer_started = False
        self._leading = True

    # stderr lines ---------------------------------------------------------------

    def end_progress(self) -> None:
        if self._progress_open:
            self.err.write("\n")
            self._progress_open = False

    def _line(self, text: str) -> None:
        self.end_progress()
        if self._answer_started and self.stream_answer:
            self.out.write("\n")  # keep a log line from landing inside the answer
            self.out.flush()
            self._answer_started = False
        self.err.write(text + "\n")
        self.err.flush()

    def _progress(self, text: str, done: bool) -> None:
        if self._err_tty:
            self.err.write("\r\x1b[K" + text)
            self._progress_open = not done
            if done:
                self.err.write("\n")
        else:
            self.err.write(text + "\n")
        self.err.flush()

    # events -------------------------------------------------------------------------

    def show(self, event: Event) -> Finished | None:
        """Render one event; return it if it is the `Finished` one."""
        if isinstance(event, DraftStep):
            self._step(event)
        elif isinstance(event, PrefillProgress):
            total = max(event.total_tokens, 1)
            pct = 100 * event.done_tokens / total
            cached = f", {event.cached_tokens} cached" if event.cached_tokens else ""
            eta = event.eta_s
            left = f", {_duration(eta)} left" if eta is not None else ""
            self._progress(
                f"prefill {event.role}: {pct:3.0f}% ({event.done_tokens}/"
                f"{event.total_tokens} tokens{cached}, {event.seconds:.1f} s{left})",
                done=event.done_tokens >= event.total_tokens,
            )
        elif isinstance(event, LoadProgress):
            self._progress(event.describe(), done=event.done >= event.total)
        elif isinstance(event, Status):
            self._line(event.message)
        elif isinstance(event, Notice):
            self._line(f"{'warning' if event.level == 'warning' else 'note'}: {event.message}")
        elif isinstance(event, ModelLoaded):
            shared = ", shares the target's weights" if event.shared_with_target else ""
            self._line(
                f"{event.role}: {event.name} on {event.device} ({event.dtype}, "
                f"{event.parameters / 1e6:.0f}M parameters, {event.context_window}-token "
                f"window{shared}) in {event.seconds:.1f} s"
            )
        elif isinstance(event, DocumentRead):
            self._line(f"read {event.title}: {event.pages} pages, {event.tokens} tokens")
        elif isinstance(event, Retrieved):
            self._line(
                f"retrieved {len(event.chunks)} passages for the {event.role} "
                f"({event.context_tokens} of {event.budget_tokens} budget tokens, "
                f"{format_pages(p for c in event.chunks for p in c.pages) or 'no pages'})"
            )
        elif isinstance(event, IngestProgress):
            self._progress(format_ingest(event), done=event.done >= event.total)
        elif isinstance(event, Calibrated):
            pass  # folded into the speedup estimate of the stats line
        elif isinstance(event, Finished):
            self._finish(event)
            return event
        return None

    def _step(self, step: DraftStep) -> None:
        if not self.stream_answer:
            return
        if not self._answer_started:
            self.end_progress()
            if self.colour:
                self.err.write(
                    f"{DIM}colours:{RESET} {GREEN}accepted draft{RESET} "
                    f"{YELLOW}correction{RESET} {CYAN}bonus{RESET} target\n"
                )
                self.err.flush()
            self._answer_started = True
        accepted = "".join(step.drafted_texts[: step.accepted])
        pieces: list[tuple[str, str]] = [(GREEN, accepted)]
        if step.token_id is not None:
            kind_colour = {"correction": YELLOW, "bonus": CYAN}.get(step.token_kind, "")
            pieces.append((kind_colour, step.token_text))
        for colour, text in pieces:
            if self._leading:  # the answer starts at its first visible character
                text = text.lstrip()
                self._leading = not text
            if not text:
                continue
            self.out.write(f"{colour}{text}{RESET}" if self.colour and colour else text)
        self.out.flush()

    def _finish(self, f: Finished) -> None:
        self.end_progress()
        if self.stream_answer:
            if not self._answer_started and f.answer:
                self.out.write(f.answer)  # an engine that streamed no rounds
            self.out.write("\n")
            self.out.flush()
            self._answer_started = False
        self.err.write(format_stats(f) + "\n")
        pages = format_pages(p for c in f.chunks for p in c.pages)
        if pages:
            self.err.write(f"Sources: {pages}\n")
        self.err.flush()


def format_ingest(event: IngestProgress) -> str:
    """One progress line of adding a PDF."""
    what = {"read": "reading", "split": "cutting", "embed": "embedding", "save": "saving"}
    unit = {"read": " pages", "embed": " passages"}.get(event.stage, "")
    counts = f" {event.done}/{event.total}{unit}" if unit else ""
    eta = f", {_duration(event.eta_s)} left" if event.eta_s and event.done < event.total else ""
    return f"{what[event.stage]} {event.title}:{counts} ({100 * event.fraction:.0f}%){eta}"


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


# --- index and search ------------------------------------------------------------------


def _cmd_index(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    engine = _engine_for(args)
    try:
        if args.index_command == "add":
            return _index_add(engine, args, out, err)
        if args.index_command == "list":
            return _index_list(engine, args, out)
        return _index_remove(engine, args, out, err)
    finally:
        engine.close()


def _index_add(engine: Any, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    console = Console(out, err, colour=False, stream_answer=False)
    failed = 0
    for pdf in args.pdfs:
        known = {d.doc_id for d in engine.documents()}
        try:
            _check_pdf(pdf)
            info = drain(engine.add(pdf, args.password, args.ocr), console.show)
        except (DocumentError, Cancelled) as exc:  # the next file may be fine
            console.end_progress()
            print(f"error: {exc}", file=err)
            failed += 1
            continue
        verb = "already in the library" if info.doc_id in known else "added"
        out.write(
            f"{verb}: {info.doc_id[:12]}  {info.title} ({info.pages} pages, "
            f"{info.tokens:,} tokens, {info.chunks} chunks)\n"
        )
        out.flush()
    if failed:
        print(f"{failed} of {len(args.pdfs)} file(s) could not be added (see above).", file=err)
    return EXIT_ERROR if failed else EXIT_OK


def _index_list(engine: Any, args: argparse.Namespace, out: TextIO) -> int:
    docs = engine.documents()
    if any(not d.source_present for d in docs):  # moved files: look near the old place
        for d in docs:
            if not d.source_present:
                engine.locate(d.doc_id)
        docs = engine.documents()
    if args.json:
        rows = [
            {
                "id": d.doc_id,
                "title": d.title,
                "path": str(d.path),
                "source_present": d.source_present,
                "pages": d.pages,
                "tokens": d.tokens,
                "chunks": d.chunks,
                "units": d.units,
                "bytes": d.size,
                "sha256": d.sha256,
                "added": _iso(d.added),
                "notes": list(d.notes),
            }
            for d in docs
        ]
        out.write(json.dumps(rows, ensure_ascii=False, indent=1) + "\n")
        return EXIT_OK
    if not docs:
        out.write(f"The library at {engine.library.root} is empty. "
                  "Add PDFs with `rapidqa index add FILE.pdf`.\n")  # fmt: skip
        return EXIT_OK
    out.write(f"{'ID':12}  {'PAGES':>5}  {'TOKENS':>9}  {'ADDED':16}  TITLE\n")
    for d in docs:
        missing = "" if d.source_present else f"  [file missing: {d.path}]"
        out.write(
            f"{d.doc_id[:12]}  {d.pages:>5}  {d.tokens:>9,}  {_iso(d.added)[:16]:16}  "
            f"{d.title}{missing}\n"
        )
    out.write(f"{len(docs)} document(s) in {engine.library.root}\n")
    return EXIT_OK


def _index_remove(engine: Any, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    failed = 0
    for ref in args.ids:
        try:
            info = engine.remove(ref)
        except RapidQAError as exc:
            print(f"error: {exc}", file=err)
            failed += 1
            continue
        out.write(f"removed: {info.doc_id[:12]}  {info.title}\n")
    return EXIT_ERROR if failed else EXIT_OK


def _cmd_search(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    query = args.query.strip()
    if not query:
        raise UsageError('the query is empty: pass it with -q "..."')
    engine = _engine_for(args)
    try:
        if not engine.documents():
            raise RapidQAError(
                f"The library at {engine.library.root} is empty. Add PDFs first with "
                "`rapidqa index add FILE.pdf`."
            )
        doc_ids = [engine.library.info(ref).doc_id for ref in args.doc] if args.doc else None
        hits = engine.search(query, args.k, doc_ids)
    finally:
        engine.close()
    if args.json:
        rows = [
            {
                "doc": h.ref.doc_id,
                "title": h.ref.title,
                "pages": list(h.ref.pages),
                "score": round(h.ref.score, 4),
                "text": h.ref.text,
            }
            for h in hits
        ]
        out.write(json.dumps(rows, ensure_ascii=False, indent=1) + "\n")
        return EXIT_OK
    if not hits:
        print("No passage matches the query well enough. Try other words.", file=err)
        return EXIT_OK
    for rank, hit in enumerate(hits, start=1):
        ref = hit.ref
        out.write(f"{rank}. {ref.title}, {ref.page_text} (score {ref.score:.2f}, id "
                  f"{ref.doc_id[:12]})\n")  # fmt: skip
        snippet = " ".join(ref.text.split())
        out.write(f"   {snippet[:300]}{'...' if len(snippet) > 300 else ''}\n")
    return EXIT_OK


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).isoformat(timespec="seconds")


# --- bench -------------------------------------------------------------------------


def _cmd_bench_quality(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from core import api

    sets = args.sets or sorted(p for p in QA_SETS_DIR.glob("*.jsonl") if p.name not in QA_MADE_SETS)
    items = api.pick([item for path in sets for item in api.load_qa_set(path)], args.subset)
    decode = _bench_decoding(args, max_new_tokens=args.max_new_tokens)
    folders = args.docs or list(QA_DOC_FOLDERS)
    engine = _engine_for(args)
    if args.table1:
        variants = api.table1_variants(decode, engine.models_cfg)
    elif args.sweep:
        variants = api.sweep_variants(args.sweep, decode)
    else:
        variants = api.mode_variants(args.modes, decode)
    engines: dict[Any, Any] = {engine.models_cfg: engine}

    def engine_for(models: ModelConfig) -> Any:  # one engine per model pair, kept
        if models not in engines:
            engines[models] = make_engine(models, engine.index_cfg)
        return engines[models]

    def run(log: Callable[[str], None]) -> Any:
        return api.run_quality_bench(
            engine, items, folders, variants, log=log, engine_for=engine_for
        )

    try:
        return _run_bench(engine, run, args.json, api.quality_to_json, api.format_quality, out, err)
    finally:
        for other in engines.values():
            if other is not engine:
                other.close()


def _context_list(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated token counts like 1000,2000,4000, got {text!r}"
        ) from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"token counts must be at least 1 (got {text!r})")
    return sizes


def _cmd_bench_speed(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    questions = [q.strip() for q in args.questions]
    if not all(questions):
        raise UsageError('a question is empty: pass each question with -q "..."')
    _check_pdf(args.pdf)
    from core import api  # the bench functions are part of the engine facade

    sweep = args.contexts is not None
    modes = args.modes or _mode_list(DEFAULT_SWEEP_MODES if sweep else DEFAULT_BENCH_MODES)
    repeat = args.repeat or (1 if sweep else 3)
    engine = _engine_for(args)
    decode = _bench_decoding(args)

    def run(log: Callable[[str], None]) -> Any:
        common = (questions, modes, repeat, args.max_new_tokens, decode)
        report: Any
        if sweep:
            report = api.run_context_sweep(
                engine, args.pdf, args.contexts, *common, password=args.password, log=log
            )
        else:
            report = api.run_speed_bench(engine, args.pdf, *common, password=args.password, log=log)
        return report

    to_json = api.context_sweep_to_json if sweep else api.report_to_json
    table = api.format_context_table if sweep else api.format_table
    return _run_bench(engine, run, args.json, to_json, table, out, err)


def _bench_decoding(args: argparse.Namespace, **extra: Any) -> DecodeConfig:
    """The decoding options every benchmark takes (greedy: the runs are compared)."""
    return DecodeConfig(
        gamma=args.gamma, eta=args.eta, budget=args.budget, temperature=0.0,
        drafter_kv=args.drafter_kv, lookup=args.lookup, **extra,
    )  # fmt: skip


def _run_bench(
    engine: Any,
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


# --- gui ---------------------------------------------------------------------------


def _display_problem() -> str:
    """Why Qt could not open a window here ('' if it probably can)."""
    if sys.platform in ("win32", "darwin"):
        return ""
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform.split(":")[0] in ("offscreen", "minimal", "vnc", "eglfs", "linuxfb"):
        return ""
    if platform.startswith("wayland"):
        return "" if os.environ.get("WAYLAND_DISPLAY") else "WAYLAND_DISPLAY is not set"
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return ""
    return "no display found (DISPLAY and WAYLAND_DISPLAY are not set)"


def _cmd_gui(pdf: Path | None, quit_after: float | None, library: Path | None, err: TextIO) -> int:
    if pdf is not None:
        _check_pdf(pdf)
    problem = _display_problem()
    if not problem:
        try:
            from app.gui import run_gui  # imports PySide6
        except ImportError as exc:
            problem = f"Qt could not be loaded ({exc})"
    if problem:
        example = f'rapidqa ask "{pdf}"' if pdf is not None else "rapidqa ask PDF"
        print(
            f"rapidqa: cannot open the app window: {problem}.\n"
            f'Ask from the terminal instead: {example} -q "your question"',
            file=err,
        )
        return EXIT_USAGE
    return run_gui(pdf, quit_after, library)
