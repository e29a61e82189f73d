"""S²R's online RL pieces (papers.md §3.5, §3.8): actions split on token ids, per-action rewards with the truncation
rule, ORL's RLOO advantages with the KL term, PRL's advantages (prefix baseline, bonuses after it, delimiters' KL
only), and the per-part clipped loss against hand-computed numbers."""

from __future__ import annotations

import pytest
import torch

from verireason.losses import part_pg_loss
from verireason.papers.s2r import RECHECK, RETRY, PrefixBaseline, trajectory_segments
from verireason.papers.s2r_actions import Action, Scored, delimiter_ids, score_actions, split_actions
from verireason.papers.s2r_rl import action_rewards, orl_advantages, part_tokens, prl_advantages


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from verireason.models import load_tokenizer

    return load_tokenizer(str(tiny_model_dir))


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_actions_split_on_token_ids_and_the_eos_is_no_action(tokenizer):
    segments = trajectory_segments([("x is \\boxed{3}", "Therefore, the answer is incorrect.")],
                                   ("x is \\boxed{2}", "Therefore, the answer is correct."))
    text = "".join(s["text"] for s in segments)
    ids = [*_ids(tokenizer, text), tokenizer.eos_token_id]
    actions = split_actions(ids, *delimiter_ids(tokenizer), tokenizer.eos_token_id)
    assert [a.kind for a in actions] == ["solve", "delimiter", "verify", "delimiter", "solve", "delimiter", "verify"]
    spans = [tokenizer.decode(ids[a.start : a.end]) for a in actions]
    assert spans[0] == "x is \\boxed{3}\n\n" and spans[1] == "Wait," and spans[3] == "Let me try again.\n\n"
    assert spans[2] == " let me recheck my solution.\n\nTherefore, the answer is incorrect.\n\n"
    assert "".join(spans) == text  # every token but the EOS belongs to exactly one action
    parts, trained = part_tokens(actions, len(ids))
    assert parts[-1] == -1 and trained[-1] is False and all(trained[:-1])
    assert parts[: actions[1].start] == (0,) * actions[1].start


def test_a_response_without_delimiters_is_one_solve_action(tokenizer):
    ids = _ids(tokenizer, "The answer is \\boxed{1}")
    assert split_actions(ids, *delimiter_ids(tokenizer), None) == [Action("solve", 0, len(ids))]


def _scored(kinds: str, correct: list[bool], verdicts: list[bool], finished: bool = True) -> Scored:
    """A response from kinds ("s" solve, "v" verify, "d" delimiter), each action one token wide."""
    actions = [Action({"s": "solve", "v": "verify", "d": "delimiter"}[k], i, i + 1) for i, k in enumerate(kinds)]
    texts = iter([f"Therefore, the answer is {'correct' if v else 'incorrect'}." for v in verdicts])
    decode = lambda ids: next(texts)  # noqa: E731
    return score_actions(list(range(len(kinds))), actions, decode, correct, finished)


def test_action_rewards_and_the_truncation_rule():
    scored = _scored("sdvdsdv", [False, True], [False, True])  # wrong, judged wrong, retry right, judged right
    assert action_rewards(scored) == [("solve", -1.0), None, ("verify", 1.0), None, ("solve", 1.0), None,
                                      ("verify", 1.0)]
    wrong_verdict = _scored("sdv", [False], [True])
    assert action_rewards(wrong_verdict)[2] == ("verify", -1.0)
    cut = _scored("sdv", [True], [True], finished=False)  # cut off without EOS, after a delimiter: a flat −1
    assert action_rewards(cut)[2] == ("verify", 1.0) and cut.truncated_last == 2  # the raw reward stays +1
    [adv] = prl_advantages([cut], [[0.0] * 3], PrefixBaseline(min_count=1), 0.0)
    assert adv[2] == -1.0  # not (1 − b) × 2
    [adv] = prl_advantages([cut], [[0.0] * 3], PrefixBaseline(min_count=1), 0.0, truncation_penalty=False)
    assert adv[2] == 2.0  # verifying a correct attempt: ×2
    assert _scored("s", [True], [], finished=False).truncated_last is None  # no delimiter: no penalty (§3.8)
    assert _scored("sd", [True], [], finished=False).truncated_last is None  # ends in a delimiter: none either


