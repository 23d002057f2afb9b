"""Shared fixtures: real PDFs built with PyMuPDF, and real manuals where installed."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

MakePdf = Callable[..., Path]

# Small first: `real_manual` takes the first one present, `long_manual` the last.
_MANUALS = (
    Path("/usr/share/doc/r-doc-pdf/manual/R-data.pdf"),  # 41 pages (Debian r-doc-pdf)
    Path("/usr/share/doc/r-doc-pdf/manual/R-intro.pdf"),  # 113 pages
    Path("/usr/share/doc/gnuplot/gnuplot.pdf"),  # 311 pages (gnuplot-doc)
    Path("/usr/share/R/doc/manual/fullrefman.pdf"),  # 2,415 pages (r-doc-pdf)
)


@pytest.fixture(scope="session")
def make_pdf(tmp_path_factory: pytest.TempPathFactory) -> MakePdf:
    """A factory: `make_pdf(pages, name=..., password=..., image_pages=..., title=...)`.

    Session-scoped so that module fixtures can use it; every PDF gets a folder of its
    own under pytest's temporary directory.

    Each string in `pages` is one page's text (explicit line breaks are kept; an empty
    string leaves the page without text). `image_pages` (1-based) also get a drawn
    frame and an embedded picture, like a scan. `password` encrypts the file with
    AES-256 (as user password; the owner password differs).
    """

    def make(
        pages: Sequence[str],
        *,
        name: str = "doc.pdf",
        password: str | None = None,
        image_pages: Collection[int] = (),
        title: str | None = None,
        fontsize: float = 11,
    ) -> Path:
        import pymupdf  # here, not at the top: the GPU machine has no PyMuPDF

        doc = pymupdf.open()
        for number, text in enumerate(pages, start=1):
            page = doc.new_page()  # A4 portrait
            if number in image_pages:
                page.draw_rect(pymupdf.Rect(40, 40, 555, 800), color=(0, 0, 0), width=2)
                picture = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, 64, 64), False)
                picture.set_rect(picture.irect, (120, 120, 120))
                page.insert_image(pymupdf.Rect(100, 100, 495, 700), pixmap=picture)
            if text:
                room = page.insert_textbox(pymupdf.Rect(50, 50, 545, 790), text, fontsize=fontsize)
                assert room >= 0, f"page {number}'s text does not fit on the page"
        if title is not None:
            doc.set_metadata({"title": title})
        path = tmp_path_factory.mktemp("pdf") / name
        if password is None:
            doc.save(path)
        else:
            doc.save(
                path,
                encryption=pymupdf.PDF_ENCRYPT_AES_256,
                user_pw=password,
                owner_pw=password + "-owner",
            )
        doc.close()
        return path

    return make


@pytest.fixture(scope="session")
def real_manual() -> Path:
    """The smallest installed real manual (R or gnuplot); skips when none is."""
    for path in _MANUALS:
        if path.is_file():
            return path
    pytest.skip("no real PDF manual installed (apt-get install r-doc-pdf or gnuplot-doc)")


@pytest.fixture(scope="session")
def long_manual() -> Path:
    """The longest installed real manual; skips when none is."""
    for path in reversed(_MANUALS):
        if path.is_file():
            return path
    pytest.skip("no real PDF manual installed (apt-get install r-doc-pdf or gnuplot-doc)")


@pytest.fixture(scope="session", autouse=True)
def _private_library(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Tests never touch the user's library or app settings: RAPIDQA_LIBRARY and
    RAPIDQA_SETTINGS point into pytest's tmp. Converted models stay shared (in the
    user's model cache, keyed by content), even where a test points RAPIDQA_CACHE
    elsewhere: converting the default pair takes a minute and a half."""
    import os

    from core.models.loading import models_dir

    names = ("RAPIDQA_LIBRARY", "RAPIDQA_SETTINGS", "RAPIDQA_MODEL_CACHE")
    saved = {name: os.environ.get(name) for name in names}
    os.environ["RAPIDQA_MODEL_CACHE"] = str(models_dir())
    os.environ["RAPIDQA_LIBRARY"] = str(tmp_path_factory.mktemp("library"))
    os.environ["RAPIDQA_SETTINGS"] = str(tmp_path_factory.mktemp("settings") / "rapidqa.ini")
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def target_tokenizer() -> Any:
    """The tiny offline model's tokenizer (SmolLM2) as a counting `tokenizers.Tokenizer`."""
    from core.models.loading import counting_tokenizer, load_tokenizer

    return counting_tokenizer(load_tokenizer("smollm2-135m"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny Llama (SmolLM2 tokenizer, `tiny_llama(seed=0)`) saved as a local
    model folder, for the engine, CLI and benchmark tests (read only)."""
    from tests.tiny_models import tiny_llama

    loaded = tiny_llama(seed=0)
    folder = tmp_path_factory.mktemp("tiny-llama")
    loaded.model.save_pretrained(folder)
    loaded.tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def embedder() -> Any:
    """The real all-MiniLM-L6-v2, on the CPU, loaded once (~10-15 s here)."""
    from core.library.embed import Embedder

    embedder = Embedder(device="cpu")
    embedder.model  # noqa: B018 (load now, not inside the first test's timing)
    return embedder


@pytest.fixture(scope="session")
def cancel_after() -> Callable[[int], Callable[[], bool]]:
    """A factory: `cancel_after(n)` is a `cancelled()` callback that says yes from its
    (n+1)-th call on (the engine polls it between pages and batches)."""

    def make(n: int) -> Callable[[], bool]:
        calls = itertools.count(1)
        return lambda: next(calls) > n

    return make
