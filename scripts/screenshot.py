"""Takes the README's screenshots of the main window with the real engine.

Run it under a virtual screen (scripts/screenshot.sh does): a fresh library and fresh
settings, so the window starts as a new user's does (the sample document added, the
sample question filled in); it presses Ask and grabs the window at the moment each
shot is about (`--shot`):

  answer        (docs/screenshot.png) once the answer has streamed `--tokens` tokens,
                the retrieved passages highlighted in the PDF
  citations     (docs/screenshot-citations.png) the finished answer with its sentence
                marks, after a click on the first numbered mark: its lines outlined
  evidence      (docs/screenshot-evidence.png) after a click on the first run the
                target wrote beyond the passages (without one, a run over the answer's
                first tokens): the heat overlay of where the target looked, its legend
  preliminary   (docs/screenshot-preliminary.png) the preliminary answer streamed while
                the target reads the document; the KV cache starts empty (a temporary
                RAPIDQA_CACHE, the models' cache kept) so that the read is not cached

`--shot all` takes the last three in one window (the preliminary first, on the cold
cache). `--cold` empties the KV cache for the other shots too. The answer shot shows
rejected drafts (the default setting); the others hide them, for the marks' sake.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DOCS = REPO / "docs"
SHOTS = {
    "answer": DOCS / "screenshot.png",
    "citations": DOCS / "screenshot-citations.png",
    "evidence": DOCS / "screenshot-evidence.png",
    "preliminary": DOCS / "screenshot-preliminary.png",
}
QUESTION = "How high is the focal plane of the light above mean high water?"
# Its answer has a run the target wrote beyond the passages (Qwen2.5-Coder 1.5B / 0.5B).
PROVENANCE_QUESTION = "When was the Harrow Point light first exhibited?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shot", choices=[*SHOTS, "all"], default="answer")
    parser.add_argument("--out", type=Path, help="where to write a single shot (default: docs/)")
    parser.add_argument("--tokens", type=int, default=12, help="grab after this many answer tokens")
    parser.add_argument("--question", help="default: the focal plane question for the "
                        "answer shot, the first sample question for the others")  # fmt: skip
    parser.add_argument("--cold", action="store_true", help="start from an empty KV cache")
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    # In this order the evidence shot clicks a run of the preliminary shot's answer
    # (the first, cold read of the document), which has one with the default pair.
    shots = ["preliminary", "evidence", "citations"] if args.shot == "all" else [args.shot]
    work = Path(tempfile.mkdtemp(prefix="rapidqa-shot-"))
    if args.cold or "preliminary" in shots:
        _cold_kv_cache(work)

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from app.gui import theme
    from app.gui.launch import build

    os.environ["RAPIDQA_LIBRARY"] = str(work / "library")
    app = QApplication(sys.argv[:1])
    app.setApplicationName("RapidQA")
    theme.apply(app)
    store = QSettings(str(work / "settings.ini"), QSettings.Format.IniFormat)
    window, worker = build(store, library=work / "library")
    window.resize(1600, 960)
    window.show()
    shooter = Shooter(app, window, args.timeout)
    shooter.wait(lambda: not worker.busy and not window.jobs.in_flight,
                 "the sample to be added and the models loaded")  # fmt: skip
    if args.shot != "answer":
        window.answer.set_show_rejected(False)  # the marks and runs read better
    for shot in shots:
        out = args.out if args.out is not None and len(shots) == 1 else SHOTS[shot]
        question = args.question or (QUESTION if shot == "answer" else PROVENANCE_QUESTION)
        getattr(shooter, shot)(argparse.Namespace(**{**vars(args), "question": question}), out)
    window.close()
    return 0


def _cold_kv_cache(work: Path) -> None:
    """An empty KV cache for this run: RapidQA's cache in `work`, the models' kept."""
    from core.models.loading import models_dir  # the models' folder, before the move

    os.environ["RAPIDQA_MODEL_CACHE"] = str(models_dir())
    os.environ["RAPIDQA_CACHE"] = str(work / "cache")


class Shooter:
    """Drives the window to each shot's moment and grabs it."""

    def __init__(self, app: Any, window: Any, timeout: float) -> None:
        self.app, self.window, self.timeout = app, window, timeout

    def wait(self, condition: Callable[[], object], what: str) -> None:
        deadline = time.monotonic() + self.timeout
        while not condition():
            self.app.processEvents()
            time.sleep(0.01)
            if time.monotonic() > deadline:
                raise SystemExit(f"screenshot: timed out waiting for {what}")

    def settle(self, seconds: float = 0.3) -> None:
        """Let batches, page images and animations paint."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.app.processEvents()
            time.sleep(0.01)

    def grab(self, out: Path) -> None:
        pdf = self.window.pdf
        self.wait(lambda: pdf.page_image(max(pdf.current_page, 1)) is not None, "the page")
        self.wait(lambda: not pdf.canvas.flashing, "the flash to end")
        self.settle()
        out.parent.mkdir(parents=True, exist_ok=True)
        self.window.grab().save(str(out))
        print(f"screenshot: wrote {out} ({self.window.width()}x{self.window.height()})")

    def ask(self, question: str) -> None:
        self.window.ask.set_question(question)
        self.window.ask.ask_button.click()

    def finished(self) -> Any:
        ctl = self.window.answer_ctl
        self.wait(lambda: not ctl.answering and ctl.finished is not None, "the answer")
        return ctl.finished

    def click(self, position: int) -> None:
        """A real mouse click on the answer's character at document `position`."""
        from PySide6.QtCore import QPoint, Qt
        from PySide6.QtGui import QTextCursor
        from PySide6.QtTest import QTest

        browser = self.window.answer.browser
        cursor = QTextCursor(browser.document())
        cursor.setPosition(position)
        browser.setTextCursor(cursor)
        browser.ensureCursorVisible()
        rect = browser.cursorRect(cursor)
        QTest.mouseClick(browser.viewport(), Qt.MouseButton.LeftButton,
                         pos=QPoint(rect.x() + 3, rect.center().y()))  # fmt: skip

    # ------------------------------------------------------------------ shots
    def answer(self, args: argparse.Namespace, out: Path) -> None:
        self.ask(args.question)
        view = self.window.answer

        def emitted() -> int:  # answer tokens so far (rejected drafts are not)
            return sum(n for kind, n in view.counts().items() if kind != "rejected")

        self.wait(lambda: emitted() >= args.tokens or not self.window.answer_ctl.answering,
                  "the answer")  # fmt: skip
        self.settle(0.1)
        out.parent.mkdir(parents=True, exist_ok=True)
        self.window.grab().save(str(out))
        print(f"screenshot: wrote {out}")

    def citations(self, args: argparse.Namespace, out: Path) -> None:
        self.ask(args.question)
        self.finished()
        view = self.window.answer
        numbered = [i for i, mark in enumerate(view.marks()) if mark != "[?]"]
        print(f"screenshot: marks {view.marks()}")
        if numbered:
            self.click(view.mark_range(numbered[0])[0])
            self.wait(lambda: self.window.pdf.overlay.spot is not None, "the cited lines")
        else:
            print("screenshot: the answer cites no passage; grabbing it as it is")
        self.grab(out)

    def evidence(self, args: argparse.Namespace, out: Path) -> None:
        fin = self.window.answer_ctl.finished
        if fin is None:
            self.ask(args.question)
            fin = self.finished()
        view = self.window.answer
        if fin.beyond:
            start, _end = view.run_range(0) or (0, 0)
            run = fin.beyond[0]
            print(f"screenshot: run beyond the passages: {fin.answer[run.start : run.end]!r}")
            self.click(start + 1)
            self.settle(0.1)
            if not self.window.answer_ctl.answering:  # the click missed the run
                self.window.answer_ctl.show_evidence(run)
        else:
            run = opening_run(view)
            print(
                f"screenshot: no run beyond the passages; evidence for the first {run.last} tokens"
            )
            self.window.answer_ctl.show_evidence(run)
        ctl = self.window.answer_ctl
        self.wait(lambda: not ctl.answering, "the evidence")
        if not self.window.pdf.overlay.heat_shown:
            print(f"screenshot: no evidence shown ({self.window.banner.message!r})")
        self.grab(out)

    def preliminary(self, args: argparse.Namespace, out: Path) -> None:
        self.ask(args.question)
        view = self.window.answer

        def reading() -> bool:  # the preliminary done, the target a quarter through
            text = view.browser.toPlainText()
            read = self.window.ask.progress.value() >= 250
            return bool(view.preliminary_text()) and "Reading the document:" in text and read

        self.wait(lambda: reading() or not self.window.answer_ctl.answering,
                  "the preliminary answer")  # fmt: skip
        if not reading():
            print("screenshot: no preliminary answer (the read was cached or short)")
        self.grab(out)
        self.finished()


def opening_run(view: Any, tokens: int = 8) -> Any:
    """A run over the answer's first `tokens` emitted tokens (for an answer that has no
    run beyond the passages)."""
    from core.events import BeyondRun

    texts = [t.text for t in view.model() if t.kind != "rejected"][:tokens]
    raw = "".join(texts)
    lead = len(raw) - len(raw.lstrip())
    return BeyondRun(0, len(texts), 0, max(len(raw) - lead, 1), 0)


if __name__ == "__main__":
    raise SystemExit(main())
