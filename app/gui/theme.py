"""Colours, token styles and the application look, in one place.

Token colours are from the Okabe-Ito palette (safe for the common colour-vision
deficiencies), and every token kind also has a cue that is not colour: an underline
style, or strike-through for rejected drafts. The legend, the answer view and the
chart all read from `TOKEN_STYLES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtGui import QColor, QFont, QIcon, QPalette, QTextCharFormat
from PySide6.QtWidgets import QApplication

RESOURCES = Path(__file__).resolve().parents[2] / "resources"
ICON_PATH = RESOURCES / "icons" / "rapidqa.svg"

# Okabe-Ito
BLUE = "#0072B2"
VERMILION = "#D55E00"
BLUISH_GREEN = "#009E73"
ORANGE = "#E69F00"
SKY_BLUE = "#56B4E9"
REDDISH_PURPLE = "#CC79A7"
GREY = "#7A7A7A"

ACCENT = "#2F6FB3"  # the app icon's blue
HIGHLIGHT = QColor(255, 210, 90, 110)  # retrieved passage on a PDF page (the icon's yellow)
FLASH = QColor(230, 159, 0, 170)  # a passage the user jumped to
SPOT = QColor(47, 111, 179, 70)  # the lines a citation mark points to (accent, translucent)
BEYOND_COLOR = ORANGE  # the dotted underline of a run the target wrote beyond the passages
HEAT = QColor(213, 94, 0)  # where the target looked: vermilion, opacity by attention
HEAT_OUTLINE = QColor("#7A2900")  # a spot outside the retrieved passages


@dataclass(frozen=True)
class TokenStyle:
    """How one kind of answer token is drawn, and how the legend names it."""

    key: str
    label: str
    tip: str
    foreground: str
    background: str
    underline: QTextCharFormat.UnderlineStyle = QTextCharFormat.UnderlineStyle.NoUnderline
    strike: bool = False

    def char_format(self) -> QTextCharFormat:
        fmt = QTextCharFormat()
        fmt.setForeground(QColor(self.foreground))
        if self.background:
            fmt.setBackground(QColor(self.background))
        if self.underline != QTextCharFormat.UnderlineStyle.NoUnderline:
            fmt.setUnderlineStyle(self.underline)
            fmt.setUnderlineColor(QColor(self.foreground))
        fmt.setFontStrikeOut(self.strike)
        return fmt


_U = QTextCharFormat.UnderlineStyle
TOKEN_STYLES: dict[str, TokenStyle] = {
    "accepted": TokenStyle(
        "accepted",
        "Accepted",
        "drafted from the retrieved passages and accepted by the target",
        BLUE,
        "#E3EFF8",
        _U.SingleUnderline,
    ),
    "correction": TokenStyle(
        "correction",
        "Correction",
        "the target's own token after it rejected a draft",
        VERMILION,
        "#FBE6D8",
        _U.WaveUnderline,
    ),
    "bonus": TokenStyle(
        "bonus",
        "Bonus",
        "the target's free token after every draft was accepted",
        BLUISH_GREEN,
        "#DDF2EA",
        _U.DashUnderline,
    ),
    "target": TokenStyle(
        "target", "Target", "a plain target step (nothing was drafted)", "#1F1F1F", ""
    ),
    "rejected": TokenStyle(
        "rejected",
        "Rejected",
        "drafted, then rejected by the target (not part of the answer)",
        GREY,
        "",
        strike=True,
    ),
}


def app_icon() -> QIcon:
    return QIcon(str(ICON_PATH))


def apply(app: QApplication) -> None:
    """The app's look: Fusion with a light palette, the same on every platform, so
    the token colours read as designed."""
    app.setStyle("Fusion")
    pal = QPalette()
    pal.setColor(QPalette.ColorRole.Window, QColor("#F4F5F7"))
    pal.setColor(QPalette.ColorRole.WindowText, QColor("#1F1F1F"))
    pal.setColor(QPalette.ColorRole.Base, QColor("#FFFFFF"))
    pal.setColor(QPalette.ColorRole.AlternateBase, QColor("#F0F2F5"))
    pal.setColor(QPalette.ColorRole.Text, QColor("#1F1F1F"))
    pal.setColor(QPalette.ColorRole.Button, QColor("#FBFBFC"))
    pal.setColor(QPalette.ColorRole.ButtonText, QColor("#1F1F1F"))
    pal.setColor(QPalette.ColorRole.Highlight, QColor(ACCENT))
    pal.setColor(QPalette.ColorRole.HighlightedText, QColor("#FFFFFF"))
    pal.setColor(QPalette.ColorRole.ToolTipBase, QColor("#FFFFF0"))
    pal.setColor(QPalette.ColorRole.ToolTipText, QColor("#1F1F1F"))
    pal.setColor(QPalette.ColorRole.PlaceholderText, QColor("#8A8F98"))
    for role in (QPalette.ColorRole.ButtonText, QPalette.ColorRole.Text,
                 QPalette.ColorRole.WindowText):  # fmt: skip
        pal.setColor(QPalette.ColorGroup.Disabled, role, QColor("#9AA0A6"))
    app.setPalette(pal)
    font = QFont(app.font())
    if font.pointSizeF() < 10:
        font.setPointSizeF(10)
    app.setFont(font)
    app.setWindowIcon(app_icon())
    app.setStyleSheet(STYLE_SHEET)


STYLE_SHEET = f"""
QToolBar {{ spacing: 4px; border: none; }}
QPushButton#primary {{
    background: {ACCENT}; color: white; border: 1px solid #25598f; border-radius: 4px;
    padding: 5px 14px; font-weight: 600;
}}
QPushButton#primary:disabled {{ background: #9DB7D3; border-color: #9DB7D3; }}
QPushButton#primary:hover {{ background: #3A7CC2; }}
QLabel#heading {{ font-weight: 600; color: #3A3F47; }}
QLabel#statValue {{ font-size: 15pt; font-weight: 600; color: #1F1F1F; }}
QLabel#statName {{ color: #5F6670; }}
QFrame#card {{ background: white; border: 1px solid #DDE1E6; border-radius: 6px; }}
"""
