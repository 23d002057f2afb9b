"""`rapidqa ask` on bad input, through the real engine: one clear line, non-zero exit.

PDFs are checked before any model loads, so these run with the default model spec
without loading it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from app.cli.main import main


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAPIDQA_CACHE", str(tmp_path / "cache"))


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def _assert_clean_error(code: int, out: str, err: str, *words: str) -> None:
    assert code != 0
    assert "Traceback" not in err and "Traceback" not in out
    assert err.startswith("error:") or "error:" in err
    for w in words:
        assert w.lower() in err.lower(), err


@pytest.fixture(scope="module")
def text_pages() -> list[str]:
    return ["The lamp was lit at dusk and put out at dawn.\n" * 20] * 3


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["ask", str(tmp_path / "nope.pdf"), "-q", "What?"], capsys)
    _assert_clean_error(code, out, err, "nope.pdf")


def test_not_a_pdf(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "notes.pdf"
    path.write_text("plain text, not a PDF")
    code, out, err = _run(["ask", str(path), "-q", "What?"], capsys)
    _assert_clean_error(code, out, err, "not a PDF")


def test_truncated(
    make_pdf: Callable[..., Path], text_pages: list[str], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    whole = make_pdf(text_pages, name="whole.pdf").read_bytes()
    cut = tmp_path / "cut.pdf"
    cut.write_bytes(whole[: len(whole) // 2])
    code, out, err = _run(["ask", str(cut), "-q", "What?"], capsys)
    _assert_clean_error(code, out, err)


def test_encrypted_without_and_with_wrong_password(
    make_pdf: Callable[..., Path], text_pages: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    path = make_pdf(text_pages, name="locked.pdf", password="s3cret")
    code, out, err = _run(["ask", str(path), "-q", "What?"], capsys)
    _assert_clean_error(code, out, err, "password")
    code, out, err = _run(["ask", str(path), "-q", "What?", "--password", "wrong"], capsys)
    _assert_clean_error(code, out, err, "password")


def test_no_text(make_pdf: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    path = make_pdf(["", ""], name="scan.pdf", image_pages=[1, 2])
    code, out, err = _run(["ask", str(path), "-q", "What?"], capsys)
    _assert_clean_error(code, out, err, "text")


def test_empty_question(
    make_pdf: Callable[..., Path], text_pages: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    path = make_pdf(text_pages, name="ok.pdf")
    code, _, err = _run(["ask", str(path), "-q", "   "], capsys)
    assert code == 2
    assert "Traceback" not in err and "question" in err.lower()
