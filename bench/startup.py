"""Start-up time of the installed (frozen) app against the source install, in one run.

    python bench/startup.py FROZEN [--source .venv/bin/rapidqa] [--repeat 5] [--json PATH]

FROZEN is the PyInstaller app's `rapidqa` executable (e.g. the one packaging/smoke_test.sh
unpacked: build/smoke/root/usr/bin/rapidqa). Both run with the same scratch HOME (its
library already holds the bundled sample and its model cache the converted default model:
one untimed warm-up run of each command first), HF_HUB_OFFLINE=1, and, for the window, a
private Xvfb display with the xcb platform (started here). Rows, median of --repeat runs
taken round-robin (a load change moves both columns together):

* `rapidqa --help`: the interpreter and the command line (no engine);
* `rapidqa index list`: the engine's imports (torch, transformers, faiss, PyMuPDF) and
  the library;
* `rapidqa gui`, window shown: from launch until the main window is shown and the event
  loop runs (`RAPIDQA_STARTUP_PROBE=1` makes the app print that moment); torch and the
  models load on the worker thread after that;
* `rapidqa gui --quit-after 0`, the whole run: shown, closed at once, and the exit, which
  waits (at most a few seconds) for the worker to finish importing torch.

Prints one table: seconds for each and frozen / source.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "resources" / "sample" / "harrow-point-handbook.pdf"
GUI = ["gui", "--quit-after", "0"]
ROWS = (  # label, arguments, measure "exit" (the whole run) or "shown" (the window up)
    ("rapidqa --help", ["--help"], "exit"),
    ("rapidqa index list", ["index", "list"], "exit"),
    ("rapidqa gui: window shown", GUI, "shown"),
    ("rapidqa gui --quit-after 0: exit", GUI, "exit"),
)
SHOWN = re.compile(r"window shown at (\d+\.\d+)")


def run(executable: str, args: list[str], env: dict[str, str], measure: str = "exit") -> float:
    """Wall seconds of one run, to its exit or to its window shown; a failure stops the
    benchmark with its output."""
    start_epoch, start = time.time(), time.perf_counter()
    done = subprocess.run([executable, *args], env=env, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"startup: {executable} {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    if measure == "shown":
        found = SHOWN.search(done.stderr)
        if found is None:
            sys.exit(f"startup: {executable} did not report its window:\n{done.stderr[-2000:]}")
        return float(found.group(1)) - start_epoch
    return seconds


def start_xvfb() -> tuple[subprocess.Popen[bytes], str]:
    """A private X server (display :N, the first free one from 91)."""
    if shutil.which("Xvfb") is None:
        sys.exit("startup: Xvfb is needed for the window row (Debian: apt-get install xvfb)")
    for number in range(91, 120):
        if not Path(f"/tmp/.X11-unix/X{number}").exists():
            server = subprocess.Popen(
                ["Xvfb", f":{number}", "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(100):
                if Path(f"/tmp/.X11-unix/X{number}").exists():
                    return server, f":{number}"
                time.sleep(0.05)
            server.kill()
    sys.exit("startup: could not start Xvfb")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("frozen", help="the frozen app's rapidqa executable")
    parser.add_argument("--source", default=str(ROOT / ".venv" / "bin" / "rapidqa"))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="rapidqa-startup-"))
    server, display = start_xvfb()
    env = {
        "HOME": str(home),
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HF_HUB_OFFLINE": "1",
        "DISPLAY": display,
        "QT_QPA_PLATFORM": "xcb",
        "RAPIDQA_STARTUP_PROBE": "1",
    }
    if "RAPIDQA_CACHE" in os.environ:  # reuse an already converted model
        env["RAPIDQA_CACHE"] = os.environ["RAPIDQA_CACHE"]
    apps = {"source": args.source, "frozen": args.frozen}
    times: dict[str, dict[str, list[float]]] = {
        label: {"source": [], "frozen": []} for label, *_ in ROWS
    }
    try:
        # Untimed: the library gets the sample, the cache the converted model.
        run(args.source, ["index", "add", str(SAMPLE)], env)
        for executable in apps.values():
            for _label, argv, _measure in ROWS:
                run(executable, argv, env)
        for _ in range(args.repeat):
            for label, argv, measure in ROWS:
                for name, executable in apps.items():
                    times[label][name].append(run(executable, argv, env, measure))
    finally:
        server.terminate()
        shutil.rmtree(home, ignore_errors=True)

    print(f"Start-up, median of {args.repeat} (seconds)\n")
    print("| command | source install | installed app | installed / source |")
    print("|---|---|---|---|")
    result = {}
    for label, *_ in ROWS:
        source = statistics.median(times[label]["source"])
        frozen = statistics.median(times[label]["frozen"])
        result[label] = {"source_s": source, "frozen_s": frozen, "runs": times[label]}
        print(f"| `{label}` | {source:.2f} | {frozen:.2f} | {frozen / source:.2f}x |")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
