"""Group advantages against hand-computed numbers (papers.md §1.5, §3.5)."""

from __future__ import annotations

import math

import pytest
import torch

from verireason.advantages import group_advantages


def test_grpo_normalizes_by_the_unbiased_group_std():
    adv = group_advantages([1.0, 0.0, 0.0, 1.0, 5.0, 5.0], ["a", "a", "a", "a", "b", "b"], "grpo")
    # group a: mean 0.5, unbiased std sqrt(1/3) -> ±0.5 / 0.57735 = ±0.8660; group b: all equal -> 0
    expected = [0.5 / math.sqrt(1 / 3), -0.5 / math.sqrt(1 / 3)] * 2
    assert torch.allclose(adv[:4], torch.tensor([expected[0], expected[1], expected[1], expected[0]]), atol=1e-4)
    assert adv[4:].abs().max() == 0


def test_dr_grpo_only_centres():
    adv = group_advantages([1.0, 0.0, 0.0, 0.0], ["g"] * 4, "dr_grpo")
    assert torch.allclose(adv, torch.tensor([0.75, -0.25, -0.25, -0.25]))


def test_rloo_subtracts_the_mean_of_the_others():
    adv = group_advantages([1.0, 0.0, 0.0], ["g"] * 3, "rloo")
    assert torch.allclose(adv, torch.tensor([1.0, -0.5, -0.5]))


def test_groups_may_interleave_and_singletons_get_zero():
    adv = group_advantages([1.0, 3.0, 0.0, 7.0], ["x", "y", "x", "z"], "dr_grpo")
    assert torch.allclose(adv, torch.tensor([0.5, 0.0, -0.5, 0.0]))


def test_unknown_estimator_is_rejected():
    with pytest.raises(ValueError, match="valid: grpo, dr_grpo, rloo"):
        group_advantages([1.0], ["g"], "ppo")
