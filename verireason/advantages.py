"""Group-relative advantages: one scalar per rollout from the rewards of its group (the G rollouts of one prompt).

* ``grpo``: (r - mean) / (std + eps), std with Bessel's correction as in verl's ``compute_grpo_outcome_advantage``
  (paper 1 trains with it, ``norm_adv_by_std_in_grpo=True``, papers.md §1.5).
* ``dr_grpo``: r - mean (Dr. GRPO drops the std division, which up-weights near-solved and near-hopeless prompts).
* ``rloo``: r - mean of the *other* rollouts of the group (S²R's RLOO baseline, papers.md §3.5).

A group of one has no baseline, so its advantage is 0 (verl would return the raw reward instead). Pure tensor
functions: no config, no model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch


def _group_index(groups: Sequence) -> torch.Tensor:
    """Dense integer ids for arbitrary hashable group keys, in order of first appearance."""
    ids: dict = {}
    return torch.tensor([ids.setdefault(g, len(ids)) for g in groups])


def _group_stats(rewards: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-rollout group size, mean and unbiased std. rewards, index: [N] → three [N] tensors."""
    n_groups = int(index.max()) + 1
    count = torch.zeros(n_groups, dtype=rewards.dtype).index_add_(0, index, torch.ones_like(rewards))
    total = torch.zeros(n_groups, dtype=rewards.dtype).index_add_(0, index, rewards)
    mean = total / count
    sq = torch.zeros(n_groups, dtype=rewards.dtype).index_add_(0, index, (rewards - mean[index]) ** 2)
    std = torch.sqrt(sq / (count - 1).clamp(min=1))
    return count[index], mean[index], std[index]


def grpo(rewards: torch.Tensor, index: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    count, mean, std = _group_stats(rewards, index)
    return torch.where(count > 1, (rewards - mean) / (std + eps), torch.zeros_like(rewards))


def dr_grpo(rewards: torch.Tensor, index: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    count, mean, _ = _group_stats(rewards, index)
    return torch.where(count > 1, rewards - mean, torch.zeros_like(rewards))


def rloo(rewards: torch.Tensor, index: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    count, mean, _ = _group_stats(rewards, index)
    others = (mean * count - rewards) / (count - 1).clamp(min=1)  # mean of the other G-1 rewards
    return torch.where(count > 1, rewards - others, torch.zeros_like(rewards))


ADVANTAGES: dict[str, Callable[..., torch.Tensor]] = {"grpo": grpo, "dr_grpo": dr_grpo, "rloo": rloo}


def group_advantages(rewards: Sequence[float], groups: Sequence, mode: str = "grpo") -> torch.Tensor:
    """Advantages [N] (float32) for rewards [N] whose group keys are ``groups`` [N]."""
    if mode not in ADVANTAGES:
        raise ValueError(f"unknown advantage {mode!r}; valid: {', '.join(ADVANTAGES)}")
    return ADVANTAGES[mode](torch.tensor(rewards, dtype=torch.float32), _group_index(groups))
