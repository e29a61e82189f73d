"""Typed records passed between modules (no torch here).

Data flows as: `Problem` → prompt text → engine → `Completion` → grading → `Grade` → `Sample` (one line of
`samples.jsonl`) → metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One benchmark problem.

    Attributes:
        id: stable id, unique within its benchmark (e.g. ``"math500-17"``, ``"arith-0-3"``).
        problem: the problem text (LaTeX as in the source).
        answer: the gold final answer as the source gives it.
        source: the benchmark name (``"math500"``).
        solution: a reference solution, where the source has one.
        level: a difficulty level, where the source has one (MATH "Level 3", arith "3").
    """

    id: str
    problem: str
    answer: str
    source: str
    solution: str | None = None
    level: str | None = None


@dataclass(frozen=True)
class Completion:
    """One generated continuation as an engine returns it.

    Attributes:
        text: the generated text, cut before any stop string or end-of-sequence token.
        tokens: number of generated tokens (the end-of-sequence token included when one was produced).
        finish_reason: ``"stop"`` (EOS or a stop string) or ``"length"`` (hit ``max_tokens``).
    """

    text: str
    tokens: int
    finish_reason: str


@dataclass(frozen=True)
class Grade:
    """The grader's judgement of one response.

    Attributes:
        extracted: the final answer found in the response, or None when none was found.
        correct: whether that answer is equivalent to the gold answer.
        formatted: whether the answer was given in ``\\boxed{}`` (paper 1's ``valid`` flag).
    """

    extracted: str | None
    correct: bool
    formatted: bool


@dataclass(frozen=True)
class Sample:
    """One graded sample: a line of ``samples.jsonl``."""

    bench: str
    problem_id: str
    sample_index: int
    prompt: str
    completion: str
    extracted: str | None
    correct: bool
    formatted: bool
    tokens: int
    finish_reason: str
    gold: str
    level: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
