"""The math-verify grading worker: its own interpreter, started as ``python -m verireason.grade_worker SECONDS``.

Why a separate interpreter over pipes rather than ``multiprocessing``: the spawn and forkserver start methods
re-import the caller's ``__main__``, so the grader broke in any script without an ``if __name__ == "__main__"``
guard and in ``python -`` (README, issue "every documented command works as a user runs it"); fork is unsafe once
torch and tokenizers have started threads. A ``python -m`` child imports only this module, whatever the caller is.

Protocol (one JSON value per line, UTF-8): the worker prints ``"ready"`` once math-verify is imported, then reads
``[pred, gold]`` requests from stdin and answers each, in order, with ``true`` or ``false``. Anything a library
prints goes to stderr, never into the replies. It exits at end of input, or when its parent is gone (a watchdog
thread), so a killed parent leaves no worker behind. Model output is untrusted: it is only parsed, never evaluated;
the parent enforces the hard time limit by killing a worker whose reply is late.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time


_MATH_DELIMITER = re.compile(r"(?<!\\)\$|\\\(|\\\[")


def _as_math(text: str) -> str:
    """Wrap an answer in ``$…$`` unless it already has math delimiters (an escaped ``\\$`` is not one)."""
    return text if _MATH_DELIMITER.search(text) else f"${text}$"


def _exit_with_parent(parent: int) -> None:
    """Watchdog: end this process once the parent that started it has gone."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def equivalent(pred: str, gold: str, inner_timeout: int, configs) -> bool:
    """math-verify's verdict on one pair; any failure on untrusted input is "not equivalent"."""
    from math_verify import parse, verify

    try:
        gold_parsed = parse(_as_math(gold), extraction_config=configs, parsing_timeout=inner_timeout)
        pred_parsed = parse(_as_math(pred), extraction_config=configs, parsing_timeout=inner_timeout)
        return bool(verify(gold_parsed, pred_parsed, timeout_seconds=inner_timeout))
    except BaseException:  # noqa: BLE001
        return False


def main(argv: list[str]) -> None:  # pragma: no cover - runs in the child process
    inner_timeout = max(1, int(float(argv[1]))) if len(argv) > 1 else 2
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # stray prints go to stderr
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    import logging

    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    logging.disable(logging.CRITICAL)  # math-verify logs every timeout with the whole input
    configs = [LatexExtractionConfig(), ExprExtractionConfig()]
    replies.write('"ready"\n')
    replies.flush()
    for line in sys.stdin.buffer:
        try:
            pred, gold = json.loads(line)
            ok = equivalent(str(pred), str(gold), inner_timeout, configs)
        except (ValueError, TypeError):
            ok = False
        replies.write("true\n" if ok else "false\n")
        replies.flush()


if __name__ == "__main__":
    main(sys.argv)
