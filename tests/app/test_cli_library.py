"""`rapidqa index add/list/remove` and `rapidqa search` through the real engine
(real PDFs, real MiniLM, a library in a temporary folder; no LLM weights load)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from app.cli.main import main

MakePdf = Callable[..., Path]
FACT = "The spare keys to the signal cabin hang on hook number 14."


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def pdfs(make_pdf: MakePdf) -> list[Path]:
    cabin = [f"The signal cabin at mile {i} controls the junction. " * 40 for i in range(3)]
    cabin[1] = f"{FACT} {cabin[1]}"
    garden = [f"Roses on bed {i} are pruned in March and fed in May. " * 40 for i in range(3)]
    return [make_pdf(cabin, name="cabin.pdf"), make_pdf(garden, name="garden.pdf")]


def test_index_and_search_round_trip(
    tmp_path: Path, pdfs: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    lib = ["--library", str(tmp_path / "lib")]
    junk = tmp_path / "junk.pdf"
    junk.write_text("not a pdf")
    code, out, err = _run(["index", "add", *map(str, pdfs), str(junk), *lib], capsys)
    assert code == 1  # one file failed; the others were added
    assert out.count("added: ") == 2 and "not a PDF" in err and "Traceback" not in err
    assert "embedding" in err  # progress on stderr

    code, out, _ = _run(["index", "add", str(pdfs[0]), *lib], capsys)
    assert code == 0 and out.startswith("already in the library: ")

    code, out, _ = _run(["index", "list", "--json", *lib], capsys)
    docs = json.loads(out)
    assert code == 0 and [d["title"] for d in docs] == ["cabin", "garden"]
    assert {"id", "title", "path", "pages", "tokens", "chunks", "added"} <= set(docs[0])
    assert docs[0]["pages"] == 3 and docs[0]["source_present"]

    code, out, _ = _run(
        ["search", "-q", "Which hook holds the cabin keys?", "--json", *lib], capsys
    )
    hits = json.loads(out)
    assert code == 0 and hits and set(hits[0]) == {"doc", "title", "pages", "score", "text"}
    assert FACT in " ".join(hits[0]["text"].split()) and 2 in hits[0]["pages"]
    assert hits[0]["doc"] == docs[0]["id"]
    assert len(hits) <= 5  # the default k
    code, out, _ = _run(["search", "-q", "cabin hook keys", "--json", "--dense", *lib], capsys)
    scores = [h["score"] for h in json.loads(out)]  # dense: by cosine (hybrid: by fused rank)
    assert code == 0 and scores == sorted(scores, reverse=True)

    only = ["--doc", docs[1]["id"][:8]]
    code, out, _ = _run(["search", "-q", "cabin keys", "--json", "--dense", *only, *lib], capsys)
    assert code == 0 and {h["doc"] for h in json.loads(out)} <= {docs[1]["id"]}

    code, out, _ = _run(["search", "-q", "cabin keys", "--k", "2", *lib], capsys)
    assert code == 0 and out.startswith("1. cabin, p") and "(score " in out

    code, out, _ = _run(["index", "remove", docs[0]["id"][:6], *lib], capsys)
    assert code == 0 and out.startswith("removed: ")
    code, out, _ = _run(["index", "list", *lib], capsys)
    assert "garden" in out and "cabin" not in out and "1 document(s)" in out
    code, _, err = _run(["index", "remove", "ffffffff", *lib], capsys)
    assert code == 1 and "No document with id" in err

    moved = pdfs[1].parent / "sorted" / "garden-2026.pdf"  # the user tidies up
    moved.parent.mkdir()
    pdfs[1].rename(moved)
    code, out, _ = _run(["index", "list", "--json", *lib], capsys)
    (entry,) = json.loads(out)
    assert entry["path"] == str(moved.resolve()) and entry["source_present"]


def test_environment_variable_and_empty_library(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RAPIDQA_LIBRARY", str(tmp_path / "env-lib"))
    code, out, _ = _run(["index", "list"], capsys)
    assert code == 0 and "is empty" in out and str(tmp_path / "env-lib") in out
    code, _, err = _run(["search", "-q", "anything"], capsys)
    assert code == 1 and err.startswith("error: The library at") and "index add" in err
    code, _, err = _run(["ask", "-q", "anything"], capsys)
    assert code == 1 and "is empty" in err and "Traceback" not in err
