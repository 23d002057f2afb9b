"""The longest event-loop stall of the main window while the engine works.

A timer on the GUI thread ticks every 5 ms; a late tick is time the window could
not respond (see app/gui/stall.py). Phases, each with the real engine on its worker
thread and a fresh library:

  idle      the window open, nothing running (the floor of this machine)
  load      the models loading (first start)
  index     adding a large PDF (default: the R reference manual, 2,415 pages) for
            `--index-seconds`, while the PDF view scrolls, then cancelling it
  answer    answering the sample question on the sample document, end to end
  evidence  where the target looked for the answer's first run beyond the passages
            (or, without one, a run over its first tokens), through the window's
            code path (the answer view's click), until the heat overlay is drawn

Prints a table (max, p99 and median stall per phase, and the max as a ratio to the
idle floor) and writes it to bench/results/gui_stall.md.

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/gui_stall.py
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
LARGE_PDF = Path("/usr/share/R/doc/manual/fullrefman.pdf")
TARGET_MS = 50.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pdf", type=Path, default=LARGE_PDF, help="the large PDF to index")
    parser.add_argument("--index-seconds", type=float, default=120.0)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "gui_stall.md")
    args = parser.parse_args()
    if not args.pdf.is_file():
        raise SystemExit(f"{args.pdf} is missing (Debian: apt-get install r-doc-pdf), or --pdf")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from app.gui import theme
    from app.gui.launch import build
    from app.gui.stall import StallMeter

    work = Path(tempfile.mkdtemp(prefix="rapidqa-stall-"))
    os.environ["RAPIDQA_LIBRARY"] = str(work / "library")
    app = QApplication(sys.argv[:1])
    theme.apply(app)
    store = QSettings(str(work / "settings.ini"), QSettings.Format.IniFormat)
    meter = StallMeter(5)
    rows: list[tuple[str, float, StallMeter]] = []

    def run_phase(name: str, until: Callable[[], bool], tick: Callable[[], None] | None = None,
                  timeout: float = 1800.0) -> None:  # fmt: skip
        meter.start()
        start = time.monotonic()
        last_tick = start
        while not until():
            app.processEvents()
            time.sleep(0.001)
            now = time.monotonic()
            if tick is not None and now - last_tick > 0.1:
                tick()
                last_tick = now
            if now - start > timeout:
                raise SystemExit(f"gui_stall: phase {name} timed out")
        meter.stop()
        copy = StallMeter(5)
        copy.gaps_ms = list(meter.gaps_ms)
        rows.append((name, time.monotonic() - start, copy))
        print(f"{name}: {time.monotonic() - start:.1f} s, max stall {copy.max_stall_ms:.1f} ms",
              flush=True)  # fmt: skip

    t_idle = time.monotonic()
    window, worker = build(store, library=work / "library")
    gc.freeze()  # as app.gui.launch.run_gui does
    window.resize(1520, 920)
    window.show()

    def idle() -> bool:
        return not worker.busy and not window.jobs.in_flight

    run_phase("load", idle)  # list, sample added, models loaded
    t_idle = time.monotonic()
    run_phase("idle", lambda: time.monotonic() - t_idle > 5.0)

    window.library_ctl.add_documents([args.pdf])
    t_index = time.monotonic()
    scroll = getattr(window.pdf, "_scroll", None)
    direction = [1]

    def scroll_view() -> None:  # a user reading the sample while the manual indexes
        vbar = scroll.verticalScrollBar() if scroll is not None else None
        if vbar is None:
            return
        if vbar.value() >= vbar.maximum() or vbar.value() <= vbar.minimum():
            direction[0] *= -1
        vbar.setValue(vbar.value() + direction[0] * 120)

    run_phase("index", lambda: time.monotonic() - t_index > args.index_seconds or idle(),
              scroll_view)  # fmt: skip
    t_cancel = time.monotonic()
    for key in window.library_ctl.adding():
        window.library_ctl.cancel_add(key)
    run_phase("cancel", idle)
    cancel_s = time.monotonic() - t_cancel

    sample = next(d for d in window.library.documents() if "Harrow" in d.title)
    window.library.select([sample.doc_id])
    window.ask.set_question("When was the Harrow Point light first exhibited?")
    window.ask.ask_button.click()
    run_phase("answer", lambda: idle() and not window.answer_ctl.answering)
    tokens = sum(window.answer.counts().values())
    run, how = evidence_run(window)
    t_evidence = time.monotonic()
    if how == "beyond":
        window.answer.beyond_clicked.emit(run)  # what a click on the run emits
    else:
        window.answer_ctl.show_evidence(run)
    run_phase("evidence", lambda: idle() and not window.answer_ctl.answering)
    evidence_s = time.monotonic() - t_evidence
    heat = len(window.pdf.overlay.heat)
    problem = window.banner.message if not window.pdf.overlay.heat_shown else ""
    window.close()

    floor = max(rows[1][2].max_stall_ms, 1.0)
    lines = [
        "| phase | seconds | max stall (ms) | p99 (ms) | median (ms) | stalls > 50 ms "
        "| max vs idle |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, seconds, m in rows:
        lines.append(
            f"| {name} | {seconds:.1f} | {m.max_stall_ms:.1f} | {m.percentile(99):.1f} | "
            f"{m.percentile(50):.2f} | {sum(g > TARGET_MS for g in m.gaps_ms)} | "
            f"{m.max_stall_ms / floor:.1f}x |"
        )
    worst = max(m.max_stall_ms for name, _s, m in rows if name in ("index", "answer"))
    verdict = "within" if worst <= TARGET_MS else "over"
    ev = rows[-1][2].max_stall_ms
    ev_verdict = "within" if ev <= TARGET_MS else "over"
    shown = f"{heat} spots drawn" if not problem else f"no overlay: {problem}"
    text = "\n".join(lines) + (
        f"\n\nLongest stall while indexing or answering: {worst:.1f} ms ({verdict} the "
        f"{TARGET_MS:.0f} ms target). Indexed {args.pdf.name} for {args.index_seconds:.0f} s "
        f"while scrolling the viewer, then cancelled (the worker stopped {cancel_s:.2f} s "
        f"later); the answer streamed {tokens} tokens. Where the target looked for "
        f"{how_text(how, run)}: {evidence_s:.1f} s, longest stall {ev:.1f} ms ({ev_verdict} "
        f"the target; {shown}). Qt platform: {os.environ.get('QT_QPA_PLATFORM')}; "
        f"{os.cpu_count()} CPU cores.\n"
    )
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    return 0


def evidence_run(window: Any) -> tuple[Any, str]:
    """The answer's first run beyond the passages, else one over its first 8 emitted
    tokens (the view's tokens give its characters); and which it is."""
    from core.events import BeyondRun

    finished = window.answer_ctl.finished
    if finished is not None and finished.beyond:
        return finished.beyond[0], "beyond"
    texts = [t.text for t in window.answer.model() if t.kind != "rejected"][:8]
    raw = "".join(texts)
    lead = len(raw) - len(raw.lstrip())
    return BeyondRun(0, len(texts), 0, max(len(raw) - lead, 1), 0), "opening"


def how_text(how: str, run: Any) -> str:
    if how == "beyond":
        return f"its first run beyond the passages (tokens {run.first}-{run.last})"
    return f"its first {run.last} tokens (the answer had no run beyond the passages)"


if __name__ == "__main__":
    raise SystemExit(main())
