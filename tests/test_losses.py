"""Policy-gradient and SFT losses against hand-computed numbers; masks; zero advantage gives zero gradient."""

from __future__ import annotations

import math

import pytest
import torch

from verireason.losses import (
    aggregate,
    generalized_jsd,
    pg_loss,
    sampled_reverse_kl,
    sft_loss,
    token_logprobs,
)


def _ratio_logp(ratios):
    """log-probs whose ratio to an all-zero old log-prob is ``ratios``."""
    return torch.log(torch.tensor([ratios], dtype=torch.float32)), torch.zeros(1, len(ratios))


def test_clip_higher_bounds_positive_advantages_at_1_plus_high():
    logp, old = _ratio_logp([1.5, 1.1, 0.5])
    loss, stats = pg_loss(logp, old, torch.tensor([1.0]), torch.ones(1, 3), clip_low=0.2, clip_high=0.28)
    # per token: -min(r, 1.28) for A = +1 -> -1.28, -1.1, -0.5; token mean
    assert loss.item() == pytest.approx((-1.28 - 1.1 - 0.5) / 3, abs=1e-5)
    assert stats["clip_frac"] == pytest.approx(1 / 3)


def test_negative_advantages_clip_low_and_dual_clip():
    logp, old = _ratio_logp([0.5, 20.0])
    adv, mask = torch.tensor([-1.0]), torch.ones(1, 2)
    plain, _ = pg_loss(logp, old, adv, mask, clip_low=0.2, clip_high=0.28)
    # r=0.5: max(0.5, 0.8) = 0.8; r=20: max(20, 1.28) = 20
    assert plain.item() == pytest.approx((0.8 + 20.0) / 2, abs=1e-4)
    dual, _ = pg_loss(logp, old, adv, mask, clip_low=0.2, clip_high=0.28, dual_clip=10.0)
    assert dual.item() == pytest.approx((0.8 + 10.0) / 2, abs=1e-4)  # capped at -A * c = 10


def test_token_mean_and_seq_mean_weigh_differently():
    values = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 4.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.0]])
    assert aggregate(values, mask, "token_mean").item() == pytest.approx(8 / 5)
    assert aggregate(values, mask, "seq_mean").item() == pytest.approx((1 + 4) / 2)
    assert aggregate(values, mask, "token_mean", denom=10).item() == pytest.approx(0.8)


def test_masked_tokens_do_not_count():
    logp, old = _ratio_logp([1.0, 100.0])
    loss, _ = pg_loss(logp, old, torch.tensor([1.0]), torch.tensor([[1.0, 0.0]]))
    assert loss.item() == pytest.approx(-1.0)


def test_k3_kl_penalty():
    logp = torch.tensor([[math.log(0.5)]])
    ref = torch.tensor([[math.log(0.25)]])
    loss, stats = pg_loss(logp, logp.clone(), torch.tensor([0.0]), torch.ones(1, 1), ref_logp=ref, kl_coef=0.1)
    delta = math.log(0.25) - math.log(0.5)
    kl = math.exp(delta) - delta - 1
    assert stats["kl"] == pytest.approx(kl, abs=1e-6)
    assert loss.item() == pytest.approx(0.1 * kl, abs=1e-6)


def test_zero_advantage_gives_zero_gradient(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from verireason.collate import pack
    from verireason.losses import forward_logits

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    batch = pack([[3, 70, 71], [3, 72]], [[80, 81, 2], [90, 2]], [[True] * 3, [True] * 2], [0.0, 0.0], pad_id=0)
    logp = token_logprobs(forward_logits(model, batch), batch.targets)
    loss, _ = pg_loss(logp, logp.detach(), batch.advantages, batch.loss_mask, dual_clip=10.0)
    loss.backward()
    assert all(p.grad is None or p.grad.abs().max() == 0 for p in model.parameters())
    model.zero_grad()
    batch.advantages = torch.tensor([1.0, -1.0])
    loss, _ = pg_loss(token_logprobs(forward_logits(model, batch), batch.targets), logp.detach(), batch.advantages,
                      batch.loss_mask)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().max() > 0 for p in model.parameters())


def test_sft_loss_ignores_masked_targets_and_adds_kl():
    torch.manual_seed(0)
    logits = torch.randn(1, 3, 5)
    targets = torch.tensor([[1, 2, 3]])
    mask = torch.tensor([[1.0, 0.0, 1.0]])
    loss, stats = sft_loss(logits, targets, mask)
    logp = torch.log_softmax(logits, -1)
    expected = -(logp[0, 0, 1] + logp[0, 2, 3]) / 2
    assert loss.item() == pytest.approx(expected.item(), abs=1e-5)
    changed = targets.clone()
    changed[0, 1] = 4  # a masked target: the loss must not move
    assert sft_loss(logits, changed, mask)[0].item() == pytest.approx(loss.item(), abs=1e-6)
    same, s = sft_loss(logits, targets, mask, ref_logits=logits.clone(), kl_coef=0.5)
    assert s["kl"] == pytest.approx(0.0, abs=1e-6) and same.item() == pytest.approx(loss.item(), abs=1e-5)
    _, s = sft_loss(logits, targets, mask, ref_logits=torch.zeros_like(logits), kl_coef=0.5)
    assert s["kl"] > 0


# --- per-token advantages and untrained tokens -------------------------------------------------------------------

