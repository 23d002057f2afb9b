"""The `rapidqa` entry point: parse, run the command, turn errors into exit codes.

Talks to the engine only through `core.api`, `core.events`, `core.config` and
`core.errors`; Qt is imported only by the command that opens the GUI (`app.cli.gui`).

Exit codes: 0 ok, 1 a user error (`RapidQAError`), 2 bad usage, 70 an internal
error (a bug: the traceback is shown with ``--debug`` or ``RAPIDQA_DEBUG=1``),
130 interrupted (Ctrl+C).
"""

from __future__ import annotations

import os
import sys
import traceback

from app.cli.ask import cmd_ask
from app.cli.bench import cmd_bench_quality, cmd_bench_speed
from app.cli.common import (
    EXIT_ERROR,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    ISSUES_HINT,
    UsageError,
)
from app.cli.gui import cmd_gui
from app.cli.library import cmd_index, cmd_search
from app.cli.parser import build_parser
from core.errors import Cancelled, RapidQAError


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
            return cmd_ask(args, sys.stdout, err)
        if args.command == "bench" and args.bench_command == "quality":
            return cmd_bench_quality(args, sys.stdout, err)
        if args.command == "bench":
            return cmd_bench_speed(args, sys.stdout, err)
        if args.command == "index":
            return cmd_index(args, sys.stdout, err)
        if args.command == "search":
            return cmd_search(args, sys.stdout, err)
        return cmd_gui(
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
