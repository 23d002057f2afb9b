"""Generate the synthetic needle set (RULER-style): made-up facts at known depths of real text.

    .venv/bin/python bench/qa/needle.py [--out DIR] [--set FILE] [--seed N] [--only 4k,...]

Writes needle-4k.pdf, -8k, -16k and -30k.pdf (about 4,000, 8,000, 16,000 and 29,000 tokens
of the Qwen2.5 tokenizer in the text PyMuPDF extracts) into DIR (default
~/.cache/rapidqa/needle) and their questions to FILE (default bench/qa/needle.jsonl). The
haystack is the prose of one R manual per document (/usr/share/R/doc/manual, Debian
r-doc-pdf); into it go, as paragraphs of their own:

- three single needles at depths 0.1, 0.5 and 0.9: a made-up fact and a question on it;
- one multi-hop needle (RULER's variable tracking) at depths 0.2 and 0.8: a link sentence
  that the question matches ("The ledger of the X salt survey is kept by the warden of the
  north gate.") and the answer, which shares no content word with the question ("The
  warden of the north gate ... is Orla Benn."). Retrieving a few passages by the question
  finds the link but rarely the answer; reading the whole document finds both.

Depth = the fraction of the document's tokens before the sentence; the id holds the
nominal depth of the answer's sentence in percent (needle-8k-50), keeping the set format
of bench/qa/README.md. Names and numbers come from `random.Random(seed, document)` and
occur nowhere in the manuals: one seed, the same PDFs (byte for byte) and questions.
"""

from __future__ import annotations

import argparse
import html
import io
import json
import os
import random
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pymupdf

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1]), str(HERE)]  # the repository (core) and check_set

from check_set import normalise  # noqa: E402  (after the path insert)

MANUALS = Path("/usr/share/R/doc/manual")
DEFAULT_OUT = Path("~/.cache/rapidqa/needle").expanduser()
DEFAULT_SET = HERE / "needle.jsonl"
LIMIT = 29_500  # the 30K document must leave room in the target's 32,768-token window
PAGE = pymupdf.paper_rect("a4")
FRAME = pymupdf.Rect(72, 64, PAGE.width - 72, PAGE.height - 72)
CSS = "body { font-family: serif; font-size: 11pt; line-height: 1.35; }\np { margin: 0 0 6pt 0; }"
FIXED_DATE = "D:20240101000000Z"


@dataclass(frozen=True)
class Spec:
    """One document: its label, target token count, haystack manual and multi-hop order."""

    label: str
    tokens: int
    manual: str
    answer_last: bool  # the multi-hop answer at depth 0.8 after the link at 0.2, or reversed

    @property
    def name(self) -> str:
        return f"needle-{self.label}.pdf"


SPECS = (
    Spec("4k", 4_000, "R-FAQ.pdf", True),
    Spec("8k", 8_000, "R-data.pdf", False),
    Spec("16k", 16_000, "R-admin.pdf", True),
    Spec("30k", 29_000, "R-intro.pdf", False),
)


@dataclass(frozen=True)
class Needle:
    """A question and the sentences it needs; `text` holds the answer (the evidence)."""

    kind: str  # "single" or "multi-hop"
    depth: float
    text: str
    question: str
    answer: str
    refs: tuple[str, ...]
    link: str = ""  # multi-hop: the sentence the question matches
    link_depth: float = 0.0


# --- made-up names ---------------------------------------------------------------------

_ONSETS = "b d f g k l m n p r s t v z br dr gr kr tr th".split()
_CONSONANTS = "b d f g k l m n p r s t v z".split()
_VOWELS = "a e i o u a e o ai ea ou".split()
_CODAS = ["", "", "n", "r", "l", "s", "m"]


@cache
def _manual_words() -> frozenset[str]:
    """Every word and number of the R manuals, lowercased (the draws must avoid them)."""
    text = " ".join(" ".join(paragraphs(p.name)) for p in sorted(MANUALS.glob("R-*.pdf")))
    return frozenset(re.findall(r"\w+", text.lower()))


