"""Tests of the `rapidqa` command line (app/cli/): usage, errors, output, colours."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import app.cli.main as cli
from app.cli import common, parser, render
from app.cli.render import CYAN, GREEN, RESET, YELLOW
from core.config import DecodeConfig, IndexConfig, ModelConfig
from core.errors import Cancelled, DocumentError
from core.events import (
    ChunkRef,
    DraftStep,
    Event,
    Finished,
    Notice,
    PrefillProgress,
    Status,
)
from tests.app.fake_engine import FakeEngine as WindowFakeEngine

REPO = Path(__file__).resolve().parents[2]
if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
    # pytest-qt's QApplication would abort the whole run without a display
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
JSON_KEYS = {
    "answer",
    "mode",
    "new_tokens",
    "rounds",
    "drafted",
    "accepted",
    "acceptance_rate",
    "mean_accepted_length",
    "target_prefill_s",
    "drafter_prefill_s",
    "decode_s",
    "tokens_per_s",
    "speedup_estimate",
    "end_to_end_s",
    "chunks",
}
STORY = (
    "The ship left the harbour at dawn. The sailors found a map in the captain's cabin. "
    "The map showed an island to the south, where the ship went after three days at sea. "
)
DEFAULT_DECODE = DecodeConfig()


# --- a scripted engine ----------------------------------------------------------------


def step(
    round_: int,
    drafted: Sequence[str],
    accepted: int,
    token: str | None,
    kind: str,
) -> DraftStep:
    n = len(drafted)
    return DraftStep(
        round=round_,
        drafted_ids=tuple(range(100, 100 + n)),
        drafted_texts=tuple(drafted),
        accepted=accepted,
        token_id=None if token is None else 7,
        token_text=token or "",
        token_kind=kind,  # type: ignore[arg-type]
        source="model" if n else "none",
        p_target=(0.5,) * n,
        p_draft=(0.5,) * n,
        p_hat=(0.5,) * n,
        token_p_target=0.9,
        token_p_hat=0.9,
        draft_s=0.01,
        verify_s=0.02,
        context_tokens=100 + round_,
    )


CHUNKS = (
    ChunkRef("d1", "story.pdf", (3,), 0.9, "text", 10),
    ChunkRef("d1", "story.pdf", (5, 6), 0.7, "text", 10),
)
FINISHED = Finished(
    answer="Hello world, again.",
    mode="rapid",
    stop_reason="eos",
    new_tokens=6,
    rounds=3,
    drafted=5,
    accepted=3,
    target_prefill_s=1.5,
    drafter_prefill_s=0.25,
    decode_s=0.5,
    end_to_end_s=2.5,
    baseline_step_s=0.1,
    chunks=CHUNKS,
    time_to_first_token_s=1.8,
)
SCRIPT: tuple[Event, ...] = (
    Status("Reading story.pdf"),
    PrefillProgress("target", 50, 100, 0.5),
    PrefillProgress("target", 100, 100, 1.0),
    Notice("The document was cut to fit the window.", "warning"),
    step(0, (), 0, " ", "target"),  # leading blanks are not streamed (answer is stripped)
    step(1, (" Hello", " world"), 2, ",", "bonus"),
    step(2, (" again", " now", " yes"), 1, ".", "correction"),
    step(3, (), 0, "", "target"),
    FINISHED,
)


class FakeEngine(WindowFakeEngine):
    """Yields `SCRIPT`; can raise an exception after `fail_after` events. The rest of
    `EngineAPI` comes from the window tests' fake (checked by tests/engine_types.py)."""

    def __init__(self, fail_with: BaseException | None = None, fail_after: int = 0) -> None:
        super().__init__()
        self.fail_with = fail_with
        self.fail_after = fail_after
        self.cancelled = False
        self.asked: list[tuple[str, tuple[Path | str, ...], DecodeConfig, str | None]] = []

    def ask(
        self,
        question: str,
        documents: Sequence[Path | str] = (),
        decode_cfg: DecodeConfig | None = None,
        password: str | None = None,
    ) -> Iterator[Event]:
        self.asked.append((question, tuple(documents), decode_cfg or DEFAULT_DECODE, password))
        for i, event in enumerate(SCRIPT):
            if self.fail_with is not None and i == self.fail_after:
                raise self.fail_with
            yield event

    def cancel(self) -> None:
        self.cancelled = True


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    engine = FakeEngine()
    monkeypatch.setattr(common, "make_engine", lambda models, index: engine)
    return engine


