"""Scalar rewards for the two objectives of paper 1 (papers.md §1.5).

* ``solve_reward``: ``correct``/``incorrect`` values for a graded solution (paper 1: 1/0 from the strict-boxed
  grader), minus DAPO's soft overlong penalty when ``overlong_buffer`` > 0: zero up to ``max_tokens - buffer``
  tokens, then growing linearly to ``penalty`` at ``max_tokens``.
* ``verify_reward``: 1 when the verdict matches the label, else 0; an unparseable verdict earns 0. Scaled by
  ``min(pass_rate, 0.5)`` as the official code does (``reward.verify_pass_rate_scale``, on by default; nearly a no-op
  under std-normalized GRPO, but it sets the scale against the overlong penalty), then the same overlong penalty as
  solutions (the reward manager adds it to every response it scores, verifications included).
"""

from __future__ import annotations


def solve_reward(correct: bool, tokens: int, max_tokens: int, *, correct_value: float = 1.0,
                 incorrect_value: float = 0.0, overlong_buffer: int = 0, overlong_penalty: float = 1.0) -> float:
    reward = correct_value if correct else incorrect_value
    return reward - overlong(tokens, max_tokens, overlong_buffer, overlong_penalty)


def overlong(tokens: int, max_tokens: int, buffer: int, penalty: float = 1.0) -> float:
    """DAPO's soft overlong penalty (``verl/workers/reward_manager/dapo.py``): 0 up to ``max_tokens - buffer``
    tokens (EOS counted), then linear up to ``penalty`` at ``max_tokens``; 0 when ``buffer`` is 0 (off)."""
    if buffer <= 0:
        return 0.0
    return penalty * min(max(tokens - (max_tokens - buffer), 0) / buffer, 1.0)


def verify_reward(claimed: bool | None, label: bool, pass_rate: float | None = None, *, tokens: int = 0,
                  max_tokens: int = 1, overlong_buffer: int = 0, overlong_penalty: float = 1.0) -> float:
    reward = 1.0 if claimed is not None and claimed == label else 0.0
    reward = reward * min(pass_rate, 0.5) if pass_rate is not None else reward
    return reward - overlong(tokens, max_tokens, overlong_buffer, overlong_penalty)
