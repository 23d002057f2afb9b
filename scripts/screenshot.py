"""Takes docs/screenshot.png: the main window in the middle of a real answer.

Run it under a virtual screen (scripts/screenshot.sh does): a fresh library and fresh
settings, so the window starts as a new user's does (the sample document added, the
sample question filled in); it presses Ask and grabs the window once the answer has
streamed `--tokens` tokens, with the retrieved passages highlighted in the PDF.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshot.png")
    parser.add_argument("--tokens", type=int, default=12, help="grab after this many answer tokens")
    parser.add_argument(
        "--question", default="How high is the focal plane of the light above mean high water?"
    )
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from app.gui import theme
    from app.gui.launch import build

    work = Path(tempfile.mkdtemp(prefix="rapidqa-shot-"))
    os.environ["RAPIDQA_LIBRARY"] = str(work / "library")
    app = QApplication(sys.argv[:1])
    app.setApplicationName("RapidQA")
    theme.apply(app)
    store = QSettings(str(work / "settings.ini"), QSettings.Format.IniFormat)
    window, worker = build(store, library=work / "library")
    window.resize(1600, 960)
    window.show()

    def wait(condition: object, what: str) -> None:
        deadline = time.monotonic() + args.timeout
        while not condition():  # type: ignore[operator]
            app.processEvents()
            time.sleep(0.01)
            if time.monotonic() > deadline:
                raise SystemExit(f"screenshot: timed out waiting for {what}")

    wait(
        lambda: not worker.busy and not window.jobs.in_flight,
        "the sample to be added and models loaded",
    )
    if args.question:
        window.ask.set_question(args.question)
    window.ask.ask_button.click()

    def emitted() -> int:  # answer tokens so far (rejected drafts are not)
        return sum(n for kind, n in window.answer.counts().items() if kind != "rejected")

    wait(lambda: emitted() >= args.tokens or not window.answer_ctl.answering, "the answer")
    for _ in range(5):  # let the batch and the page images paint
        app.processEvents()
        time.sleep(0.01)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    window.grab().save(str(args.out))
    print(f"screenshot: wrote {args.out} ({window.width()}x{window.height()})")
    window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
