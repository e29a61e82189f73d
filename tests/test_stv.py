"""Paper 2's verifier rollouts (papers.md §2.3): student prompts without the reference, teacher prompts with the
verdict and the reference, verdict-RL rewards, and one OPD update through the Learner on the tiny model."""

from __future__ import annotations

import copy

import pytest
import torch

from verireason.config import SamplingCfg, compose, to_object
from verireason.records import Judged, Problem
from verireason.stv import has_feedback, verdict_rl_reward, verification_rollouts
from verireason.trainer import Distill, Learner, build_accelerator

REFERENCE = "Add the two numbers: 2 + 3 = 5."
PROBLEM = Problem("p1", "What is 2 + 3?", "5", "toy", solution=REFERENCE)


@pytest.mark.parametrize("claimed,truth,text,feedback,reward", [
    (True, True, "Each step adds correctly.\nVerdict: \\boxed{Yes}", True, 1.0),
    (False, False, "Step 1 adds 2 and 4, not 3.\nVerdict: \\boxed{No}", True, 1.0),
    (True, True, "Verdict: \\boxed{Yes}", False, 0.0),  # the right verdict without feedback earns nothing
    (True, False, "Each step adds correctly.\nVerdict: \\boxed{Yes}", True, 0.0),
    (None, True, "Each step adds correctly, I think.", True, 0.0),  # no verdict
])
def test_verdict_rl_reward(claimed, truth, text, feedback, reward):
    assert has_feedback(text) is feedback
    assert verdict_rl_reward(claimed, truth, text) == reward


@pytest.fixture
def learner(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    teacher = copy.deepcopy(model)
    return Learner(build_accelerator("cpu"), model, AutoTokenizer.from_pretrained(tiny_model_dir), lr=1e-3,
                   weight_decay=0.0, warmup_steps=0, grad_clip=1.0, micro_batch_size=4,
                   distill=Distill(teacher, coef=1.0, pg_coef=1.0))


def test_rollouts_carry_the_privileged_teacher_prompt_and_train_by_opd(learner):
    prompt = to_object(compose("eval", ["prompt=stv"])).prompt
    judged = [Judged(PROBLEM, "toy", 0, "2 + 3 = 5, so \\boxed{5}", True),
              Judged(PROBLEM, "toy", 1, "2 + 3 = 6, so \\boxed{6}", False)]
    rollouts, metrics = verification_rollouts(learner, judged, prompt, None,
                                              SamplingCfg(n=2, temperature=1.0, max_tokens=8), seed=0)
    assert len(rollouts) == 4 and [r.group for r in rollouts] == ["stv-0", "stv-0", "stv-1", "stv-1"]
    decode = learner.tokenizer.decode
    for r, verdict in zip(rollouts, ["correct", "correct", "incorrect", "incorrect"]):
        student, teacher = decode(r.prompt_ids), decode(r.teacher_prompt_ids)
        assert REFERENCE not in student and f"it is {verdict}." not in student
        assert REFERENCE in teacher and f"it is {verdict}." in teacher
        assert 1 <= len(r.completion_ids) <= 8 and r.reward in (0.0, 1.0)
    assert metrics["stv/verifications"] == 4 and 0 <= metrics["stv/reward"] <= 1
    before = [p.detach().clone() for p in learner.model.parameters()]
    stats = learner.update(rollouts)
    assert stats["jsd"] > 0 and torch.isfinite(torch.tensor(stats["loss"]))
    assert any(not torch.equal(a, b) for a, b in zip(before, learner.model.parameters()))
