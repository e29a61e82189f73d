"""Paper 3, S²R: a response's actions as the released RL code reads them (papers.md §3.9; ``code/src/rloo_trainer.py``
of ``NineAbyss/S2R`` at d354940, ``generate_experience_incot_splitmask`` (PRL) and ``…_rloo`` (ORL)).

* The response's token ids up to the first EOS are split on the ids of "Wait," (opens a verify action) and of
  "Let me try again.\\n\\n" (opens a solve action), each tokenized **on its own** (``delimiter_ids``), as
  ``re.split`` with a capture group does: ``[t0, d1, t1, …, dn, tn]``, every ``t`` possibly empty.
* PRL merges a delimiter equal to the previous delimiter kept (even with text between) into the text; empty
  pieces stay (zero-token actions that still get a reward and enter the prefix statistics); a trailing empty
  piece is dropped, so a response that ends in a delimiter ends in that (untrained) delimiter. ORL keeps
  ``re.split``'s pieces as they are: a trailing retry delimiter leaves an empty final attempt (graded −1).
* The verdict of a verify action is ``get_veri_answer`` (``code_verdict``), case-sensitive.

One defect of the code is fixed, not copied: it matches delimiters on the ``'_'``-joined id string, which can match
inside a longer id (with "Wait," = ids ``[14190, 11]``, the response ``[5, 314190, 11, 7]`` is the string
``"5_314190_11_7"``, which contains ``"14190_11"``: the code splits it as ``[[5, 3], [14190, 11], [7]]``, cutting id
314190 in two); here delimiters match whole ids only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from verireason.papers.s2r import RECHECK, RETRY
from verireason.prompts import parse_s2r_sentence

VERIFY_WORD = "Wait,"  # the code's verify delimiter (§3.2)
RETRY_WORDS = "Let me try again.\n\n"  # its solve delimiter
DELIMITER_TOKENS = ("alone", "in_context")
VERDICTS = ("code", "lenient")


@dataclass(frozen=True)
class Action:
    """A span [start, end) of a response's token ids: ``solve``, ``verify`` or ``delimiter`` (``opens``: the kind
    of action the delimiter starts). ``trained``: whether its tokens are labels (a trailing delimiter in PRL is
    not). A solve or verify action may be empty (start == end)."""

    kind: str
    start: int
    end: int
    trained: bool = True
    opens: str = ""


def _span_ids(tokenizer, text: str, phrase: str) -> tuple[int, ...]:
    begin = text.index(phrase)
    end = begin + len(phrase)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return tuple(i for i, (a, b) in zip(enc["input_ids"], enc["offset_mapping"]) if a < end and b > begin)


def delimiter_ids(tokenizer, how: str = "alone") -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(ids of "Wait,", ids of "Let me try again.\\n\\n"): each tokenized on its own, as the code does (``alone``;
    special tokens such as a BOS left out, as the code strips Llama's), or as the tokenizer writes them inside an
    S²R response (``in_context``, ours: where the two differ, ``alone`` never matches a real response)."""
    if how == "alone":
        return (tuple(tokenizer(VERIFY_WORD, add_special_tokens=False)["input_ids"]),
                tuple(tokenizer(RETRY_WORDS, add_special_tokens=False)["input_ids"]))
    if how != "in_context":
        raise ValueError(f"unknown delimiter tokens {how!r}; valid: {', '.join(DELIMITER_TOKENS)}")
    return (_span_ids(tokenizer, f"x = 1.{RECHECK}Check.", VERIFY_WORD),
            _span_ids(tokenizer, f"x = 1.{RETRY}We have", RETRY.lstrip("\n")))


def _pieces(ids: Sequence[int], end: int, verify: tuple, retry: tuple) -> list[tuple[str, int, int]]:
    """``re.split((check|retry), …)`` on whole ids: alternating ("text", a, b) and (delimiter kind, a, b)."""
    out, start, i = [], 0, 0
    while i < end:
        hit = next((kind for kind, d in (("verify", verify), ("solve", retry))
                    if d and i + len(d) <= end and tuple(ids[i : i + len(d)]) == d), None)
        if hit is None:
            i += 1
            continue
        width = len(verify if hit == "verify" else retry)
        out += [("text", start, i), (hit, i, i + width)]
        start = i = i + width
    return out + [("text", start, end)]


