"""Tests of bench.speed: aggregation on synthetic runs, the run order, one real run."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import peers
from bench.peers import hf_baseline, streamer_timing
from bench.speed import (
    BENCH_MODES,
    RunRecord,
    bench_modes,
    bound_line,
    format_table,
    report_to_json,
    run_speed_bench,
    summarize,
)
from core.config import DecodeConfig
from core.errors import ConfigError, QuestionError
from core.events import Event, Finished, ModelLoaded
from tests.core.scripted_engine import ScriptedEngine, fin


@pytest.fixture(autouse=True)
def _scripted_peers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The speed bench runs the hf-* modes through bench.peers: a scripted engine's
    own `hf_baseline` stands in for transformers there."""

    def peer(engine: object, *args: object) -> Iterator[Event]:
        if isinstance(engine, ScriptedEngine):
            return engine.hf_baseline(*args)  # type: ignore[arg-type]
        return hf_baseline(engine, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(peers, "hf_baseline", peer)


def run(mode: str, q: int, r: int, finished: Finished) -> RunRecord:
    cold = q == 0 and r == 0
    return RunRecord(mode, q, r, finished, cold=cold, kv_reused=not cold)


# --- pure aggregation ---------------------------------------------------------------


def test_medians_and_ratio_to_target() -> None:
    runs = [
        run("target", 0, 0, fin(decode_s=1.0)),  # 10 tok/s
        run("target", 0, 1, fin(decode_s=0.5)),  # 20 tok/s
        run("target", 0, 2, fin(decode_s=2.0)),  # 5 tok/s   -> median 10
        run("sd", 0, 0, fin("sd", decode_s=0.5, rounds=4, drafted=10, accepted=6)),  # 20
        run("sd", 0, 1, fin("sd", decode_s=0.25, rounds=5, drafted=10, accepted=5)),  # 40
        run("sd", 0, 2, fin("sd", decode_s=1.0, rounds=2, drafted=10, accepted=8)),  # 10
    ]
    s = summarize(runs)
    assert s["target"].tokens_per_s == pytest.approx(10.0)
    assert s["target"].ratio == pytest.approx(1.0)
    assert s["sd"].tokens_per_s == pytest.approx(20.0)
    assert s["sd"].ratio == pytest.approx(2.0)
    assert s["sd"].acceptance_rate == pytest.approx(0.6)  # median of .6, .5, .8
    assert s["sd"].mean_accepted_length == pytest.approx(1.5)  # median of 1.5, 1, 4
    assert s["target"].acceptance_rate is None  # the baseline drafts nothing
    assert s["target"].mean_accepted_length is None
    assert s["sd"].runs == 3


def test_ratio_uses_medians_not_means() -> None:
    runs = [run("target", 0, i, fin(decode_s=d)) for i, d in enumerate((1.0, 1.0, 0.01))]
    runs += [run("rapid", 0, i, fin("rapid", decode_s=0.5)) for i in range(3)]
    s = summarize(runs)
    assert s["target"].tokens_per_s == pytest.approx(10.0)  # the 1000 tok/s outlier ignored
    assert s["rapid"].ratio == pytest.approx(2.0)


def test_no_baseline_gives_no_ratio() -> None:
    s = summarize([run("sd", 0, 0, fin("sd"))])
    assert s["sd"].ratio is None


def test_prefill_and_end_to_end_medians() -> None:
    runs = [
        run("target", q, 0, fin(prefill=p, e2e=e))
        for q, (p, e) in enumerate([(10.0, 20.0), (0.5, 3.0), (0.4, 2.0)])
    ]
    s = summarize(runs)["target"]
    assert s.target_prefill_s == pytest.approx(0.5)
    assert s.end_to_end_s == pytest.approx(3.0)


def test_second_question_ttft_is_warm_over_cold() -> None:
    runs = [
        run("target", 0, 0, fin(ttft=10.0)),  # cold
        run("target", 1, 0, fin(ttft=1.0)),
        run("target", 0, 1, fin(ttft=2.0)),
        run("target", 1, 1, fin(ttft=3.0)),
    ]
    s = summarize(runs)["target"]
    assert s.ttft_cold_s == pytest.approx(10.0)
    assert s.ttft_warm_s == pytest.approx(2.0)
    assert s.second_question_ttft == pytest.approx(0.2)


def test_single_run_has_no_second_question_ttft() -> None:
    s = summarize([run("target", 0, 0, fin(ttft=3.0))])["target"]
    assert s.ttft_cold_s == pytest.approx(3.0)
    assert s.ttft_warm_s is None and s.second_question_ttft is None


def test_answers_compared_with_target_per_question_and_repeat() -> None:
    runs = [
        run("target", 0, 0, fin(answer="A")),
        run("target", 1, 0, fin(answer="B")),
        run("sd", 0, 0, fin("sd", answer="A")),
        run("sd", 1, 0, fin("sd", answer="X")),
        run("rapid", 0, 0, fin("rapid", answer="A")),
        run("rapid", 1, 0, fin("rapid", answer="B")),
    ]
    s = summarize(runs)
    assert (s["sd"].same_answer, s["sd"].compared) == (1, 2)
    assert (s["rapid"].same_answer, s["rapid"].compared) == (2, 2)
    assert s["target"].compared == 0


def test_bench_modes_puts_target_first_and_validates() -> None:
    assert bench_modes(["sd", "rapid"]) == ("target", "sd", "rapid")
    assert bench_modes(["sd", "target", "sd"]) == ("target", "sd")
    assert set(BENCH_MODES) >= {"target", "rag", "sd", "rapid", "hf-generate", "hf-lookup"}
    assert "hf-assisted" in BENCH_MODES
    assert bench_modes(["hf-assisted"]) == ("target", "hf-assisted")
    with pytest.raises(ConfigError, match="nope"):
        bench_modes(["nope"])


# --- the run order, with a scripted engine ------------------------------------------------


def test_target_step_is_reported_against_the_bandwidth_bound(tmp_path: Path) -> None:
    """The table's last line: the target runs' calibrated step (other modes' steps are
    not counted) over bytes read / the copy bandwidth measured in the same run."""
    report = run_speed_bench(ScriptedEngine(), tmp_path / "doc.pdf", ["q1", "q2"],
                             ["target", "sd"], 1, 8, DecodeConfig())  # fmt: skip
    assert [c.step_s for c in report.target_steps] == [0.2, 0.2]
    assert report.bandwidth > 1e9  # measured: any machine copies more than 1 GB/s
    bound = 2e9 / report.bandwidth
    line = bound_line(report)
    assert f"step / bound = {0.2 / bound:.2f}" in line and "200.0 ms" in line
    assert line in format_table(report)
    assert report_to_json(report)["target_steps"][0]["step_bytes"] == 2_000_000_000


def test_run_order_is_interleaved_with_warmup_and_cold_clears(tmp_path: Path) -> None:
    engine = ScriptedEngine()
    lines: list[str] = []
    report = run_speed_bench(
        engine,
        tmp_path / "doc.pdf",
        ["Q1", "Q2"],
        ["sd", "hf-lookup"],
        repeat=2,
        max_new_tokens=7,
        decode_base=DecodeConfig(),
        log=lines.append,
    )
    log = engine.log
    assert log[0] == ("load",)
    assert log[1][:2] == ("ask", "sd") and log[1][3] == "4"  # short warm-up
    # hf-lookup's cold clear came last in the first row: the document is read again
    # (untimed, in the target mode) before the 2nd question's target run, and only then
    rewarm = [i for i, e in enumerate(log) if i > 1 and e[0] == "ask" and e[3] == "4"]
    assert [log[i][:3] for i in rewarm] == [("ask", "target", "What is this document about?")]
    assert log[rewarm[0] - 1][:3] == ("hf", "hf-lookup", "Q1")
    assert log[rewarm[0] + 1][:3] == ("ask", "target", "Q2")
    del log[rewarm[0]]
    timed = [e for e in log[2:] if e[0] != "clear"]
    expected = [
        (m, q) for _r in range(2) for q in ("Q1", "Q2") for m in ("target", "sd", "hf-lookup")
    ]
    assert [(e[1], e[2]) for e in timed] == expected
    assert all(e[3] == "7" for e in timed)
    # a cold clear (memory and disk) right before each mode's first run, and only then
    clears = [i for i, e in enumerate(log) if e[0] == "clear"]
    assert len(clears) == 3
    assert all(log[i] == ("clear", "True", "True") for i in clears)
    assert [log[i + 1][1] for i in clears] == ["target", "sd", "hf-lookup"]
    assert report.modes == ("target", "sd", "hf-lookup")
    assert len(report.runs) == 12
    assert sum(r.cold for r in report.runs) == 3
    assert report.machine.device == "cpu" and report.machine.drafter == "same as target"
    assert report.summaries["sd"].acceptance_rate == pytest.approx(0.5)
    assert any("a notice" in line for line in lines)
    assert any("re-reading the document" in line for line in lines)


def test_no_rereading_when_a_document_mode_ran_after_the_clears(tmp_path: Path) -> None:
    engine = ScriptedEngine()
    modes = ["hf-generate", "sd"]  # sd runs after hf-generate's clear: the KV is there
    run_speed_bench(engine, tmp_path / "d.pdf", ["Q1", "Q2"], modes, 2, 5, DecodeConfig())
    assert sum(1 for e in engine.log if e[0] == "ask" and e[3] == "4") == 1  # the warm-up


def test_hf_modes_go_to_hf_baseline_with_their_kind(tmp_path: Path) -> None:
    engine = ScriptedEngine()
    modes = ["hf-generate", "hf-lookup", "hf-assisted"]
    report = run_speed_bench(engine, tmp_path / "d.pdf", ["Q"], modes, 1, 3, DecodeConfig())
    hf = [e for e in engine.log if e[0] == "hf"]
    assert [e[1] for e in hf] == modes
    assert report.modes == ("target", *modes)
    assert "hf-assisted" in format_table(report)


def test_models_announced_earlier_keep_the_machine_info(tmp_path: Path) -> None:
    """An engine announces its models once: a second bench gets them passed in."""
    engine = ScriptedEngine()
    announced = [e for e in engine.load_models() if isinstance(e, ModelLoaded)]
    engine.load_models = lambda: iter(())  # type: ignore[method-assign]  # loaded already
    quiet = run_speed_bench(engine, tmp_path / "d.pdf", ["Q"], ["sd"], 1, 3, DecodeConfig())
    assert quiet.machine.target == "?"
    report = run_speed_bench(
        engine, tmp_path / "d.pdf", ["Q"], ["sd"], 1, 3, DecodeConfig(),
        models={m.role: m for m in announced},
    )  # fmt: skip
    assert report.machine.target == "tiny" and report.machine.device == "cpu"


def test_streamer_timing_counts_the_tokens_of_each_push() -> None:
    # plain generate: prompt, then one token per push, then end
    stamps = [(0.0, 50), (2.0, 1), (2.1, 1), (2.2, 1), (2.3, 1), (2.3, 0)]
    first, decode_s = streamer_timing(stamps, 4)
    assert first == 2.0 and decode_s == pytest.approx(0.3 * 4 / 3)
    # assisted: the first round emits 3 tokens, then 2 and 3: 5 tokens in 1 s after it
    stamps = [(0.0, 50), (2.0, 3), (2.5, 2), (3.0, 3), (3.0, 0)]
    first, decode_s = streamer_timing(stamps, 8)
    assert first == 2.0 and 8 / decode_s == pytest.approx(5.0)


def test_bench_rejects_bad_input(tmp_path: Path) -> None:
    engine = ScriptedEngine()
    with pytest.raises(QuestionError):
        run_speed_bench(engine, tmp_path / "d.pdf", [" "], ["target"], 1, 4, DecodeConfig())
    with pytest.raises(ConfigError):
        run_speed_bench(engine, tmp_path / "d.pdf", ["q"], ["target"], 0, 4, DecodeConfig())


def test_table_and_json(tmp_path: Path) -> None:
    report = run_speed_bench(
        ScriptedEngine(), tmp_path / "doc.pdf", ["Q1", "Q2"], ["rapid"], 1, 5, DecodeConfig()
    )
    table = format_table(report)
    assert "torch threads" in table and "cpu" in table and "tiny" in table
    rows = [line.split()[0] for line in table.splitlines()[6:8]]
    assert rows == ["target", "rapid"]
    data = report_to_json(report)
    json.dumps(data, allow_nan=False)
    assert set(data["modes"]) == {"target", "rapid"}
    assert data["modes"]["target"]["ratio"] == pytest.approx(1.0)
    for key in ("tokens_per_s", "ratio", "acceptance_rate", "mean_accepted_length"):
        assert key in data["modes"]["rapid"]
    assert len(data["runs"]) == 4


# --- one real run on a tiny model ----------------------------------------------------------

STORY = (
    "The ship left the harbour at dawn. The sailors found a map in the captain's cabin. "
    "The map showed an island to the south, where the ship went after three days at sea. "
)


@pytest.fixture(scope="module")
def tiny_pdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-page PDF with a little text."""
    import pymupdf

    path = tmp_path_factory.mktemp("pdf") / "story.pdf"
    doc = pymupdf.open()
    for page_no in range(2):
        page = doc.new_page()
        page.insert_textbox(pymupdf.Rect(72, 72, 540, 760), f"Page {page_no + 1}. " + STORY * 2)
    doc.save(path)
    doc.close()
    return path


@pytest.mark.slow
def test_real_bench_on_tiny_model(
    tiny_model_dir: Path, tiny_pdf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAPIDQA_CACHE", str(tmp_path / "cache"))  # the bench clears the KV
    api = pytest.importorskip("core.api")
    from core.config import IndexConfig, ModelConfig

    models = ModelConfig(target=str(tiny_model_dir), drafter="same", device="cpu")
    engine = api.Engine(models, IndexConfig())
    start = time.perf_counter()
    report = run_speed_bench(
        engine,
        tiny_pdf,
        ["What do the sailors find?", "Where does the ship go?"],
        ["target", "sd"],
        repeat=1,
        max_new_tokens=12,
        decode_base=DecodeConfig(gamma=4),
    )
    elapsed = time.perf_counter() - start
    assert report.modes == ("target", "sd")
    assert len(report.runs) == 4
    s = report.summaries
    assert s["target"].ratio == pytest.approx(1.0)
    assert s["sd"].ratio is not None and s["sd"].ratio > 0
    assert s["sd"].acceptance_rate is not None
    assert s["target"].second_question_ttft is not None
    # greedy sd (eta = 0) is lossless: the same answers as the target
    assert s["sd"].compared == 2 and s["sd"].same_answer == 2
    for mode in ("target", "sd"):
        assert all(math.isfinite(v) for v in (s[mode].tokens_per_s, s[mode].end_to_end_s))
    text = format_table(report)
    assert "target" in text and "sd" in text
    json.dumps(report_to_json(report), allow_nan=False)
    print(f"real bench took {elapsed:.1f} s")


@pytest.mark.slow
def test_hf_assisted_gives_the_plain_greedy_answer(
    tiny_model_dir: Path, tiny_pdf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Greedy assisted generation is lossless: the target itself as its own assistant
    (the default offline setup: the same model object), and a noisy copy as assistant
    (drafts rejected, too), both give transformers' plain greedy answer."""
    monkeypatch.setenv("RAPIDQA_CACHE", str(tmp_path / "cache"))
    api = pytest.importorskip("core.api")
    from core.config import IndexConfig, ModelConfig
    from tests.tiny_models import tiny_llama

    noisy_dir = tmp_path / "noisy"
    noisy = tiny_llama(seed=1, noise=0.1, base=tiny_llama())
    noisy.model.save_pretrained(noisy_dir)
    noisy.tokenizer.save_pretrained(noisy_dir)
    question = "What do the sailors find?"
    for drafter in ("same", str(noisy_dir)):
        cfg = ModelConfig(target=str(tiny_model_dir), drafter=drafter, device="cpu")
        engine = api.Engine(cfg, IndexConfig())
        finished = {}
        for kind in ("hf-generate", "hf-assisted"):
            events = hf_baseline(engine, question, [tiny_pdf], kind, 24)
            finished[kind] = next(e for e in events if isinstance(e, Finished))
        assert (engine.drafter is engine.target) == (drafter == "same")
        plain, assisted = finished["hf-generate"], finished["hf-assisted"]
        assert assisted.mode == "hf-assisted"
        assert assisted.new_tokens == plain.new_tokens > 1
        assert assisted.answer == plain.answer
        assert assisted.tokens_per_s > 0 and assisted.target_prefill_s > 0
        assert 1 <= assisted.rounds <= assisted.new_tokens
