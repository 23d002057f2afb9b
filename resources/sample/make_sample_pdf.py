"""Render the bundled sample (harrow-point-handbook.md) into a multi-page PDF.

Usage: python resources/sample/make_sample_pdf.py [SOURCE.md [OUTPUT.pdf]]

The Markdown subset understood here is the one the sample uses: a `---` front-matter
block (title, subtitle, author, edition, licence), `#`/`##` headings, paragraphs,
`- ` bullet lists, pipe tables and inline *italic* / **bold**. The output is
reproducible: the same source gives the same bytes.
"""

from __future__ import annotations

import html
import io
import re
import sys
from pathlib import Path

import pymupdf

HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE / "harrow-point-handbook.md"
DEFAULT_OUTPUT = HERE / "harrow-point-handbook.pdf"

PAGE = pymupdf.paper_rect("a4")  # 595 x 842 points
MARGIN_X, MARGIN_TOP, MARGIN_BOTTOM = 72.0, 64.0, 72.0
FIXED_DATE = "D:20210601000000Z"  # fixed dates keep the output reproducible

CSS = """
body { font-family: serif; font-size: 11pt; line-height: 1.4; color: #222; }
p { margin: 0 0 7pt 0; text-align: justify; }
h1 { font-family: sans-serif; font-size: 15pt; font-weight: bold; color: #7a1f1f;
     margin: 16pt 0 6pt 0; }
h2 { font-family: sans-serif; font-size: 12pt; font-weight: bold; color: #333;
     margin: 10pt 0 4pt 0; }
ul { margin: 0 0 7pt 0; }
li { margin: 0 0 2pt 0; }
table { border-collapse: collapse; margin: 4pt 0 0 0; }
th, td { border: 0.5pt solid #999; padding: 3pt 6pt; font-size: 10pt; text-align: left; }
th { background-color: #eee; font-weight: bold; }
.title { font-family: sans-serif; font-size: 24pt; font-weight: bold; color: #7a1f1f;
         margin: 40pt 0 6pt 0; text-align: center; }
.subtitle { font-size: 13pt; font-style: italic; text-align: center; margin: 0 0 18pt 0; }
.meta { font-size: 10pt; text-align: center; margin: 0 0 3pt 0; color: #555; }
.rule { margin: 18pt 0 0 0; border-bottom: 1pt solid #7a1f1f; }
"""


def parse_front_matter(text: str) -> tuple[dict[str, str], str]:
    """Split a `---` key: value block off the top of the text."""
    meta: dict[str, str] = {}
    match = re.match(r"---\n(.*?)\n---\n", text, re.DOTALL)
    if not match:
        return meta, text
    for line in match.group(1).splitlines():
        key, _, value = line.partition(":")
        meta[key.strip()] = value.strip()
    return meta, text[match.end() :]


def inline(text: str) -> str:
    """Escape HTML, break f-ligatures and turn **bold** and *italic* into tags."""
    text = html.escape(text, quote=False)
    # The layout engine shapes "fi", "fl", "ff" into ligature glyphs, which text
    # extraction then returns as U+FB01 etc.; a span boundary keeps plain letters.
    text = re.sub(r"f(?=[fil])", "<span>f</span>", text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    return re.sub(r"\*(.+?)\*", r"<i>\1</i>", text)


def table_html(rows: list[str]) -> str:
    cells = [[c.strip() for c in row.strip().strip("|").split("|")] for row in rows]
    body = [r for r in cells[1:] if not all(set(c) <= set("-: ") for c in r)]
    head = "".join(f"<th>{inline(c)}</th>" for c in cells[0])
    lines = ["<table>", f"<tr>{head}</tr>"]
    lines += ["<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>" for r in body]
    return "\n".join([*lines, "</table>"])


def markdown_to_html(text: str) -> str:
    """Convert the sample's Markdown subset, one block (blank-line separated) at a time."""
    out: list[str] = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = block.splitlines()
        first = lines[0]
        if first.startswith("## "):
            out.append(f"<h2>{inline(first[3:])}</h2>")
        elif first.startswith("# "):
            out.append(f"<h1>{inline(first[2:])}</h1>")
        elif first.startswith("- "):
            items = "".join(f"<li>{inline(line[2:])}</li>" for line in lines)
            out.append(f"<ul>{items}</ul>")
        elif first.startswith("|"):
            out.append(table_html(lines))
        else:
            out.append(f"<p>{inline(' '.join(lines))}</p>")
    return "\n".join(out)


def title_block(meta: dict[str, str]) -> str:
    parts = [f'<p class="title">{inline(meta.get("title", ""))}</p>']
    if "subtitle" in meta:
        parts.append(f'<p class="subtitle">{inline(meta["subtitle"])}</p>')
    for key in ("author", "edition"):
        if key in meta:
            parts.append(f'<p class="meta">{inline(meta[key])}</p>')
    if "licence" in meta:
        parts.append(f'<p class="meta">Licence: {inline(meta["licence"])}</p>')
    parts.append('<div class="rule"></div>')
    return "\n".join(parts)


def render(source: Path, output: Path) -> int:
    """Write the PDF; return its page count."""
    meta, body = parse_front_matter(source.read_text(encoding="utf-8"))
    story = pymupdf.Story(html=title_block(meta) + markdown_to_html(body), user_css=CSS)
    frame = pymupdf.Rect(MARGIN_X, MARGIN_TOP, PAGE.width - MARGIN_X, PAGE.height - MARGIN_BOTTOM)

    buffer = io.BytesIO()
    writer = pymupdf.DocumentWriter(buffer)
    more = True
    while more:
        device = writer.begin_page(PAGE)
        more, _ = story.place(frame)
        story.draw(device)
        writer.end_page()
    writer.close()

    doc = pymupdf.open("pdf", buffer.getvalue())
    title = meta.get("title", "")
    for number in range(doc.page_count):
        page = doc[number]
        footer = f"{number + 1}"
        width = pymupdf.get_text_length(footer, fontname="helv", fontsize=9)
        page.insert_text(
            ((PAGE.width - width) / 2, PAGE.height - 40), footer, fontname="helv", fontsize=9
        )
    doc.set_metadata(
        {
            "title": title,
            "author": meta.get("author", ""),
            "subject": meta.get("subtitle", ""),
            "keywords": f"sample document; licence: {meta.get('licence', '')}",
            "creator": "RapidQA resources/sample/make_sample_pdf.py",
            "producer": "PyMuPDF",
            "creationDate": FIXED_DATE,
            "modDate": FIXED_DATE,
        }
    )
    pages = doc.page_count
    doc.save(output, garbage=4, deflate=True, reproducible=True, no_new_id=True)
    doc.close()
    return pages


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    source = Path(args[0]) if args else DEFAULT_SOURCE
    output = Path(args[1]) if len(args) > 1 else DEFAULT_OUTPUT
    pages = render(source, output)
    print(f"{output}: {pages} pages, {output.stat().st_size // 1024} KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
