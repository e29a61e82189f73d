"""Scalar rewards for the two objectives of paper 1 (papers.md §1.5).

* ``solve_reward``: ``correct``/``incorrect`` values for a graded solution (paper 1: 1/0 from the strict-boxed
  grader), minus DAPO's soft overlong penalty when ``overlong_buffer`` > 0: zero up to ``max_tokens - buffer``
  tokens, then growing linearly to ``penalty`` at ``max_tokens``.
* ``verify_reward``: 1 when the verdict matches the grader's label, else 0; an unparseable verdict earns 0.
  Optionally scaled by ``min(pass_rate, 0.5)`` as the official code does (a no-op under std-normalized GRPO).
"""

from __future__ import annotations


def solve_reward(correct: bool, tokens: int, max_tokens: int, *, correct_value: float = 1.0,
                 incorrect_value: float = 0.0, overlong_buffer: int = 0, overlong_penalty: float = 1.0) -> float:
    reward = correct_value if correct else incorrect_value
    if overlong_buffer > 0:
        excess = tokens - (max_tokens - overlong_buffer)
        reward -= overlong_penalty * min(max(excess, 0) / overlong_buffer, 1.0)
    return reward


def verify_reward(claimed: bool | None, label: bool, pass_rate: float | None = None) -> float:
    reward = 1.0 if claimed is not None and claimed == label else 0.0
    return reward * min(pass_rate, 0.5) if pass_rate is not None else reward
