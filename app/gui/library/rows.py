"""The rows of the library sidebar (a document; a PDF being added or that failed) and
the small pure helpers they use: wording of progress, and finding the PDFs of a drop."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QFont, QResizeEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core.events import IngestProgress

if TYPE_CHECKING:
    from core.api import DocumentInfo

MISSING_TIP = (
    "The PDF is no longer at {path}. Answers still work from the library's copy of its "
    "text; put the file back (or add it again) to see its pages."
)
PROGRESS_STEPS = 1000  # progress bar resolution


def plural(n: int, word: str, many: str | None = None) -> str:
    """ "1 page", "2,415 pages"."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


def doc_meta(info: DocumentInfo) -> str:
    """The muted second line of a document row: "120 pages · 48,200 tokens"."""
    return f"{plural(info.pages, 'page')} · {plural(info.tokens, 'token')}"


def stage_text(p: IngestProgress) -> str:
    """What an add is doing, for a person: "Reading pages 120 of 2,415"."""
    if p.stage == "read":
        return f"Reading pages {p.done:,} of {p.total:,}" if p.total else "Reading pages"
    if p.stage == "split":
        return "Cutting into passages"
    if p.stage == "embed":
        return f"Embedding passages {p.done:,} of {p.total:,}" if p.total else "Embedding"
    return "Saving"


def eta_text(seconds: float | None) -> str:
    """ "about 2 min left"; empty when the time left is not known yet."""
    if seconds is None or seconds != seconds or seconds < 0:  # None, NaN, negative
        return ""
    if seconds < 45:
        return "less than a minute left"
    if seconds < 90 * 60:
        return f"about {max(1, round(seconds / 60))} min left"
    return f"about {seconds / 3600:.1f} h left"


@dataclass
class DropScan:
    """The outcome of looking at dropped paths: PDFs to add, and what was left out."""

    pdfs: list[Path] = field(default_factory=list)
    not_pdfs: list[Path] = field(default_factory=list)
    empty_folders: list[Path] = field(default_factory=list)
    missing: list[Path] = field(default_factory=list)

    def message(self) -> str:
        """What was skipped and why, or "" when nothing was."""
        parts = []
        if self.not_pdfs:
            n = len(self.not_pdfs)
            what = "file that is not a PDF" if n == 1 else "files that are not PDFs"
            parts.append(
                f"Skipped {n} {what}: {_names(self.not_pdfs)} (only PDF files can be added)."
            )
        if self.empty_folders:
            parts.append(f"No PDFs found in {_names(self.empty_folders)}.")
        if self.missing:
            parts.append(f"Skipped {_names(self.missing)}: not found on disk.")
        return " ".join(parts)


def _names(paths: Sequence[Path], most: int = 5) -> str:
    shown = ", ".join(p.name or str(p) for p in paths[:most])
    return shown + (f" and {len(paths) - most} more" if len(paths) > most else "")


def _is_pdf(path: Path) -> bool:
    return path.suffix.lower() == ".pdf"


def _folder_pdfs(folder: Path) -> list[Path]:
    """A folder's PDFs, recursively, sorted; hidden files and folders are left out."""
    found = [
        p
        for p in folder.rglob("*")
        if _is_pdf(p)
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]
    return sorted(found, key=lambda p: [part.lower() for part in p.relative_to(folder).parts])


def scan_drop(paths: Iterable[Path]) -> DropScan:
    """Dropped files and folders -> the PDFs to add (each once, in order) and the rest."""
    scan = DropScan()
    seen: set[Path] = set()

    def add(pdf: Path) -> None:
        key = pdf.resolve()
        if key not in seen:
            seen.add(key)
            scan.pdfs.append(pdf)

    for path in paths:
        if path.is_dir():
            pdfs = _folder_pdfs(path)
            if not pdfs:
                scan.empty_folders.append(path)
            for pdf in pdfs:
                add(pdf)
        elif not path.exists():
            scan.missing.append(path)
        elif _is_pdf(path):
            add(path)
        else:
            scan.not_pdfs.append(path)
    return scan