def test_per_token_advantages_equal_the_scalar_when_constant_and_zero_where_zero():
    torch.manual_seed(0)
    logp = (torch.randn(2, 4) * 0.1 - 1).requires_grad_()
    old, mask = logp.detach() + 0.05, torch.ones(2, 4)
    scalar, _ = pg_loss(logp, old, torch.tensor([0.7, -1.2]), mask)
    per_token, _ = pg_loss(logp, old, torch.tensor([[0.7] * 4, [-1.2] * 4]), mask)
    assert per_token.item() == pytest.approx(scalar.item(), abs=1e-6)
    loss, _ = pg_loss(logp, old, torch.tensor([[1.0, 0.0, -1.0, 0.0], [0.0, 0.0, 0.0, 2.0]]), mask)
    (grad,) = torch.autograd.grad(loss, logp)
    assert (grad[0, [1, 3]] == 0).all() and (grad[1, :3] == 0).all() and (grad[0, [0, 2]] != 0).all()


def test_untrained_feedback_tokens_get_no_gradient(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from verireason.collate import rollouts_to_batch
    from verireason.losses import forward_logits
    from verireason.records import Rollout

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    flags = (True, True, False, False, True)
    r = Rollout("vil", "g", "p", "c", (3, 70, 71), (80, 81, 90, 91, 82), 1.0, "stop", trained=flags)
    batch = rollouts_to_batch([r], [1.0], pad_id=0)
    logits = forward_logits(model, batch)
    logits.retain_grad()
    logp = token_logprobs(logits, batch.targets)
    loss, _ = pg_loss(logp, logp.detach(), batch.advantages, batch.loss_mask)
    loss.backward()
    per_position = logits.grad.abs().sum(-1)[0]  # [C]
    assert (per_position[[2, 3]] == 0).all() and (per_position[[0, 1, 4]] > 0).all()


# --- distillation divergences ---------------------------------------------------------------------------------------

def _brute_jsd(s_logits, t_logits, beta):
    """Generalized JSD from explicit probabilities in float64 (GKD Eq. 1; endpoints forward / reverse KL)."""
    s, t = torch.softmax(s_logits.double(), -1), torch.softmax(t_logits.double(), -1)
    kl = lambda p, q: (p * (p / q).log()).sum(-1)  # noqa: E731
    if beta == 0:
        return kl(t, s)
    if beta == 1:
        return kl(s, t)
    m = beta * t + (1 - beta) * s
    return beta * kl(t, m) + (1 - beta) * kl(s, m)


@pytest.mark.parametrize("beta", [0.0, 0.25, 0.5, 1.0])
def test_generalized_jsd_matches_brute_force(beta):
    torch.manual_seed(1)
    s, t = torch.randn(2, 3, 11) * 2, torch.randn(2, 3, 11) * 2
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    got = generalized_jsd(s, t, mask, beta=beta, chunk=None)
    want = _brute_jsd(s, t, beta) * mask
    assert torch.allclose(got.double(), want, atol=1e-5)
    assert got[0, 2] == 0 and (got[mask.bool()] > 0).all()


def test_chunked_jsd_equals_unchunked_in_value_and_gradient():
    torch.manual_seed(2)
    base, t = torch.randn(3, 7, 50), torch.randn(3, 7, 50)
    mask = (torch.rand(3, 7) > 0.3).float()
    grads = []
    for chunk in (None, 4):
        s = base.clone().requires_grad_()
        value = generalized_jsd(s, t, mask, beta=0.5, chunk=chunk)
        value.sum().backward()
        grads.append((value.detach(), s.grad))
    assert torch.allclose(grads[0][0], grads[1][0], atol=1e-6)
    assert torch.allclose(grads[0][1], grads[1][1], atol=1e-6)


def test_top_k_equals_full_vocabulary_when_the_mass_is_on_k_tokens():
    torch.manual_seed(3)
    s, t = torch.full((1, 4, 40), -1e4), torch.full((1, 4, 40), -1e4)
    support = torch.tensor([3, 17, 21, 30, 38])
    s[..., support], t[..., support] = torch.randn(1, 4, 5), torch.randn(1, 4, 5)
    mask = torch.ones(1, 4)
    full = generalized_jsd(s, t, mask, beta=0.5)
    top = generalized_jsd(s, t, mask, beta=0.5, top_k=5)
    assert torch.allclose(full, top, atol=1e-6) and (full > 0).all()


def test_jsd_is_zero_with_zero_gradient_when_teacher_equals_student():
    s = torch.randn(2, 3, 9).requires_grad_()
    value = generalized_jsd(s, s.detach().clone(), torch.ones(2, 3), beta=0.5)
    value.sum().backward()
    assert value.abs().max() < 1e-6 and s.grad.abs().max() < 1e-6


def test_sampled_reverse_kl_gradient_is_that_of_the_reverse_kl_in_expectation():
    """Σ_y S(y) · ∇[(log S(y) − log T(y)).detach() · log S(y)] = ∇ KL(S‖T): the expectation over sampled tokens,
    taken exactly by enumerating the vocabulary."""
    torch.manual_seed(4)
    s_logits, t_logits = torch.randn(6).requires_grad_(), torch.randn(6)
    log_s, log_t = torch.log_softmax(s_logits, -1), torch.log_softmax(t_logits, -1)
    estimator = (log_s.exp().detach() * sampled_reverse_kl(log_s, log_t)).sum()
    (grad_est,) = torch.autograd.grad(estimator, s_logits)
    fresh = torch.log_softmax(s_logits, -1)
    (grad_exact,) = torch.autograd.grad((fresh.exp() * (fresh - log_t)).sum(), s_logits)
    assert torch.allclose(grad_est, grad_exact, atol=1e-6)
