"""Tests of bench.context: page selection, the slice PDFs, the table, one real sweep."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.context import (
    ContextPoint,
    ContextSweep,
    Skipped,
    context_sweep_to_json,
    format_context_table,
    page_token_counts,
    pages_for_tokens,
    parse_contexts,
    run_context_sweep,
    write_first_pages,
)
from bench.speed import MachineInfo, RunRecord, SpeedReport, summarize
from core.config import DecodeConfig
from core.errors import ConfigError
from core.events import Finished

MakePdf = Callable[..., Path]  # conftest's `make_pdf`

# --- page selection (pure) ------------------------------------------------------------------


def test_pages_nearest_to_the_size() -> None:
    pages = [100, 300, 300, 300, 300]  # prefix totals 100, 400, 700, 1000, 1300
    assert pages_for_tokens(pages, 100) == 1
    assert pages_for_tokens(pages, 500) == 2  # 400 is nearer than 700
    assert pages_for_tokens(pages, 600) == 3
    assert pages_for_tokens(pages, 1000) == 4
    assert pages_for_tokens(pages, 1) == 1  # at least one page
    assert pages_for_tokens(pages, 550) == 2  # a tie: the shorter document


def test_pages_never_exceed_the_limit() -> None:
    pages = [100, 300, 300, 300]
    assert pages_for_tokens(pages, 1000, limit=900) == 3  # 1000 would be nearer
    assert pages_for_tokens(pages, 1000, limit=1000) == 4
    assert pages_for_tokens([500, 10], 100, limit=400) == 0  # not even the first page fits


def test_a_short_document_gives_every_page() -> None:
    assert pages_for_tokens([100, 200], 10_000) == 2
    assert pages_for_tokens([], 1000) == 0


def test_empty_pages_do_not_count_as_nearer() -> None:
    assert pages_for_tokens([1, 400, 1, 1, 400], 401) == 2  # not 3 or 4 (same gap + 1)


def test_parse_contexts_sorts_and_validates() -> None:
    assert parse_contexts([4000, 1000, 2000, 1000]) == (1000, 2000, 4000)
    with pytest.raises(ConfigError):
        parse_contexts([1000, 0])
    with pytest.raises(ConfigError):
        parse_contexts([])


# --- the slice PDFs (real PyMuPDF) ----------------------------------------------------------

WORDS = "harbour lighthouse keeper lantern island storm rope anchor tide chart ".split()


def page_text(n: int, words: int = 80) -> str:
    return f"Page {n}. " + " ".join(WORDS[(n + i) % len(WORDS)] for i in range(words)) + "."


def test_first_pages_of_a_real_pdf(make_pdf: MakePdf, tmp_path: Path) -> None:
    import pymupdf

    src = make_pdf([page_text(n) for n in range(1, 7)], name="six.pdf")
    counts = page_token_counts(src, lambda text: len(text.split()))
    assert len(counts) == 6 and all(c > 80 for c in counts)
    assert len(page_token_counts(src, lambda text: len(text.split()), up_to=150)) == 2
    out = write_first_pages(src, 3, tmp_path / "three.pdf")
    with pymupdf.open(out) as doc, pymupdf.open(src) as orig:
        assert doc.page_count == 3
        assert [p.get_text() for p in doc] == [orig[i].get_text() for i in range(3)]


def test_first_pages_of_an_encrypted_pdf(make_pdf: MakePdf, tmp_path: Path) -> None:
    src = make_pdf([page_text(n) for n in range(1, 4)], name="locked.pdf", password="pw")
    with pytest.raises(ConfigError, match="password"):
        page_token_counts(src, len)
    assert len(page_token_counts(src, len, "pw")) == 3
    import pymupdf

    out = write_first_pages(src, 2, tmp_path / "two.pdf", "pw")
    with pymupdf.open(out) as doc:
        assert not doc.needs_pass and doc.page_count == 2


def test_first_pages_of_a_real_manual(real_manual: Path, tmp_path: Path) -> None:
    import pymupdf

    counts = page_token_counts(real_manual, lambda text: len(text.split()), up_to=3000)
    k = pages_for_tokens(counts, 3000)
    assert 1 <= k <= len(counts)
    out = write_first_pages(real_manual, k, tmp_path / "slice.pdf")
    with pymupdf.open(out) as doc:
        assert doc.page_count == k


# --- table and JSON (pure, synthetic runs) ----------------------------------------------------


def fin(mode: str, decode_s: float, prefill: float, drafted: int = 0) -> Finished:
    return Finished(
        answer="A", mode=mode, stop_reason="max_tokens", new_tokens=10, rounds=5,
        drafted=drafted, accepted=drafted // 2, target_prefill_s=prefill, drafter_prefill_s=0.0,
        decode_s=decode_s, end_to_end_s=prefill + decode_s, baseline_step_s=0.1,
        time_to_first_token_s=prefill,
    )  # fmt: skip


def report(doc: str, target_s: float, sd_s: float) -> SpeedReport:
    runs = [
        RunRecord("target", 0, 0, fin("target", target_s, 5.0), cold=True, kv_reused=False),
        RunRecord("sd", 0, 0, fin("sd", sd_s, 6.0, 8), cold=True, kv_reused=False),
        RunRecord("target", 1, 0, fin("target", target_s, 0.1), cold=False, kv_reused=True),
        RunRecord("sd", 1, 0, fin("sd", sd_s, 0.2, 8), cold=False, kv_reused=True),
    ]
    machine = MachineInfo("cpu", "float32", 2, 2, "tiny", "same as target", "Linux x86_64")
    return SpeedReport(
        machine, doc, ("Q1", "Q2"), ("target", "sd"), 1, 10, DecodeConfig(), tuple(runs),
        summarize(runs, ("target", "sd")),
    )  # fmt: skip


def test_table_and_json() -> None:
    sweep = ContextSweep(
        document="/x/manual.pdf", context_window=8192, max_document_tokens=7900,
        questions=("Q1", "Q2"), modes=("target", "sd"), repeat=1, max_new_tokens=10,
        points=(ContextPoint(1000, 3, 1012, report("a.pdf", 1.0, 0.5)),
                ContextPoint(4000, 9, 3987, report("b.pdf", 1.0, 1.25))),
        skipped=(Skipped(9000, "too long for the window"),),
    )  # fmt: skip
    table = format_context_table(sweep)
    lines = table.splitlines()
    assert "manual.pdf" in lines[0] and "window 8192" in table
    header = next(i for i, line in enumerate(lines) if line.lstrip().startswith("context"))
    for name in ("pages", "mode", "tok/s", "ratio", "accept", "acc/rnd", "prefill s", "e2e s"):
        assert name in lines[header]
    rows = [
        line.split() for line in lines[header + 2 :] if line.split()[:1] in (["1012"], ["3987"])
    ]
    assert [r[:3] for r in rows] == [
        ["1012", "3", "target"], ["1012", "3", "sd"], ["3987", "9", "target"], ["3987", "9", "sd"]
    ]  # fmt: skip
    assert rows[1][3:6] == ["20.00", "2.00x", "50%"]  # 10 tokens in 0.5 s; 4 of 8 accepted
    assert rows[3][4] == "0.80x"
    assert rows[1][7] == "6.00"  # the cold run's prefill, not the median with the warm one
    assert "context 9000 skipped: too long for the window" in table

    data = context_sweep_to_json(sweep)
    json.dumps(data, allow_nan=False)
    assert [c["document_tokens"] for c in data["contexts"]] == [1012, 3987]
    sd = data["contexts"][0]["modes"]["sd"]
    assert sd["ratio"] == pytest.approx(2.0) and sd["prefill_s"] == pytest.approx(6.0)
    assert sd["acceptance_rate"] == pytest.approx(0.5)
    assert data["contexts"][1]["report"]["modes"]["sd"]["ratio"] == pytest.approx(0.8)
    assert data["skipped"] == [{"requested": 9000, "reason": "too long for the window"}]


# --- one real sweep on a tiny model ------------------------------------------------------------


@pytest.fixture(scope="module")
def book(make_pdf: MakePdf) -> Path:
    """Eight pages of about 100-120 target tokens each."""
    return make_pdf([page_text(n) for n in range(1, 9)], name="book.pdf")


@pytest.mark.slow
def test_real_sweep_on_tiny_model(
    tiny_model_dir: Path, book: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAPIDQA_CACHE", str(tmp_path / "cache"))
    api = pytest.importorskip("core.api")
    from core.config import IndexConfig, ModelConfig
    from core.events import drain

    library = tmp_path / "library"
    engine = api.Engine(
        ModelConfig(target=str(tiny_model_dir), drafter="same", device="cpu"),
        IndexConfig(library=library),
    )
    keep = drain(engine.add(book))  # already in the library: must stay there
    work = tmp_path / "work"
    work.mkdir()
    lines: list[str] = []
    start = time.perf_counter()
    sweep = run_context_sweep(
        engine, book, [250, 100_000, 5000, 4000, 600], ["What does the keeper see?"],
        ["target", "sd"], 1, 6, DecodeConfig(gamma=3), log=lines.append, workdir=work,
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    # 250 and 600 tokens: first pages; 4000 > the whole book: every page; 5000: the
    # same pages again; 100,000: more than the 8192-token window holds
    assert [p.requested for p in sweep.points] == [250, 600, 4000]
    assert [p.pages for p in sweep.points][-1] == 8
    assert sweep.points[0].pages < sweep.points[1].pages < 8
    assert abs(sweep.points[1].document_tokens - 600) < 150
    assert [s.requested for s in sweep.skipped] == [5000, 100_000]
    assert "same 8 page(s) as context 4000" in sweep.skipped[0].reason
    assert "window" in sweep.skipped[1].reason
    for point in sweep.points:
        assert point.report.modes == ("target", "sd")
        s = point.report.summaries
        assert s["sd"].ratio is not None and s["sd"].acceptance_rate is not None
        assert s["sd"].same_answer == s["sd"].compared == 1  # greedy sd is lossless
        assert point.report.machine.target != "?"  # models announced once, kept
    # the temporary PDFs and their library entries are gone; the user's PDF stays
    assert [d.doc_id for d in engine.documents()] == [keep.doc_id]
    assert list(work.iterdir()) == []
    assert any("context 600: the first" in line for line in lines)
    table = format_context_table(sweep)
    assert "context 100000 skipped" in table
    json.dumps(context_sweep_to_json(sweep), allow_nan=False)
    engine.close()
    print(f"real sweep took {elapsed:.1f} s")


@pytest.mark.slow
def test_cli_context_sweep(
    tiny_model_dir: Path,
    book: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("RAPIDQA_CACHE", str(tmp_path / "cache"))
    pytest.importorskip("core.api")
    import app.cli.main as cli

    library = tmp_path / "library"
    out_json = tmp_path / "results" / "sweep.json"
    argv = ["bench", "speed", str(book), "--contexts", "300,700", "-q", "Who keeps the light?"]
    argv += ["--max-new-tokens", "5", "--target", str(tiny_model_dir), "--device", "cpu"]
    argv += ["--library", str(library), "--json", str(out_json)]
    start = time.perf_counter()
    code = cli.main(argv)
    elapsed = time.perf_counter() - start
    out, err = capsys.readouterr()
    assert code == 0, err
    assert elapsed < 60
    # the table on stdout: default modes target, sd, rapid; one run each (repeat 1)
    rows = [line.split() for line in out.splitlines() if line.split()[2:3] in (["sd"],)]
    assert len(rows) == 2
    assert "context" in out and "prefill s" in out and "e2e s" in out
    data = json.loads(out_json.read_text())
    assert [c["requested"] for c in data["contexts"]] == [300, 700]
    for c in data["contexts"]:
        assert list(c["modes"]) == ["target", "sd", "rapid"]
        assert c["report"]["repeat"] == 1 and len(c["report"]["runs"]) == 3
    assert f"JSON written to {out_json}" in err
    # the library the sweep used holds nothing of it afterwards
    assert cli.main(["index", "list", "--library", str(library)]) == 0
    assert "empty" in capsys.readouterr().out
