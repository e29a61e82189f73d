"""Paper 2, Self-Trained Verification (papers.md §2.3, §2.8): the verifier's training rollouts.

The student verifier (the policy) judges a candidate solution from the student prompt (problem and solution) and
writes feedback and a verdict. Each verification becomes a ``Rollout`` that carries both of STV's training signals:

* ``teacher_prompt_ids``: the same model's privileged prompt (problem, candidate, the true verdict, the reference
  solution; ``informed_verify_user`` of the prompt family), under which a ``trainer.Distill`` teacher scores
  exactly the student's tokens: on-policy distillation (OPD);
* ``reward``: verdict-RL's, 1 when the verdict matches the grader's truth *and* feedback is present, else 0.

``Learner(distill=Distill(teacher, coef, pg_coef))`` then trains ``pg_coef · L_PG + coef · L_OPD`` on them (the
official objective's form); ``pg_coef=0`` is OPD alone, no ``Distill`` is verdict-RL alone.
"""

from __future__ import annotations

from collections.abc import Sequence

from verireason.config import PromptCfg, SamplingCfg
from verireason.metrics import verification_metrics
from verireason.prompts import chat_text, feedback_text, informed_verify_messages, parse_verdict, verify_messages
from verireason.records import Judged, Rollout

MIN_FEEDBACK_WORDS = 3  # "feedback is present": at least this many words besides the verdict line (ours, §2.7)


def has_feedback(verification: str, min_words: int = MIN_FEEDBACK_WORDS) -> bool:
    """Whether a verification says something (``min_words`` words or more) besides its verdict line."""
    return len(feedback_text(verification).split()) >= min_words


def verdict_rl_reward(claimed: bool | None, truth: bool, verification: str) -> float:
    """STV's verdict-RL reward (§2.3): 1 when the verdict matches the truth and feedback is present, else 0."""
    return 1.0 if claimed is not None and claimed == truth and has_feedback(verification) else 0.0


def verification_rollouts(learner, judged: Sequence[Judged], prompt: PromptCfg, system: str | None,
                          sampling: SamplingCfg, seed: int, group_prefix: str = "stv") -> tuple[list[Rollout], dict]:
    """``sampling.n`` student verifications of each judged candidate (one GRPO group per candidate), as rollouts
    with teacher prompts and verdict-RL rewards, and their metrics over every process (``learner.gather``)."""
    tok = learner.tokenizer
    student = [chat_text(tok, verify_messages(j.problem, j.response, prompt, system)) for j in judged]
    teacher = [chat_text(tok, informed_verify_messages(j.problem, j.response, j.correct, prompt, system))
               for j in judged]
    outputs = learner.generate(student, sampling, seed)
    rollouts, outcomes = [], []
    for i, (j, s_text, t_text, completions) in enumerate(zip(judged, student, teacher, outputs)):
        s_ids = tuple(tok(s_text, add_special_tokens=False)["input_ids"])
        t_ids = tuple(tok(t_text, add_special_tokens=False)["input_ids"])
        for c in completions:
            claimed = parse_verdict(c.text, prompt.verdict)
            reward = verdict_rl_reward(claimed, j.correct, c.text)
            rollouts.append(Rollout("stv", f"{group_prefix}-{i}", s_text, c.text, s_ids, c.token_ids, reward,
                                    c.finish_reason, {"problem_id": j.problem.id, "truth": j.correct,
                                                      "claimed": claimed}, teacher_prompt_ids=t_ids))
            outcomes.append((claimed, j.correct, c.tokens, reward, has_feedback(c.text)))
    outcomes = learner.gather(outcomes)
    confusion = verification_metrics([(claimed, truth) for claimed, truth, *_ in outcomes])
    mean = lambda values: sum(values) / len(values) if values else 0.0  # noqa: E731
    metrics = {"stv/reward": mean([o[3] for o in outcomes]), "stv/feedback": mean([o[4] for o in outcomes]),
               "stv/tokens": mean([o[2] for o in outcomes]),
               **{f"stv/{k}": v for k, v in confusion.items() if isinstance(v, (int, float))}}
    return rollouts, metrics
