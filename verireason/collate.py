"""The only text-to-tensor boundary of training: token-id sequences with per-token loss flags → a ``TrainBatch``.

Sequences are *left*-padded so every completion ends at the last position: the logits of the last ``C + 1``
positions (``C`` = longest completion) then cover every trained token, and the model skips the vocabulary
projection for all prompt positions (``logits_to_keep``), which for verification prompts (long question, short
verdict) is most of the sequence. Position ids are counted from each row's first real token, as ``generate``
counts them, so training log-probs match sampling log-probs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import torch

from verireason.records import Rollout


@dataclass
class TrainBatch:
    """One micro-batch. B sequences, T = longest prompt + completion, C = longest completion."""

    input_ids: torch.Tensor  # [B, T] left-padded prompt + completion
    attention_mask: torch.Tensor  # [B, T] 1 on real tokens
    position_ids: torch.Tensor  # [B, T] 0 at each row's first real token
    targets: torch.Tensor  # [B, C] = input_ids[:, T - C:], the tokens the last C positions predict
    loss_mask: torch.Tensor  # [B, C] float, 1 where a target token is trained
    advantages: torch.Tensor  # [B] float (one per sequence; 0 for supervised batches) or [B, C] (per token)
    parts: torch.Tensor | None = None  # [B, C] long action index per target token (-1: none); see Rollout.parts
    sample_logp: torch.Tensor | None = None  # [B, C] the rollout engine's log-probs (0 on padding); see Rollout

    def to(self, device) -> "TrainBatch":
        return TrainBatch(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name).to(device)
                             for f in fields(self)})

    @property
    def keep(self) -> int:
        """Positions whose logits are needed: C + 1 (the last one predicts past the end and is dropped)."""
        return self.targets.shape[1] + 1


def pack(prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]],
         trained: Sequence[Sequence[bool]], advantages: Sequence[float | Sequence[float]], pad_id: int,
         parts: Sequence[Sequence[int]] | None = None,
         sample_logprobs: Sequence[Sequence[float]] | None = None) -> TrainBatch:
    """A batch from prompt ids, completion ids and per-completion-token loss flags (``trained[i]`` has the length
    of ``completions[i]``; prompt tokens are never trained). ``advantages[i]`` is a scalar or, for per-token
    credit, a sequence as long as ``completions[i]``; if any is a sequence the batch's advantages are [B, C].
    ``parts[i]``, when given, is the action index of each completion token (left-padded with -1);
    ``sample_logprobs[i]`` the rollout engine's log-prob of each (left-padded with 0)."""
    rows = [list(p) + list(c) for p, c in zip(prompts, completions)]
    width = max(len(r) for r in rows)
    span = max(max(len(c) for c in completions), 1)
    input_ids = torch.tensor([[pad_id] * (width - len(r)) + r for r in rows])  # [B, T]
    attention = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])  # [B, T]
    flags = [[False] * (span - len(f)) + list(f) for f in trained]  # completion flags, left-padded to C
    return TrainBatch(
        input_ids=input_ids,
        attention_mask=attention,
        position_ids=(attention.cumsum(-1) - 1).clamp(min=0),
        targets=input_ids[:, width - span:],
        loss_mask=torch.tensor(flags, dtype=torch.float32),
        advantages=_advantages(advantages, [len(c) for c in completions], span),
        parts=None if parts is None else torch.tensor([[-1] * (span - len(p)) + list(p) for p in parts]),
        sample_logp=None if sample_logprobs is None else torch.tensor(
            [[0.0] * (span - len(x)) + list(x) for x in sample_logprobs], dtype=torch.float32),
    )


def _advantages(advantages: Sequence[float | Sequence[float]], lengths: Sequence[int], span: int) -> torch.Tensor:
    """[B] when every advantage is a scalar; else [B, C], scalars spread over their tokens, left-padded with 0."""
    if all(isinstance(a, (int, float)) for a in advantages):
        return torch.tensor([float(a) for a in advantages], dtype=torch.float32)
    rows = [[float(a)] * n if isinstance(a, (int, float)) else [float(x) for x in a] for a, n in zip(advantages, lengths)]
    return torch.tensor([[0.0] * (span - len(r)) + r for r in rows], dtype=torch.float32)


def rollouts_to_batch(rollouts: Sequence[Rollout], advantages: Sequence[float], pad_id: int) -> TrainBatch:
    """RL batch: the completion tokens each rollout's ``trained`` flags name (all by default), no prompt token;
    a rollout's ``token_advantages``, where set, replace its scalar advantage; ``parts`` are packed when every
    rollout has them, and so are ``sample_logprobs``."""
    with_parts = all(r.parts is not None for r in rollouts)
    with_logprobs = all(r.sample_logprobs is not None for r in rollouts)
    return pack([r.prompt_ids for r in rollouts], [r.completion_ids for r in rollouts],
                [r.trained if r.trained is not None else [True] * len(r.completion_ids) for r in rollouts],
                [r.token_advantages if r.token_advantages is not None else a for r, a in zip(rollouts, advantages)],
                pad_id, [r.parts for r in rollouts] if with_parts else None,
                [r.sample_logprobs for r in rollouts] if with_logprobs else None)
