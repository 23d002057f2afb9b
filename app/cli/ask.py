"""`rapidqa ask`: one question about PDFs or library documents, streamed."""

from __future__ import annotations

import argparse
import json
from typing import TextIO

from app.cli.common import EXIT_INTERRUPTED, EXIT_OK, UsageError, check_pdf, engine_for
from app.cli.render import Console, close_events, finished_to_json, use_colour
from core.config import DecodeConfig
from core.events import Finished


def cmd_ask(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Ask, printing progress on `err` and the answer (or its JSON) on `out`."""
    question = args.question.strip()
    if not question:
        raise UsageError('the question is empty: pass a question with -q "..."')
    for pdf in args.pdfs:
        check_pdf(pdf)
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
        preliminary=args.preliminary,
    )
    engine = engine_for(args)
    colour = use_colour(args.color, out)
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
        close_events(events)
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
