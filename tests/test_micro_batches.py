"""Token-budget micro-batches and gradient checkpointing leave the gradient unchanged (only memory and padding
move): the gradient of one update equals the one-micro-batch gradient for every loss normalisation."""

from __future__ import annotations

import random

import pytest
import torch

from verireason.models import load_causal_lm, load_tokenizer
from verireason.records import Rollout
from verireason.trainer import Learner, build_accelerator


def _rollouts(seed: int = 0) -> list[Rollout]:
    rng = random.Random(seed)
    out = []
    for g in range(4):
        for k in range(4):
            prompt = tuple(rng.randrange(3, 60) for _ in range(rng.randint(2, 9)))
            completion = tuple(rng.randrange(3, 60) for _ in range(rng.choice([1, 3, 12, 30])))
            out.append(Rollout("generate", f"g{g}", "", "", prompt, completion, float((g + k) % 2), "stop"))
    return out


def _gradient(path, rollouts, **kwargs) -> tuple[dict[str, torch.Tensor], dict]:
    model = load_causal_lm(str(path), "float32", "cpu").train()
    if kwargs.pop("checkpointing", False):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    learner = Learner(build_accelerator("cpu"), model, load_tokenizer(str(path)), lr=1e-3, weight_decay=0.0,
                      warmup_steps=0, grad_clip=1e9, **kwargs)
    grads = {}
    step = learner.optimizer.step

    def record(*args, **kw):
        grads.update({n: p.grad.detach().clone() for n, p in learner.model.named_parameters() if p.grad is not None})
        return step(*args, **kw)

    learner.optimizer.step = record
    stats = learner.update(rollouts)
    return grads, stats


@pytest.mark.parametrize("agg", ["token_mean", "seq_mean"])
def test_token_budget_micro_batches_give_the_one_micro_batch_gradient(tiny_model_dir, agg):
    rollouts = _rollouts()
    whole, _ = _gradient(tiny_model_dir, rollouts, micro_batch_size=64, loss_agg=agg)
    packed, stats = _gradient(tiny_model_dir, rollouts, micro_batch_size=64, micro_batch_tokens=60, loss_agg=agg)
    assert whole.keys() == packed.keys() and whole
    for name in whole:
        assert torch.allclose(whole[name], packed[name], atol=1e-6, rtol=1e-4), name


def test_token_budget_packs_greedily_and_cuts_padding(tiny_model_dir):
    rollouts = _rollouts()
    model = load_causal_lm(str(tiny_model_dir), "float32", "cpu")
    learner = Learner(build_accelerator("cpu"), model, load_tokenizer(str(tiny_model_dir)), lr=1e-3,
                      weight_decay=0.0, warmup_steps=0, grad_clip=1.0, micro_batch_size=8, micro_batch_tokens=80)
    plan = learner.micro_plan(rollouts, range(len(rollouts)))
    size = lambda i: len(rollouts[i].prompt_ids) + len(rollouts[i].completion_ids)  # noqa: E731
    assert sorted(i for chunk in plan for i in chunk) == list(range(len(rollouts)))
    for chunk in plan:
        assert size(chunk[0]) == max(size(i) for i in chunk)  # longest first
        assert len(chunk) == 1 or size(chunk[0]) * len(chunk) <= 80  # within the budget (a long one alone)
    _, fixed = _gradient(tiny_model_dir, rollouts, micro_batch_size=8)
    _, packed = _gradient(tiny_model_dir, rollouts, micro_batch_size=8, micro_batch_tokens=80)
    assert packed["padding"] < fixed["padding"]


def test_gradient_checkpointing_gives_the_same_gradient(tiny_model_dir):
    rollouts = _rollouts(1)
    plain, _ = _gradient(tiny_model_dir, rollouts, micro_batch_size=4)
    checked, _ = _gradient(tiny_model_dir, rollouts, micro_batch_size=4, checkpointing=True)
    for name in plain:
        assert torch.allclose(plain[name], checked[name], atol=1e-6, rtol=1e-4), name
