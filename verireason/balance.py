"""Paper 1's balanced, on-policy self-verification set (papers.md §1.4, §1.6b), built from a model's own graded
samples as the released code builds it (``_create_verification_prompts`` / ``_add_verification_buffer`` of
``chenyuxin1999/Learning-to-Self-Verify``), draw for draw: the same random calls in the same order, so that one
seeded ``random.Random`` gives the code's choices.

Rules, in order: drop samples without a prediction (the code's ``valid == 0``); a group (one prompt's samples) with
at least one valid sample is *valid*, and ``half = #valid groups // 2``. In batch order, each mixed group gives one
random "Yes" (``randrange`` then pop) and one random "No" to the primary lists, then one more random "Yes" and "No"
(``choice`` among the rest), when any are left, to the secondary pools; an all-correct group gives one random
"Yes" to the secondary pool; an all-wrong group gives nothing. Each primary list is topped up to ``half`` from
its secondary pool without replacement (``sample``), then with replacement (``choices``) — from the secondary pool
only, so a list stays short when that pool is empty — and cut to its first ``half`` (so the primary samples of the
first mixed groups in batch order are kept). The set is the No list then the Yes list, shuffled.

A sample's label is ``label(sample)``: the code's ``reward >= 0.5``, which with the overlong penalty on is not the
same as correct (a correct answer cut deep into the overlong buffer is labelled "No").
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from verireason.records import Sample


@dataclass
class BalancedSet:
    """The verification set, and the size the code derives from it: ``2 × (#valid groups // 2)`` (verify-alter's
    chunk of the buffer, ``target_size``)."""

    pairs: list[tuple[Sample, bool]]  # (sample, label): True for "Yes"
    target_size: int


def _fill(final: list, pool: list, size: int, rng: random.Random, replacement: bool) -> None:
    """The code's ``_fill_samples_from_pool``."""
    needed = size - len(final)
    if not pool or needed <= 0:
        return
    final.extend(rng.choices(pool, k=needed) if replacement else rng.sample(pool, min(needed, len(pool))))


def _correct(sample: Sample) -> bool:
    return sample.correct


def balanced_set(groups: Sequence[Sequence[Sample]], rng: random.Random,
                 label: Callable[[Sample], bool] = _correct) -> BalancedSet:
    """The balanced set of ``groups`` (each one prompt's samples, in batch order)."""
    no, yes, no_pool, yes_pool = [], [], [], []
    valid_groups = [[s for s in group if s.formatted] for group in groups]
    valid_groups = [g for g in valid_groups if g]
    half = len(valid_groups) // 2
    for group in valid_groups:
        right = [s for s in group if label(s)]
        wrong = [s for s in group if not label(s)]
        if right and wrong:
            yes.append(right.pop(rng.randrange(len(right))))
            no.append(wrong.pop(rng.randrange(len(wrong))))
            if right:
                yes_pool.append(rng.choice(right))
            if wrong:
                no_pool.append(rng.choice(wrong))
        elif right:
            yes_pool.append(rng.choice(group))
    _fill(no, no_pool, half, rng, replacement=False)
    _fill(yes, yes_pool, half, rng, replacement=False)
    _fill(no, no_pool, half, rng, replacement=True)
    _fill(yes, yes_pool, half, rng, replacement=True)
    pairs = [(s, False) for s in no[:half]] + [(s, True) for s in yes[:half]]
    rng.shuffle(pairs)
    return BalancedSet(pairs, 2 * half)


def balanced_verification_set(groups: Sequence[Sequence[Sample]], rng: random.Random,
                              label: Callable[[Sample], bool] = _correct) -> list[tuple[Sample, bool]]:
    """``(sample, label)`` pairs of ``balanced_set``."""
    return balanced_set(groups, rng, label).pairs
