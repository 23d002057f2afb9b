"""Helper process of tests/core/test_library_crash.py: ingest into a library until killed.

Usage: `python tests/core/_ingest_child.py LIBRARY PHASE_LOG PDF...`, with the
repository root as the working directory (so that `core` imports).

This process is a small server that reads commands on stdin:

- `go SEED`: start a writer (below) as a fresh process and print `child PID`; when the
  writer dies, print `exit PID STATUS` (STATUS as `os.waitpid` gives it);
- `quit`: exit.

Writers are started fresh (`python _ingest_child.py --writer ...`), not forked from a
process that imported torch: a forked writer once failed to report its death within
three minutes of a SIGKILL in CI, and a fresh process costs only its ~10 s of imports.

A writer opens the library, loads the target tokenizer, the embedder and the vector
index (by a first search), prints `ready PID`, then loops until it is killed: add every
PDF (those in the library already are skipped quickly), search, remove a random half of
the generated PDFs (files named `gen-*`; the others stay once added), and print
`cycle SECONDS`; each add prints `added NAME SECONDS` when it did work. Every step is
appended to PHASE_LOG as it starts (`ready`, `read NAME`, `split NAME`, `embed NAME`,
`save NAME`, `added NAME`, `search`, `remove NAME`, `removed`), so that the parent can
aim its SIGKILL and tell where it landed. A writer that fails prints the traceback to
stderr and exits with status 1 (never returns into the server loop).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
import traceback
from pathlib import Path


def _write(root: str, phase_log: str, pdfs: list[str], seed: int) -> None:
    """The writer: ingest and remove in a loop until killed (never returns)."""
    from core.library.schema import Chunking, tokenizer_id
    from core.library.store import Library
    from core.models.loading import counting_tokenizer, load_tokenizer

    log = os.open(phase_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def phase(name: str) -> None:
        os.write(log, f"{name}\n".encode())

    tokenizer = counting_tokenizer(load_tokenizer("smollm2-135m"))
    chunking = Chunking(tokenizer_id(tokenizer), 512, 64, 200)
    lib = Library(root)
    query = lib.embedder.encode(["how are data files imported"])[0]
    lib.embedder.count_pieces("warm up")
    lib.search_units(query, 3)  # loads the vector index: from now on saved after each write
    rng = random.Random(seed)
    phase("ready")
    print(f"ready {os.getpid()}", flush=True)
    while True:
        started = time.monotonic()
        for pdf in pdfs:
            name, shown, begun = Path(pdf).name, "", time.monotonic()
            for progress in lib.adding(pdf, chunking=chunking, count_tokens=tokenizer):
                if progress.stage != shown:
                    shown = progress.stage
                    phase(f"{shown} {name}")
            if shown:  # it was read: not in the library yet
                phase(f"added {name}")
                print(f"added {name} {time.monotonic() - begun:.3f}", flush=True)
        phase("search")
        lib.search_units(query, 5)
        generated = [d for d in lib.documents() if d.path.name.startswith("gen-")]
        for info in rng.sample(generated, len(generated) // 2):
            phase(f"remove {info.path.name}")
            lib.remove(info.doc_id)
        phase("removed")
        print(f"cycle {time.monotonic() - started:.3f}", flush=True)


def main(argv: list[str]) -> None:
    if argv[:1] == ["--writer"]:
        root, phase_log, seed, *pdfs = argv[1:]
        try:
            _write(root, phase_log, pdfs, int(seed))
        except BaseException:
            traceback.print_exc()
            sys.stderr.flush()
        os._exit(1)
    root, phase_log, *pdfs = argv
    print("server", flush=True)
    for line in sys.stdin:
        command = line.split()
        if command[:1] == ["quit"]:
            return
        if command[:1] != ["go"] or len(command) != 2:
            print(f"bad command {line.strip()!r}", flush=True)
            continue
        writer = subprocess.Popen(
            [sys.executable, __file__, "--writer", root, phase_log, command[1], *pdfs]
        )
        pid = writer.pid
        print(f"child {pid}", flush=True)
        _, status = os.waitpid(pid, 0)
        print(f"exit {pid} {status}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
