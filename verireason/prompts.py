"""Prompt rendering: a ``Problem`` becomes chat messages, and the tokenizer's chat template turns them into text.

The templates themselves are data (``conf/prompt/*.yaml``) so the papers' verbatim strings are versioned with the
configs: ``boxed_cot`` is paper 1's generation and answer-only verification prompt (papers.md §1.3), ``full_solution``
the same judging whole responses, ``s2r`` S²R's prompts and confirmative verification (§3.2-3.3), ``stv`` our
STV-style verifier with feedback and its reference-informed teacher (§2.2-2.3), ``qwen25_math_cot`` the Qwen2.5-Math
toolkit prompt that S²R evaluates with (§3.6). Verdict parsing copes with messy output and returns None, never a
guess, when it finds no verdict.
"""

from __future__ import annotations

import re

from verireason.config import PromptCfg
from verireason.dapo_strict import answer_shown, strict_verdict
from verireason.grading import extract_answer, last_boxed
from verireason.records import Problem


def solve_messages(problem: Problem, prompt: PromptCfg, model_system: str | None = None) -> list[dict[str, str]]:
    """The chat turns that ask for a solution. ``{problem}`` is replaced literally, so LaTeX braces survive."""
    return _turns(_fill(prompt.user, problem=problem.problem), prompt, model_system)


def chat_text(tokenizer, messages: list[dict[str, str]]) -> str:
    """The prompt text with the assistant turn opened; plain concatenation for tokenizers without a template."""
    if tokenizer.chat_template:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return "\n\n".join(m["content"] for m in messages) + "\n\n"


def _fill(template: str, **fields: str) -> str:
    for key, value in fields.items():
        template = template.replace("{" + key + "}", value)
    return template


def _turns(user: str, prompt: PromptCfg, model_system: str | None) -> list[dict[str, str]]:
    system = prompt.system if prompt.system is not None else model_system
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]


def judged_text(response: str, prompt: PromptCfg) -> str:
    """What the verifier is shown of a response: its final answer (paper 1, ``verify_input=answer``: the code's
    ``_extract_answer_text``, the last ``\\boxed{`` of the last 300 characters, normalized) or the whole solution.
    The code only judges responses that have one; for others (eval on any model) the last answer found is shown."""
    if prompt.verify_input == "solution":
        return response
    shown = answer_shown(response)
    if shown is not None:
        return shown
    answer, _ = extract_answer(response)
    return answer if answer is not None else "(no answer given)"


def verify_messages(problem: Problem, response: str, prompt: PromptCfg, model_system: str | None = None):
    """The chat turns that ask the model to judge ``response`` to ``problem``."""
    return _turns(_fill(prompt.verify_user, problem=problem.problem, response=judged_text(response, prompt)),
                  prompt, model_system)


def informed_verify_messages(problem: Problem, response: str, correct: bool, prompt: PromptCfg,
                             model_system: str | None = None):
    """The reference-informed verifier (STV's teacher, papers.md §2.3): also sees the true verdict (``{verdict}``:
    "correct" or "incorrect", the grader's) and the reference solution (``{reference}``)."""
    if prompt.informed_verify_user is None:
        raise ValueError(f"prompt family {prompt.name!r} has no informed_verify_user template")
    reference = problem.solution or f"The correct final answer is {problem.answer}."
    user = _fill(prompt.informed_verify_user, problem=problem.problem, response=judged_text(response, prompt),
                 reference=reference, verdict="correct" if correct else "incorrect")
    return _turns(user, prompt, model_system)


def refine_messages(problem: Problem, response: str, feedback: str, prompt: PromptCfg,
                    model_system: str | None = None):
    """The chat turns that ask for a revised solution given the verifier's feedback (V-R loop, papers.md §2.2)."""
    return _turns(_fill(prompt.refine_user, problem=problem.problem, response=response, feedback=feedback),
                  prompt, model_system)


