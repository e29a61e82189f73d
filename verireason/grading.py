"""Answer extraction and equivalence: the two graders every paper's numbers rest on.

* ``math_verify`` (default): the last ``\\boxed{}`` (fallbacks: "the answer is …", the last number), then
  equivalence through HF math-verify. This is the modern cross-check of papers.md §4.1 (4); on the 800 Qwen2.5-Math
  responses in ``shared/benchmarks`` it agrees with the Qwen toolkit's labels on 799 (README, "Grading").
* ``dapo_strict``: paper 1's reward as its released code has it (``verireason.dapo_strict``, papers.md §1.6b): the
  last ``\\boxed{`` within the last 200 of the last 300 characters, Minerva's ``normalize_final_answer`` on both
  sides, exact string match. Its ``formatted`` flag is paper 1's ``valid``.

Model output is untrusted: it never reaches ``eval``/``exec``; the symbolic comparison (math-verify, which calls
sympy) runs in a small pool of worker interpreters (``verireason.grade_worker``, one per core up to four) and a
worker is killed when one check exceeds ``timeout_s`` (math-verify's own signal-based timeouts only work in a main
thread, so the limit is enforced from outside). The workers are started as ``python -c`` children over pipes, not
through ``multiprocessing``, so grading works from any caller: a script without a main guard, ``python -``, a
notebook, the CLI.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import subprocess
import sys
import time
import weakref
from collections import deque
from collections.abc import Sequence
from pathlib import Path

from verireason.dapo_strict import grade_dapo_strict, normalize_final_answer  # noqa: F401 (re-exported)
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


# --- math-verify in a pool of killable worker interpreters --------------------------------------------------------


def default_workers() -> int:
    """About one grading worker per core, at most four (each holds sympy in memory)."""
    return max(1, min(os.cpu_count() or 1, 4))


def _worker_command(inner_timeout: int) -> list[str]:
    """``python -c`` that imports ``verireason.grade_worker`` from this very package (not from the caller's cwd)."""
    parent = str(Path(__file__).resolve().parent.parent)
    code = f"import sys; sys.path.insert(0, {parent!r}); from verireason.grade_worker import main; main(sys.argv)"
    return [sys.executable, "-c", code, str(inner_timeout)]


class _Worker:
    """One grading interpreter (``verireason.grade_worker``): its pipes, its requests in flight, its deadline."""

    def __init__(self, timeout_s: float, start_timeout_s: float):
        self.proc = subprocess.Popen(_worker_command(max(1, int(timeout_s / 2))), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, close_fds=True)
        os.set_blocking(self.proc.stdin.fileno(), False)
        self.ready = False
        self.pending: deque[int] = deque()  # request indices sent and not answered, oldest first
        self.deadline = time.monotonic() + start_timeout_s  # for the start, then for the oldest pending check
        self._inbox = b""
        self._outbox = b""

    def send(self, items: list[tuple[int, bytes]], timeout_s: float) -> None:
        if not self.pending:
            self.deadline = time.monotonic() + timeout_s
        self.pending.extend(i for i, _ in items)
        self._outbox += b"".join(line for _, line in items)
        self.flush()

    def wants_write(self) -> bool:
        return bool(self._outbox)

    def flush(self) -> None:
        """Write what the pipe takes now; the rest waits for the selector."""
        try:
            while self._outbox:
                written = os.write(self.proc.stdin.fileno(), self._outbox[:65536])
                self._outbox = self._outbox[written:]
        except BlockingIOError:
            pass
        except (BrokenPipeError, OSError):  # the worker died; its stdout's end of file says so
            self._outbox = b""

    def receive(self) -> list[bool | str] | None:
        """The replies that have arrived (``"ready"``, then booleans); None at end of file (the worker died)."""
        chunk = os.read(self.proc.stdout.fileno(), 65536)
        if not chunk:
            return None
        self._inbox += chunk
        *lines, self._inbox = self._inbox.split(b"\n")
        return [json.loads(line) for line in lines]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=5)
        for pipe in (self.proc.stdin, self.proc.stdout):
            pipe.close()


def _registered(selector, pipe) -> bool:
    try:
        selector.get_key(pipe)
        return True
    except KeyError:
        return False


def _watch_writes(selector, worker: _Worker) -> None:
    """Ask the selector to wake us when ``worker``'s stdin takes more bytes, exactly while some are waiting."""
    waiting, watched = worker.wants_write(), _registered(selector, worker.proc.stdin)
    if waiting and not watched:
        selector.register(worker.proc.stdin, selectors.EVENT_WRITE, worker)
    elif watched and not waiting:
        selector.unregister(worker.proc.stdin)


def _stop_all(pool: list[_Worker]) -> None:
    for worker in pool:
        worker.kill()
    pool.clear()


