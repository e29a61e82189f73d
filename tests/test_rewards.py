"""Rewards of paper 1 (papers.md §1.5): correctness with DAPO's overlong penalty, verdict agreement."""

from __future__ import annotations

import pytest

from verireason.rewards import solve_reward, verify_reward


def test_solve_reward_and_overlong_penalty():
    assert solve_reward(True, 10, 100) == 1.0 and solve_reward(False, 10, 100) == 0.0
    assert solve_reward(True, 10, 100, correct_value=1.0, incorrect_value=-1.0) == 1.0
    # buffer 20: no penalty up to 80 tokens, then linear to -1 at 100
    assert solve_reward(True, 80, 100, overlong_buffer=20) == 1.0
    assert solve_reward(True, 90, 100, overlong_buffer=20) == pytest.approx(0.5)
    assert solve_reward(False, 100, 100, overlong_buffer=20) == pytest.approx(-1.0)


def test_verify_reward():
    assert verify_reward(True, True) == 1.0 and verify_reward(False, False) == 1.0
    assert verify_reward(True, False) == 0.0 and verify_reward(None, False) == 0.0
    assert verify_reward(True, True, pass_rate=0.25) == 0.25 and verify_reward(True, True, pass_rate=0.9) == 0.5