def _merged(pieces: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """PRL's merge: a delimiter equal to the previous delimiter kept becomes part of the text; a trailing empty
    text is dropped."""
    out, last, text_start = [], None, 0
    for kind, a, b in pieces:
        if kind == "text" or kind == last:
            continue
        out += [("text", text_start, a), (kind, a, b)]
        text_start, last = b, kind
    end = pieces[-1][2]
    return out + ([("text", text_start, end)] if end > text_start else [])


def split_actions(ids: Sequence[int], verify: Sequence[int], retry: Sequence[int], eos_id: int | None, *,
                  merge: bool = True) -> list[Action]:
    """The actions of a response's token ids as the code splits them (``merge``: PRL's; False: ORL's). Tokens
    from the first EOS on belong to no action (the EOS is never a label)."""
    end = ids.index(eos_id) if eos_id is not None and eos_id in ids else len(ids)
    pieces = _pieces(ids, end, tuple(verify), tuple(retry))
    pieces = _merged(pieces) if merge else pieces
    actions, opens = [], "solve"
    for n, (kind, a, b) in enumerate(pieces):
        if kind == "text":
            actions.append(Action(opens, a, b))
        else:  # PRL trains a delimiter's tokens only when a piece follows it
            actions.append(Action("delimiter", a, b, trained=n + 1 < len(pieces), opens=kind))
            opens = kind
    return actions


def code_verdict(text: str, is_last: bool) -> bool:
    """``get_veri_answer``: the last "Therefore, the answer is X." whose X is exactly "correct" or "incorrect"
    decides; else "is incorrect" / "cannot verify" anywhere → incorrect; else "is correct" / "is indeed" /
    "verified to be correct" / "verified as correct" → correct; else correct for the response's last piece and
    incorrect for any other. Case-sensitive."""
    for found in reversed(re.findall(r"Therefore, the answer is (.+?)\.", text)):
        if found in ("correct", "incorrect"):
            return found == "correct"
    if "is incorrect" in text or "cannot verify" in text:
        return False
    if any(p in text for p in ("is correct", "is indeed", "verified to be correct", "verified as correct")):
        return True
    return is_last


def lenient_verdict(text: str, is_last: bool) -> bool:
    """Ours (``s2r.verdict=lenient``): ``prompts.parse_s2r_sentence`` (any case, more negative phrases), with the
    code's last-piece fallback."""
    verdict = parse_s2r_sentence(text)
    return is_last if verdict is None else verdict


VERDICT_RULES: dict[str, Callable[[str, bool], bool]] = {"code": code_verdict, "lenient": lenient_verdict}


@dataclass(frozen=True)
class Scored:
    """A response's actions with their truth: per solve action its correctness, per verify action its verdict
    and the truth of the attempt before it (the code's ``current_last_reward``)."""

    actions: list[Action]
    correct: dict[int, bool]  # action index → correctness (solve actions, empty ones included)
    verdicts: dict[int, tuple[bool, bool]]  # action index → (verdict, truth of the preceding attempt)
    finished: bool  # ended with EOS

    @property
    def attempts(self) -> list[bool]:
        return [self.correct[i] for i in sorted(self.correct)]

    @property
    def last_correct(self) -> bool:
        return bool(self.attempts) and self.attempts[-1]

    @property
    def truncated_last(self) -> int | None:
        """The index of the action that gets the code's flat −1: the last piece of a response cut off without
        EOS, when it is a solve or verify action after at least one delimiter (None otherwise)."""
        last = len(self.actions) - 1
        if self.finished or last < 1 or self.actions[last].kind == "delimiter":
            return None
        return last


def score_actions(ids: Sequence[int], actions: list[Action], decode: Callable[[Sequence[int]], str],
                  solve_correct: Sequence[bool], finished: bool, verdict: str = "code") -> Scored:
    """A response's actions with the correctness of its solve actions (``solve_correct``, in order) and each
    verify action's verdict (``VERDICT_RULES[verdict]``) against the attempt before it."""
    rule = VERDICT_RULES[verdict]
    correct, verdicts, previous = {}, {}, None
    grades = iter(solve_correct)
    last = len(actions) - 1
    for k, a in enumerate(actions):
        if a.kind == "solve":
            correct[k] = previous = next(grades)
        elif a.kind == "verify" and previous is not None:
            verdicts[k] = (rule(decode(ids[a.start : a.end]), k == last), previous)
    return Scored(actions, correct, verdicts, finished)
