"""bench/plots.py draws every plot from the JSON the benchmarks write, and skips (with
a line saying so) the plots whose input is missing."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from bench.quality import (
    Answered,
    QualityReport,
    Variant,
    mode_variants,
    quality_to_json,
    sweep_variants,
)
from bench.scoring import QAItem, score, summarise
from core.config import DecodeConfig

PLOTS = Path(__file__).resolve().parents[2] / "bench" / "plots.py"
PNG = b"\x89PNG\r\n\x1a\n"


def _plots() -> ModuleType:
    pytest.importorskip("matplotlib")
    spec = importlib.util.spec_from_file_location("bench_plots", PLOTS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _report(variants: list[Variant]) -> QualityReport:
    """A report built by the benchmark's own types: two questions, both groups."""
    items = [QAItem("a-1", "a.pdf", "q?", "The keeper.", ("keeper",), None),
             QAItem("b-1", "b.pdf", "q?", "At dusk.", ("dusk",), None)]  # fmt: skip
    answers = []
    for n, variant in enumerate(variants):
        for item, group in zip(items, ("fits", "longer"), strict=True):
            text = "the keeper at dusk" if n % 2 else "nobody"
            scored = score(item, variant.label, text, 10 + n, 3 * n, 2 * n, 2 + n)
            answers.append(Answered(scored, item.doc, group, text, 1.0 / (n + 1)))  # type: ignore[arg-type]
    summary = tuple(summarise([a.scored for a in answers]))
    speed = {v.label: 10.0 * (1 + i / 10) for i, v in enumerate(variants)}
    groups = {
        g: (tuple(summarise([a.scored for a in answers if a.group == g])), speed)
        for g in ("fits", "longer")
    }
    return QualityReport(tuple(variants), tuple(answers), summary, speed, groups, 1.0)  # type: ignore[arg-type]


def test_every_plot_is_drawn_from_benchmark_json(tmp_path: Path) -> None:
    plots = _plots()
    results, out = tmp_path / "results", tmp_path / "plots"
    results.mkdir()
    base = DecodeConfig()
    docs = {
        "quality.json": quality_to_json(_report(mode_variants(["rag", "sd", "rapid"], base))),
        "sweep_eta.json": quality_to_json(_report(sweep_variants("eta=0,1,5,10,20", base))),
        "sweep_gamma.json": quality_to_json(_report(sweep_variants("gamma=2,4,8", base))),
        "context_sweep.json": {
            "contexts": [
                {
                    "document_tokens": n,
                    "modes": {"target": {"ratio": 1.0}, "rapid": {"ratio": 0.8 + n / 8000}},
                }
                for n in (1000, 2000, 4000)
            ]
        },
        "gpu_speed.json": {
            "device": "NVIDIA H100",
            "models": {
                "llama-3.1-8b": [
                    {"context": 8192, "projected_speedup": 1.4},
                    {"context": 131072, "projected_speedup": 2.6},
                ]
            },
        },
    }
    for name, data in docs.items():
        (results / name).write_text(json.dumps(data), encoding="utf-8")
    assert plots.main(["--results", str(results), "--out", str(out)]) == 0
    drawn = sorted(p.name for p in out.iterdir())
    assert drawn == sorted(plots.PLOTS)
    for png in out.iterdir():
        assert png.read_bytes()[:8] == PNG and png.stat().st_size > 10_000


def test_missing_inputs_are_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plots = _plots()
    assert plots.main(["--results", str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    said = capsys.readouterr().out
    assert said.count("skipped") == len(plots.PLOTS)
    assert not list((tmp_path / "out").iterdir())
