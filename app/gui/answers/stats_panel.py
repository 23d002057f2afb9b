"""Live statistics of an answer: tiles, a per-round chart and the measured comparison.

The tiles update from each batch of `DraftStep`s while an answer streams and take the
final totals from `Finished`. The speedup tile is the engine's estimate (decode
tokens/s × the target's calibrated one-token step); "Compare with target only" asks
the main window for a measured figure, shown below the chart.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.gui.answers.round_chart import RoundChart
from core.events import DraftStep, Finished

DASH = "—"
COMPARE_TEXT = "Compare with target only"
COMPARING_TEXT = "Running target only…"
SPEEDUP_TIP = (
    "The engine's estimate: decode tokens/s × the target's measured one-token step time "
    "at this context. Use 'Compare with target only' for a measured figure."
)
# key: (name, tooltip)
TILES: dict[str, tuple[str, str]] = {
    "rounds": ("Rounds", "Decoding rounds: one target forward pass each"),
    "acceptance": ("Acceptance", "Share of drafted tokens the target accepted"),
    "mean_accepted": ("Accepted / round", "Mean accepted draft tokens per round"),
    "tokens_per_s": ("Tokens/s", "New tokens per second of decoding (prefill not counted)"),
    "speedup": ("Speedup", SPEEDUP_TIP),
}


class StatTile(QFrame):
    """A value in large type over its name in small type."""

    def __init__(self, name: str, tip: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("card")
        self.setToolTip(tip)
        self.value = QLabel(DASH, self)
        self.value.setObjectName("statValue")
        self.name = QLabel(name, self)
        self.name.setObjectName("statName")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.setSpacing(0)
        layout.addWidget(self.value)
        layout.addWidget(self.name)


class StatsPanel(QWidget):
    """Tiles, the round chart, and the "Compare with target only" button and result."""

    compare_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tiles = {key: StatTile(name, tip, self) for key, (name, tip) in TILES.items()}
        self.chart = RoundChart(self)
        self.compare_button = QPushButton(COMPARE_TEXT, self)
        self.compare_button.setToolTip(
            "Answer the same question again with the target alone and measure the speedup"
        )
        self.compare_button.clicked.connect(self.compare_requested)
        self.comparison = QLabel("", self)
        self.comparison.setObjectName("statName")
        self.comparison.setWordWrap(True)
        tiles = QHBoxLayout()
        tiles.setSpacing(6)
        for tile in self.tiles.values():
            tiles.addWidget(tile)
        bottom = QHBoxLayout()
        bottom.addWidget(self.compare_button)
        bottom.addWidget(self.comparison, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(tiles)
        layout.addWidget(self.chart, 1)
        layout.addLayout(bottom)
        self._compare_enabled = False
        self._comparing = False
        self._baseline_s = 0.0
        self.reset()
        self._apply_compare_state()

    # -- live values ----------------------------------------------------------------

    def reset(self) -> None:
        """A new answer: zero the totals, forget the baseline and the comparison."""
        self._mode = ""
        self._rounds = self._drafted = self._accepted = self._new = 0
        self._decode_s = 0.0
        self._baseline_s = 0.0
        self.chart.reset()
        self.comparison.clear()
        self._show_live()

    def set_mode(self, mode: str) -> None:
        """The decoding mode; "target" (no drafting) shows acceptance as "—"."""
        self._mode = mode
        self._show_live()

    def set_baseline(self, step_s: float) -> None:
        """The target's calibrated one-token step time (from the `Calibrated` event)."""
        self._baseline_s = step_s
        self._show_live()

    def add_steps(self, steps: Sequence[DraftStep]) -> None:
        for step in steps:
            self._rounds += 1
            self._drafted += len(step.drafted_ids)
            self._accepted += step.accepted
            self._new += len(step.emitted_ids)
            self._decode_s += step.draft_s + step.verify_s
        self.chart.add_steps(steps)
        if steps:
            self._show_live()

    def finish(self, f: Finished) -> None:
        """The run's final totals, from the engine's own count."""
        self._mode = f.mode
        self._set("rounds", str(f.rounds))
        drafting = f.mode != "target" and f.drafted > 0
        self._set("acceptance", f"{f.acceptance_rate:.0%}" if drafting else DASH)
        self._set("mean_accepted", f"{f.mean_accepted_length:.2f}" if drafting else DASH)
        self._set("tokens_per_s", f"{f.tokens_per_s:.1f}" if f.decode_s > 0 else DASH)
        speedup = f.speedup_estimate
        self._set("speedup", f"{speedup:.2f}× (est.)" if speedup > 0 else DASH)

    def values(self) -> dict[str, str]:
        """The tiles' shown values by key (for tests and the status bar)."""
        return {key: tile.value.text() for key, tile in self.tiles.items()}

    def _show_live(self) -> None:
        drafting = self._mode != "target" and self._drafted > 0
        tok_s = self._new / self._decode_s if self._decode_s > 0 else 0.0
        self._set("rounds", str(self._rounds) if self._rounds else DASH)
        self._set("acceptance", f"{self._accepted / self._drafted:.0%}" if drafting else DASH)
        mean = self._accepted / self._rounds if self._rounds else 0.0
        self._set("mean_accepted", f"{mean:.2f}" if drafting else DASH)
        self._set("tokens_per_s", f"{tok_s:.1f}" if tok_s > 0 else DASH)
        speedup = tok_s * self._baseline_s
        self._set("speedup", f"{speedup:.2f}× (est.)" if speedup > 0 else DASH)

    def _set(self, key: str, text: str) -> None:
        self.tiles[key].value.setText(text)

    # -- the measured comparison ----------------------------------------------------

    def set_compare_enabled(self, enabled: bool) -> None:
        self._compare_enabled = enabled
        self._apply_compare_state()

    def set_comparing(self, comparing: bool) -> None:
        """While the target-only run goes, the button is disabled and says so."""
        self._comparing = comparing
        if comparing:
            self.comparison.clear()
        self._apply_compare_state()

    def _apply_compare_state(self) -> None:
        self.compare_button.setText(COMPARING_TEXT if self._comparing else COMPARE_TEXT)
        self.compare_button.setEnabled(self._compare_enabled and not self._comparing)

    def show_comparison(
        self, speedup: float, identical: bool, target_tok_s: float, tok_s: float
    ) -> None:
        """The measured result: `speedup` = tok_s / target_tok_s of the two runs."""
        self.comparison.setText(format_comparison(speedup, identical, target_tok_s, tok_s))

    def comparison_text(self) -> str:
        return self.comparison.text()


def format_comparison(speedup: float, identical: bool, target_tok_s: float, tok_s: float) -> str:
    """ "Measured: 1.28× faster than target only (9.8 → 12.5 tok/s) · answers identical"."""
    if speedup >= 1.0:
        head = f"Measured: {speedup:.2f}× faster than target only"
    else:
        head = f"Measured: {speedup:.2f}× the speed of target only (slower)"
    same = "answers identical" if identical else "answers differ"
    return f"{head} ({target_tok_s:.1f} → {tok_s:.1f} tok/s) · {same}"
