"""Timing and planning of the decoding loop: how long to draft, whether to run the drafter.

The loop (loop.py) asks `Pacer` for a draft length per proposer and reports each
round back; everything that measures time lives here, so that the loop reads like
the algorithm. `timed` planning learns the machine's verify-cost curve; untimed
planning (sampling, eta > 0: the output depends on the draft path) depends on the
input and the seed alone.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator

import torch

from core.config import DecodeConfig
from core.decoding.lm import Sequence, sequence_device, step_bytes
from core.events import Calibrated, DraftSource

CALIBRATION_STEPS = 3
DRAFT_STEP_RATIO = 0.65  # self-drafter step / target step (same weights, shorter context)
DRAFTER_MIN_CONFIDENCE = 0.6  # the drafter stops drafting below this top probability
RECALIBRATE_GROWTH = 512  # re-measure the baseline step after this many new tokens


class DraftPlanner:
    """Chooses a draft length that maximises expected tokens per unit of target time.

    Verify time per block size is learned online (a moving average of the measured
    forward of n = k + 1 tokens), starting from an optimistic prior, so the loop finds
    its machine's cost curve: on 2 CPU cores 2-3 rows cost ~1.1 one-token steps and 4+
    rows ~1.4-1.8 (MKL's small-matrix kernels); on a GPU the curve is nearly flat.
    Acceptance per token is a moving estimate per draft source. With acceptance a, a
    draft of k tokens yields (1 - a^(k+1)) / (1 - a) tokens in expectation.
    """

    def __init__(self, cap: int, adaptive: bool, base_step_s: float, timed: bool = True) -> None:
        self.cap, self.adaptive = cap, adaptive
        self.base = base_step_s
        # Untimed: a fixed curve, so that the draft path depends on the input (and seed)
        # alone, not on machine load. Needed wherever the output depends on the draft
        # path: sampling, and eta > 0 (p_hat depends on q).
        self.timed = timed
        self.cost: dict[int, float] = {}  # n -> seconds of a verify forward of n tokens
        self.accept = {"lookup": 0.7, "model": 0.7}  # per-token acceptance estimates

    def verify_cost(self, n: int) -> float:
        if not self.timed:
            return self.base * (1.0 + 0.15 * (n - 1))
        if n in self.cost:
            return self.cost[n]
        return self.base * (1.0 + 0.03 * (n - 1))  # optimistic until measured

    def observe(self, source: str, n: int, seconds: float, drafted: int, accepted: int) -> None:
        self.cost[n] = seconds if n not in self.cost else 0.7 * self.cost[n] + 0.3 * seconds
        if drafted and source in self.accept:
            # accepted tokens over accept-or-reject decisions (one rejection per round)
            trials = accepted + (1 if accepted < drafted else 0)
            self.accept[source] = 0.6 * self.accept[source] + 0.4 * accepted / trials

    def length(self, source: str, limit: int, draft_step_s: float = 0.0) -> int:
        """Best k in [1, min(cap, limit)] (every k if not adaptive: the cap)."""
        top = min(self.cap, limit)
        if not self.adaptive or top <= 1:
            return top
        a = min(self.accept[source], 0.98)
        best_k, best = 1, 0.0
        for k in range(1, top + 1):
            gain = (1 - a ** (k + 1)) / (1 - a)
            rate = gain / (self.verify_cost(k + 1) + k * draft_step_s)
            if rate > best * 1.02:  # prefer shorter on near-ties
                best_k, best = k, rate
        return best_k


class DrafterGate:
    """Skips the drafter model while it does not pay for itself.

    A self-speculative draft step costs ~0.6 of a target step here (it reads the same
    weights), so drafts must be accepted at a high rate to win. The gate keeps a moving
    average of the acceptance rate and, below `floor`, lets the drafter run only every
    `probe`-th round to notice when it becomes useful again.
    """

    def __init__(self, adaptive: bool, floor: float = 0.6, probe: int = 4) -> None:
        self.adaptive, self.floor, self.probe = adaptive, floor, probe
        self.rate = 1.0
        self.skipped = 0

    def open(self) -> bool:
        if not self.adaptive or self.rate >= self.floor or self.skipped >= self.probe:
            self.skipped = 0
            return True
        self.skipped += 1
        return False

    def update(self, drafted: int, accepted: int) -> None:
        if drafted:
            self.rate = 0.5 * self.rate + 0.5 * accepted / drafted


def calibrate(target: Sequence, last: int, steps: int = CALIBRATION_STEPS) -> float:
    """Median time of a one-token target step at the current context (then undone).

    One untimed step first: in a fresh process the first decode-path forward pays for
    first-touch page faults and kernel set-up (the weights may not have been read yet
    when the prefix came from the KV cache or was read in bf16), which is not a step.
    """
    device = sequence_device(target)
    ids = torch.tensor([last], device=device)
    times = []
    for i in range(steps + 1):
        base = target.length
        t0 = time.perf_counter()
        target.forward(ids, "last")
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i:
            times.append(time.perf_counter() - t0)
        target.crop(base)
    return statistics.median(times)


class Pacer:
    """The loop's clock and planner: calibration, draft lengths, the drafter gate."""

    def __init__(
        self, target: Sequence, cfg: DecodeConfig, always_draft: bool,
        cost_prior: dict[int, float] | None,
    ) -> None:  # fmt: skip
        self.target, self.cfg = target, cfg
        self.device = sequence_device(target)
        self.min_confidence = DRAFTER_MIN_CONFIDENCE if cfg.adaptive_gamma else 0.0
        # With eta > 0 the drafter model reads every round anyway (p_hat needs its q).
        self.gate = DrafterGate(cfg.adaptive_gamma and not always_draft)
        self.timed = cfg.temperature <= 0 and cfg.effective_eta == 0
        self.prior = cost_prior or {}
        self.baseline_s = 0.0
        self.plan = DraftPlanner(cfg.gamma, cfg.adaptive_gamma, 0.0, timed=self.timed)
        self._at = 0  # target length at the last calibration

    def calibrate(self, last: int, first: bool = True) -> Iterator[Calibrated]:
        """Measure the one-token step (at the start, and every RECALIBRATE_GROWTH tokens)."""
        if not first and self.target.length - self._at < RECALIBRATE_GROWTH:
            return
        self.baseline_s = calibrate(self.target, last)
        # The planner prices verifies against the baseline the draft step uses: with an
        # old one, the untimed path would follow the machine's load.
        self.plan.base = self.baseline_s
        if first:
            self.plan.cost.update({n: r * self.baseline_s for n, r in self.prior.items()})
            self.plan.cost[1] = self.baseline_s
        self._at = self.target.length
        yield Calibrated(self.target.length + 1, self.baseline_s, step_bytes(self.target))

    def length(self, source: DraftSource, limit: int) -> int:
        draft_step = DRAFT_STEP_RATIO * self.baseline_s if source == "model" else 0.0
        return self.plan.length(source, limit, draft_step)

    def drafter_open(self) -> bool:
        return self.gate.open()

    def observe(self, source: DraftSource, drafted: int, accepted: int, forward_s: float) -> None:
        self.plan.observe(source, drafted + 1, forward_s, drafted, accepted)
        if source == "model":
            self.gate.update(drafted, accepted)

    def verify_costs(self) -> dict[int, float]:
        """The learned curve as ratios to the step (a `cost_prior` for the next run)."""
        return {n: c / self.plan.base for n, c in self.plan.cost.items()}

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
