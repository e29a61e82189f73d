"""Policy-gradient and SFT losses against hand-computed numbers; masks; zero advantage gives zero gradient."""

from __future__ import annotations

import math

import pytest
import torch

from verireason.losses import aggregate, pg_loss, sft_loss, token_logprobs


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