@pytest.fixture
def pdf(tmp_path: Path) -> Path:
    """A two-page PDF with a little text."""
    import pymupdf

    path = tmp_path / "story.pdf"
    doc = pymupdf.open()
    for page_no in range(2):
        page = doc.new_page()
        page.insert_textbox(pymupdf.Rect(72, 72, 540, 760), f"Page {page_no + 1}. " + STORY * 2)
    doc.save(path)
    doc.close()
    return path


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def run_with_streams(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], *, tty: bool
) -> tuple[int, str, str]:
    out, err = (TTY(), TTY()) if tty else (io.StringIO(), io.StringIO())
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    code = cli.main(argv)
    return code, out.getvalue(), err.getvalue()


# --- usage errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--gamma", "0"], "--gamma"),
        (["--gamma", "33"], "between 1 and 32"),
        (["--gamma", "two"], "whole number"),
        (["--eta", "-1"], "--eta"),
        (["--eta", "nan"], "--eta"),
        (["--temperature", "-0.1"], "--temperature"),
        (["--max-new-tokens", "0"], "--max-new-tokens"),
        (["--budget", "0"], "--budget"),
        (["--mode", "fast"], "--mode"),
        (["--device", "tpu"], "--device"),
        (["--color", "pink"], "--color"),
    ],
)
def test_ask_rejects_bad_values(
    capsys: pytest.CaptureFixture[str], fake: FakeEngine, pdf: Path, extra: list[str], needle: str
) -> None:
    code = cli.main(["ask", str(pdf), "-q", "What?", *extra])
    out, err = capsys.readouterr()
    assert code == 2
    assert needle in err and "error" in err
    assert "Traceback" not in err and out == ""
    assert fake.asked == []


@pytest.mark.parametrize("question", ["", "   ", "\n\t"])
def test_ask_rejects_empty_question(
    capsys: pytest.CaptureFixture[str], fake: FakeEngine, pdf: Path, question: str
) -> None:
    code = cli.main(["ask", str(pdf), "-q", question])
    out, err = capsys.readouterr()
    assert code == 2
    assert "question is empty" in err and "Traceback" not in err and out == ""
    assert fake.asked == []


def test_ask_requires_a_question(capsys: pytest.CaptureFixture[str], pdf: Path) -> None:
    assert cli.main(["ask", str(pdf)]) == 2
    assert "-q" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["bench", "speed", "{pdf}", "-q", "Q", "--modes", "target,turbo"],
        ["bench", "speed", "{pdf}", "-q", "Q", "--repeat", "0"],
        ["bench", "speed", "{pdf}", "-q", "Q", "--gamma", "40"],
        ["bench", "speed", "{pdf}", "-q", "Q", "-q", " "],
        ["bench", "speed", "{pdf}"],
        ["bench"],
        ["frobnicate"],
    ],
)
def test_bench_and_unknown_commands_reject_bad_usage(
    capsys: pytest.CaptureFixture[str], fake: FakeEngine, pdf: Path, argv: list[str]
) -> None:
    code = cli.main([a.format(pdf=pdf) for a in argv])
    out, err = capsys.readouterr()
    assert code == 2
    assert "error" in err and "Traceback" not in err and out == ""


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["ask", "--help"]) == 0
    assert "--max-new-tokens" in capsys.readouterr().out


