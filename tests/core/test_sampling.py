"""Statistical tests of verification on hand-built distributions (architecture.md 4-7).

The emitted token must follow p (eta = 0) or p_hat (eta > 0). A residual copied from
the paper (max(p - p_hat, p - q, 0)) or a bonus token drawn from p instead of p_hat
moves the empirical distribution far outside the tolerance used here.
"""

from __future__ import annotations

import torch

from core.decoding.rejection import Rules, Verdict, verify
from core.decoding.sampling import rapid_target_probs, residual, tail_mask

V = 6
TRIALS = 12000
TOL = 0.02  # total-variation distance; sampling noise at 12K trials is ~0.01


def _verify(
    drafts: list[int], q_prop: torch.Tensor, z: torch.Tensor, q_bonus: torch.Tensor | None,
    *, temperature: float, eta: float, generator: torch.Generator | None = None,
    stop_ids: torch.Tensor | None = None, q_aug: torch.Tensor | None = None,
) -> Verdict:  # fmt: skip
    """One round's verdict; the drafter model's q (`q_aug`) defaults to the proposal's."""
    stop = stop_ids if stop_ids is not None else torch.zeros(0, dtype=torch.long)
    rules = Rules(temperature, eta, 0.1, stop)
    aug = q_prop if q_aug is None else q_aug
    return verify(drafts, q_prop, aug, z, lambda: q_bonus, rules, generator or torch.Generator())


def _dists() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    z = torch.tensor([[2.0, 1.5, 0.3, -0.5, 0.0, 1.0], [0.1, 0.2, 2.5, -1.0, 0.7, 0.0]])
    q = torch.tensor([[0.05, 0.55, 0.25, 0.05, 0.05, 0.05], [0.3, 0.1, 0.1, 0.3, 0.1, 0.1]])
    q_bonus = torch.tensor([0.05, 0.05, 0.1, 0.6, 0.1, 0.1])
    return z, q, q_bonus


def _tv(counts: torch.Tensor, probs: torch.Tensor) -> float:
    return 0.5 * float((counts / counts.sum() - probs).abs().sum())


