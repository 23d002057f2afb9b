"""Crash safety of core.library.store: a writer killed anywhere leaves a consistent library.

A helper process (tests/core/_ingest_child.py) forks writers that add and remove PDFs
in a loop; the test kills each one with SIGKILL at a random moment, twenty times, and
after every kill opens the library as a user would: it must open, pass `check()`, list
only whole documents (same text and counts as when they were added) and find only
units of listed documents. One library folder serves all rounds, so state accumulates.
Kills are spread three ways: at a uniform random time over one add/remove cycle
(mostly reading and embedding), and aimed just after a writer enters the save of an add
(the SQLite commit and the FAISS cache save) or a remove.
"""

from __future__ import annotations

import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest

from core.errors import LibraryBusy
from core.library.schema import Chunking, DocumentInfo, tokenizer_id
from core.library.store import Library
from core.models.loading import counting_tokenizer, load_tokenizer
from core.pdf.reader import read_pdf

MakePdf = Callable[..., Path]  # the `make_pdf` fixture (tests/conftest.py)

REPO = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("_ingest_child.py")
MANUAL = Path("/usr/share/R/doc/manual/R-data.pdf")  # 41 pages, when R's docs are installed
ROUNDS = 20
SEED = 20240521
GENERATED_PAGES = (1, 2, 4, 7)  # pages of the generated PDFs (all different sizes)
WAIT_S = 180.0  # at most, for any one line from the helper (the first cycle adds the manual)
SAVE_WINDOW_S = 0.015  # aimed kills land this long at most after a save or remove starts
WORDS = (
    "library vector index commit page chunk embed search query answer model token read "
    "write crash data file import export table column record field journal lock cache"
).split()


def _pages(rng: random.Random, count: int) -> list[str]:
    """`count` pages of random prose that fill most of an A4 page at 11 pt."""
    return [
        "\n".join(" ".join(rng.choice(WORDS) for _ in range(11)) for _ in range(40))
        for _ in range(count)
    ]


