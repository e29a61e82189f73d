"""Metrics: unbiased pass@k against brute-force enumeration, majority vote, the per-benchmark summary."""

from __future__ import annotations

from itertools import combinations

import pytest

from verireason.metrics import ks_for, majority_correct, pass_at_k, summarize
from verireason.records import Sample


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
