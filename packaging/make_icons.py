"""Render the app icon (resources/icons/rapidqa.svg) as PNGs and a Windows .ico.

    python packaging/make_icons.py OUT_DIR

Writes ``rapidqa-{16,24,32,48,64,128,256,512,1024}.png`` (the Linux icon theme, the
AppImage, the macOS .icns, which PyInstaller makes from the 1024 px PNG) and
``rapidqa.ico`` (Windows, 256 px) into OUT_DIR. Uses Qt's SVG renderer, so it runs
wherever the app's PySide6 runs; set QT_QPA_PLATFORM=offscreen without a display.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

SIZES = (16, 24, 32, 48, 64, 128, 256, 512, 1024)
SVG = Path(__file__).resolve().parent.parent / "resources" / "icons" / "rapidqa.svg"


def render(renderer: QSvgRenderer, size: int) -> QImage:
    """The icon drawn at `size` × `size` pixels on a transparent background."""
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    return image


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    out = Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    _app = QGuiApplication([])  # QPainter on a QImage needs a Gui application (fonts)
    renderer = QSvgRenderer(str(SVG))
    if not renderer.isValid():
        print(f"make_icons: cannot read {SVG}", file=sys.stderr)
        return 1
    for size in SIZES:
        path = out / f"rapidqa-{size}.png"
        if not render(renderer, size).save(str(path), "PNG"):
            print(f"make_icons: could not write {path}", file=sys.stderr)
            return 1
    ico = out / "rapidqa.ico"
    if not render(renderer, 256).save(str(ico), "ICO"):
        print(f"make_icons: could not write {ico} (Qt's ico image plugin)", file=sys.stderr)
        return 1
    print(f"make_icons: {len(SIZES)} PNGs and rapidqa.ico in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
