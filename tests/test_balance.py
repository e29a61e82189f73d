"""Paper 1's balanced verification set (papers.md §1.4) against its rules."""

from __future__ import annotations

import random

from verireason.balance import balanced_verification_set
from verireason.records import Sample


def s(pid, i, correct, boxed=True):
    return Sample(bench="b", problem_id=pid, sample_index=i, prompt="", completion="", extracted="1" if boxed else None,
                  correct=correct, formatted=boxed, tokens=1, finish_reason="stop", gold="1")


def test_rules():
    groups = [
        [s("mixed1", 0, True), s("mixed1", 1, True), s("mixed1", 2, False), s("mixed1", 3, False)],
        [s("mixed2", 0, True), s("mixed2", 1, False)],
        [s("allright", 0, True), s("allright", 1, True)],
        [s("allwrong", 0, False), s("allwrong", 1, False)],
        [s("unboxed", 0, True, boxed=False), s("unboxed", 1, False, boxed=False)],
        [s("mixed3", 0, True), s("mixed3", 1, False), s("mixed3", 2, True, boxed=False)],
    ]
    pairs = balanced_verification_set(groups, random.Random(0))
    yes = [x for x, label in pairs if label]
    no = [x for x, label in pairs if not label]
    assert len(yes) == len(no) == 5 // 2  # 5 groups have a boxed response
    assert all(x.correct and x.formatted for x in yes) and all(not x.correct and x.formatted for x in no)
    assert not any(x.problem_id in ("allwrong", "unboxed") for x, _ in pairs)
    assert len({x.problem_id for x in yes}) == 2  # primary pool: one Yes per mixed group, no repeats needed


def test_fill_repeats_secondary_samples_only():
    """The code tops a list up from its secondary pool only: with no secondary "No" the No list stays short."""
    groups = [[s(f"right{i}", 0, True)] for i in range(6)] + [[s("mixed", 0, True), s("mixed", 1, False)]]
    pairs = balanced_verification_set(groups, random.Random(1))
    yes = [x for x, label in pairs if label]
    no = [x for x, label in pairs if not label]
    assert len(yes) == 3 and len(no) == 1
    assert [x.problem_id for x in no] == ["mixed"]  # the only No, never repeated
    assert yes[0].problem_id in {"mixed"} | {f"right{i}" for i in range(6)}
    assert "mixed" in {x.problem_id for x in yes}  # the primary Yes comes first


def test_seeded():
    groups = [[s(f"g{i}", j, j % 2 == 0) for j in range(4)] for i in range(10)]
    first = [(x.problem_id, x.sample_index, lab) for x, lab in balanced_verification_set(groups, random.Random(3))]
    again = [(x.problem_id, x.sample_index, lab) for x, lab in balanced_verification_set(groups, random.Random(3))]
    assert first == again
