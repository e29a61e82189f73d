"""Scores over graded samples: accuracy (the papers' Acc@n), unbiased pass@k, majority vote, lengths.

pass@k uses the unbiased estimator of Chen et al. 2021 (HumanEval), 1 - C(n-c, k) / C(n, k), averaged over problems.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from math import comb

from verireason.grading import normalize_final_answer
from verireason.records import Sample


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn without replacement from n (c correct) is correct."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n (n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def ks_for(n: int) -> list[int]:
    """k = 1, 2, 4, … up to n, and n itself."""
    ks, k = [], 1
    while k < n:
        ks.append(k)
        k *= 2
    return ks + [n]


def majority_correct(samples: Sequence[Sample]) -> bool:
    """maj@n: the most frequent extracted answer (compared after Minerva normalisation; ties go to the answer
    seen first) is correct. Samples with no answer do not vote; no votes at all counts as wrong."""
    votes: Counter[str] = Counter()
    verdict: dict[str, bool] = {}
    for s in samples:
        if s.extracted is None:
            continue
        key = normalize_final_answer(s.extracted)
        votes[key] += 1
        verdict.setdefault(key, s.correct)
    if not votes:
        return False
    return verdict[votes.most_common(1)[0][0]]


def summarize(samples: Sequence[Sample]) -> dict[str, float | int]:
    """Metrics of one benchmark: problems, samples, accuracy, pass@k, maj@n, mean tokens, truncation rate."""
    groups: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        groups[s.problem_id].append(s)
    if not groups:
        return {"problems": 0, "samples": 0}
    n = min(len(g) for g in groups.values())
    summary: dict[str, float | int] = {
        "problems": len(groups),
        "samples": len(samples),
        "n": n,
        "accuracy": sum(s.correct for s in samples) / len(samples),
    }
    for k in ks_for(n):
        summary[f"pass@{k}"] = sum(pass_at_k(len(g), sum(s.correct for s in g), k) for g in groups.values()) / len(groups)
    summary[f"maj@{n}"] = sum(majority_correct(g) for g in groups.values()) / len(groups)
    summary["mean_tokens"] = sum(s.tokens for s in samples) / len(samples)
    summary["truncated"] = sum(s.finish_reason == "length" for s in samples) / len(samples)
    summary["boxed"] = sum(s.formatted for s in samples) / len(samples)
    return summary
