"""The synthetic needle set (bench/qa/needle.py): deterministic, needles where recorded,
and a set that passes bench/qa/check_set.py. Builds the 4K document only (a few seconds
after the Qwen2.5 tokenizer loads); skips without the R manuals or that tokenizer."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

QA = Path(__file__).resolve().parents[2] / "bench" / "qa"
STOPWORDS = {"the", "of", "is", "by", "a", "at", "who", "what", "how", "its", "there", "in"}


@cache
def _load(name: str) -> ModuleType:
    pytest.importorskip("pymupdf")
    spec = importlib.util.spec_from_file_location(f"_qa_{name}", QA / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, list[Any]]]:
    """The 4K document generated twice with the same seed: [(folder, built documents)]."""
    needle = _load("needle")
    if not (needle.MANUALS / "R-FAQ.pdf").is_file():
        pytest.skip("the R manuals are not installed (apt-get install r-doc-pdf)")
    try:
        needle.qwen_counter()
    except Exception as err:  # no offline Qwen tokenizer: nothing to test
        pytest.skip(f"the Qwen2.5 tokenizer is not available ({err})")
    out = []
    for run in ("a", "b"):
        folder = tmp_path_factory.mktemp(f"needle-{run}")
        out.append((folder, needle.generate(folder, folder / "needle.jsonl", 7, ["4k"])))
    return out


def _rows(folder: Path) -> list[dict[str, Any]]:
    lines = (folder / "needle.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_same_seed_same_documents_and_questions(runs: list[tuple[Path, list[Any]]]) -> None:
    (first, _), (second, _) = runs
    assert (first / "needle-4k.pdf").read_bytes() == (second / "needle-4k.pdf").read_bytes()
    assert (first / "needle.jsonl").read_bytes() == (second / "needle.jsonl").read_bytes()
    assert not [p.name for p in first.iterdir() if p.name.startswith(".")]  # no temp files


def test_another_seed_draws_other_facts(tmp_path: Path, runs: list[tuple[Path, list[Any]]]) -> None:
    _load("needle").generate(tmp_path, tmp_path / "needle.jsonl", 8, ["4k"])
    answers = {row["answer"] for row in _rows(tmp_path)}
    assert not answers & {row["answer"] for row in _rows(runs[0][0])}


def test_the_document_has_its_size(runs: list[tuple[Path, list[Any]]]) -> None:
    needle, (built,) = _load("needle"), runs[0][1]
    assert abs(built.tokens - 4_000) <= 60
    assert built.tokens == needle.qwen_counter()("\n".join(built.pages))
    assert all(spec.tokens <= needle.LIMIT for spec in needle.SPECS)


def test_every_needle_is_on_its_page_at_its_depth(runs: list[tuple[Path, list[Any]]]) -> None:
    import pymupdf

    normalise = _load("check_set").normalise
    folder, (built,) = runs[0]
    with pymupdf.open(folder / "needle-4k.pdf") as doc:  # type: ignore[no-untyped-call]
        pages = [normalise(page.get_text()) for page in doc]
    assert len(built.needles) == 4
    assert [n.kind for n in built.needles].count("multi-hop") == 1
    rows = {row["evidence"]: row for row in _rows(folder)}
    for n in built.needles:
        sentences = [(n.text, n.depth), (n.link, n.link_depth)] if n.link else [(n.text, n.depth)]
        for sentence, depth in sentences:
            page, measured = built.placed[sentence]
            on = [i + 1 for i, text in enumerate(pages) if normalise(sentence) in text]
            assert on == [page], sentence
            assert abs(measured - depth) <= 0.05, (sentence, measured, depth)
        row = rows[n.text]  # the evidence is the sentence holding the answer
        assert row["page"] == built.placed[n.text][0]
        assert row["id"] == f"needle-4k-{round(n.depth * 100):02d}"


def test_the_multi_hop_answer_shares_no_word_with_its_question(
    runs: list[tuple[Path, list[Any]]],
) -> None:
    (hop,) = [n for n in runs[0][1][0].needles if n.kind == "multi-hop"]

    def words(text: str) -> set[str]:
        return set(re.findall(r"[a-z]+", text.lower())) - STOPWORDS

    assert abs(hop.depth - hop.link_depth) >= 0.5
    assert not words(hop.question) & words(hop.text)  # retrieval by the question misses it
    assert words(hop.question) & words(hop.link)  # ... and finds the link
    assert hop.refs[0] in hop.text and hop.refs[0] not in hop.link


def test_the_set_passes_check_set(
    runs: list[tuple[Path, list[Any]]], capsys: pytest.CaptureFixture[str]
) -> None:
    check_set = _load("check_set")
    folder = runs[0][0]
    seen: set[str] = set()
    lines = (folder / "needle.jsonl").read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        _doc, pdf, errors = check_set.check_line(f"needle:{number}", line, [folder], seen)
        assert pdf == folder / "needle-4k.pdf" and errors == []
    argv = ["--set", str(folder / "needle.jsonl"), "--docs", str(folder)]
    assert check_set.main(argv) == 0
    assert "all lines pass" in capsys.readouterr().out
