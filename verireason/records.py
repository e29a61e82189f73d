"""Typed records passed between modules (no torch here).

Data flows as: `Problem` → prompt text → engine → `Completion` → grading → `Grade` → `Sample` (one line of
`samples.jsonl`) → metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar


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
        token_ids: the generated token ids (EOS included when produced): what RL trains on, never re-tokenized.
        logprobs: the sampling engine's log-probability of each of ``token_ids`` under the model's raw
            distribution (before temperature and top-p), when the engine was asked to record them (training).
    """

    text: str
    tokens: int
    finish_reason: str
    token_ids: tuple[int, ...] = ()
    logprobs: tuple[float, ...] | None = None


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
    """One graded sample: a line of ``samples.jsonl``. ``KEY``: the fields that name it (one line per key)."""

    KEY: ClassVar[tuple[str, ...]] = ("bench", "problem_id", "sample_index")
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
    problem: str = ""  # the problem text, so a samples file can be judged again (eval --samples)


def graded_sample(bench: str, problem: Problem, prompt: str, index: int, completion: Completion, grade: Grade,
                  meta: dict[str, Any] | None = None) -> Sample:
    """The ``Sample`` of one generated, graded completion of ``problem``."""
    return Sample(bench=bench, problem_id=problem.id, sample_index=index, prompt=prompt, completion=completion.text,
                  extracted=grade.extracted, correct=grade.correct, formatted=grade.formatted, tokens=completion.tokens,
                  finish_reason=completion.finish_reason, gold=problem.answer, level=problem.level,
                  problem=problem.problem, meta=meta or {})


@dataclass(frozen=True)
class Judged:
    """A response to be judged by a verifier, with its ground-truth correctness from the grader."""

    problem: Problem
    bench: str
    sample_index: int
    response: str
    correct: bool


@dataclass(frozen=True)
class Verdict:
    """One verification of one judged response: a line of ``verifications.jsonl``.

    Attributes:
        claimed: the verifier's verdict: True (correct), False (incorrect), None (no verdict found).
        truth: whether the judged response is in fact correct.
    """

    KEY: ClassVar[tuple[str, ...]] = ("bench", "problem_id", "sample_index", "verify_index")
    bench: str
    problem_id: str
    sample_index: int
    verify_index: int
    prompt: str
    verification: str
    claimed: bool | None
    truth: bool
    tokens: int
    finish_reason: str
    level: str | None = None

    @property
    def agrees(self) -> bool:
        return self.claimed is not None and self.claimed == self.truth


@dataclass
class Round:
    """One round of a verify-refine chain: the response the round ends with and the verdict it received."""

    response: str
    extracted: str | None
    correct: bool
    tokens: int  # generated tokens of this response
    verdict: bool | None = None  # None: not verified (last round) or unparseable; see `verified`
    verified: bool = False
    verification: str = ""
    verify_tokens: int = 0


@dataclass
class Chain:
    """One verify-refine chain (papers.md §2.2): round 0 solves; each later round verifies and, on reject, refines."""

    KEY: ClassVar[tuple[str, ...]] = ("bench", "problem_id", "chain")
    bench: str
    problem_id: str
    chain: int
    level: str | None
    rounds: list[Round] = field(default_factory=list)
    accepted_round: int | None = None  # the round whose response the verifier accepted

    @property
    def tokens(self) -> int:
        return sum(r.tokens + r.verify_tokens for r in self.rounds)


@dataclass(frozen=True)
class Rollout:
    """One trainable sequence for RL: a prompt and the policy's completion, scored.

    Attributes:
        objective: ``"generate"`` (a solution; reward = correctness) or ``"verify"`` (a Yes/No judgement of the
            policy's own answer; reward = agreement with the grader's label), papers.md §1.5.
        group: the GRPO group key: rollouts sampled from the same prompt share it.
        prompt_ids / completion_ids: token ids exactly as sampled (the loss is taken on ``completion_ids`` only).
        reward: the scalar reward.
        meta: per-objective details for logs (``correct``, ``label``, ``claimed``, ``extracted``, ``problem_id``).
        trained: per-completion-token loss flags (None: every token). In a multi-turn episode the policy's own
            turns are trained and the verifier's feedback between them is not (STV's ViL, S²R, papers.md §2.4, §3.5).
        token_advantages: per-completion-token advantages (None: the group's scalar advantage for every token),
            for methods whose credit differs along one sequence (S²R's process-level RL, OPD as an advantage).
        teacher_prompt_ids: the prompt under which a distillation teacher scores ``completion_ids`` (STV's
            privileged context: problem, candidate, verdict and reference, papers.md §2.3); None: ``prompt_ids``.
        parts: per-completion-token action index (0, 1, …; -1 outside every action) for losses whose PPO ratio is
            taken per action from its mean log-ratio (S²R, papers.md §3.5: one part per response for ORL, one per
            solve / verify / delimiter action for PRL); None: a ratio per token.
        sample_logprobs: the rollout engine's log-probs of ``completion_ids`` (``Completion.logprobs``), compared
            with the trainer's own to measure sampling/training mismatch and, optionally, to correct for it with
            truncated importance weights; None where the engine did not record them.
    """

    objective: str
    group: str
    prompt: str
    completion: str
    prompt_ids: tuple[int, ...]
    completion_ids: tuple[int, ...]
    reward: float
    finish_reason: str
    meta: dict[str, Any] = field(default_factory=dict)
    trained: tuple[bool, ...] | None = None
    token_advantages: tuple[float, ...] | None = None
    teacher_prompt_ids: tuple[int, ...] | None = None
    parts: tuple[int, ...] | None = None
    sample_logprobs: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("trained", "token_advantages", "parts", "sample_logprobs"):
            value = getattr(self, name)
            if value is not None and len(value) != len(self.completion_ids):
                raise ValueError(f"Rollout.{name} has {len(value)} entries for {len(self.completion_ids)} tokens")

    @property
    def trained_tokens(self) -> int:
        """How many completion tokens are in the loss."""
        return len(self.completion_ids) if self.trained is None else sum(self.trained)

    @property
    def part_count(self) -> int:
        """How many actions have a trained token (what a part-mean loss divides by)."""
        flags = self.trained or (True,) * len(self.completion_ids)
        return len({p for p, f in zip(self.parts or (), flags) if f and p >= 0})