_YES = {"yes", "correct", "true", "right", "accept"}
_NO = {"no", "incorrect", "false", "wrong", "reject"}
_ANSWER_LINE = re.compile(r"(?:answer|verdict)\s*:\s*\**\s*(yes|no)\b", re.IGNORECASE)
_S2R_SENTENCE = re.compile(r"the answer is\s+(correct|incorrect)", re.IGNORECASE)
_S2R_NEGATIVE = re.compile(r"is incorrect|is not correct|cannot verify|can't verify|is wrong", re.IGNORECASE)
_S2R_POSITIVE = re.compile(r"is correct|is indeed|verified[^.]{0,80}correct", re.IGNORECASE)


def _word(text: str) -> str:
    return re.sub(r"\\text\{([^}]*)\}|[^a-zA-Z]", r"\1", text).lower()


def parse_boxed_yes_no(text: str) -> bool | None:
    """Paper 1's verdict as its code grades it (``dapo_strict.strict_verdict``): the last ``\\boxed{`` within the
    last 200 of the last 300 characters, normalized, exactly "Yes" or "No"."""
    return strict_verdict(text)


def parse_boxed_yes_no_lenient(text: str) -> bool | None:
    """A lenient reading (ours, ``prompt.verdict=boxed_yes_no_lenient``): the last ``\\boxed{}``/``\\fbox{}``
    anywhere, any case, synonyms (correct/incorrect, true/false, …); else a last "Answer: Yes/No" line. For small
    models whose verdicts the official rule would count as none; the papers' numbers use ``boxed_yes_no``."""
    boxed = last_boxed(text)
    if boxed is not None and _word(boxed) in _YES | _NO:
        return _word(boxed) in _YES
    lines = _ANSWER_LINE.findall(text)
    return lines[-1].lower() == "yes" if lines else None


def parse_s2r_sentence(text: str) -> bool | None:
    """S²R's verdict (papers.md §3.2): "Therefore, the answer is correct/incorrect.", then its phrase fallbacks.

    Unlike S²R's parser, text with no verdict phrase is unparseable (None), never silently "correct"."""
    sentences = _S2R_SENTENCE.findall(text)
    if sentences:
        return sentences[-1].lower() == "correct"
    if _S2R_NEGATIVE.search(text):
        return False
    return True if _S2R_POSITIVE.search(text) else None


VERDICT_PARSERS = {"boxed_yes_no": parse_boxed_yes_no, "boxed_yes_no_lenient": parse_boxed_yes_no_lenient,
                   "s2r_sentence": parse_s2r_sentence}

_VERDICT_WORDS = ("Yes", "No", "yes", "no", "YES", "NO", "Correct", "Incorrect", "correct", "incorrect")
# Strings that complete a verdict each parser reads; with ``verify.stop_at_verdict`` a verification ends there
# (the string kept), which saves the tokens a small model writes after its verdict.
_BOXED_STOPS = (tuple(f"\\boxed{{{w}}}" for w in _VERDICT_WORDS)
                + tuple(f"\\boxed{{\\text{{{w}}}}}" for w in _VERDICT_WORDS))
VERDICT_STOPS = {
    "boxed_yes_no": tuple(f"\\boxed{{{w}}}" for w in ("Yes", "No"))
    + tuple(f"\\boxed{{\\{cmd}{{{w}}}}}" for cmd in ("text", "textbf") for w in ("Yes", "No")),
    "boxed_yes_no_lenient": _BOXED_STOPS,
    "s2r_sentence": ("the answer is correct", "the answer is incorrect", "The answer is correct",
                     "The answer is incorrect"),
}


def parse_verdict(text: str, kind: str = "boxed_yes_no") -> bool | None:
    """True (judged correct), False (judged incorrect) or None (no verdict found)."""
    return VERDICT_PARSERS[kind](text)


def feedback_text(verification: str) -> str:
    """The verifier's feedback: its text without the final verdict line ("" when there is nothing else)."""
    lines = verification.rstrip().splitlines()
    if lines and ("\\boxed" in lines[-1] or _ANSWER_LINE.search(lines[-1]) or _S2R_SENTENCE.search(lines[-1])):
        lines = lines[:-1]
    return "\n".join(lines).strip()


def feedback_of(verification: str) -> str:
    """The feedback a refinement prompt shows: ``feedback_text``, or a stock sentence when there is none."""
    return feedback_text(verification) or "The solution was judged incorrect."
