"""Paper 2's pieces (papers.md §2.3-2.4, §2.8): verifier rollouts (student prompts without the reference, teacher
prompts with the verdict and the reference, verdict-RL rewards, one OPD update through the Learner), candidate
choice, and ViL episodes with a scripted verifier (per-episode advantages on every generator turn)."""

from __future__ import annotations

import copy
import random

import pytest
import torch

from verireason.advantages import group_advantages
from verireason.config import SamplingCfg, compose, to_object
from verireason.errors import UserError
from verireason.papers.stv import (
    VerifierInTheLoop,
    has_feedback,
    pick_candidates,
    verdict_rl_reward,
    verification_rollouts,
)
from verireason.records import Judged, Problem, Sample
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


def _sample(pid: str, index: int, correct: bool) -> Sample:
    return Sample("toy", pid, index, "p", "c", None, correct, True, 3, "stop", "1")


def test_candidates_alternate_labels_where_a_problem_has_both():
    pool = {("toy", "mixed"): [_sample("mixed", 0, True), _sample("mixed", 1, False)],
            ("toy", "wrong"): [_sample("wrong", 0, False), _sample("wrong", 1, False)]}
    keys = [("toy", "mixed")] * 6 + [("toy", "wrong")] * 2
    picked = pick_candidates(pool, keys, random.Random(0))
    assert [s.correct for s in picked[:6]] == [True, False] * 3  # balanced where the problem allows it
    assert [s.correct for s in picked[6:]] == [False, False]  # all-wrong problems (STV's Hardest) still count


def test_balanced_candidates_judge_as_many_correct_as_incorrect_attempts():
    """``candidates.balance=labels``: a problem without the wanted label lends its slot to another problem's attempt
    with that label, so every step is half correct, however the step's problems fall."""
    rng = random.Random(0)
    pool = {("toy", f"p{i}"): [_sample(f"p{i}", k, rng.random() < share) for k in range(4)]
            for i, share in enumerate([0.0, 0.0, 0.0, 0.1, 0.5, 0.9, 1.0, 0.0])}
    keys = sorted(pool)
    assert any(len({s.correct for s in pool[k]}) == 1 for k in keys)  # some problems have one label only
    for seed in range(50):
        order = random.Random(seed).sample(keys, len(keys))
        picked = pick_candidates(pool, order, random.Random(seed), "labels")
        assert [s.correct for s in picked] == [True, False] * 4
        alternate = pick_candidates(pool, order, random.Random(seed))
        assert [s.problem_id for s in alternate] == [k[1] for k in order]  # the default keeps each key's problem
    with pytest.raises(UserError, match="valid: alternate, labels"):
        pick_candidates(pool, keys, rng, "even")


def test_vil_episodes_train_each_generator_turn_with_its_episodes_advantage(primed_model_dir, fn_generator):
    """A scripted verifier accepts "\\boxed{1}" and rejects anything else with feedback; gold answers alternate 1/2,
    and one round lets a rejected attempt be refined once, so within a problem some episodes end right and some
    wrong."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from verireason.grading import Grader

    def verdict(prompt: str, i: int) -> str:
        judged = prompt.split("Solution:")[1].split("Check the solution")[0]
        return "Looks right.\nVerdict: \\boxed{Yes}" if "\\boxed{1}" in judged else "Line 1 is wrong here.\nVerdict: \\boxed{No}"

    prompt = to_object(compose("eval", ["prompt=stv"])).prompt
    policy = AutoModelForCausalLM.from_pretrained(primed_model_dir)
    learner = Learner(build_accelerator("cpu"), policy, AutoTokenizer.from_pretrained(primed_model_dir), lr=1e-3,
                      weight_decay=0.0, warmup_steps=0, grad_clip=1.0, micro_batch_size=8)
    problems = [("toy", Problem(f"t{i}", f"Toy question {i}: is the answer 1 or 2?", "12"[i % 2], "toy"))
                for i in range(4)]
    grader = Grader("dapo_strict")
    try:
        vil = VerifierInTheLoop(learner, fn_generator(verdict, per_call=64), "online", problems, prompt, (None, None),
                                SamplingCfg(n=4, temperature=1.0, max_tokens=12), SamplingCfg(n=1, max_tokens=24),
                                rounds=1, grader=grader, prompts_per_step=4, seed=0)
        rollouts, metrics = vil._online(step=1)
    finally:
        grader.close()
    for r in rollouts:  # one advantage per turn, no per-token flags: the prompt is never trained
        assert r.token_advantages is not None and len(set(r.token_advantages)) == 1 and r.trained is None
        assert ("Line 1 is wrong here." in r.prompt) == (r.meta["round"] > 0)  # feedback only ever in prompts
    groups = [r.group for r in rollouts if r.meta["round"] == 0]
    rewards = [r.reward for r in rollouts if r.meta["round"] == 0]
    expected = group_advantages(rewards, groups, "grpo").tolist()
    assert [r.token_advantages[0] for r in rollouts if r.meta["round"] == 0] == pytest.approx(expected)
    assert any(expected), "every problem's episodes ended alike: no signal to test"
    assert 0 <= metrics["vil/final_pass@1"] <= 1 and metrics["vil/turns"] >= 1
    before = [p.detach().clone() for p in learner.model.parameters()]
    learner.update(rollouts)
    assert any(not torch.equal(a, b) for a, b in zip(before, learner.model.parameters()))
