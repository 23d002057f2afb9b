"""What the answer puts over the PDF view beyond its passages: the spot a citation
mark points to, and where the target looked while writing a run beyond the passages
(the heat overlay, with its legend in a card over the pages).

`PdfOverlay` belongs to a `PdfView` (`view.overlay`); like the view's own calls, each
waits for the document to open when it is still opening.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from app.gui.pdf.canvas import Passage, PdfCanvas
from app.gui.pdf.heat import HeatLegend, HeatSpot, PageRect

if TYPE_CHECKING:
    from app.gui.pdf.view import PdfView


class PdfOverlay(QObject):
    """The cited spot and the heat overlay of one `PdfView`.

    `heat_cleared`: the user closed the legend (the overlay is gone).
    """

    heat_cleared = Signal()

    def __init__(self, view: PdfView) -> None:
        super().__init__(view)
        self._view = view
        self.legend = HeatLegend(view)
        self.legend.closed.connect(self._closed)

    @property
    def _canvas(self) -> PdfCanvas:
        return self._view.canvas

    def show_spot(self, spot: Passage) -> None:
        """Outline `spot` (the lines a citation points to), centre its first line in
        the view and flash it; it stays outlined until another or `clear_spot`."""
        if not spot.rects or self._view.when_open(lambda: self.show_spot(spot)):
            return
        rects = tuple(r for r in spot.rects if 1 <= r[0] <= self._view.page_count)
        if not rects:
            return
        self._canvas.set_spot(Passage(spot.label, rects))
        self._view.centre_on(rects[0])
        self._canvas.flash(rects)

    def clear_spot(self) -> None:
        self._canvas.set_spot(None)

    @property
    def spot(self) -> Passage | None:
        return self._canvas.spot

    def set_heat(self, spots: Sequence[HeatSpot], summary: str = "") -> None:
        """Draw where the target looked (the spots on the shown document) and show the
        legend with `summary`; no spots and no summary clear both."""
        self._canvas.set_heat(spots)
        if spots or summary:
            self.legend.show_summary(summary)
            self.place_legend()
        else:
            self.legend.hide()

    def clear_heat(self) -> None:
        self.set_heat(())

    @property
    def heat(self) -> tuple[HeatSpot, ...]:
        return self._canvas.heat

    @property
    def heat_shown(self) -> bool:
        """Whether the heat overlay's legend is up."""
        return self.legend.isVisible()

    def focus(self, rects: Sequence[PageRect]) -> None:
        """Centre the first of `rects` in the view and flash them all."""
        if not rects or self._view.when_open(lambda: self.focus(rects)):
            return
        inside = tuple(r for r in rects if 1 <= r[0] <= self._view.page_count)
        if inside:
            self._view.centre_on(inside[0])
            self._canvas.flash(inside)

    def place_legend(self) -> None:
        """The legend in the top right corner of the pages, clear of the scroll bar."""
        if not self.legend.isVisible():
            return
        area = self._view.pages_area()
        self.legend.resize(self.legend.sizeHint().expandedTo(self.legend.minimumSize()))
        size = self.legend.size()
        self.legend.move(max(area.left(), area.right() - size.width() - 10), area.top() + 10)
        self.legend.raise_()

    def _closed(self) -> None:
        self.clear_heat()
        self.heat_cleared.emit()