def test_library_accepted_on_every_subcommand(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, pdf: Path, tmp_path: Path
) -> None:
    seen: list[tuple[ModelConfig, IndexConfig]] = []

    def make(models: ModelConfig, index: IndexConfig) -> FakeEngine:
        seen.append((models, index))
        return FakeEngine()

    monkeypatch.setattr(common, "make_engine", make)
    lib = tmp_path / "lib"
    assert cli.main(["ask", str(pdf), "-q", "Q", "--library", str(lib), "--json"]) == 0
    assert cli.main(["--library", str(lib), "ask", str(pdf), "-q", "Q", "--json"]) == 0
    assert [index.library for _m, index in seen] == [lib, lib]
    argparser = parser.build_parser()
    assert argparser.parse_args(["gui", "--library", "x"]).library == Path("x")
    assert argparser.parse_args(["bench", "speed", "p", "-q", "q", "--library", "x"]).library
    capsys.readouterr()


# --- user errors, internal errors, interrupts ----------------------------------------------


def test_missing_pdf_is_a_user_error(
    capsys: pytest.CaptureFixture[str], fake: FakeEngine, tmp_path: Path
) -> None:
    code = cli.main(["ask", str(tmp_path / "nope.pdf"), "-q", "What?"])
    out, err = capsys.readouterr()
    assert code == 1
    assert err.startswith("error:") and "nope.pdf" in err
    assert "Traceback" not in err and out == ""


def test_engine_user_error_is_shown_as_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, pdf: Path
) -> None:
    engine = FakeEngine(DocumentError("This PDF has no text layer: run OCR first."))
    monkeypatch.setattr(common, "make_engine", lambda models, index: engine)
    code = cli.main(["ask", str(pdf), "-q", "What?", "--json"])
    out, err = capsys.readouterr()
    assert code == 1
    assert "error: This PDF has no text layer: run OCR first." in err
    assert "Traceback" not in err and out == ""


def test_engine_cancelled_error_exits_130(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, pdf: Path
) -> None:
    engine = FakeEngine(Cancelled(), fail_after=2)
    monkeypatch.setattr(common, "make_engine", lambda models, index: engine)
    assert cli.main(["ask", str(pdf), "-q", "What?"]) == 130
    err = capsys.readouterr().err
    assert "cancelled" in err and "error:" not in err


@pytest.mark.parametrize("debug", [False, True])
def test_internal_error_exit_70(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, pdf: Path, debug: bool
) -> None:
    engine = FakeEngine(ValueError("shape mismatch"), fail_after=3)
    monkeypatch.setattr(common, "make_engine", lambda models, index: engine)
    monkeypatch.delenv("RAPIDQA_DEBUG", raising=False)
    if debug:
        monkeypatch.setenv("RAPIDQA_DEBUG", "1")
    code = cli.main(["ask", str(pdf), "-q", "What?"])
    err = capsys.readouterr().err
    assert code == 70
    assert "internal error: ValueError: shape mismatch" in err and "report" in err
    assert ("Traceback" in err) is debug


def test_debug_flag_shows_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, pdf: Path
) -> None:
    engine = FakeEngine(RuntimeError("boom"))
    monkeypatch.setattr(common, "make_engine", lambda models, index: engine)
    monkeypatch.delenv("RAPIDQA_DEBUG", raising=False)
    assert cli.main(["ask", str(pdf), "-q", "What?", "--debug"]) == 70
    assert "Traceback" in capsys.readouterr().err


def test_keyboard_interrupt_cancels_and_exits_130(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, pdf: Path
) -> None:
    engine = FakeEngine(KeyboardInterrupt(), fail_after=5)
    monkeypatch.setattr(common, "make_engine", lambda models, index: engine)
    code = cli.main(["ask", str(pdf), "-q", "What?"])
    err = capsys.readouterr().err
    assert code == 130
    assert engine.cancelled
    assert "cancelled" in err and "Traceback" not in err