def _fresh(rng: random.Random, draw: Callable[[random.Random], str], used: set[str]) -> str:
    while True:
        value = draw(rng)
        if value.lower() not in used and value.lower() not in _manual_words():
            used.add(value.lower())
            return value


def _word(rng: random.Random) -> str:
    first = rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)
    return (first + rng.choice(_CONSONANTS) + rng.choice(_VOWELS) + rng.choice(_CODAS)).capitalize()


# (fact, question, answer, refs): the fields are drawn fresh for every needle.
SINGLES = (
    ("The archive code of the {place} tide survey, as written on every box of its papers, "
     "is {code}.", "What is the archive code of the {place} tide survey?", "{code}",
     ("{code}",)),
    ("The first harbour master appointed at {place} after the old quay was rebuilt was "
     "{first} {last}.", "Who was the first harbour master at {place} after its quay was "
     "rebuilt?", "{first} {last}", ("{first} {last}", "{last}")),
    ("The lamp room of the {place} signal station holds exactly {count} brass lanterns, "
     "counted at the last inspection.", "How many brass lanterns are there in the lamp room "
     "of the {place} signal station?", "{count}", ("{count}",)),
    ("The password spoken at the gate of the {place} guild hall is the word {word}, given "
     "twice.", "What is the password at the gate of the {place} guild hall?", "{word}",
     ("{word}",)),
)  # fmt: skip
# (link, fact, question, answer, refs): the question matches the link only.
MULTI_HOP = (
    "The ledger of the {place} salt survey is kept by the {role}.",
    "The {role}, by the old charter of the town, is {first} {last}.",
    "Who keeps the ledger of the {place} salt survey?",
    "{first} {last}, the {role}.",
    ("{first} {last}", "{last}"),
)
ROLES = (("warden", "keeper", "porter", "reeve"), ("north", "east", "south", "west"),
         ("gate", "tower", "bridge", "mill"))  # fmt: skip


def needles_for(spec: Spec, seed: int, used: set[str]) -> list[Needle]:
    """The four needles of one document (three single, one multi-hop)."""
    rng = random.Random(f"needle {seed} {spec.label}")
    draws: dict[str, Callable[[random.Random], str]] = {
        "place": _word, "first": _word, "last": _word,
        "word": lambda r: _word(r).lower(),
        "code": lambda r: str(r.randint(1000, 9999)),
        "count": lambda r: str(r.randint(120, 980)),
    }  # fmt: skip

    def fill(*templates: str) -> list[str]:
        names = dict.fromkeys(re.findall(r"{(\w+)}", " ".join(templates)))
        values = {k: _fresh(rng, draws[k], used) for k in names if k in draws}
        if "role" in names:
            values["role"] = "{} of the {} {}".format(*(rng.choice(w) for w in ROLES))
        return [t.format(**values) for t in templates]

    out = []
    for depth, template in zip((0.1, 0.5, 0.9), rng.sample(SINGLES, 3), strict=True):
        fact, question, answer, *refs = fill(*template[:3], *template[3])
        out.append(Needle("single", depth, fact, question, answer, tuple(refs)))
    link, fact, question, answer, *refs = fill(*MULTI_HOP[:4], *MULTI_HOP[4])
    depth, link_depth = (0.8, 0.2) if spec.answer_last else (0.2, 0.8)
    out.append(Needle("multi-hop", depth, fact, question, answer, tuple(refs), link, link_depth))
    return out


# --- the haystack ----------------------------------------------------------------------

_ASCII = str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"', "–": "-", "—": "-", "•": ""})


