"""The training batch: left padding, targets at the end, loss mask on completion tokens only, and log-probs that
equal those of each sequence run alone (position ids counted from the first real token)."""

from __future__ import annotations

import torch

from verireason.collate import pack, rollouts_to_batch
from verireason.records import Rollout


def test_pack_layout_and_mask():
    batch = pack([[5, 6, 7], [8]], [[9, 2], [10, 11, 2]], [[True, True], [False, True, True]], [0.5, -1.0], pad_id=0)
    assert batch.input_ids.tolist() == [[5, 6, 7, 9, 2], [0, 8, 10, 11, 2]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1, 1], [0, 1, 1, 1, 1]]
    assert batch.position_ids.tolist() == [[0, 1, 2, 3, 4], [0, 0, 1, 2, 3]]
    assert batch.targets.tolist() == [[7, 9, 2], [10, 11, 2]]
    assert batch.loss_mask.tolist() == [[0.0, 1.0, 1.0], [0.0, 1.0, 1.0]]  # prompt token 7 and the masked 10: off
    assert batch.keep == 4 and batch.advantages.tolist() == [0.5, -1.0]


def test_rollouts_train_every_completion_token():
    r = Rollout("generate", "g", "p", "c", (1, 2, 3), (4, 5), 1.0, "stop")
    batch = rollouts_to_batch([r], [1.0], pad_id=0)
    assert batch.loss_mask.tolist() == [[1.0, 1.0]] and batch.targets.tolist() == [[4, 5]]


def test_logprobs_match_unpadded_forward(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from verireason.losses import forward_logits, token_logprobs

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).train(False)
    prompts, completions = [[3, 70, 71, 72, 73], [3, 74]], [[80, 2], [81, 82, 83, 2]]
    batch = pack(prompts, completions, [[True] * 2, [True] * 4], [0.0, 0.0], pad_id=0)
    with torch.no_grad():
        batched = token_logprobs(forward_logits(model, batch), batch.targets)
        for row, (p, c) in enumerate(zip(prompts, completions)):
            ids = torch.tensor([p + c])
            logits = model(ids).logits[0, len(p) - 1 : -1]
            alone = torch.log_softmax(logits, -1).gather(-1, torch.tensor(c).unsqueeze(-1)).squeeze(-1)
            assert torch.allclose(batched[row, -len(c):], alone, atol=1e-5)


def test_multi_turn_flags_train_only_the_policys_turns():
    """An episode attempt → feedback → attempt: the feedback tokens (flag False) are never in the loss."""
    import pytest

    flags = (True, True, False, False, False, True, True)
    r = Rollout("vil", "g", "p", "c", (1, 2), (10, 11, 50, 51, 52, 12, 13), 1.0, "stop", trained=flags)
    batch = rollouts_to_batch([r], [0.5], pad_id=0)
    assert batch.loss_mask.tolist() == [[1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0]] and r.trained_tokens == 4
    with pytest.raises(ValueError, match="trained has 2 entries for 7 tokens"):
        Rollout("vil", "g", "p", "c", (1,), (10, 11, 50, 51, 52, 12, 13), 1.0, "stop", trained=(True, False))


def test_token_advantages_replace_the_scalar_and_mix_with_scalar_rollouts():
    a = Rollout("s2r", "g", "p", "c", (1,), (4, 5, 6), 1.0, "stop", token_advantages=(1.0, -1.0, 0.5))
    b = Rollout("s2r", "g", "p", "c", (1, 2), (7, 8), 0.0, "stop")
    batch = rollouts_to_batch([a, b], [9.0, -0.25], pad_id=0)
    assert batch.advantages.tolist() == [[1.0, -1.0, 0.5], [0.0, -0.25, -0.25]]  # b's scalar spread, left-padded
    assert rollouts_to_batch([b], [-0.25], pad_id=0).advantages.tolist() == [-0.25]  # scalars stay [B]