class ElidedLabel(QLabel):
    """A one-line label that shortens its text with "…" to fit; `full_text()` is the
    whole text (also its tooltip unless one is set)."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._full = ""
        self.setMinimumWidth(24)
        self.setText(text)

    def setText(self, text: str) -> None:
        self._full = text
        self._refresh()

    def full_text(self) -> str:
        return self._full

    def sizeHint(self) -> QSize:
        hint = super().sizeHint()
        return QSize(min(self.fontMetrics().horizontalAdvance(self._full) + 4, 360), hint.height())

    def minimumSizeHint(self) -> QSize:
        return QSize(24, super().minimumSizeHint().height())

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._refresh()

    def _refresh(self) -> None:
        shown = self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideRight, self.width())
        super().setText(shown)


def _muted(text: str = "", elide: bool = False) -> QLabel:
    label = ElidedLabel(text) if elide else QLabel(text)
    label.setObjectName("muted")
    return label


def _bold(label: QLabel) -> QLabel:
    font = QFont(label.font())
    font.setBold(True)
    label.setFont(font)
    return label


class DocumentRow(QWidget):
    """A library document: bold title, "120 pages · 48,200 tokens", "file missing"."""

    def __init__(self, info: DocumentInfo, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.info = info
        self.title = _bold(ElidedLabel(info.title or info.path.name))
        self.title.setToolTip(f"{info.title}\n{info.path}")
        self.meta = _muted(doc_meta(info))
        self.missing = QLabel("file missing")
        self.missing.setObjectName("missing")
        self.missing.setToolTip(MISSING_TIP.format(path=info.path))
        self.missing.setVisible(not info.source_present)
        line = QHBoxLayout()
        line.setSpacing(8)
        line.addWidget(self.meta)
        line.addWidget(self.missing)
        line.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 5, 8, 5)
        layout.setSpacing(1)
        layout.addWidget(self.title)
        layout.addLayout(line)


class PendingRow(QWidget):
    """A PDF being added: "Waiting…", then a progress bar, stage text and time left
    with a cancel button; or, when the add failed, the reason and a Dismiss button."""

    cancel_clicked = Signal()
    dismiss_clicked = Signal()

    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("pendingRow")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.failed = False
        self.name = _bold(ElidedLabel(name))
        self.stage = _muted("Waiting…", elide=True)
        self.eta = _muted()
        self.bar = QProgressBar()
        self.bar.setRange(0, PROGRESS_STEPS)
        self.bar.setTextVisible(False)
        self.bar.setFixedHeight(6)
        self.bar.hide()
        self.reason = ElidedLabel()
        self.reason.setObjectName("error")
        self.reason.hide()
        self.cancel = QToolButton()
        self.cancel.setText("×")
        self.cancel.setAutoRaise(True)
        self.cancel.setToolTip("Stop adding this PDF")
        self.cancel.clicked.connect(self.cancel_clicked)
        self.dismiss = QPushButton("Dismiss")
        self.dismiss.setToolTip("Remove this message from the list")
        self.dismiss.clicked.connect(self.dismiss_clicked)
        self.dismiss.hide()

        top = QHBoxLayout()
        top.setSpacing(4)
        top.addWidget(self.name, 1)
        top.addWidget(self.eta)
        top.addWidget(self.cancel)
        top.addWidget(self.dismiss)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 5, 8, 6)
        layout.setSpacing(2)
        layout.addLayout(top)
        layout.addWidget(self.bar)
        layout.addWidget(self.stage)
        layout.addWidget(self.reason)

    def show_progress(self, p: IngestProgress) -> None:
        if p.title:
            self.name.setText(p.title)
        self.bar.show()
        self.bar.setValue(round(min(max(p.fraction, 0.0), 1.0) * PROGRESS_STEPS))
        self.stage.setText(stage_text(p))
        self.eta.setText(eta_text(p.eta_s))

    def show_failed(self, message: str) -> None:
        self.failed = True
        self.setProperty("failed", True)
        self.style().unpolish(self)
        self.style().polish(self)
        self.bar.hide()
        self.cancel.hide()
        self.eta.hide()
        self.stage.setText("Could not add this PDF")
        self.reason.setText(message)
        self.reason.setToolTip(message)
        self.reason.show()
        self.dismiss.show()