@cache
def paragraphs(manual: str) -> tuple[str, ...]:
    """The prose paragraphs of an R manual's numbered pages (no headers, lists of contents,
    index entries or code): PyMuPDF text blocks of 15+ words, mostly words."""
    out = []
    with pymupdf.open(MANUALS / manual) as doc:  # type: ignore[no-untyped-call]
        for page in doc:
            if not page.get_label().isdigit():
                continue  # title pages and front matter (roman numerals)
            for *box, text, _n, _kind in page.get_text("blocks"):
                if box[1] < 70 or ". . ." in text:
                    continue  # the running header, leaders of contents or index
                text = re.sub(r"-\n(?=[a-z])", "", text.translate(_ASCII)).replace("-\n", "-")
                text = " ".join(text.split())
                words = text.split()
                prose = sum(bool(re.fullmatch(r"[A-Za-z][a-z']*[,.;:]?", w)) for w in words)
                if len(words) >= 15 and prose >= 0.75 * len(words):
                    out.append(text)
    return tuple(out)


def _haystack(spec: Spec) -> list[str]:
    others = sorted(p.name for p in MANUALS.glob("R-*.pdf") if p.name != spec.manual)
    return [text for manual in [spec.manual, *others] for text in paragraphs(manual)]


# --- layout ----------------------------------------------------------------------------


def _render(title: str, blocks: Sequence[str]) -> bytes:
    """A4 PDF of the title and the paragraphs (text flowing over pages), reproducibly."""

    def para(text: str) -> str:  # a span boundary keeps "fi", "fl", "ff" from ligatures
        return "<p>" + re.sub(r"f(?=[fil])", "<span>f</span>", html.escape(text)) + "</p>"

    body = f"<h2>{html.escape(title)}</h2>" + "".join(para(b) for b in blocks)
    story = pymupdf.Story(html=body, user_css=CSS)
    buffer = io.BytesIO()
    writer = pymupdf.DocumentWriter(buffer)
    more = True
    while more:
        device = writer.begin_page(PAGE)
        more, _ = story.place(FRAME)
        story.draw(device)
        writer.end_page()
    writer.close()
    with pymupdf.open("pdf", buffer.getvalue()) as doc:  # type: ignore[no-untyped-call]
        doc.set_metadata({"title": title, "creator": "RapidQA bench/qa/needle.py",
                          "producer": "PyMuPDF", "creationDate": FIXED_DATE,
                          "modDate": FIXED_DATE})  # fmt: skip
        return bytes(doc.tobytes(garbage=4, deflate=True, no_new_id=True))


def page_texts(pdf: bytes) -> list[str]:
    """The text PyMuPDF extracts from each page."""
    with pymupdf.open("pdf", pdf) as doc:  # type: ignore[no-untyped-call]
        return [page.get_text() for page in doc]


def locate(sentence: str, pages: Sequence[str], count: Callable[[str], int]) -> tuple[int, float]:
    """(1-based page, depth) of a sentence in the extracted text; page 0 if it is split."""
    text = "\n".join(pages)
    match = re.search(r"\s+".join(map(re.escape, sentence.split())), text)
    if match is None:
        return 0, 0.0
    page = next((i + 1 for i, t in enumerate(pages) if normalise(sentence) in normalise(t)), 0)
    return page, count(text[: match.start()]) / count(text)


@dataclass(frozen=True)
class Built:
    """A generated document: its PDF bytes, page texts, token count and needles."""

    spec: Spec
    pdf: bytes
    pages: list[str]
    tokens: int
    needles: list[Needle]
    placed: dict[str, tuple[int, float]]  # sentence -> (page, measured depth)