def test_default_models_and_the_drafter_that_follows_the_target(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, pdf: Path
) -> None:
    """No --target: the default pair. Another target without --drafter: self-speculation
    (the default drafter shares only the default target's vocabulary)."""
    made: list[ModelConfig] = []

    def make(models: ModelConfig, index: IndexConfig) -> FakeEngine:
        made.append(models)
        return FakeEngine()

    monkeypatch.setattr(common, "make_engine", make)
    for extra in ([], ["--target", "Qwen-1.5B"], ["--target", "some/model"],
                  ["--target", "some/model", "--drafter", "qwen-0.5b"]):  # fmt: skip
        assert cli.main(["ask", str(pdf), "-q", "Why?", *extra]) == 0
    assert [(m.target, m.drafter) for m in made] == [
        ("qwen-1.5b", "qwen-0.5b"), ("Qwen-1.5B", "qwen-0.5b"), ("some/model", "same"),
        ("some/model", "qwen-0.5b"),
    ]  # fmt: skip
    capsys.readouterr()


# --- output -------------------------------------------------------------------------------


def test_ask_passes_settings_to_the_engine(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, pdf: Path
) -> None:
    engine = FakeEngine()
    made: list[ModelConfig] = []

    def make(models: ModelConfig, index: IndexConfig) -> FakeEngine:
        made.append(models)
        return engine

    monkeypatch.setattr(common, "make_engine", make)
    argv = ["ask", str(pdf), "-q", "  Why?  ", "--mode", "sd", "--gamma", "3", "--eta", "7"]
    argv += ["--temperature", "0.5", "--seed", "4", "--budget", "300", "--max-new-tokens", "9"]
    argv += ["--target", "some/model", "--drafter", "other/model", "--device", "cpu"]
    argv += ["--dtype", "float32", "--password", "pw"]
    assert cli.main(argv) == 0
    question, documents, decode, password = engine.asked[0]
    assert question == "Why?" and documents == (pdf,) and password == "pw"
    assert (decode.mode, decode.gamma, decode.eta, decode.temperature) == ("sd", 3, 7.0, 0.5)
    assert (decode.seed, decode.budget, decode.max_new_tokens) == (4, 300, 9)
    assert made == [
        ModelConfig(target="some/model", drafter="other/model", device="cpu", precision="float32")
    ]
    capsys.readouterr()


def test_json_fake_engine_prints_one_object(
    capsys: pytest.CaptureFixture[str], fake: FakeEngine, pdf: Path
) -> None:
    assert cli.main(["ask", str(pdf), "-q", "What?", "--json"]) == 0
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert JSON_KEYS <= set(data)
    assert data["answer"] == "Hello world, again."
    assert data["acceptance_rate"] == pytest.approx(0.6)
    assert data["mean_accepted_length"] == pytest.approx(1.0)
    assert data["tokens_per_s"] == pytest.approx(12.0)
    assert data["chunks"] == [
        {"n": 1, "doc": "story.pdf", "pages": [3], "score": 0.9},
        {"n": 2, "doc": "story.pdf", "pages": [5, 6], "score": 0.7},
    ]
    assert out.count("\n") == 1  # nothing else on stdout
    assert "prefill target" in err and "The document was cut" in err


