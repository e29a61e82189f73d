"""Paper 3's rules (papers.md §3.2, §3.3, §3.5, §3.8), table-driven against the paper and its code: the trajectory
text and its SFT flags, the judge prompt and post-edits, the verdict filter, the difficulty buckets, and the
process-level RL baseline keyed by reward-history prefix."""

from __future__ import annotations

import pytest

from verireason.papers.s2r import (
    PrefixBaseline,
    confirmative_prompt,
    filter_verdict,
    history_keys,
    keep_verification,
    plan_trajectory,
    post_edit,
    trajectory_segments,
    wrong_count,
)
from verireason.protocols import split_s2r


def test_trajectory_text_is_byte_exact_and_flags_follow_the_code():
    segments = trajectory_segments([("x = 3. \\boxed{3}", "Check: 3 fails. Therefore, the answer is incorrect."),
                                    ("x = 5. \\boxed{5}", "5 fails too. The answer is incorrect.")],
                                   ("x = 4. \\boxed{4}", "Substituting 4 works. Therefore, the answer is correct."))
    text = "".join(s["text"] for s in segments)
    assert text == ("x = 3. \\boxed{3}\n\nWait, let me recheck my solution.\n\nCheck: 3 fails. Therefore, the answer is "
                    "incorrect.\n\nLet me try again.\n\nx = 5. \\boxed{5}\n\nWait, let me recheck my solution.\n\n5 fails "
                    "too. The answer is incorrect.\n\nLet me try again.\n\nx = 4. \\boxed{4}\n\nWait, let me recheck my "
                    "solution.\n\nSubstituting 4 works. Therefore, the answer is correct.")
    flags = [(s["text"].strip()[:12], s["train"]) for s in segments]
    assert flags == [("x = 3. \\boxe", False), ("Wait, let me", True), ("Let me try a", False),  # before a wrong attempt
                     ("x = 5. \\boxe", False), ("Wait, let me", True), ("Let me try a", True),  # before the final one
                     ("x = 4. \\boxe", True), ("Wait, let me", True)]
    kinds = [kind for kind, _ in split_s2r(text)]  # the eval protocol reads the same actions back
    assert kinds == ["solve", "verify", "solve", "verify", "solve", "verify"]


def test_a_correct_first_attempt_is_one_solve_and_one_verification():
    segments = trajectory_segments([], ("\\boxed{4}", "It checks out. Therefore, the answer is correct."))
    assert [s["train"] for s in segments] == [True, True] and len(segments) == 2


def test_judge_prompt_is_verbatim_and_post_edits_apply():
    assert confirmative_prompt("What is 2+2?", "4") == (
        "You are a math teacher. I will give you a math problem and an answer, please tell me whether this answer is "
        "correct. You cannot solve the problem step by step, you must use other methods to prove whether the answer "
        "is correct. \n\n* Question:\nWhat is 2+2?\n\n* Answer:\n4\n\n* Your Prove:\n")
    assert post_edit("The original answer holds without solving the problem step by step.") == "The answer holds."


@pytest.mark.parametrize("text,verdict", [
    ("Substituting back works. Therefore, the answer is correct.", True),
    ("We check the units. The answer appears to be correct", True),  # no final '.': the last piece
    ("It fits both equations. So the answer checks out.", True),
    ("The bound seems plausible.", True),  # "plausible" counts as correct
    ("Plugging in fails. Therefore, the answer is incorrect.", False),
    ("The answer is not the correct answer.", False),
    ("The result is likely incorrect.", False),  # an "incorrect" pattern wins over the "correct" inside it
    ("The calculation is wrong.", False),
    ("I cannot fully verify this answer.", None),  # dropped
    ("Earlier it said the answer is correct. Then we stop.", True),  # the code falls back to the sentence before
    ("Nothing conclusive here.", None),
])
def test_verdict_filter_reads_the_conclusion_with_the_codes_patterns(text, verdict):
    assert filter_verdict(text)[0] is verdict
    assert keep_verification(text, True) is (verdict is True)
    assert keep_verification(text, False) is (verdict is False)


@pytest.mark.parametrize("wrong,verified_wrong,has_correct,plan", [
    (0, 0, True, (0, 0.2394)),  # easy: [s✓, v] kept at 0.76·0.45·0.7
    (1, 1, True, (1, 0.5)),
    (1, 0, True, None),  # its wrong answer had no kept verification (ours)
    (2, 2, True, (2, 0.5)),
    (3, 1, True, (1, 1.0)),  # fallback 1 + 1, always kept
    (4, 3, True, (3, 0.5)),
    (5, 2, True, (2, 1.0)),  # top bucket's fallbacks
    (20, 1, True, (1, 1.0)),
    (5, 3, False, None),  # no verified correct response: dropped
])
def test_difficulty_buckets_and_keep_probabilities(wrong, verified_wrong, has_correct, plan):
    assert plan_trajectory(wrong, verified_wrong, has_correct) == plan


def test_wrong_count_uses_exact_strings():
    assert wrong_count(["4", "4.0", None, "4", "\\frac{8}{2}"], "4") == 3  # equivalent forms count as wrong


def test_history_keys_are_reward_prefixes():
    assert history_keys([("solve", -1.0), ("verify", 1.0), ("solve", 1.0), ("verify", 1.0)]) == [
        "", "R-1", "R-1V1", "R-1V1R1"]


def test_prefix_baseline_over_three_batches_with_the_count_threshold_and_resume():
    """Hand-computed: the baseline of a prefix is its mean raw reward over earlier batches once seen 10 times."""
    base = PrefixBaseline(min_count=10)
    # batch 1: 6 first actions ("" prefix) rewarded 1, 2 rewarded -1 → count 8 < 10, so every baseline is 0
    first = base.advantages([("", 1.0)] * 6 + [("", -1.0)] * 2)
    assert first == [1.0] * 6 + [-1.0] * 2
    # batch 2 (another process's 4 actions are gathered in): still read from before the batch (8 < 10) → 0
    other = [("", -1.0)] * 4
    second = base.advantages([("", 1.0), ("R1", 1.0)], gather=lambda mine: mine + other)
    assert second == [1.0, 1.0]
    assert base.counts == {"": 13, "R1": 1} and base.sums[""] == pytest.approx(6 - 2 + 1 - 4)
    saved = base.state()
    resumed = PrefixBaseline(min_count=10)
    resumed.load_state(saved)
    # batch 3: "" has 13 occurrences with sum 1 → b = 1/13; "R1" has 1 < 10 → 0
    for b in (base, resumed):
        third = b.advantages([("", 1.0), ("", -1.0), ("R1", -1.0)])
        assert third == pytest.approx([1 - 1 / 13, -1 - 1 / 13, -1.0])
    assert resumed.state() == base.state()
