"""Metrics: unbiased pass@k against brute-force enumeration, majority vote, the per-benchmark summary."""

from __future__ import annotations

import math
from itertools import combinations

import pytest

from verireason.metrics import (
    balanced_accuracy_interval,
    compute_matched,
    guided_majority_correct,
    ks_for,
    majority_correct,
    pass_at_k,
    summarize,
    transition_rates,
    verification_metrics,
    vr_metrics,
)
from verireason.records import Chain, Round, Sample


def brute_force_pass_at_k(outcomes: list[bool], k: int) -> float:
    subsets = list(combinations(range(len(outcomes)), k))
    return sum(any(outcomes[i] for i in subset) for subset in subsets) / len(subsets)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_pass_at_k_matches_enumeration(n):
    for c in range(n + 1):
        outcomes = [True] * c + [False] * (n - c)
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(brute_force_pass_at_k(outcomes, k))


def test_pass_at_k_rejects_impossible_arguments():
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)


def test_ks_for():
    assert ks_for(1) == [1]
    assert ks_for(16) == [1, 2, 4, 8, 16]
    assert ks_for(6) == [1, 2, 4, 6]


def sample(pid, extracted, correct, tokens=10, finish="stop", bench="b"):
    return Sample(bench=bench, problem_id=pid, sample_index=0, prompt="", completion="", extracted=extracted,
                  correct=correct, formatted=extracted is not None, tokens=tokens, finish_reason=finish, gold="")


def test_majority_vote_uses_normalised_answers_and_ignores_missing():
    group = [sample("p", "5", True), sample("p", "$5$", True), sample("p", "7", False), sample("p", None, False)]
    assert majority_correct(group) is True
    assert majority_correct([sample("p", "7", False), sample("p", "7", False), sample("p", "5", True)]) is False
    assert majority_correct([sample("p", None, False)]) is False


def test_summarize_hand_computed():
    samples = [
        sample("a", "1", True, 10), sample("a", "2", False, 20, "length"),
        sample("b", "3", False, 30), sample("b", "3", False, 40),
    ]
    s = summarize(samples)
    assert (s["problems"], s["samples"], s["n"]) == (2, 4, 2)
    assert s["accuracy"] == pytest.approx(0.25)
    assert s["pass@1"] == pytest.approx(0.25)
    assert s["pass@2"] == pytest.approx(0.5)
    assert s["maj@2"] == pytest.approx(0.5)  # a: tie, first answer "1" (correct) wins; b: "3" wrong
    assert s["mean_tokens"] == pytest.approx(25)
    assert s["truncated"] == pytest.approx(0.25)


def test_verification_metrics_hand_computed():
    pairs = [(True, True), (True, True), (False, True), (None, True),  # 4 correct solutions: 2 accepted
             (False, False), (True, False), (None, False), (False, False)]  # 4 wrong: 2 rejected
    m = verification_metrics(pairs)
    assert m["verify_accuracy"] == pytest.approx(4 / 8)
    assert (m["tpr"], m["tnr"]) == (pytest.approx(0.5), pytest.approx(0.5))
    assert m["verify_balanced_accuracy"] == pytest.approx(0.5)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    assert m["unparseable"] == pytest.approx(2 / 8)


def test_guided_majority_prefers_accepted_answers():
    group = [sample("p", "7", False), sample("p", "7", False), sample("p", "5", True)]
    assert guided_majority_correct(group, [False, False, True]) is True
    assert guided_majority_correct(group, [False, False, False]) is False  # none accepted: plain majority


def chain(pid, corrects, accepted, tokens=10):
    rounds = [Round(response="", extracted=str(int(c)), correct=c, tokens=tokens, verify_tokens=2) for c in corrects]
    return Chain(bench="b", problem_id=pid, chain=0, level=None, rounds=rounds, accepted_round=accepted)


def test_vr_metrics_per_round():
    chains = [chain("a", [False, True], 1), chain("b", [True], 0), chain("c", [False, False, False], None),
              chain("d", [False, False, False], 1)]  # d: accepted a wrong answer at round 2, then (never) refined
    m = vr_metrics(chains, rounds=2)
    assert m["round0/accuracy"] == pytest.approx(1 / 4)
    assert m["round1/accuracy"] == pytest.approx(2 / 4) and m["round1/accept"] == pytest.approx(1 / 4)
    assert m["round2/accept"] == pytest.approx(3 / 4) and m["round2/accuracy"] == pytest.approx(2 / 4)
    assert m["round2/inflation"] == pytest.approx(1 / 4)
    assert m["round2/precision"] == pytest.approx(2 / 3)
    assert (m["round0_pass@1"], m["final_pass@1"]) == (pytest.approx(0.25), pytest.approx(0.5))
    assert m["tokens_per_chain"] == pytest.approx((24 + 12 + 36 + 36) / 4)


def test_compute_matched_uses_round0_samples():
    chains = [chain("a", [c], 0, tokens=10) for c in (True, False, False, False)]
    m = compute_matched(chains, tokens_per_chain=24)  # 24 / 10 tokens per round-0 sample → N = 2
    assert m["matched_n"] == 2
    assert m["bestofN_oracle"] == pytest.approx(pass_at_k(4, 1, 2))
    assert m["majN"] == pytest.approx(1.0)  # first two answers "1" and "0": tie, first ("1", correct) wins


def test_transition_rates():
    m = transition_rates([[False, True], [True, False], [False, False, True], [True]])
    assert m["incorrect_to_correct"] == pytest.approx(2 / 3)
    assert m["correct_to_incorrect"] == pytest.approx(1 / 1)
    assert m["mean_attempts"] == pytest.approx(8 / 4)


def test_balanced_interval_resamples_within_each_label():
    pairs = [(True, True)] * 18 + [(False, True)] * 2 + [(False, False)] * 17 + [(True, False)] * 4
    lo, hi = balanced_accuracy_interval(pairs)
    assert lo < (18 / 20 + 17 / 21) / 2 < hi and hi - lo < 0.3
    assert balanced_accuracy_interval([(True, True), (False, False)]) == (1.0, 1.0)
    assert all(math.isnan(x) for x in balanced_accuracy_interval([(True, True), (False, True)]))  # one label only
