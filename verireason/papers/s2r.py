"""Paper 3, S²R (papers.md §3.2-3.5, corrected by the official code in §3.8): the pieces of its data construction
and of its process-level RL that are pure rules, each against the paper's numbers.

* ``trajectory_segments`` / ``segments_of_response``: the byte-exact response of §3.2 (solve → "Wait, let me recheck my solution." → verify →
  "Let me try again." → …) as SFT segments with train flags (§3.8: verifications and the final correct attempt are
  trained, wrong attempts are not; the retry marker is trained only before the final attempt);
* ``confirmative_prompt`` / ``post_edit``: the judge's verbatim prompt on the extracted answer and its post-edits;
* ``filter_verdict``: the conclusion-sentence verdict filter with the code's exact patterns, order and rewrites;
* ``plan_trajectory``: difficulty buckets by exact-match wrong count and their keep probabilities;
* ``PrefixBaseline``: PRL's running baseline keyed by reward-history prefix (merged across processes, used from 10
  occurrences, read from the statistics before the batch, saved in checkpoints).

``papers.s2r_data`` (the construction pipeline) and ``papers.s2r_rl`` (ORL and PRL) build on these; the command is
``recipes.s2r``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from verireason import protocols

RECHECK = f"\n\n{protocols.RECHECK}\n\n"  # "\n\nWait, let me recheck my solution.\n\n"
RETRY = f"\n\n{protocols.RETRY}\n\n"  # "\n\nLet me try again.\n\n"
SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."

CONFIRMATIVE = ("You are a math teacher. I will give you a math problem and an answer, please tell me whether this "
                "answer is correct. You cannot solve the problem step by step, you must use other methods to prove "
                "whether the answer is correct. \n\n* Question:\n{question}\n\n* Answer:\n{answer}\n\n* Your Prove:\n")

INCORRECT = ("is incorrect", "is likely incorrect", "is unlikely correct", "answer is wrong", "incorrect answer",
             "not the correct answer", "answer is not correct", "solution is incorrect", "calculation is wrong",
             "result is incorrect")
CORRECT = ("is correct", "appears to be correct", "answer is reasonable", "solution is correct", "calculation is correct",
           "result is correct", "correctly solved", "answer checks out")

# (least wrong answers, most, wanted wrong attempts, keep probability); §3.8. More than 20 wrong: the top bucket (ours).
BUCKETS = ((0, 0, 0, 0.2394), (1, 1, 1, 0.5), (2, 3, 2, 0.5), (4, 20, 3, 0.5))


def trajectory_segments(wrong: Sequence[tuple[str, str]], correct: tuple[str, str]) -> list[dict]:
    """The S²R response for ``wrong`` (solution, verification) attempts followed by the ``correct`` one, as
    ``sft-init`` segments ``{"text", "train"}``; joined, the texts are the byte-exact §3.2 response."""
    segments = []
    attempts = [*wrong, correct]
    for i, (solution, verification) in enumerate(attempts):
        final = i == len(attempts) - 1
        segments.append({"text": solution, "train": final})
        segments.append({"text": RECHECK + verification, "train": True})
        if not final:
            segments.append({"text": RETRY, "train": i + 1 == len(attempts) - 1})
    return segments


_MARKERS = re.compile(f"({re.escape(RECHECK)}|{re.escape(RETRY)})")


def segments_of_response(response: str) -> list[dict]:
    """The inverse of ``trajectory_segments`` for a response written in the §3.2 format (an imported trajectory):
    attempts before the last are untrained, verifications trained, the retry marker trained only before the last
    attempt; the texts join back to ``response`` byte for byte."""
    pieces = _MARKERS.split(response)  # text, marker, text, marker, ...
    retries = [i for i in range(1, len(pieces), 2) if pieces[i] == RETRY]
    last_retry = retries[-1] if retries else None
    segments, attempt_final = [], last_retry is None
    for i, piece in enumerate(pieces):
        if i % 2 == 0:  # text after a marker (or the first attempt)
            opened_by = pieces[i - 1] if i else RETRY
            if opened_by == RETRY:
                attempt_final = last_retry is None or i - 1 >= last_retry
                segments.append({"text": piece, "train": attempt_final})
            else:
                segments[-1]["text"] += piece  # RECHECK + verification is one trained segment
        elif piece == RECHECK:
            segments.append({"text": piece, "train": True})
        else:
            segments.append({"text": piece, "train": i == last_retry})
    return [seg for seg in segments if seg["text"]]


def confirmative_prompt(question: str, answer: str) -> str:
    """The judge's verbatim "confirmative" prompt (§3.3, §3.8): the problem and the extracted final answer only."""
    return CONFIRMATIVE.format(question=question, answer=answer)


def post_edit(verification: str) -> str:
    """The code's edits of a judge's verification before it enters a trajectory (§3.8)."""
    return verification.replace("original answer", "answer").replace(" without solving the problem step by step", "")


def _says_incorrect(sentence: str) -> bool:
    return any(p in sentence.lower() for p in INCORRECT)


def _says_correct(sentence: str) -> bool:
    return any(p in sentence.lower() for p in CORRECT)


