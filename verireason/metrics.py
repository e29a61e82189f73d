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


def majority_vote(answers: Sequence[tuple[str | None, bool]]) -> bool:
    """Whether the most frequent answer is correct, given ``(extracted answer, correct)`` pairs. Answers are
    compared after Minerva normalisation; ties go to the answer seen first; None does not vote; no votes is wrong."""
    votes: Counter[str] = Counter()
    verdict: dict[str, bool] = {}
    for answer, correct in answers:
        if answer is None:
            continue
        key = normalize_final_answer(answer)
        votes[key] += 1
        verdict.setdefault(key, correct)
    return bool(votes) and verdict[votes.most_common(1)[0][0]]


def majority_correct(samples: Sequence[Sample]) -> bool:
    """maj@n of one problem's samples."""
    return majority_vote([(s.extracted, s.correct) for s in samples])


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


def verification_metrics(pairs: Sequence[tuple[bool | None, bool]]) -> dict[str, float | int]:
    """Verifier quality from ``(claimed, truth)`` pairs (papers.md §1.8, §3.6).

    ``tpr`` is the share of correct solutions judged correct, ``tnr`` the share of incorrect ones judged incorrect
    (S²R's "error recall"), ``precision`` the share of "correct" verdicts that are right. An unparseable verdict
    (None) is neither a yes nor a no: it counts against accuracy, TPR and TNR and is reported as ``unparseable``.
    """
    n = len(pairs)
    if n == 0:
        return {"verifications": 0}
    tp = sum(c is True and t for c, t in pairs)
    fp = sum(c is True and not t for c, t in pairs)
    tn = sum(c is False and not t for c, t in pairs)
    positives = sum(t for _, t in pairs)
    negatives = n - positives
    tpr = tp / positives if positives else float("nan")
    tnr = tn / negatives if negatives else float("nan")
    precision = tp / (tp + fp) if tp + fp else float("nan")
    return {
        "verifications": n,
        "verify_accuracy": (tp + tn) / n,
        "verify_balanced_accuracy": (tpr + tnr) / 2,
        "tpr": tpr,
        "tnr": tnr,
        "precision": precision,
        "f1": 2 * precision * tpr / (precision + tpr) if precision + tpr else 0.0,
        "unparseable": sum(c is None for c, _ in pairs) / n,
        "judged_correct_share": positives / n,
    }


def guided_majority_correct(samples: Sequence[Sample], accepted: Sequence[bool]) -> bool:
    """Verification-guided majority vote (OUR interpretation of paper 1, papers.md §1.10): the majority over the
    answers the model itself accepted; plain majority when it accepted none."""
    kept = [s for s, ok in zip(samples, accepted) if ok]
    return majority_correct(kept if kept else samples)


def vr_metrics(chains: Sequence, rounds: int) -> dict[str, float | int]:
    """Verify-refine loop metrics per round r = 0..R (papers.md §2.2, §2.6): accuracy of each chain's current
    answer, the share of chains accepted so far (``accept``), ``inflation`` = accept - accuracy, and the
    precision of accepted answers at that coverage."""
    out: dict[str, float | int] = {"chains": len(chains)}
    for r in range(rounds + 1):
        current = [c.rounds[min(r, len(c.rounds) - 1)] for c in chains]
        accuracy = sum(x.correct for x in current) / len(chains)
        accepted = [c for c in chains if c.accepted_round is not None and c.accepted_round < r]
        accept = len(accepted) / len(chains)
        out[f"round{r}/accuracy"] = accuracy
        if r > 0:
            out[f"round{r}/accept"] = accept
            out[f"round{r}/inflation"] = accept - accuracy
            out[f"round{r}/precision"] = (sum(c.rounds[c.accepted_round].correct for c in accepted) / len(accepted)
                                          if accepted else float("nan"))
    out["round0_pass@1"] = out["round0/accuracy"]
    out["final_pass@1"] = out[f"round{rounds}/accuracy"]
    out["tokens_per_chain"] = sum(c.tokens for c in chains) / len(chains)
    return out