def _run(
    eta: float, one_hot_draft: int | None = None, q_aug: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Empirical distributions of the first and (when accepted) second emitted token."""
    z, q, q_bonus = _dists()
    g = torch.Generator().manual_seed(1234)
    first = torch.zeros(V)
    second = torch.zeros(V)
    for _ in range(TRIALS):
        if one_hot_draft is None:
            d = int(torch.multinomial(q[0], 1, generator=g))
            p_draft = q[:1]
        else:
            d = one_hot_draft
            p_draft = torch.nn.functional.one_hot(torch.tensor([d]), V).float()
        v = _verify([d], p_draft, z, q_bonus, temperature=1.0, eta=eta, generator=g,
                    q_aug=q_aug)  # fmt: skip
        if v.accepted == 1:
            first[d] += 1
            second[v.token] += 1
        else:
            first[v.token] += 1
    return first, second


def test_eta_zero_follows_p() -> None:
    z, _, _ = _dists()
    first, second = _run(eta=0.0)
    p = torch.softmax(z, -1)
    assert _tv(first, p[0]) < TOL
    assert _tv(second, p[1]) < TOL


def test_eta_positive_follows_p_hat_including_bonus() -> None:
    z, q, q_bonus = _dists()
    first, second = _run(eta=5.0)
    _, p_hat = rapid_target_probs(z[:1], q[:1], 1.0, 5.0, 0.1)
    _, p_hat_bonus = rapid_target_probs(z[1:], q_bonus[None], 1.0, 5.0, 0.1)
    p = torch.softmax(z, -1)
    assert _tv(first, p_hat[0]) < TOL
    assert _tv(first, p[0]) > 3 * TOL  # p_hat really differs from p here
    assert _tv(second, p_hat_bonus[0]) < TOL
    assert _tv(second, p[1]) > 3 * TOL  # a bonus drawn from p would fail


def test_one_hot_draft_follows_p_hat_of_the_drafter_model() -> None:
    """A lookup draft (q_prop one-hot) is verified against p_hat built from the drafter
    model's q at that position (issue 15, defect 2), not from the one-hot q."""
    z, q, _ = _dists()
    first, _ = _run(eta=3.0, one_hot_draft=1, q_aug=q[:1])
    _, p_hat = rapid_target_probs(z[:1], q[:1], 1.0, 3.0, 0.1)
    assert _tv(first, p_hat[0]) < TOL
    one_hot = torch.nn.functional.one_hot(torch.tensor([1]), V).float()
    _, p_hat_one_hot = rapid_target_probs(z[:1], one_hot, 1.0, 3.0, 0.1)
    assert _tv(first, p_hat_one_hot[0]) > 3 * TOL  # the old boost of the copied token


def test_paper_residual_would_fail() -> None:
    """The paper's residual max(p - p_hat, p - q, 0), used after a rejection, gives an
    output distribution away from p_hat: the reason it is not used."""
    z, q, _ = _dists()
    p, p_hat = rapid_target_probs(z[:1], q[:1], 1.0, 5.0, 0.1)
    p, p_hat, q0 = p[0], p_hat[0], q[0]
    accept = torch.clamp(p_hat / q0, max=1.0)
    reject_mass = float((q0 * (1 - accept)).sum())
    ours = q0 * accept + reject_mass * residual(p_hat[None], q0[None])[0]
    paper_r = torch.clamp(torch.maximum(p - p_hat, p - q0), min=0)
    paper = q0 * accept + reject_mass * paper_r / paper_r.sum()
    assert torch.allclose(ours, p_hat, atol=1e-6)
    assert float((paper - p_hat).abs().sum()) > 0.05


def test_greedy_is_evaluated_at_t1_and_does_not_collapse() -> None:
    # With T -> 0 the eta term would vanish; greedy uses T = 1, so a drafted token within
    # a few logits of the top is accepted under eta > 0 but rejected under eta = 0.
    z = torch.tensor([[3.0, 2.0, 0.0, 0.0]])
    q = torch.tensor([[0.0, 1.0, 0.0, 0.0]])
    zz = torch.cat([z, z])
    sd = _verify([1], q, zz, None, temperature=0.0, eta=0.0)
    rapid = _verify([1], q, zz, None, temperature=0.0, eta=5.0)
    assert sd.accepted == 0 and sd.token == 0 and sd.kind == "correction"
    assert rapid.accepted == 1 and rapid.kind == "bonus"


def test_tail_mask_on_q() -> None:
    q = torch.tensor([[0.5, 0.06, 0.04, 0.4]])
    assert tail_mask(q, 0.1).tolist() == [[True, True, False, True]]


def test_residual_without_mass_falls_back_to_p_hat() -> None:
    p_hat = torch.tensor([[0.2, 0.8]])
    assert torch.allclose(residual(p_hat, p_hat.clone()), p_hat)


def test_eta_never_overrides_the_end_of_the_answer() -> None:
    # The target's top choice is EOS (id 3); a draft two logits below would win under
    # eta = 5 without the stop rule.
    z = torch.tensor([[1.0, 0.0, 0.0, 3.0], [0.0, 0.0, 0.0, 0.0]])
    q = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    stop = torch.tensor([3])
    free = _verify([0], q, z, None, temperature=0.0, eta=5.0)
    held = _verify([0], q, z, None, temperature=0.0, eta=5.0, stop_ids=stop)
    assert free.accepted == 1
    assert held.accepted == 0 and held.token == 3
    # Where the target does not want to stop, the stop rule changes nothing.
    z2 = torch.tensor([[3.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    q2 = torch.tensor([[0.0, 1.0, 0.0, 0.0]])
    a = _verify([1], q2, z2, None, temperature=0.0, eta=5.0)
    b = _verify([1], q2, z2, None, temperature=0.0, eta=5.0, stop_ids=stop)
    assert (a.accepted, a.token) == (b.accepted, b.token)