def test_orl_advantages_are_rloo_minus_the_summed_kl():
    rewards, groups = [1.0, -1.0, -1.0, -1.0, 1.0, 1.0], ["a"] * 4 + ["b"] * 2
    kl = [0.5, 2.0, 0.0, 1.0, 3.0, 3.0]
    adv = orl_advantages(rewards, groups, kl, kl_coef=0.1)
    # RLOO: 1 − mean(−1,−1,−1) = 2; −1 − mean(1,−1,−1) = −2/3. Group b is all equal: 0, and no KL term either.
    assert adv == pytest.approx([2 - 0.05, -2 / 3 - 0.2, -2 / 3, -2 / 3 - 0.1, 0.0, 0.0])


def test_prl_advantages_baseline_then_bonuses_and_delimiters_keep_only_their_kl():
    baseline = PrefixBaseline(min_count=1)
    baseline.load_state({"sums": {"": -2.0, "R-1": 1.0, "R-1V1": 3.0}, "counts": {"": 4, "R-1": 2, "R-1V1": 3}})
    scored = _scored("sdvds", [False, True], [False])  # wrong → judged wrong → right
    kl = [[0.1, 0.2, 0.3, 0.4, 0.5]]
    [adv] = prl_advantages([scored], kl, baseline, kl_coef=1.0)
    # solve −1 − b("") = −1 − (−0.5) = −0.5; verify (judged a wrong attempt: no verify bonus) 1 − 0.5 = 0.5;
    # retry right after wrong: (1 − 1) × 2 = 0; delimiters: 0. Each minus its own KL.
    assert adv == pytest.approx([-0.5 - 0.1, -0.2, 0.5 - 0.3, -0.4, 0.0 - 0.5])
    assert baseline.counts == {"": 5, "R-1": 3, "R-1V1": 4}  # the batch joins the statistics after it is read


def test_prl_verify_bonus_doubles_after_the_baseline():
    baseline = PrefixBaseline(min_count=1)
    baseline.load_state({"sums": {"R1": 1.0}, "counts": {"R1": 4}})
    [adv] = prl_advantages([_scored("sdv", [True], [True])], [[0.0] * 3], baseline, kl_coef=0.0)
    assert adv == pytest.approx([1.0, 0.0, (1.0 - 0.25) * 2])
    [plain] = prl_advantages([_scored("sdv", [True], [True])], [[0.0] * 3], PrefixBaseline(min_count=1),
                             kl_coef=0.0, verify_bonus=False)
    assert plain == pytest.approx([1.0, 0.0, 1.0])


def test_part_loss_ratio_per_part_and_mean_over_parts():
    logp = torch.tensor([[-1.0, -2.0, -0.5, -0.5]], requires_grad=True)
    old = torch.tensor([[-1.2, -2.2, -0.5, -1.5]])
    adv = torch.tensor([[1.0, 1.0, -2.0, -2.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])  # the last token is not trained (e.g. EOS)
    parts = torch.tensor([[0, 0, 1, -1]])
    loss, stats = part_pg_loss(logp, old, adv, mask, parts, clip_low=0.2, clip_high=0.2)
    r0 = torch.exp(torch.tensor(0.2))  # part 0: mean log-ratio 0.2 → ratio 1.221, clipped at 1.2 for A = +1
    expected = (torch.maximum(-1 * r0, -1 * torch.tensor(1.2)) + torch.tensor(2.0)) / 2  # part 1: ratio 1, A = −2
    assert loss.item() == pytest.approx(float(expected))
    assert stats["clip_frac"] == pytest.approx(0.5)
    loss.backward()
    # part 0 is clipped (no gradient); part 1: d/dlogp of 2·exp(logp − old) / 2 parts = 1 on its one token
    assert logp.grad[0].tolist() == pytest.approx([0.0, 0.0, 1.0, 0.0])


def test_part_loss_on_policy_is_the_advantage_weighted_part_mean():
    torch.manual_seed(0)
    logp = torch.randn(2, 5, requires_grad=True)
    adv = torch.tensor([[0.5] * 5, [-1.0, -1.0, 2.0, 2.0, 2.0]])
    parts = torch.tensor([[0, 0, 0, 0, 0], [0, 0, 1, 1, 1]])
    mask = torch.ones(2, 5)
    loss, _ = part_pg_loss(logp, logp.detach(), adv, mask, parts)
    loss.backward()
    want = torch.tensor([[-0.5 / 5] * 5, [1.0 / 2, 1.0 / 2, -2.0 / 3, -2.0 / 3, -2.0 / 3]]) / 3  # 3 parts in all
    assert torch.allclose(logp.grad, want)
