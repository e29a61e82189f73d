"""Answer extraction and equivalence: the two graders every paper's numbers rest on.

* ``math_verify`` (default): the last ``\\boxed{}`` (fallbacks: "the answer is …", the last number), then
  equivalence through HF math-verify. This is the modern cross-check of papers.md §4.1 (4); on the 800 Qwen2.5-Math
  responses in ``shared/benchmarks`` it agrees with the Qwen toolkit's labels on 799 (README, "Grading").
* ``dapo_strict``: paper 1's reward (papers.md §1.5): the last 300 characters, the last ``\\boxed{}``, Minerva's
  ``normalize_final_answer`` on both sides, exact string match. Its ``formatted`` flag is paper 1's ``valid``.

Model output is untrusted: it never reaches ``eval``/``exec``; the symbolic comparison (math-verify, which calls
sympy) runs in a separate worker process that is killed when one check exceeds ``timeout_s`` (math-verify's own
signal-based timeouts only work in a main thread, so the limit is enforced from outside).
"""

from __future__ import annotations

import atexit
import multiprocessing as mp
import re
from collections.abc import Sequence

from verireason.records import Grade

GRADERS = ("math_verify", "dapo_strict")
DEFAULT_TIMEOUT_S = 5.0
_CACHE_MAX = 200_000

# --- extraction -------------------------------------------------------------------------------------------------

