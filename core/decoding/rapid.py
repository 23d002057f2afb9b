"""The RAPID decoding loop (docs/architecture.md, steps 2-8): draft, verify, accept, crop, repeat.

One function serves every mode: with no draft source each round drafts nothing and
the target emits one token (the autoregressive baseline, `target` and `rag` modes);
with eta = 0 it is plain lossless speculative decoding (`sd`); with eta > 0 the
output follows the retrieval-augmented target distribution p_hat (`rapid`).

Invariant at the start of a round: the target's KV cache holds every committed token
but the last one, `last`, which the round's verify forward feeds first.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor

from core.config import DecodeConfig
from core.decoding.drafters import LookupDrafter, ModelDrafter
from core.decoding.lm import Sequence, sequence_device, step_bytes
from core.decoding.sampling import one_hot, rapid_target_probs
from core.decoding.verify import verify
from core.events import Calibrated, DraftSource, DraftStep

CALIBRATION_STEPS = 3
DRAFT_STEP_RATIO = 0.65  # self-drafter step / target step (same weights, shorter context)
DRAFTER_MIN_CONFIDENCE = 0.6  # the drafter stops drafting below this top probability
RECALIBRATE_GROWTH = 512  # re-measure the baseline step after this many new tokens


@dataclass
class LoopResult:
    """Totals of one decoding run (filled in as the loop goes)."""

    tokens: list[int]
    stop_reason: str = "max_tokens"
    rounds: int = 0
    drafted: int = 0
    accepted: int = 0
    decode_s: float = 0.0
    baseline_step_s: float = 0.0
    # Verify forward of n tokens / one-token step, as learned in this run (n -> ratio);
    # pass it back as `cost_prior` so the next run starts from it.
    verify_costs: dict[int, float] = field(default_factory=dict)


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


class Detokenizer:
    """Texts of tokens in context (byte-level BPE pieces only make sense in sequence)."""

    def __init__(self, decode: Callable[[list[int]], str]) -> None:
        self._decode = decode
        self.ids: list[int] = []
        self.text = ""

    def preview(self, extra: list[int]) -> list[str]:
        """Texts of `extra` tokens as if appended after the committed ones."""
        out, prev = [], self.text
        for j in range(1, len(extra) + 1):
            cur = self._decode(self.ids + extra[:j])
            out.append(cur[len(prev) :] if cur.startswith(prev) else cur[-1:])
            prev = cur
        return out

    def commit(self, ids: list[int]) -> None:
        self.ids.extend(ids)
        self.text = self._decode(self.ids)


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
        _sync(device)
        if i:
            times.append(time.perf_counter() - t0)
        target.crop(base)
    return statistics.median(times)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def decode(
    target: Sequence,
    last: int,
    cfg: DecodeConfig,
    *,
    vocab: int,
    eos_ids: frozenset[int],
    detok: Detokenizer,
    drafter: ModelDrafter | None = None,
    lookup: LookupDrafter | None = None,
    prompt_tail: list[int] | None = None,
    cancelled: Callable[[], bool] = lambda: False,
    result: LoopResult | None = None,
    cost_prior: dict[int, float] | None = None,
) -> Iterator[DraftStep | Calibrated]:
    """Run rounds until EOS, `cfg.max_new_tokens` or `cancelled()`; totals go to `result`."""
    res = result if result is not None else LoopResult(tokens=[])
    device = sequence_device(target)
    eta = cfg.effective_eta
    generator = torch.Generator(device="cpu").manual_seed(cfg.seed)
    stop_ids = torch.tensor(sorted(eos_ids), dtype=torch.long)
    min_conf = DRAFTER_MIN_CONFIDENCE if cfg.adaptive_gamma else 0.0
    gate = DrafterGate(cfg.adaptive_gamma)  # the drafter model
    context = [*(prompt_tail or [])[-8:], last]  # tail of committed tokens, for lookup
    res.baseline_step_s = calibrate(target, last)
    yield Calibrated(target.length + 1, res.baseline_step_s, step_bytes(target))
    calibrated_at = target.length
    timed = cfg.temperature <= 0 and eta == 0  # only then is the output draft-independent
    plan = DraftPlanner(cfg.gamma, cfg.adaptive_gamma, res.baseline_step_s, timed=timed)
    plan.cost.update({n: r * res.baseline_step_s for n, r in (cost_prior or {}).items()})
    plan.cost[1] = res.baseline_step_s
    while len(res.tokens) < cfg.max_new_tokens:
        if cancelled():
            res.stop_reason = "cancelled"
            return
        if target.length - calibrated_at >= RECALIBRATE_GROWTH:
            res.baseline_step_s = calibrate(target, last)
            # The planner prices verifies against the baseline the draft step uses:
            # with the old one, the untimed path would follow the machine's load.
            plan.base = res.baseline_step_s
            calibrated_at = target.length
            yield Calibrated(target.length + 1, res.baseline_step_s, step_bytes(target))
        t0 = time.perf_counter()
        remaining = cfg.max_new_tokens - len(res.tokens)
        limit = max(0, remaining - 1)
        # 1-2. Draft: cheap lookup first, then the drafter model.
        drafts: list[int] = []
        q_rows: list[Tensor] = []
        source: DraftSource = "none"
        if limit and lookup is not None:
            drafts = lookup.propose(context, plan.length("lookup", limit))
            if drafts:
                source = "lookup"
                q_rows = [one_hot(d, vocab) for d in drafts]
        d0 = drafter.seq.length + len(drafter.pending) if drafter is not None else 0
        if limit and not drafts and drafter is not None and gate.open():
            draft_step = DRAFT_STEP_RATIO * res.baseline_step_s
            drafts, q_rows = drafter.propose(
                plan.length("model", limit, draft_step), cfg.temperature, generator, min_conf
            )
            source = "model"
        t1 = time.perf_counter()
        # 3. Verify: one target forward over [last, d_1 .. d_k].
        base = target.length
        logits = target.forward(torch.tensor([last, *drafts], device=device), "all")
        _sync(device)
        forward_s = time.perf_counter() - t1
        p_draft = torch.stack(q_rows).to(logits.device) if q_rows else None
        # 7. The bonus position's q: a model drafter consumes d_k (it must before the next
        # round anyway); with eta = 0 p_hat = p there, so that forward is skipped.
        q_bonus = None
        if source == "model" and eta > 0 and drafter is not None:
            q_bonus = _bonus_q_if_all_accepted(drafts, logits, p_draft, cfg, drafter, stop_ids)
        v = verify(
            drafts, p_draft, logits, q_bonus,
            temperature=cfg.temperature, eta=eta, alpha=cfg.alpha, generator=generator,
            stop_ids=stop_ids,
        )  # fmt: skip
        # 8. Crop the target to the committed tokens: [last, d_1 .. d_accepted].
        target.crop(base + 1 + v.accepted)
        emitted = [*drafts[: v.accepted], v.token]
        emitted, stop = _truncate(emitted, eos_ids, remaining)
        _sync(device)
        t2 = time.perf_counter()
        if drafter is not None and stop is None:
            if source == "model":
                # The drafter consumed [pending, d_1 .. d_k-1] (and d_k for a bonus q):
                # keep what was accepted, queue the rest of the emitted tokens.
                keep = min(drafter.seq.length, d0 + v.accepted)
                drafter.rollback(keep, emitted[keep - d0 :])
            else:
                drafter.pending.extend(emitted)
        if lookup is not None:
            lookup.extend_answer(emitted)
        context = (context + emitted)[-8:]
        n_acc = min(v.accepted, len(emitted))
        token_id = emitted[-1] if len(emitted) > n_acc else None
        texts = detok.preview(drafts[:n_acc] + ([] if token_id is None else [token_id]))
        rejected_texts = detok.preview(drafts)[n_acc:] if n_acc < len(drafts) else []
        detok.commit(emitted)
        res.rounds += 1
        res.drafted += len(drafts)
        res.accepted += n_acc
        res.tokens.extend(emitted)
        res.decode_s += t2 - t0
        last = emitted[-1] if emitted else last
        yield DraftStep(
            round=res.rounds,
            drafted_ids=tuple(drafts),
            drafted_texts=tuple(texts[:n_acc] + rejected_texts),
            accepted=n_acc,
            token_id=token_id,
            token_text=texts[n_acc] if token_id is not None else "",
            token_kind="target" if source == "none" else v.kind,
            source=source,
            p_target=v.p_target,
            p_draft=v.p_draft,
            p_hat=v.p_hat,
            token_p_target=v.token_p_target,
            token_p_hat=v.token_p_hat,
            draft_s=t1 - t0,
            verify_s=t2 - t1,
            context_tokens=target.length + 1,
        )
        if stop is not None:
            res.stop_reason = stop
            return
        plan.observe(source, len(drafts) + 1, forward_s, len(drafts), v.accepted)
        res.verify_costs = {n: c / plan.base for n, c in plan.cost.items()}
        if source == "model":
            gate.update(len(drafts), v.accepted)


def _bonus_q_if_all_accepted(
    drafts: list[int], logits: Tensor, p_draft: Tensor | None, cfg: DecodeConfig,
    drafter: ModelDrafter, stop_ids: Tensor,
) -> Tensor | None:  # fmt: skip
    """q_{k+1} when the whole draft will be accepted (greedy: decidable up front)."""
    if cfg.temperature > 0:
        # Sampling: acceptance is random; consuming d_k is cheap to undo via crop.
        return drafter.bonus_q(drafts[-1], cfg.temperature)
    _, p_hat = rapid_target_probs(
        logits[: len(drafts)], p_draft, 0.0, cfg.effective_eta, cfg.alpha, stop_ids
    )
    if p_hat.argmax(dim=-1).tolist() == drafts:
        return drafter.bonus_q(drafts[-1], cfg.temperature)
    return None


def _truncate(
    emitted: list[int], eos_ids: frozenset[int], remaining: int
) -> tuple[list[int], str | None]:
    """Cut at the first EOS (kept) or at the token budget; say why the run stops."""
    for i, t in enumerate(emitted):
        if t in eos_ids:
            return emitted[: i + 1], "eos"
    if len(emitted) >= remaining:
        return emitted[:remaining], "max_tokens"
    return emitted, None
