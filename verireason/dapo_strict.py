"""Paper 1's strict grader, as its released code has it (papers.md §1.5, §1.6b; ``verl/utils/reward_score/
math_dapo.py`` of ``chenyuxin1999/Learning-to-Self-Verify`` at 1c6f762), for answers and for verdicts alike.

* ``compute_score`` keeps the last 300 characters of a response; ``is_correct_strict_box`` then reads only the last
  **200** of those: a ``\\boxed{`` that starts earlier scores 0 and is invalid.
* Only ``\\boxed{`` is read (no ``\\fbox{``, no ``\\boxed 5``); its braces must balance, else there is no answer.
* The box's content and the gold answer go through Minerva's ``normalize_final_answer`` and are compared exactly.
* A verdict is graded the same way against the label ``"Yes"`` / ``"No"``: ``\\boxed{no}`` or an unboxed "No" is
  no verdict; markup the normalisation strips (``\\boxed{\\textbf{Yes}}``, ``\\boxed{Answer=Yes}``) counts.

The verifier is shown the same extraction of the judged response (``answer_shown``: last 300 characters, last
box, normalized). Nothing here evaluates model output; every step is string work bounded by the window.
"""

from __future__ import annotations

import re

from verireason.records import Grade

WINDOW = 300  # compute_score: characters kept from the end of the response
BOX_WINDOW = 200  # is_correct_strict_box: characters of those in which the box is looked for
VERDICTS = {"Yes": True, "No": False}

_SUBSTITUTIONS = [
    ("an ", ""), ("a ", ""), (".$", "$"), ("\\$", ""), ("\\ ", ""), (" ", ""), ("mbox", "text"),
    (",\\text{and}", ","), ("\\text{and}", ","), ("\\text{m}", "\\text{}"),
]
_REMOVED_EXPRESSIONS = [
    "square", "ways", "integers", "dollars", "mph", "inches", "hours", "km", "units", "\\ldots", "sue", "points",
    "feet", "minutes", "digits", "cents", "degrees", "cm", "gm", "pounds", "meters", "meals", "edges", "students",
    "childrentickets", "multiples", "\\text{s}", "\\text{.}", "\\text{\ns}", "\\text{}^2", "\\text{}^3",
    "\\text{\n}", "\\text{}", "\\mathrm{th}", "^\\circ", "^{\\circ}", "\\;", ",\\!", "{,}", '"', "\\dots",
]


def normalize_final_answer(answer: str) -> str:
    """Minerva's ``normalize_final_answer`` (Lewkowycz et al. 2022, appendix D), as DAPO's grader uses it."""
    answer = answer.split("=")[-1]
    for before, after in _SUBSTITUTIONS:
        answer = answer.replace(before, after)
    for expr in _REMOVED_EXPRESSIONS:
        answer = answer.replace(expr, "")
    answer = re.sub(r"(.*?)(\$)(.*?)(\$)(.*)", "$\\3$", answer)
    answer = re.sub(r"(\\text\{)(.*?)(\})", "\\2", answer)
    answer = re.sub(r"(\\textbf\{)(.*?)(\})", "\\2", answer)
    answer = re.sub(r"(\\overline\{)(.*?)(\})", "\\2", answer)
    answer = re.sub(r"(\\boxed\{)(.*)(\})", "\\2", answer)
    answer = re.sub(r"(frac)([^{])(.)", "frac{\\2}{\\3}", answer)
    answer = re.sub(r"(sqrt)([^{])", "sqrt{\\2}", answer)
    answer = answer.replace("$", "")
    if answer.replace(",", "").isdigit():
        answer = answer.replace(",", "")
    return answer.strip()


def last_box_content(text: str) -> str | None:
    """The content of the last ``\\boxed{…}`` of ``text`` with balanced braces; None when there is none or its
    braces never close (the model stopped inside the box)."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start + len("\\boxed{") : i]
    return None


def strict_prediction(response: str) -> str | None:
    """The normalized prediction the code grades: last box within the last 200 of the last 300 characters."""
    content = last_box_content(response[-WINDOW:][-BOX_WINDOW:])
    return normalize_final_answer(content) if content is not None else None


def grade_dapo_strict(response: str, gold: str) -> Grade:
    """Paper 1's generation reward: ``formatted`` is the code's ``valid`` (a prediction was found)."""
    pred = strict_prediction(response)
    if pred is None:
        return Grade(extracted=None, correct=False, formatted=False)
    return Grade(extracted=pred, correct=pred == normalize_final_answer(gold), formatted=True)


def answer_shown(response: str) -> str | None:
    """What the official verifier is shown of a response (``_extract_answer_text``): the normalized content of the
    last box of its last 300 characters (None when there is none; such responses are never judged there)."""
    content = last_box_content(response[-WINDOW:])
    return normalize_final_answer(content) if content is not None else None


def strict_verdict(text: str) -> bool | None:
    """The verdict the official verification reward reads: True for "Yes", False for "No" (after normalisation,
    exact), None for anything else (it scores 0 against either label)."""
    return VERDICTS.get(strict_prediction(text))