def test_plain_output_streams_the_answer_and_stats(
    monkeypatch: pytest.MonkeyPatch, fake: FakeEngine, pdf: Path
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    code, out, err = run_with_streams(monkeypatch, ["ask", str(pdf), "-q", "What?"], tty=False)
    assert code == 0
    assert out == "Hello world, again.\n"
    assert "\x1b[" not in out and "\x1b[" not in err
    assert "prefill target:  50%" in err and "prefill target: 100%" in err
    assert "warning: The document was cut to fit the window." in err
    stats = next(line for line in err.splitlines() if line.startswith("[rapid]"))
    for part in ("6 new tokens", "3 rounds", "acceptance 60%", "1.00 accepted/round"):
        assert part in stats
    for part in ("12.0 tok/s", "speedup 1.20x est.", "prefill 1.50 s", "end-to-end 2.50 s"):
        assert part in stats
    assert "Sources: pp. 3, 5\u20136" in err


def test_colours_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch, fake: FakeEngine, pdf: Path
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    code, out, err = run_with_streams(monkeypatch, ["ask", str(pdf), "-q", "What?"], tty=True)
    assert code == 0
    assert f"{GREEN}Hello world{RESET}{CYAN},{RESET}" in out  # accepted + bonus
    assert f"{GREEN} again{RESET}{YELLOW}.{RESET}" in out  # + correction
    assert "colours:" in err


@pytest.mark.parametrize(
    ("tty", "option", "no_color", "coloured"),
    [
        (False, [], None, False),
        (True, [], "1", False),
        (True, ["--color", "never"], None, False),
        (False, ["--color", "always"], None, True),
        (True, ["--color", "always"], "1", True),
    ],
)
def test_colour_choice(
    monkeypatch: pytest.MonkeyPatch,
    fake: FakeEngine,
    pdf: Path,
    tty: bool,
    option: list[str],
    no_color: str | None,
    coloured: bool,
) -> None:
    monkeypatch.setenv("TERM", "xterm")
    if no_color is None:
        monkeypatch.delenv("NO_COLOR", raising=False)
    else:
        monkeypatch.setenv("NO_COLOR", no_color)
    _code, out, _err = run_with_streams(
        monkeypatch, ["ask", str(pdf), "-q", "What?", *option], tty=tty
    )
    assert (GREEN in out) is coloured
    assert out.replace(GREEN, "").replace(CYAN, "").replace(YELLOW, "").replace(RESET, "") == (
        "Hello world, again.\n"
    )


@pytest.mark.parametrize(
    ("pages", "text"),
    [([], ""), ([4], "p. 4"), ([3, 5, 6], "pp. 3, 5\u20136"), ([2, 1, 3, 3, 9], "pp. 1\u20133, 9")],
)
def test_format_pages(pages: list[int], text: str) -> None:
    assert render.format_pages(pages) == text


# --- bench through the CLI (scripted engine) ----------------------------------------------


def scripted_peers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The speed bench's hf-* modes run through bench.peers: here the fake engine's own
    scripted `hf_baseline` stands in for transformers."""
    from bench import peers

    monkeypatch.setattr(peers, "hf_baseline", lambda engine, *a, **k: engine.hf_baseline(*a, **k))


class FakeBenchEngine(FakeEngine):
    def load_models(self) -> Iterator[Event]:
        return iter(())

    def hf_baseline(self, *args: Any, **kwargs: Any) -> Iterator[Event]:
        yield FINISHED

    def clear_kv_cache(self, memory: bool = True, disk: bool = False) -> None:
        pass


def test_bench_speed_json(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, pdf: Path
) -> None:
    scripted_peers(monkeypatch)
    monkeypatch.setattr(common, "make_engine", lambda models, index: FakeBenchEngine())
    argv = ["bench", "speed", str(pdf), "-q", "Q1", "-q", "Q2", "--modes", "sd,hf-lookup"]
    assert cli.main([*argv, "--repeat", "1", "--json"]) == 0
    out, _err = capsys.readouterr()
    data = json.loads(out)
    assert list(data["modes"]) == ["target", "sd", "hf-lookup"]
    assert data["modes"]["target"]["ratio"] == pytest.approx(1.0)
    assert cli.main([*argv, "--repeat", "1"]) == 0
    table = capsys.readouterr().out
    assert "torch threads" in table and "hf-lookup" in table


# --- the GUI entry ------------------------------------------------------------------------


def test_gui_without_display_suggests_ask(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    if sys.platform in ("win32", "darwin"):
        pytest.skip("a display is always there")
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(var, raising=False)
    assert cli.main([]) == 2
    err = capsys.readouterr().err
    assert "no display" in err and "rapidqa ask" in err


@pytest.mark.gui
def test_gui_opens_on_a_pdf_and_quits(pdf: Path) -> None:
    """The real window with the real engine starts, adds the PDF and quits when told,
    even while the engine is still loading its model (bounded wait)."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "app", "gui", str(pdf), "--quit-after", "1.0"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started < 60
    assert "Traceback" not in proc.stderr


# --- the real engine on a tiny model --------------------------------------------------------


@pytest.fixture
def real_engine_available(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ModuleType:
    """core.api, with the KV store (and any cache) in a temporary folder."""
    monkeypatch.setenv("RAPIDQA_CACHE", str(tmp_path / "cache"))
    return pytest.importorskip("core.api")


@pytest.mark.parametrize("mode", ["target", "sd"])
def test_json_real_engine_tiny_model(
    capsys: pytest.CaptureFixture[str],
    real_engine_available: ModuleType,
    tiny_model_dir: Path,
    pdf: Path,
    mode: str,
) -> None:
    argv = ["ask", str(pdf), "-q", "Where did the ship go?", "--json", "--mode", mode]
    argv += ["--target", str(tiny_model_dir), "--device", "cpu", "--max-new-tokens", "8"]
    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 1, out  # exactly one object, nothing else
    data = json.loads(lines[0])
    assert JSON_KEYS <= set(data)
    assert data["mode"] == mode
    assert 1 <= data["new_tokens"] <= 8
    assert data["rounds"] >= 1
    assert isinstance(data["answer"], str) and "<|im_end|>" not in data["answer"]
    assert all({"doc", "pages", "score"} <= set(c) for c in data["chunks"])
    if mode == "target":
        assert data["drafted"] == 0 and data["acceptance_rate"] == 0


def test_plain_real_engine_tiny_model(
    monkeypatch: pytest.MonkeyPatch,
    real_engine_available: ModuleType,
    tiny_model_dir: Path,
    pdf: Path,
) -> None:
    argv = ["ask", str(pdf), "-q", "Where did the ship go?", "--mode", "rapid", "--color"]
    argv += ["always", "--target", str(tiny_model_dir), "--device", "cpu"]
    argv += ["--max-new-tokens", "8"]
    code, out, err = run_with_streams(monkeypatch, argv, tty=False)
    assert code == 0, err
    assert "[rapid]" in err and "tok/s" in err
    assert out.endswith("\n")


def test_missing_pdf_real_engine(
    capsys: pytest.CaptureFixture[str], real_engine_available: ModuleType, tmp_path: Path
) -> None:
    code = cli.main(["ask", str(tmp_path / "missing.pdf"), "-q", "What?"])
    assert code == 1
    assert capsys.readouterr().err.startswith("error:")


def test_not_a_pdf_real_engine(
    capsys: pytest.CaptureFixture[str],
    real_engine_available: ModuleType,
    tiny_model_dir: Path,
    tmp_path: Path,
) -> None:
    bogus = tmp_path / "notes.pdf"
    bogus.write_text("just text, not a PDF")
    argv = ["ask", str(bogus), "-q", "What?", "--target", str(tiny_model_dir), "--device", "cpu"]
    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert code == 1, err
    assert "error:" in err and "Traceback" not in err and out == ""


@pytest.mark.slow
def test_bench_speed_real_engine_tiny_model(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    real_engine_available: ModuleType,
    tiny_model_dir: Path,
    pdf: Path,
) -> None:
    argv = ["bench", "speed", str(pdf), "-q", "Where did the ship go?", "-q", "Who found it?"]
    argv += ["--modes", "sd,hf-generate", "--repeat", "1", "--max-new-tokens", "6", "--json"]
    argv += ["--target", str(tiny_model_dir), "--device", "cpu"]
    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out)
    assert list(data["modes"]) == ["target", "sd", "hf-generate"]
    assert data["modes"]["target"]["ratio"] == pytest.approx(1.0)
    assert data["modes"]["target"]["second_question_ttft"] is not None
    assert data["machine"]["device"] == "cpu"
    assert "[6/6]" in err
