"""The decoding engine on every device: all four modes, greedy and sampled, self and
two-model drafting (bench/gpu_checks.py). On the CPU in every run; on CUDA where there
is one (`gpu` marker), including the Engine with a real PDF.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from bench.gpu_checks import CASES, Case, Rig, run_checks

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_engine_checks_on_cpu() -> None:
    report = run_checks(torch.device("cpu"), say=lambda _: None)
    assert len(report) == len(CASES) + 2


def test_drafts_are_accepted_so_the_checks_exercise_verification() -> None:
    """The second model is a noisy copy of the target: its drafts are often accepted and
    sometimes not, so `sd == target` above checks both paths, not an empty draft."""
    res = Rig(torch.device("cpu")).run(Case("sd", 0.0, "other"))
    assert 0 < res.accepted < res.drafted


@pytest.mark.gpu
@cuda
def test_engine_checks_on_cuda() -> None:
    run_checks(torch.device("cuda"), say=lambda _: None)


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("mode", ["target", "rag", "sd", "rapid"])
@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_engine_on_cuda_with_a_pdf(
    mode: str, temperature: float, tiny_model_dir: Path, make_pdf: Callable[..., Path],
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The whole Engine (library, retrieval, prompts, KV store) with the model on CUDA."""
    from core.api import Engine
    from core.config import DecodeConfig, IndexConfig, ModelConfig
    from core.events import Finished, ModelLoaded

    monkeypatch.setenv("RAPIDQA_CACHE", str(tmp_path / "cache"))
    pdf = make_pdf(["The gauge was installed in 1903 by the harbour board."] * 3)
    engine = Engine(ModelConfig(target=str(tiny_model_dir), drafter="same", device="cuda"),
                    IndexConfig(library=tmp_path / "library"))  # fmt: skip
    cfg = DecodeConfig(mode=mode, temperature=temperature, max_new_tokens=12)  # type: ignore[arg-type]
    events = list(engine.ask("When was the gauge installed?", [pdf], cfg))
    loaded = [e for e in events if isinstance(e, ModelLoaded)]
    assert loaded and loaded[0].device.startswith("cuda")
    finished = [e for e in events if isinstance(e, Finished)][-1]
    assert finished.new_tokens > 0


def test_gpu_speed_smoke_run_on_cpu(tmp_path: Path) -> None:
    """bench/gpu_speed.py end to end with a tiny model on the CPU: checks, then the
    step, its bound, the verify curve and the loop, as JSON."""
    import json
    import subprocess
    import sys

    out = tmp_path / "gpu_speed.json"
    script = Path(__file__).resolve().parents[2] / "bench" / "gpu_speed.py"
    subprocess.run(
        [sys.executable, str(script), "--device", "cpu", "--tiny", "--contexts", "256",
         "--repeat", "2", "--json", str(out)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    data = json.loads(out.read_text())
    assert data["checks"].startswith("passed")
    (row,) = data["rows"]
    assert row["context"] == 256 and row["step_ms"] > 0 and row["bound_ms"] > 0
    assert sorted(row["verify"]) == [str(n) for n in range(2, 9)]
    assert row["loop_tokens_per_s"] > 0