def filter_verdict(verification: str) -> tuple[bool | None, str]:
    """The verdict the code's filter (``process_lines`` of ``tools/3_contruct_muliti_turn_data.py``, §3.9) reads
    from a verification, and the text it keeps: None drops the verification.

    The text is lowercased, stripped and split on '.'; its last sentence is the second-to-last piece when the
    unstripped text ends with '.', else the last piece. Checked in this order: an "incorrect" pattern, a "correct"
    one, "plausible" (correct, with "is plausible" rewritten to "is correct" in the kept text), "cannot" with
    "verif" (dropped); else, with at least three pieces, the sentence before it decides by the same patterns (the
    text then loses its last '.'-piece), and nothing found there drops it too."""
    pieces = verification.lower().strip().split(".")
    ends = verification.endswith(".")
    last = pieces[-2] if ends else pieces[-1]
    if _says_incorrect(last):
        return False, verification
    if _says_correct(last):
        return True, verification
    if "plausible" in last:
        return True, verification.replace("is plausible", "is correct")
    if "cannot" in last and "verif" in last:
        return None, verification
    if len(pieces) < 3:
        return None, verification
    before = pieces[-3] if ends else pieces[-2]
    cut = ".".join(verification.split(".")[:-1]) + "."
    if _says_incorrect(before):
        return False, cut
    if _says_correct(before):
        return True, cut
    return None, verification


def keep_verification(verification: str, truth: bool) -> bool:
    """Kept only if its verdict agrees with the answer's true correctness (§3.3 step 3)."""
    verdict, _ = filter_verdict(verification)
    return verdict is not None and verdict == truth


def wrong_count(extracted: Sequence[str | None], gold: str) -> int:
    """Samples whose extracted answer is not exactly the gold string (§3.8: exact match, not equivalence)."""
    return sum(answer != gold for answer in extracted)


def plan_trajectory(wrong: int, verified_wrong: int, has_verified_correct: bool) -> tuple[int, float] | None:
    """(wrong attempts in the trajectory, keep probability) for a problem with ``wrong`` wrong samples, of which
    ``verified_wrong`` distinct wrong answers have a kept verification; None drops the problem (§3.8).

    The bucket's full trajectory is kept at its probability; a shorter fallback (fewer verified wrong answers than
    wanted) is always kept. A problem with wrong samples but no verified wrong answer is dropped (ours: the code's
    behaviour there is not documented)."""
    if not has_verified_correct:
        return None
    want, p = next(((w, p) for lo, hi, w, p in BUCKETS if lo <= wrong <= hi), BUCKETS[-1][2:])
    if want == 0:
        return 0, p
    if verified_wrong >= want:
        return want, p
    if verified_wrong >= 1 and want > 1:
        return verified_wrong, 1.0
    return None


# --- process-level RL's baseline (§3.5, §3.8) ------------------------------------------------------------------------


def history_keys(actions: Sequence[tuple[str, float]]) -> list[str]:
    """The reward-history prefix of each action: "" for the first, then e.g. "R-1", "R-1V1" (R solve, V verify, each
    with its reward) for the ones after."""
    keys, prefix = [], ""
    for kind, reward in actions:
        keys.append(prefix)
        prefix += f"{'R' if kind == 'solve' else 'V'}{reward:g}"
    return keys


@dataclass
class PrefixBaseline:
    """Running mean raw reward per reward-history prefix, over every process and every earlier step; a prefix's
    baseline is 0 until it has ``min_count`` occurrences. ``advantages`` reads the statistics from before the batch,
    then adds the batch's actions (gathered across processes by ``gather``)."""

    min_count: int = 10
    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    # the prefixes tracked (the code's initialize_baseline list); any other never gets statistics (baseline 0).
    # None: every prefix is tracked
    tracked: frozenset[str] | None = None

    def value(self, key: str) -> float:
        n = self.counts.get(key, 0)
        return self.sums[key] / n if n >= self.min_count else 0.0

    def advantages(self, batch: Sequence[tuple[str, float]],
                   gather: Callable[[list], list] = lambda items: items) -> list[float]:
        """``r − b(h)`` for this process's (prefix, reward) actions; then every process's actions update the means."""
        out = [reward - self.value(key) for key, reward in batch]
        for key, reward in gather(list(batch)):
            if self.tracked is not None and key not in self.tracked:
                continue
            self.sums[key] = self.sums.get(key, 0.0) + reward
            self.counts[key] = self.counts.get(key, 0) + 1
        return out

    def state(self) -> dict:
        return {"sums": dict(self.sums), "counts": dict(self.counts)}

    def load_state(self, state: dict) -> None:
        self.sums, self.counts = dict(state["sums"]), {k: int(v) for k, v in state["counts"].items()}


def load_prefix_whitelist(path: str) -> frozenset[str]:
    """The reward-history prefixes PRL's baseline tracks, from ``path``: a JSON list of keys, a JSON object whose
    ``global_prefix_counts`` (a ``prefix_baseline.json`` of the official trainer) or own keys are the prefixes, or the
    official ``rloo_trainer.py``, whose ``key_list = [...]`` literal is parsed (``ast.literal_eval``; never run).
    One-line error when it has none."""
    import ast
    import json
    from pathlib import Path

    from verireason.errors import UserError

    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError(f"rl.prefix_whitelist={path!r} is not a file (a JSON list of prefixes, a prefix_baseline.json "
                        f"or the official rloo_trainer.py)")
    text = file.read_text(encoding="utf-8", errors="replace")
    keys = None
    if file.suffix == ".py":
        found = re.search(r"key_list\s*=\s*(\[[^\]]*\])", text)
        keys = ast.literal_eval(found.group(1)) if found else None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict):
            data = data.get("global_prefix_counts", data)
        keys = list(data) if isinstance(data, (list, dict)) else None
    if not keys or not all(isinstance(k, str) for k in keys):
        raise UserError(f"rl.prefix_whitelist={path!r} holds no list of prefix strings")
    return frozenset(keys)
