"""Prompt families render the papers' verbatim strings; verdict parsing copes with messy output."""

from __future__ import annotations

import pytest

from verireason.config import compose, to_object
from verireason.prompts import (
    feedback_of,
    informed_verify_messages,
    judged_text,
    parse_verdict,
    refine_messages,
    solve_messages,
    verify_messages,
)
from verireason.records import Problem

PROBLEM = Problem("p1", "What is $\\frac{1}{2}+\\frac{1}{2}$?", "1", "test", solution="Add: \\boxed{1}")
RESPONSE = "Adding halves gives one.\n\nThe answer is $\\boxed{1}$."


def family(name):
    return to_object(compose("eval", [f"prompt={name}"])).prompt


def test_paper1_teacher_prompt_is_verbatim_and_answer_only():
    [turn] = verify_messages(PROBLEM, RESPONSE, family("boxed_cot"))
    assert turn["role"] == "user"
    assert turn["content"].startswith("You are a teacher that is evaluating a student's answer to a question.")
    indent = " " * 8  # the released template's indentation (papers.md §1.6b)
    assert f"\n\n{indent}Question: {PROBLEM.problem}\n{indent}Student's Answer: 1\n\n{indent}First explain" in turn["content"]
    assert "Adding halves" not in turn["content"]  # the verifier sees only the final answer
    assert turn["content"].endswith("Answer: \\boxed{Yes/No} where 'Yes' means the solution is correct and 'No' "
                                    "means the solution is incorrect.\n        \n\nPlease reason step by step, and put your "
                                    "final answer within \\boxed{}.")


def test_full_solution_family_shows_the_whole_response():
    [turn] = verify_messages(PROBLEM, RESPONSE, family("full_solution"))
    assert RESPONSE in turn["content"]


def test_judged_text_falls_back_when_nothing_is_boxed():
    prompt = family("boxed_cot")
    assert judged_text("so it is 7", prompt) == "7"
    assert judged_text("no idea", prompt) == "(no answer given)"


def test_s2r_family():
    prompt = family("s2r")
    system, user = verify_messages(PROBLEM, RESPONSE, prompt)
    assert system["content"] == "Please reason step by step, and put your final answer within \\boxed{}."
    assert user["content"].startswith("You are a math teacher. I will give you a math problem and an answer")
    assert user["content"].endswith(f"* Question: {PROBLEM.problem}\n* Answer: 1\n* Your Prove:")
    assert solve_messages(PROBLEM, prompt)[1]["content"] == PROBLEM.problem


def test_stv_informed_verifier_sees_the_reference_and_refine_sees_feedback():
    prompt = family("stv")
    [turn] = informed_verify_messages(PROBLEM, RESPONSE, True, prompt)
    assert PROBLEM.solution in turn["content"] and RESPONSE in turn["content"]
    assert "it is correct." in turn["content"] and "{verdict}" not in turn["content"]
    [wrong] = informed_verify_messages(PROBLEM, RESPONSE, False, prompt)
    assert "it is incorrect." in wrong["content"] and "explain why it is incorrect" in wrong["content"]
    [plain] = verify_messages(PROBLEM, RESPONSE, prompt)
    assert PROBLEM.solution not in plain["content"]
    [refine] = refine_messages(PROBLEM, RESPONSE, "Step 2 divides by zero.", prompt)
    assert "Step 2 divides by zero." in refine["content"] and RESPONSE in refine["content"]
    with pytest.raises(ValueError):
        informed_verify_messages(PROBLEM, RESPONSE, True, family("boxed_cot"))


@pytest.mark.parametrize("text,expected", [
    ("analysis...\nAnswer: \\boxed{Yes}", True),
    ("Answer: \\boxed{No}", False),
    ("\\boxed{\\text{Yes}}", True),
    ("\\boxed{ no }", False),
    ("\\boxed{Correct}", True),
    ("The student is right.\nAnswer: yes", True),
    ("**Verdict:** no", False),
    ("Verdict: No", False),
    ("I computed \\boxed{42}", None),
    ("", None),
    ("Yes, maybe, no.", None),
    ("Answer: \\boxed{Yes}\nWait, actually \\boxed{No}", False),
])
def test_parse_boxed_verdicts_leniently(text, expected):
    assert parse_verdict(text, "boxed_yes_no_lenient") is expected


@pytest.mark.parametrize("text,expected", [
    ("Substituting back works. Therefore, the answer is correct.", True),
    ("Therefore, the answer is incorrect.", False),
    ("The answer is correct at first... no: therefore, the answer is incorrect.", False),
    ("We cannot verify this answer.", False),
    ("This is indeed the value.", True),
    ("Let me think about it.", None),
])
def test_parse_s2r_verdicts(text, expected):
    assert parse_verdict(text, "s2r_sentence") is expected


def test_feedback_drops_the_verdict_line():
    assert feedback_of("Step 2 is wrong: 3*4 is 12.\nVerdict: \\boxed{No}") == "Step 2 is wrong: 3*4 is 12."
    assert feedback_of("Answer: \\boxed{No}") == "The solution was judged incorrect."
