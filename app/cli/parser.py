"""The `rapidqa` argument parser: commands, shared option groups, value parsers."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

from bench import scoring
from bench.speed import BENCH_MODES
from core.config import (
    DEFAULT_DRAFTER,
    DEFAULT_TARGET,
    MODES,
    OFFLINE_MODEL_NAMES,
    PRECISIONS,
    SAME_AS_TARGET,
    DecodeConfig,
)

DEFAULT_BENCH_MODES = "target,sd,rapid,hf-generate,hf-lookup"
DEFAULT_SWEEP_MODES = "target,sd,rapid"  # bench speed --contexts


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


def mode_list(text: str) -> list[str]:
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
    ask.add_argument(
        "--no-preliminary",
        dest="preliminary",
        action="store_false",
        help="no preliminary answer from the drafter while the target first reads a long "
        "document (shown on stderr; stdout gets the final answer only)",
    )
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
        type=mode_list,
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
        type=context_list,
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
        help=f"a question set (repeat for more; default: every set in {scoring.QA_SETS_DIR})",
    )
    quality.add_argument(
        "--docs",
        action="append",
        type=Path,
        metavar="DIR",
        help="a folder where the sets' PDFs are (repeat for more; default: "
        + ", ".join(str(d) for d in scoring.QA_DOC_FOLDERS)
        + ")",
    )
    quality.add_argument(
        "--sweep",
        default=None,
        metavar="NAME=V1,V2,...",
        help="instead of --modes: target, then each value of eta (in rapid: eta=0,1,5,10,20) "
        "or of gamma (in the default mode, sd: gamma=2,4,6,8)",
    )
    quality.add_argument(
        "--table1",
        action="store_true",
        help="instead of --modes: the RAPID paper's Table 1 on the target/drafter pair "
        "(LC, RAG, SD, RAPID self, downward, and upward with the drafter as target)",
    )
    quality.add_argument(
        "--modes",
        type=mode_list,
        default=mode_list("target,rag,sd,rapid"),
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


def context_list(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated token counts like 1000,2000,4000, got {text!r}"
        ) from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"token counts must be at least 1 (got {text!r})")
    return sizes
