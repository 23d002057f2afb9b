"""The statistics panel and the round chart with scripted decoding rounds: live tiles,
final totals, target-only mode, the comparison line and the chart's data."""

from __future__ import annotations

from typing import Any

import pytest
from PySide6.QtGui import QColor, QImage

from app.gui.answers.round_chart import CAPACITY, WINDOW, RoundChart, nice_ceiling
from app.gui.answers.stats_panel import COMPARE_TEXT, COMPARING_TEXT, SPEEDUP_TIP, StatsPanel
from app.gui.theme import TOKEN_STYLES
from core.events import DraftStep, Finished

pytestmark = pytest.mark.gui


def _step(
    n: int,
    drafted: int,
    accepted: int,
    kind: str = "correction",
    own: bool = True,
    seconds: float = 0.1,
) -> DraftStep:
    return DraftStep(
        round=n, drafted_ids=tuple(range(drafted)), drafted_texts=("x",) * drafted,
        accepted=accepted, token_id=7 if own else None, token_text="y", token_kind=kind,  # type: ignore[arg-type]
        source="lookup" if drafted else "none", p_target=(0.5,) * drafted,
        p_draft=(0.5,) * drafted, p_hat=(0.5,) * drafted, token_p_target=0.5,
        token_p_hat=0.5, draft_s=seconds / 4, verify_s=seconds * 3 / 4, context_tokens=100 + n,
    )  # fmt: skip


# 4 rounds: drafted 4+4+2+3 = 13, accepted 3+4+0+2 = 9, emitted 4+5+1+2 = 12, 0.4 s
STEPS = [_step(1, 4, 3), _step(2, 4, 4, "bonus"), _step(3, 2, 0), _step(4, 3, 2, own=False)]


def _finished(mode: str = "rapid", drafted: int = 13, accepted: int = 9) -> Finished:
    return Finished(
        answer="...", mode=mode, stop_reason="eos", new_tokens=12, rounds=4, drafted=drafted,
        accepted=accepted, target_prefill_s=1.0, drafter_prefill_s=0.2, decode_s=0.5,
        end_to_end_s=2.0, baseline_step_s=0.05,
    )  # fmt: skip


@pytest.fixture
def panel(qtbot: Any) -> StatsPanel:
    widget = StatsPanel()
    qtbot.addWidget(widget)
    return widget


def test_empty_panel_shows_dashes(panel: StatsPanel) -> None:
    assert set(panel.values().values()) == {"—"}
    assert panel.tiles["speedup"].toolTip() == SPEEDUP_TIP
    assert panel.tiles["speedup"].value.objectName() == "statValue"
    assert panel.tiles["speedup"].name.objectName() == "statName"


def test_live_values_after_steps(panel: StatsPanel) -> None:
    panel.add_steps(STEPS[:2])
    panel.add_steps(STEPS[2:])
    values = panel.values()
    assert values["rounds"] == "4"
    assert values["acceptance"] == f"{9 / 13:.0%}" == "69%"
    assert values["mean_accepted"] == "2.25"
    assert values["tokens_per_s"] == "30.0"  # 12 tokens / 0.4 s
    assert values["speedup"] == "—"  # no baseline yet
    panel.set_baseline(0.05)
    assert panel.values()["speedup"] == "1.50× (est.)"


def test_finish_takes_the_engine_totals(panel: StatsPanel) -> None:
    panel.set_baseline(0.05)
    panel.add_steps(STEPS)
    panel.finish(_finished())
    assert panel.values() == {"rounds": "4", "acceptance": "69%", "mean_accepted": "2.25",
                              "tokens_per_s": "24.0", "speedup": "1.20× (est.)"}  # fmt: skip


def test_target_mode_has_no_acceptance(panel: StatsPanel) -> None:
    panel.set_mode("target")
    panel.add_steps([_step(n, 0, 0, "target") for n in range(1, 6)])
    values = panel.values()
    assert values["rounds"] == "5"
    assert values["acceptance"] == "—" and values["mean_accepted"] == "—"
    assert values["tokens_per_s"] == "10.0"
    panel.finish(_finished("target", drafted=0, accepted=0))
    assert panel.values()["acceptance"] == "—"
    assert panel.values()["speedup"] == "1.20× (est.)"