def build(spec: Spec, seed: int, count: Callable[[str], int], used: set[str]) -> Built:
    """Size the haystack to the target tokens, insert the needles, keep them on one page."""
    needles = needles_for(spec, seed, used)
    inserts = sorted([(n.depth, n.text) for n in needles]
                     + [(n.link_depth, n.link) for n in needles if n.link])  # fmt: skip
    hay, sizes = _haystack(spec), list[int]()
    title = f"Readings from the R manuals ({spec.label})"
    budget, shift = spec.tokens, dict.fromkeys((t for _, t in inserts), 0)
    for _ in range(12):
        cum, n = [0], 0
        while cum[-1] < budget - sum(count(t) for _, t in inserts) and n < len(hay):
            sizes += [count(hay[n])] if n == len(sizes) else []
            cum.append(cum[-1] + sizes[n])
            n += 1
        blocks = list(hay[:n])
        for depth, text in reversed(inserts):  # from the end, so the indices stay valid
            at = next(i for i, c in enumerate(cum) if c >= depth * cum[-1]) + shift[text]
            blocks.insert(min(at, n), text)
        pdf = _render(title, blocks)
        pages = page_texts(pdf)
        tokens = count("\n".join(pages))
        if tokens > LIMIT or abs(tokens - spec.tokens) > 0.015 * spec.tokens:
            budget = round(budget * spec.tokens / tokens)
            continue
        placed = {t: locate(t, pages, count) for _, t in inserts}
        split = [t for t, (page, _) in placed.items() if page == 0]
        if not split:
            return Built(spec, pdf, pages, tokens, needles, placed)
        for text in split:  # across a page break: move it one paragraph on
            shift[text] += 1
    raise RuntimeError(f"could not lay out {spec.name} (tokens {tokens:,})")


def rows(built: Built) -> list[dict[str, object]]:
    """The question-set lines of a document (bench/qa/README.md's format): the two-hop
    needle first, then the single ones by depth, so that `--subset 8` (every other
    line) asks the two-hop and the mid-document needle of each document."""
    stem = Path(built.spec.name).stem
    order = sorted(built.needles, key=lambda n: (n.kind != "multi-hop", n.depth))
    return [{"id": f"{stem}-{round(n.depth * 100):02d}", "doc": built.spec.name,
             "question": n.question, "answer": n.answer, "refs": list(n.refs),
             "evidence": n.text, "page": built.placed[n.text][0]}
            for n in order]  # fmt: skip


def _write(path: Path, data: bytes) -> None:
    """Write atomically: a temporary file in the same folder, then os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@cache
def qwen_counter() -> Callable[[str], int]:
    """Count tokens with the Qwen2.5 tokenizer of the default target."""
    from core.models.loading import counting_tokenizer, load_tokenizer

    tokenizer = counting_tokenizer(load_tokenizer("qwen-1.5b"))
    return lambda text: len(tokenizer.encode(text).ids)


def generate(out: Path, set_path: Path, seed: int = 1,
             labels: Sequence[str] | None = None) -> list[Built]:  # fmt: skip
    """Build the documents (all, or those of `labels`), write the PDFs and the set."""
    count, used = qwen_counter(), set[str]()
    built = [build(s, seed, count, used) for s in SPECS if labels is None or s.label in labels]
    for b in built:
        _write(out / b.spec.name, b.pdf)
    lines = [json.dumps(row, ensure_ascii=False) for b in built for row in rows(b)]
    _write(set_path, ("\n".join(lines) + "\n").encode())
    return built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the PDFs")
    parser.add_argument("--set", type=Path, default=DEFAULT_SET, help="the question set")
    parser.add_argument("--seed", type=int, default=1, help="seed of the made-up facts")
    parser.add_argument("--only", help="comma-separated labels, e.g. 4k (default: all)")
    args = parser.parse_args(argv)
    labels = args.only.split(",") if args.only else None
    for b in generate(args.out.expanduser(), args.set, args.seed, labels):
        print(f"{b.spec.name}: {b.tokens:,} tokens, {len(b.pages)} pages ({b.spec.manual})")
        for n in b.needles:
            page, depth = b.placed[n.text]
            hop = f", link at {b.placed[n.link][1]:.3f} p{b.placed[n.link][0]}" if n.link else ""
            print(f"  {n.kind:9} depth {depth:.3f} p{page}{hop}: {n.question} -> {n.answer}")
    print(f"wrote {args.set}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
