"""`rapidqa bench quality` end to end on a tiny real model, a real PDF and a small
question set: every mode answers every question, the table and JSON come out, and a
set whose documents are missing says what to install."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

import app.cli.main as cli


def _qa_set(folder: Path, doc: str) -> Path:
    rows = [
        {
            "id": "q1",
            "doc": doc,
            "question": "When is the lamp lit?",
            "answer": "At dusk every day.",
            "refs": ["dusk"],
        },
        {
            "id": "q2",
            "doc": doc,
            "question": "Who lights it?",
            "answer": "The keeper.",
            "refs": ["keeper"],
        },
    ]
    path = folder / "set.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def bench_argv(
    tiny_model_dir: Path,
    make_pdf: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> list[str]:
    """`rapidqa bench quality` on a two-question set about a real PDF, tiny model."""
    monkeypatch.setenv("RAPIDQA_CACHE", str(tmp_path / "cache"))
    pdf = make_pdf(["The keeper lit the lamp at dusk every day. " * 30] * 2, name="lamp.pdf")
    qa = _qa_set(tmp_path, "lamp.pdf")
    return ["bench", "quality", "--set", str(qa), "--docs", str(pdf.parent),
            "--max-new-tokens", "4", "--target", str(tiny_model_dir),
            "--library", str(tmp_path / "lib")]  # fmt: skip


def test_every_mode_answers_every_question(
    bench_argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [*bench_argv, "--modes", "sd,rapid"]
    assert cli.main([*argv, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data["modes"]) == ["target", "sd", "rapid"]
    assert len(data["results"]) == 2 * 3
    for row in data["modes"].values():
        assert row["questions"] == 2 and 0 <= row["accuracy"] <= 1 and 0 <= row["f1"] <= 1
    assert data["modes"]["target"]["acceptance_rate"] is None
    assert cli.main([*argv, "--subset", "1"]) == 0
    table = capsys.readouterr().out
    assert table.startswith("| mode | questions | accuracy |")
    assert "| target | 1 |" in table and "| rapid | 1 |" in table


def test_a_sweep_runs_rapid_at_each_value(
    bench_argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [*bench_argv, "--json"]
    assert cli.main([*argv, "--sweep", "eta=0,5"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data["modes"]) == ["target", "rapid eta=0", "rapid eta=5"]
    assert [m["eta"] for m in data["modes"].values()] == [0.0, 0.0, 5.0]
    assert {m["decode_mode"] for m in list(data["modes"].values())[1:]} == {"rapid"}
    assert set(data["groups"]) == {"fits"}  # the small PDF fits the window
    assert data["seconds"] > 0 and len(data["results"]) == 2 * 3
    assert cli.main([*argv, "--sweep", "gamma=2,3", "--subset", "1"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [m["gamma"] for m in data["modes"].values()] == [6, 2, 3]
    assert list(data["modes"]) == ["target", "sd gamma=2", "sd gamma=3"]  # the default mode
    bad = {"beta=1": "Cannot sweep", "eta=": "Cannot sweep", "gamma=0": "out of range",
           "eta=x": "not a number"}  # fmt: skip
    for spec, message in bad.items():
        assert cli.main([*argv, "--sweep", spec]) != 0
        assert message in capsys.readouterr().err


def test_missing_documents_say_what_to_install(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    qa = _qa_set(tmp_path, "R-nowhere.pdf")
    code = cli.main(["bench", "quality", "--set", str(qa)])
    assert code == 1
    err = capsys.readouterr().err
    assert "R-nowhere.pdf" in err and "r-doc-pdf" in err and "gnuplot-doc" in err
    code = cli.main(["bench", "quality", "--set", str(qa), "--docs", str(tmp_path)])
    assert code == 1
    err = capsys.readouterr().err
    assert "R-nowhere.pdf" in err and str(tmp_path) in err and "--docs" in err


def test_table1_runs_each_pair_in_one_process(
    bench_argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--table1: LC, RAG, SD, RAPID self / downward, and upward speculation with the
    drafter as the long-context target, each compared with its own target's speed."""
    from tests.tiny_models import tiny_llama

    other = tiny_llama(seed=3)
    small = tmp_path / "small-model"
    other.model.save_pretrained(small)
    other.tokenizer.save_pretrained(small)
    assert cli.main([*bench_argv, "--drafter", str(small), "--table1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    small_lc = f"target ({small})"
    assert list(data["modes"]) == [
        "target", "rag", "sd", "rapid self", "rapid down", small_lc, "rapid up"
    ]  # fmt: skip
    modes = data["modes"]
    assert modes["rapid up"]["baseline"] == small_lc and modes["sd"]["baseline"] == "target"
    assert modes["rapid up"]["target"] == str(small)
    assert modes["rapid self"]["drafter"] == "same"
    assert all(m["speed_vs_baseline"] > 0 for m in modes.values())
    assert len(data["results"]) == 2 * 7
    assert cli.main([*bench_argv, "--table1"]) != 0  # the drafter is the target itself
    assert "needs a drafter" in capsys.readouterr().err
