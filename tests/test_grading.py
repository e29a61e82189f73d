"""Grading: extraction, equivalence, paper 1's strict grader, time limits on hostile input, real-label agreement."""

from __future__ import annotations

import json
import time

import pytest

from verireason.grading import (
    EquivalenceChecker,
    Grader,
    extract_answer,
    grade,
    grade_dapo_strict,
    last_boxed,
    normalize_final_answer,
)

EXTRACTION = [
    ("so the answer is \\boxed{42}.", "42", True),
    ("\\boxed{1} then \\boxed{\\frac{1}{2}}", "\\frac{1}{2}", True),
    ("nested \\boxed{\\sqrt{x^{2}}} done", "\\sqrt{x^{2}}", True),
    ("\\fbox{7}", "7", True),
    ("$\\boxed 5$", "5", True),
    ("The final answer is $3\\pi$.", "3\\pi", False),
    ("Therefore, the answer is 12.", "12", False),
    ("work...\nAnswer: 17", "17", False),
    ("we get 3, then 4, finally 1,234 apples", "1234", False),
    ("no numbers here", None, False),
    ("unclosed \\boxed{12", "12", False),  # unbalanced box: falls back to the last number
]


@pytest.mark.parametrize("text,answer,boxed", EXTRACTION)
def test_extract_answer(text, answer, boxed):
    assert extract_answer(text) == (answer, boxed)


def test_last_boxed_takes_the_last_balanced_box():
    assert last_boxed("\\boxed{a} \\boxed{{b}{c}}") == "{b}{c}"
    assert last_boxed("\\boxed{unclosed") is None
    assert last_boxed("nothing") is None


EQUIVALENCE = [
    ("\\boxed{\\frac{1}{2}}", "0.5", True),
    ("\\boxed{\\dfrac{3}{4}}", "\\frac34", True),
    ("\\boxed{10000}", "10{,}000", True),
    ("\\boxed{6}", "\\$6", True),
    ("\\boxed{(3, \\frac{\\pi}{2})}", "\\left( 3, \\frac{\\pi}{2} \\right)", True),
    ("\\boxed{x^2+2x+1}", "(x+1)^2", True),
    ("\\boxed{2\\sqrt{2}}", "\\sqrt{8}", True),
    ("\\boxed{41}", "42", False),
    ("\\boxed{\\frac{1}{3}}", "0.33", False),
    ("The answer is 18.", "18", True),
    ("I cannot solve this.", "5", False),
]


@pytest.mark.parametrize("response,gold,expected", EQUIVALENCE)
def test_math_verify_grader(response, gold, expected):
    assert grade(response, gold) is expected


DAPO = [
    ("... \\boxed{42}", "42", "42", True),
    ("... \\boxed{\\text{(B)}}", "B", "(B)", False),
    ("... \\boxed{x = 5}", "5", "5", True),  # Minerva normalisation keeps the right-hand side
    ("... \\boxed{10 \\text{ cm}}", "10", "10", True),
    ("... \\boxed{0.5}", "\\frac{1}{2}", "0.5", False),  # strict: no symbolic equivalence
    ("The answer is 42", "42", None, False),  # no box: invalid
]


@pytest.mark.parametrize("response,gold,extracted,correct", DAPO)
def test_dapo_strict(response, gold, extracted, correct):
    result = grade_dapo_strict(response, gold)
    assert (result.extracted, result.correct, result.formatted) == (extracted, correct, extracted is not None)


def test_dapo_strict_reads_only_the_last_300_characters():
    assert not grade_dapo_strict("\\boxed{42}" + "x" * 300, "42").formatted


def test_normalize_final_answer():
    assert normalize_final_answer("\\text{5 dollars}") == "5"
    assert normalize_final_answer("1,000") == "1000"
    assert normalize_final_answer("\\frac12") == "\\frac{1}{2}"


ADVERSARIAL = [
    "\\boxed{9999999999^{9999999999^{99999999}}}",
    "\\boxed{10^{10^{10^{10}}}}",
    "\\boxed{" + "{" * 10_000 + "1" + "}" * 10_000 + "}",
    "{" * 10_000 + "}" * 10_000,
    "x" * 1_000_000 + " \\boxed{3}",
    "\\boxed{" + "(" * 5_000 + "1" + ")" * 5_000 + "}",
    "\\boxed{__import__('os').system('touch /tmp/verireason-pwned')}",
    "\\boxed{2**2**2**2**2**2**2}",
    "\\boxed{\\frac{" * 3_000 + "1" + "}{2}" * 3_000 + "}",
    "\\boxed{" + "\\sqrt{" * 2_000 + "2" + "}" * 2_000 + "}",
]


@pytest.fixture(scope="module")
def fast_grader():
    grader = Grader("math_verify", timeout_s=2.0)
    grader.grade_many([("\\boxed{1}", "1")])  # start the worker outside the timed region
    yield grader
    grader.close()


@pytest.mark.parametrize("response", ADVERSARIAL, ids=range(len(ADVERSARIAL)))
def test_hostile_answers_return_within_the_limit(fast_grader, response):
    start = time.monotonic()
    result = fast_grader.grade_many([(response, "3")])[0]
    elapsed = time.monotonic() - start
    assert elapsed < 2.0 + 1.5, f"grading took {elapsed:.1f}s"
    assert result.correct is (response.endswith("\\boxed{3}"))


def test_a_hung_check_is_killed_and_the_rest_still_graded():
    checker = EquivalenceChecker(timeout_s=1.0)
    try:
        results = checker.check_many([("1", "1"), ("9^{9^{9^{9^{9}}}}", "3"), ("2", "2"), ("1/2", "0.5")])
        assert results == [True, False, True, True]
    finally:
        checker.close()


def test_model_output_never_executes(tmp_path):
    marker = tmp_path / "pwned"
    grade(f"\\boxed{{__import__('pathlib').Path('{marker}').touch()}}", "1")
    grade(f"The answer is exec(\"open('{marker}','w')\")", "1")
    assert not marker.exists()


def test_agreement_with_qwen_toolkit_labels(shared_benchmarks):
    """The 800 real Qwen2.5-Math responses: agreement with the toolkit's labels must be >= 99.5%."""
    rows = [json.loads(line) for line in (shared_benchmarks / "qwen25math_math_cot_samples.jsonl").open()]
    items = [(resp, row["answer"]) for row in rows for resp in row["responses"]]
    labels = [label for row in rows for label in row["correct"]]
    grader = Grader("math_verify")
    try:
        grades = grader.grade_many(items)
    finally:
        grader.close()
    agreement = sum(g.correct == label for g, label in zip(grades, labels)) / len(labels)
    assert len(labels) == 800
    assert agreement >= 0.995, agreement