_BOX_COMMANDS = ("\\boxed", "\\fbox")
_ANSWER_IS = re.compile(r"(?:final answer|the answer)\s*(?:is|:)\s*:?\s*([^\n]{1,200})", re.IGNORECASE)
_ANSWER_LINE = re.compile(r"^\s*answer\s*:\s*([^\n]{1,200})", re.IGNORECASE | re.MULTILINE)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?")


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` / ``\\fbox{...}`` (braces balanced), or of ``\\boxed x``; else None."""
    start = max(text.rfind(cmd) for cmd in _BOX_COMMANDS)
    if start < 0:
        return None
    rest = text[start:]
    cmd_len = len("\\boxed") if rest.startswith("\\boxed") else len("\\fbox")
    after = rest[cmd_len:]
    if after.startswith(" "):  # "\boxed 5": the token after one space
        token = after[1:].split("$")[0].split()
        return token[0] if token else None
    if not after.startswith("{"):
        return None
    depth = 0
    for i, ch in enumerate(after):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return after[1:i]
    return None  # unbalanced: the model stopped inside the box


def _clean_phrase(answer: str) -> str:
    answer = answer.strip().strip("$").strip()
    return answer.rstrip(".").strip().strip("$").strip()


def extract_answer(text: str) -> tuple[str | None, bool]:
    """The final answer of a whole response and whether it was boxed.

    Order: the last ``\\boxed{}``; else the last "final answer is …" / "the answer is …" / "Answer: …"; else the
    last number. Returns ``(answer or None, boxed)``.
    """
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed.strip(), True
    phrases = [m for m in (*_ANSWER_IS.finditer(text), *_ANSWER_LINE.finditer(text))]
    if phrases:
        last = max(phrases, key=lambda m: m.start())
        inner = last_boxed(last.group(1))
        cleaned = _clean_phrase(inner if inner is not None else last.group(1))
        if cleaned:
            return cleaned, False
    numbers = _NUMBER.findall(text)
    if numbers:
        return numbers[-1].replace(",", "").rstrip("."), False
    return None, False


# --- paper 1's strict grader (Minerva normalisation) ------------------------------------------------------------

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
    """Minerva's ``normalize_final_answer`` (Lewkowycz et al. 2022, appendix D), as used by DAPO's grader."""
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


def grade_dapo_strict(response: str, gold: str) -> Grade:
    """Paper 1's generation reward (papers.md §1.5): strict last-box match within the last 300 characters."""
    boxed = last_boxed(response[-300:])
    if boxed is None:
        return Grade(extracted=None, correct=False, formatted=False)
    pred = normalize_final_answer(boxed)
    return Grade(extracted=pred, correct=pred == normalize_final_answer(gold), formatted=True)


# --- math-verify in a killable worker ---------------------------------------------------------------------------


_MATH_DELIMITER = re.compile(r"(?<!\\)\$|\\\(|\\\[")


def _as_math(text: str) -> str:
    """Wrap an answer in ``$…$`` unless it already has math delimiters (an escaped ``\\$`` is not one)."""
    return text if _MATH_DELIMITER.search(text) else f"${text}$"


def _worker_main(conn, inner_timeout: int) -> None:  # pragma: no cover - runs in the child process
    """Child process: answers ``(key, pred, gold)`` items in order with ``(key, bool)``."""
    import logging

    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    logging.disable(logging.CRITICAL)  # math-verify logs every timeout with the whole input
    configs = [LatexExtractionConfig(), ExprExtractionConfig()]
    conn.send("ready")
    while True:
        batch = conn.recv()
        if batch is None:
            return
        for key, pred, gold in batch:
            try:
                gold_parsed = parse(_as_math(gold), extraction_config=configs, parsing_timeout=inner_timeout)
                pred_parsed = parse(_as_math(pred), extraction_config=configs, parsing_timeout=inner_timeout)
                ok = bool(verify(gold_parsed, pred_parsed, timeout_seconds=inner_timeout))
            except BaseException:  # noqa: BLE001 - any failure on untrusted input is "not equivalent"
                ok = False
            conn.send((key, ok))


class EquivalenceChecker:
    """math-verify equivalence in one worker process, each check under a hard wall-clock limit.

    A check that exceeds ``timeout_s`` counts as not equivalent; the worker is killed and restarted and the
    remaining checks continue. Results are memoised on ``(pred, gold)``.
    """

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S, start_timeout_s: float = 120.0):
        self.timeout_s = timeout_s
        self.start_timeout_s = start_timeout_s
        self.timeouts = 0
        self._proc = None
        self._conn = None
        self._cache: dict[tuple[str, str], bool] = {}
        atexit.register(self.close)

    def _ensure_worker(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            return
        ctx = mp.get_context("spawn")  # fork after torch/tokenizers threads start is unsafe
        self._conn, child = ctx.Pipe()
        inner = max(1, int(self.timeout_s / 2))
        self._proc = ctx.Process(target=_worker_main, args=(child, inner), daemon=True)
        self._proc.start()
        child.close()
        if not self._conn.poll(self.start_timeout_s) or self._conn.recv() != "ready":
            self.close()
            raise RuntimeError("the math-verify grading worker did not start")

    def close(self) -> None:
        """Stop the worker (also called at exit)."""
        if self._proc is not None:
            if self._proc.is_alive():
                self._proc.kill()
            self._proc.join(timeout=5)
        self._proc = self._conn = None

    def check_many(self, pairs: Sequence[tuple[str, str]]) -> list[bool]:
        """Equivalence of each ``(pred, gold)`` pair, in order."""
        todo = [(i, p, g) for i, (p, g) in enumerate(pairs) if (p, g) not in self._cache]
        results = {i: self._cache[(p, g)] for i, (p, g) in enumerate(pairs) if (p, g) in self._cache}
        while todo:
            self._ensure_worker()
            self._conn.send(todo)
            for pos, (i, p, g) in enumerate(todo):
                if self._conn.poll(self.timeout_s):
                    _, ok = self._conn.recv()
                else:  # this check hung: kill the worker, count it wrong, go on with the rest
                    self.close()
                    self.timeouts += 1
                    ok = False
                results[i] = ok
                if len(self._cache) < _CACHE_MAX:
                    self._cache[(p, g)] = ok
                if self._proc is None:
                    todo = todo[pos + 1 :]
                    break
            else:
                todo = []
        return [results[i] for i in range(len(pairs))]


class Grader:
    """Grades whole responses against gold answers with one of ``GRADERS``."""

    def __init__(self, name: str = "math_verify", timeout_s: float = DEFAULT_TIMEOUT_S):
        if name not in GRADERS:
            raise ValueError(f"unknown grader {name!r}; valid: {', '.join(GRADERS)}")
        self.name = name
        self.checker = EquivalenceChecker(timeout_s) if name == "math_verify" else None

    def grade_many(self, items: Sequence[tuple[str, str]]) -> list[Grade]:
        """Grade each ``(response, gold)``; one batched round trip to the worker."""
        if self.checker is None:
            return [grade_dapo_strict(response, gold) for response, gold in items]
        extracted = [extract_answer(response) for response, _ in items]
        to_check = [(ans, gold) for (ans, _), (_, gold) in zip(extracted, items) if ans is not None]
        verdicts = iter(self.checker.check_many(to_check))
        grades = []
        for (ans, boxed), (_, gold) in zip(extracted, items):
            correct = next(verdicts) if ans is not None else False
            grades.append(Grade(extracted=ans, correct=correct, formatted=boxed))
        return grades

    def close(self) -> None:
        if self.checker is not None:
            self.checker.close()


_DEFAULT: Grader | None = None


def grade(response: str, gold: str) -> bool:
    """Whether a whole model response ends in an answer equivalent to ``gold`` (math-verify grader, 5 s limit)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Grader("math_verify")
    return _DEFAULT.grade_many([(response, gold)])[0].correct