def test_reset_clears_values_baseline_chart_and_comparison(panel: StatsPanel) -> None:
    panel.set_baseline(0.05)
    panel.add_steps(STEPS)
    panel.show_comparison(1.28, True, 9.8, 12.5)
    panel.reset()
    assert set(panel.values().values()) == {"—"}
    assert panel.comparison_text() == ""
    assert panel.chart.data().rounds == ()
    panel.add_steps(STEPS)
    assert panel.values()["speedup"] == "—"  # the baseline went with the reset


def test_comparison_text(panel: StatsPanel) -> None:
    panel.show_comparison(1.28, True, 9.8, 12.5)
    assert panel.comparison_text() == (
        "Measured: 1.28× faster than target only (9.8 → 12.5 tok/s) · answers identical"
    )
    panel.show_comparison(0.9, False, 10.0, 9.0)
    assert panel.comparison_text() == (
        "Measured: 0.90× the speed of target only (slower) (10.0 → 9.0 tok/s) · answers differ"
    )


def test_compare_button_states(panel: StatsPanel, qtbot: Any) -> None:
    button = panel.compare_button
    assert not button.isEnabled()
    panel.set_compare_enabled(True)
    assert button.isEnabled() and button.text() == COMPARE_TEXT
    with qtbot.waitSignal(panel.compare_requested):
        button.click()
    panel.set_comparing(True)
    assert not button.isEnabled() and button.text() == COMPARING_TEXT
    panel.set_compare_enabled(True)
    assert not button.isEnabled()  # still running
    panel.set_comparing(False)
    assert button.isEnabled() and button.text() == COMPARE_TEXT


def test_chart_data_after_steps(qtbot: Any) -> None:
    chart = RoundChart()
    qtbot.addWidget(chart)
    chart.add_steps(STEPS)
    data = chart.data()
    assert data.rounds == (1, 2, 3, 4)
    assert data.accepted == (3, 4, 0, 2)
    assert data.own == ("correction", "bonus", "correction", None)
    assert data.tok_s == pytest.approx([4 / 0.1, 9 / 0.2, 10 / 0.3, 12 / 0.4])


def test_chart_scrolls_and_rolls(qtbot: Any) -> None:
    chart = RoundChart()
    qtbot.addWidget(chart)
    steps = [_step(n, 2, n % 3 // 2 * 2, seconds=0.1 if n % 2 else 0.3) for n in range(1, 301)]
    for i in range(0, len(steps), 25):
        chart.add_steps(steps[i : i + 25])
    data = chart.data()
    assert data.rounds == tuple(range(301 - CAPACITY, 301))
    recent = steps[-WINDOW:]
    rate = sum(len(s.emitted_ids) for s in recent) / sum(s.draft_s + s.verify_s for s in recent)
    assert data.tok_s[-1] == pytest.approx(rate)
    chart.reset()
    assert chart.data().rounds == () and chart.data().tok_s == ()


def _colours(chart: RoundChart) -> set[str]:
    image = QImage(chart.size(), QImage.Format.Format_RGB32)
    image.fill(QColor("white"))
    chart.render(image)
    return {image.pixelColor(x, y).name() for x in range(image.width())
            for y in range(image.height())}  # fmt: skip


def test_chart_paints_bars_in_the_theme_colours(qtbot: Any) -> None:
    chart = RoundChart()
    qtbot.addWidget(chart)
    chart.resize(chart.sizeHint())
    assert chart.sizeHint().width() == 320
    empty = _colours(chart)
    bars = {QColor(TOKEN_STYLES[k].foreground).name() for k in ("accepted", "correction",
                                                                "bonus")}  # fmt: skip
    assert len(empty) > 1 and not bars & empty  # the empty-state text only
    chart.add_steps(STEPS * 30)
    assert bars <= _colours(chart)


@pytest.mark.parametrize(("value", "ceiling"), [(0, 1), (1, 1), (3, 5), (7, 10), (12, 20),
                                                (23, 25), (0.3, 0.5), (41.0, 50)])  # fmt: skip
def test_nice_ceiling(value: float, ceiling: float) -> None:
    assert nice_ceiling(value) == pytest.approx(ceiling)