def compute_matched(chains: Sequence, tokens_per_chain: float) -> dict[str, float | int]:
    """Baselines at the V-R loop's token budget, from the chains' independent round-0 samples: N = V-R tokens per
    chain / round-0 tokens per sample (capped at the chains per problem). ``bestofN_oracle`` is pass@N (best-of-N
    with a perfect selector: an upper bound); ``majN`` is majority vote over the first N round-0 answers."""
    groups: dict[tuple[str, str], list] = defaultdict(list)
    for c in chains:
        groups[(c.bench, c.problem_id)].append(c.rounds[0])
    round0_tokens = sum(r.tokens for g in groups.values() for r in g) / sum(len(g) for g in groups.values())
    size = min(len(g) for g in groups.values())
    n = max(1, min(size, round(tokens_per_chain / max(round0_tokens, 1e-9))))
    votes = [majority_vote([(r.extracted, r.correct) for r in g[:n]]) for g in groups.values()]
    return {
        "matched_n": n,
        "bestofN_oracle": sum(pass_at_k(len(g), sum(r.correct for r in g), n) for g in groups.values()) / len(groups),
        "majN": sum(votes) / len(votes),
    }


def transition_rates(attempt_correct: Sequence[Sequence[bool]]) -> dict[str, float | int]:
    """S²R's correction metrics (papers.md §3.6): over consecutive attempts in one response, the share of
    incorrect attempts followed by a correct one, and of correct attempts followed by an incorrect one."""
    i_next = [b for seq in attempt_correct for a, b in zip(seq, seq[1:]) if not a]
    c_next = [b for seq in attempt_correct for a, b in zip(seq, seq[1:]) if a]
    return {
        "mean_attempts": sum(len(s) for s in attempt_correct) / max(len(attempt_correct), 1),
        "incorrect_to_correct": sum(i_next) / len(i_next) if i_next else float("nan"),
        "correct_to_incorrect": sum(not b for b in c_next) / len(c_next) if c_next else float("nan"),
        "transitions": len(i_next) + len(c_next),
    }


def bootstrap_mean(values: Sequence[float], seed: int = 0, reps: int = 2000) -> tuple[float, float, float]:
    """The mean of per-problem values and its 95% percentile-bootstrap interval (problems resampled with
    replacement, ``reps`` times, a fixed seed so that a report is reproducible). NaN for no values."""
    import random

    if not values:
        return float("nan"), float("nan"), float("nan")
    rng, n = random.Random(seed), len(values)
    means = sorted(sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(reps))
    return sum(values) / n, means[int(0.025 * reps)], means[min(reps - 1, int(0.975 * reps))]


def paired_difference(after: dict, before: dict, seed: int = 0) -> tuple[float, float, float, int]:
    """``after - before`` over the problems both hold (dicts of per-problem values), with its paired bootstrap
    interval, and the number of shared problems."""
    shared = sorted(set(after) & set(before))
    return (*bootstrap_mean([after[k] - before[k] for k in shared], seed), len(shared))


def balanced_accuracy_interval(pairs: Sequence[tuple[bool | None, bool]], seed: int = 0,
                               reps: int = 2000) -> tuple[float, float]:
    """95% percentile-bootstrap interval of balanced accuracy over ``(claimed, truth)`` pairs, the judged responses
    resampled within each label so that every replicate keeps the set's balance. NaN for a set lacking a label."""
    import random

    right, wrong = [p for p in pairs if p[1]], [p for p in pairs if not p[1]]
    if not right or not wrong:
        return float("nan"), float("nan")
    rng = random.Random(seed)
    values = sorted(verification_metrics([rng.choice(right) for _ in right] + [rng.choice(wrong) for _ in wrong])
                    ["verify_balanced_accuracy"] for _ in range(reps))
    return values[int(0.025 * reps)], values[min(reps - 1, int(0.975 * reps))]
