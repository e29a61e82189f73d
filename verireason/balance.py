"""Paper 1's balanced, on-policy self-verification set (papers.md §1.4), built from a model's own graded samples.

Rules, in order: drop responses without a boxed answer (paper 1's ``valid == 0``); skip groups whose responses are
all wrong; from each mixed group take one random correct response as a "Yes" and one random wrong response as a
"No" into the primary pools, and one more of each, when there is one, into the secondary pools; from each
all-correct group put one random correct response into the secondary "Yes" pool. Then fill the Yes and No lists
to ``#valid groups // 2`` each from the primary pool, then the secondary pool without replacement, then with
replacement; concatenate and shuffle. A group is valid when it has at least one boxed response.
Used by ``asymmetry-probe`` now and by ``rl-verify`` later.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from verireason.records import Sample


def _fill(primary: list[Sample], secondary: list[Sample], size: int, rng: random.Random) -> list[Sample]:
    rng.shuffle(primary)
    rng.shuffle(secondary)
    chosen = primary[:size] + secondary[: max(0, size - len(primary))]
    pool = primary + secondary
    while len(chosen) < size and pool:
        chosen.append(rng.choice(pool))
    return chosen


def balanced_verification_set(groups: Sequence[Sequence[Sample]], rng: random.Random) -> list[tuple[Sample, bool]]:
    """``(sample, label)`` pairs, label True for "Yes" (the sample is correct), about half of each."""
    yes, no, yes_extra, no_extra = [], [], [], []
    valid_groups = 0
    for group in groups:
        valid = [s for s in group if s.formatted]
        if not valid:
            continue
        valid_groups += 1
        right = [s for s in valid if s.correct]
        wrong = [s for s in valid if not s.correct]
        rng.shuffle(right)
        rng.shuffle(wrong)
        if not right:
            continue  # all wrong: skipped entirely
        if wrong:
            yes.append(right[0])
            no.append(wrong[0])
            yes_extra += right[1:2]
            no_extra += wrong[1:2]
        else:
            yes_extra.append(right[0])
    half = valid_groups // 2
    pairs = [(s, True) for s in _fill(yes, yes_extra, half, rng)] + [(s, False) for s in _fill(no, no_extra, half, rng)]
    rng.shuffle(pairs)
    return pairs
