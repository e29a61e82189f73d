"""The distillation term in the one update path (STV's on-policy distillation, papers.md §2.3): the teacher reads
its own (privileged) prompt and scores exactly the student's completion tokens at the same positions; an identical
teacher gives zero gradient; a different one pulls the student toward it."""

from __future__ import annotations

import copy

import pytest
import torch

from verireason.losses import forward_logits
from verireason.collate import pack
from verireason.records import Rollout
from verireason.trainer import Distill, Learner, build_accelerator


@pytest.fixture
def parts(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(tiny_model_dir)


def learner(model, tokenizer, distill, lr=1e-3):
    return Learner(build_accelerator("cpu"), model, tokenizer, lr=lr, weight_decay=0.0, warmup_steps=0,
                   grad_clip=1.0, micro_batch_size=4, distill=distill)


ROLLOUTS = [  # student prompt, completion, teacher prompt (longer: it also sees the reference)
    Rollout("verify", "a", "", "", (3, 70, 71), (80, 81, 2), 0.0, "stop", teacher_prompt_ids=(3, 70, 71, 90, 91, 92)),
    Rollout("verify", "a", "", "", (3, 72), (82, 83, 84, 85, 2), 1.0, "stop", teacher_prompt_ids=(3, 72, 93)),
    Rollout("verify", "b", "", "", (3, 74, 75, 76), (86, 2), 0.0, "stop", teacher_prompt_ids=(3, 74, 75, 76, 94)),
]


def test_teacher_scores_the_students_tokens_at_the_same_positions(parts):
    model, tokenizer = parts
    teacher = copy.deepcopy(model)
    got = learner(model, tokenizer, Distill(teacher)).teacher_logits(ROLLOUTS)  # [B, C, V]
    for row, r in enumerate(ROLLOUTS):  # each alone, unpadded: the logits that predict its completion tokens
        alone = pack([r.teacher_prompt_ids], [r.completion_ids], [[True] * len(r.completion_ids)], [0.0], 0)
        want = forward_logits(teacher, alone)[0]
        assert torch.allclose(got[row, got.shape[1] - len(r.completion_ids):], want, atol=1e-5)


def test_an_identical_teacher_gives_zero_gradient(parts):
    model, tokenizer = parts
    plain = [Rollout(**{**r.__dict__, "teacher_prompt_ids": None}) for r in ROLLOUTS]  # same prompt, same weights
    trainer = learner(model, tokenizer, Distill(copy.deepcopy(model), coef=1.0, pg_coef=0.0))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    stats = trainer.update(plain)
    assert stats["jsd"] < 1e-9 and stats["grad_norm"] < 1e-6
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("teacher", ["frozen", "live"])
def test_distillation_pulls_the_student_toward_the_privileged_teacher(parts, teacher):
    model, tokenizer = parts
    frozen = copy.deepcopy(model)
    trainer = learner(model, tokenizer, Distill(frozen if teacher == "frozen" else "live", pg_coef=0.0), lr=3e-3)
    jsd = [trainer.update(ROLLOUTS)["jsd"] for _ in range(8)]
    assert jsd[0] > 0
    if teacher == "frozen":  # the student's own prompt learns to predict what the teacher predicts with more context
        assert jsd[-1] < 0.5 * jsd[0], jsd
    else:  # a live teacher moves too: the divergence still falls, and the weights changed
        assert jsd[-1] < jsd[0], jsd
    assert any(not torch.equal(a, b) for a, b in zip(frozen.state_dict().values(), model.state_dict().values()))


def test_the_sampled_reverse_kl_is_its_own_objective_and_logged_under_its_name(parts):
    """``divergence="sampled_reverse_kl"``: the per-token (log S − log T)·log S estimator on the sampled tokens,
    logged as ``sampled_rkl`` (never ``jsd``); its value is the mean log-ratio of the tokens, and it trains."""
    from verireason.losses import token_logprobs

    model, tokenizer = parts
    frozen = copy.deepcopy(model)
    trainer = learner(model, tokenizer, Distill(frozen, pg_coef=0.0, divergence="sampled_reverse_kl"), lr=3e-3)
    student = pack([r.prompt_ids for r in ROLLOUTS], [r.completion_ids for r in ROLLOUTS],
                   [[True] * len(r.completion_ids) for r in ROLLOUTS], [0.0] * 3, 0)
    with torch.no_grad():
        logp = token_logprobs(forward_logits(model, student), student.targets)
        teacher = token_logprobs(trainer.teacher_logits(ROLLOUTS), student.targets)
    want = float(((logp - teacher) * logp * student.loss_mask).sum() / student.loss_mask.sum())
    stats = trainer.update(ROLLOUTS)
    assert "jsd" not in stats and stats["sampled_rkl"] == pytest.approx(want, rel=1e-4)
    assert any(not torch.equal(a, b) for a, b in zip(frozen.state_dict().values(), model.state_dict().values()))


def test_an_unknown_divergence_is_refused():
    with pytest.raises(ValueError, match="unknown divergence 'kl'; valid: jsd, sampled_reverse_kl"):
        Distill("live", divergence="kl")