class EquivalenceChecker:
    """math-verify equivalence in a small pool of worker interpreters, each check under a hard wall-clock limit.

    Each worker holds up to ``chunk`` requests at a time; the oldest one must be answered within ``timeout_s`` of
    the previous answer (or of its sending). A late check counts as not equivalent, its worker is killed and
    replaced, and the requests it still held go to the front of the queue. Results come back in input order and
    are memoised on ``(pred, gold)`` (``cache=False`` grades every pair, for throughput measurements). Workers start
    on demand (a single check starts one) and stay up until ``close()`` or exit.
    """

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S, workers: int | None = None, chunk: int = 8,
                 start_timeout_s: float = 120.0, cache: bool = True):
        self.timeout_s = timeout_s
        self.workers = workers or default_workers()
        self.chunk = chunk
        self.start_timeout_s = start_timeout_s
        self.cache = cache
        self.timeouts = 0  # checks killed at the time limit
        self.crashes = 0  # checks whose worker died under them
        self._pool: list[_Worker] = []
        self._memo: dict[tuple[str, str], bool] = {}
        weakref.finalize(self, _stop_all, self._pool)  # at exit, or when the checker is garbage-collected

    def close(self) -> None:
        """Stop every worker (also done at exit)."""
        _stop_all(self._pool)

    def check_many(self, pairs: Sequence[tuple[str, str]]) -> list[bool]:
        """Equivalence of each ``(pred, gold)`` pair, in order."""
        if not self.cache:
            return self._dispatch(list(pairs))
        todo = [pair for pair in dict.fromkeys(pairs) if pair not in self._memo]
        fresh = dict(zip(todo, self._dispatch(todo)))
        if len(self._memo) < _CACHE_MAX:
            self._memo.update(fresh)
        return [fresh[p] if p in fresh else self._memo[p] for p in pairs]

    def _dispatch(self, pairs: list[tuple[str, str]]) -> list[bool]:
        results: list[bool | None] = [None] * len(pairs)
        queue = deque(range(len(pairs)))
        lines = [json.dumps([p, g]).encode() + b"\n" for p, g in pairs]
        for worker in [w for w in self._pool if w.proc.poll() is not None]:  # died while idle (killed from outside)
            worker.kill()
            self._pool.remove(worker)
        with selectors.DefaultSelector() as selector:
            for worker in self._pool:
                selector.register(worker.proc.stdout, selectors.EVENT_READ, worker)
            while queue or any(w.pending for w in self._pool):
                self._staff(selector, len(queue))
                for worker in self._pool:
                    if worker.ready and queue and len(worker.pending) < self.chunk:
                        take = [queue.popleft() for _ in range(min(self.chunk - len(worker.pending), len(queue)))]
                        worker.send([(i, lines[i]) for i in take], self.timeout_s)
                self._wait(selector, results, queue)
                self._expire(selector, results, queue)
        return [bool(r) for r in results]

    def _staff(self, selector, queued: int) -> None:
        """Start workers while there is more queued work than the pool takes, up to ``workers``."""
        capacity = sum(self.chunk - len(w.pending) for w in self._pool)
        while queued > capacity and len(self._pool) < self.workers:
            worker = _Worker(self.timeout_s, self.start_timeout_s)
            self._pool.append(worker)
            selector.register(worker.proc.stdout, selectors.EVENT_READ, worker)
            capacity += self.chunk

    def _wait(self, selector, results: list, queue: deque) -> None:
        """Read the replies that arrive before the nearest deadline; write requests as the pipes take them."""
        for worker in self._pool:
            _watch_writes(selector, worker)
        due = [w.deadline for w in self._pool if w.pending or not w.ready]
        timeout = max(0.0, min(due) - time.monotonic()) if due else 0.0
        for key, _ in selector.select(timeout):
            worker = key.data
            if key.fileobj is worker.proc.stdin:
                worker.flush()
                continue
            if worker not in self._pool:  # retired earlier in this round
                continue
            replies = worker.receive()
            if replies is None:  # died (out of memory, say): its oldest check is the likely cause
                self.crashes += 1
                self._retire(selector, worker, results, queue)
                continue
            for reply in replies:
                if reply == "ready":
                    worker.ready = True
                else:
                    results[worker.pending.popleft()] = bool(reply)
                    worker.deadline = time.monotonic() + self.timeout_s

    def _expire(self, selector, results: list, queue: deque) -> None:
        now = time.monotonic()
        for worker in list(self._pool):
            if worker.deadline > now or (worker.ready and not worker.pending):
                continue
            if not worker.ready:
                self._retire(selector, worker, results, queue)
                self.close()
                raise RuntimeError(f"the math-verify grading worker did not start within {self.start_timeout_s:.0f} s "
                                   f"(run `{sys.executable} -m verireason.grade_worker` to see why)")
            self.timeouts += 1
            self._retire(selector, worker, results, queue)

    def _retire(self, selector, worker: _Worker, results: list, queue: deque) -> None:
        """Kill a worker: its oldest check counts as not equivalent, the rest of its requests are queued again."""
        if worker.pending:
            results[worker.pending.popleft()] = False
        queue.extendleft(reversed(worker.pending))
        for pipe in (worker.proc.stdout, worker.proc.stdin):
            if _registered(selector, pipe):
                selector.unregister(pipe)
        worker.kill()
        self._pool.remove(worker)


class Grader:
    """Grades whole responses against gold answers with one of ``GRADERS``."""

    def __init__(self, name: str = "math_verify", timeout_s: float = DEFAULT_TIMEOUT_S, workers: int | None = None):
        if name not in GRADERS:
            raise ValueError(f"unknown grader {name!r}; valid: {', '.join(GRADERS)}")
        self.name = name
        self.checker = EquivalenceChecker(timeout_s, workers) if name == "math_verify" else None

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