class _Helper:
    """The fork server: its stdout lines arrive on a queue (read by a thread)."""

    def __init__(self, root: Path, phase_log: Path, pdfs: list[Path], stderr: IO[str]) -> None:
        self.phase_log = phase_log
        phase_log.touch()
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD), str(root), str(phase_log), *map(str, pdfs)],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO), "TOKENIZERS_PARALLELISM": "false"},
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.writer: int | None = None

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())
        self.lines.put(None)

    def expect(self, *kinds: str) -> list[str]:
        """The words of the next line whose first word is one of `kinds` (others are
        skipped); fails when the helper or a writer dies first."""
        deadline = time.monotonic() + WAIT_S
        while True:
            try:
                line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                pytest.fail(f"the ingest helper sent no {kinds} line in {WAIT_S:.0f} s")
            if line is None:
                pytest.fail(f"the ingest helper exited (status {self.proc.wait()})")
            words = line.split() or [""]
            if words[0] == "exit" and "exit" not in kinds:
                pytest.fail(f"a writer died on its own before {kinds}: {line}")
            if words[0] in kinds:
                return words

    def command(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def phases(self) -> list[str]:
        return self.phase_log.read_text().splitlines()

    def close(self) -> None:
        if self.writer is not None:  # a writer still running after a failure
            try:
                os.kill(self.writer, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.command("quit")
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


def _wait_for_phase(helper: _Helper, seen: int, prefixes: tuple[str, ...]) -> None:
    """Poll the phase log until a line after the first `seen` starts with a prefix."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if any(line.startswith(prefixes) for line in helper.phases()[seen:]):
            return
        time.sleep(0.0005)
    pytest.fail(f"no phase {prefixes} in {WAIT_S:.0f} s")


def _check_library(
    root: Path, reference: dict[str, str], first_seen: dict[str, DocumentInfo]
) -> list[DocumentInfo]:
    """Open the library after a crash and check it whole; returns its documents."""
    with Library(root) as lib:
        assert lib.check() == []
        documents = lib.documents()
        for info in documents:
            assert info.doc_id in reference, f"unknown document {info}"
            assert info.pages and info.chunks and info.units, info
            # Same text and counts as every earlier time it was seen: nothing half-written.
            assert lib.document(info.doc_id).text == reference[info.doc_id], info.title
            seen = first_seen.setdefault(info.doc_id, info)
            assert (info.pages, info.chunks, info.units, info.tokens, info.chars) == (
                seen.pages, seen.chunks, seen.units, seen.tokens, seen.chars,
            )  # fmt: skip
        listed = {info.doc_id for info in documents}
        total = lib.unit_count()
        assert total == sum(info.units for info in documents)
        hits = lib.search_units(lib.embedder.encode(["how to import data"])[0], total + 10)
        assert len(hits) == total
        assert {hit.doc_id for hit in hits} <= listed
        assert len({hit.unit_id for hit in hits}) == total
    return documents


@pytest.fixture
def helper_log(tmp_path: Path) -> Iterator[IO[str]]:
    with (tmp_path / "helper.stderr").open("w+") as log:
        yield log


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "fork"), reason="the ingest helper forks its writers (POSIX)")
def test_sigkill_during_ingest_leaves_a_consistent_library(
    tmp_path: Path, make_pdf: MakePdf, helper_log: IO[str], capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("pymupdf")
    rng = random.Random(SEED)
    root = tmp_path / "library"
    pdfs = [make_pdf(_pages(rng, n), name=f"gen-{i}.pdf") for i, n in enumerate(GENERATED_PAGES)]
    if MANUAL.is_file():
        pdfs.append(MANUAL)
    read = [read_pdf(pdf) for pdf in pdfs]
    reference = {doc.doc_id: doc.text for doc in read}
    ids = {doc.path.name: doc.doc_id for doc in read}
    helper = _Helper(root, tmp_path / "phases.log", pdfs, helper_log)
    started = time.monotonic()
    landed: Counter[str] = Counter()
    first_seen: dict[str, DocumentInfo] = {}
    counts: list[int] = []
    try:
        helper.expect("server")
        cycle_s = 0.0
        for round_ in range(ROUNDS):
            seen = len(helper.phases())
            helper.command(f"go {rng.randrange(1 << 30)}")
            helper.writer = int(helper.expect("ready")[1])
            if round_ == 0:
                # Measure one cycle of the generated PDFs (the manual is added once).
                while (words := helper.expect("added", "cycle"))[0] == "added":
                    if words[1].startswith("gen-"):
                        cycle_s += float(words[2])
                cycle_s = max(cycle_s, 0.5)
            aim = ("uniform", "uniform", "save", "remove")[round_ % 4]
            if aim == "uniform":
                time.sleep(rng.uniform(0, cycle_s))
            else:
                _wait_for_phase(helper, len(helper.phases()), (f"{aim} ",))
                time.sleep(rng.uniform(0, SAVE_WINDOW_S))
            os.kill(helper.writer, signal.SIGKILL)
            pid, status = map(int, helper.expect("exit")[1:])
            assert pid == helper.writer
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (
                f"the writer exited with status {status}:\n{_tail(helper_log)}"
            )
            helper.writer = None
            documents = _check_library(root, reference, first_seen)
            counts.append(len(documents))
            phases = helper.phases()[seen:]
            landed[_landed(phases[-1] if phases else "loading", documents, ids)] += 1

        # Still writable: no stale lock, and an add and a remove go through.
        extra = make_pdf(_pages(rng, 2), name="extra.pdf")
        tokenizer = counting_tokenizer(load_tokenizer("smollm2-135m"))
        chunking = Chunking(tokenizer_id(tokenizer), 512, 64, 200)
        with Library(root) as lib:
            try:
                info = lib.add(extra, chunking=chunking, count_tokens=tokenizer)
            except LibraryBusy as err:
                pytest.fail(f"a killed writer left the library locked: {err}")
            assert info.doc_id in lib and info.units > 0
            assert lib.check() == []
            lib.remove(info.doc_id)
            assert info.doc_id not in lib
            assert lib.check() == []
    finally:
        helper.close()
    elapsed = time.monotonic() - started
    leftovers = sorted(p.name for p in root.iterdir() if p.name.startswith("."))
    with capsys.disabled():
        print(
            f"\ncrash test: {ROUNDS} kills in {elapsed:.0f} s (cycle {cycle_s:.1f} s); "
            f"last phase before each kill {dict(landed)}; documents after each kill "
            f"{counts}; leftover temporary files {leftovers}"
        )


def _landed(phase: str, documents: list[DocumentInfo], ids: dict[str, str]) -> str:
    """Where a kill landed: the writer's last phase; for a save or a remove, whether
    its SQLite transaction had committed (the FAISS cache save comes after it)."""
    kind, _, name = phase.partition(" ")
    if kind not in ("save", "remove"):
        return kind
    present = ids[name] in {info.doc_id for info in documents}
    return f"{kind}, {'' if present == (kind == 'save') else 'not '}committed"


def _tail(log: IO[str]) -> str:
    log.flush()
    log.seek(0)
    return log.read()[-3000:]
