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


# --- the grader from any caller, and its worker pool ---------------------------------------------------------------

CALL = 'from verireason.grading import grade\nprint(grade("\\\\boxed{1/2}", "0.5"))\n'


@pytest.mark.parametrize("way", ["script", "stdin", "command", "interactive"])
def test_grade_works_from_any_caller_and_prints_nothing_at_exit(way, tmp_path):
    """A plain script with no main guard, ``python -``, ``python -c`` and an interactive session all grade."""
    import subprocess
    import sys

    script = tmp_path / "g.py"
    script.write_text(CALL)
    argv = {"script": [str(script)], "stdin": ["-"], "command": ["-c", CALL], "interactive": ["-i"]}[way]
    feed = CALL if way in ("stdin", "interactive") else None
    done = subprocess.run([sys.executable, *argv], input=feed, capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "True" in done.stdout
    if way == "interactive":  # the prompts and banner go to stderr; nothing else may
        assert "Error" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    else:
        assert done.stderr == ""


def test_pool_returns_results_in_input_order():
    truths = [(str(i), str(i), True) for i in range(40)] + [(f"{i}/2", str(i), i == 0) for i in range(20)]
    truths = [truths[(7 * k) % len(truths)] for k in range(len(truths))]  # interleave
    checker = EquivalenceChecker(timeout_s=5.0, workers=3, chunk=2, cache=False)
    try:
        assert checker.check_many([(p, g) for p, g, _ in truths]) == [t for _, _, t in truths]
        assert len(checker._pool) == 3
    finally:
        checker.close()


def test_pool_kills_each_hung_check_at_the_limit_and_grades_the_rest():
    hang = ("9^{9^{9^{9^{9}}}}", "3")
    pairs = [("1", "1"), hang, ("2", "2"), ("1/2", "0.5"), hang, ("3", "4"), hang, ("x+1", "1+x")]
    checker = EquivalenceChecker(timeout_s=1.0, workers=2, chunk=4, cache=False)
    try:
        checker.check_many([("1", "1")] * 8)  # both workers up before the clock starts
        start = time.monotonic()
        results = checker.check_many(pairs)
        elapsed = time.monotonic() - start
    finally:
        checker.close()
    assert results == [True, False, True, True, False, False, False, True]
    assert checker.timeouts == 3
    assert elapsed < 3 * 1.0 + 4.0  # at worst one limit per hung check, plus restarts


def test_pool_replaces_a_worker_killed_from_outside():
    checker = EquivalenceChecker(timeout_s=5.0, workers=1)
    try:
        assert checker.check_many([("1", "1")]) == [True]
        checker._pool[0].proc.kill()
        checker._pool[0].proc.wait()
        assert checker.check_many([("2", "2"), ("2", "3")]) == [True, False]
    finally:
        checker.close()


def test_workers_end_with_a_killed_parent(tmp_path):
    """A parent killed with SIGKILL runs no exit handler: its workers must notice and leave by themselves."""
    import os
    import signal
    import subprocess
    import sys

    code = ("from verireason.grading import EquivalenceChecker\nc = EquivalenceChecker(workers=1)\n"
            "c.check_many([('1', '1')])\nprint(c._pool[0].proc.pid, flush=True)\nimport time\ntime.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(worker, signal.SIGKILL)
    pytest.fail("the grading worker outlived its killed parent")


def test_requests_larger_than_a_pipe_buffer_do_not_stall():
    """A request of 300 kB (several pipe buffers) is written as the worker reads it, well within the time limit."""
    huge = "\\text{" + "a" * 300_000 + "}"
    checker = EquivalenceChecker(timeout_s=4.0, workers=1, cache=False)
    try:
        checker.check_many([("1", "1")])
        start = time.monotonic()
        assert checker.check_many([(huge, "1"), ("2", "2")]) == [False, True]
        assert checker.timeouts == 0 and time.monotonic() - start < 4.0
    finally:
        checker.close()
