"""Signals and failures of the environment, each ended with one line that says what is saved and how to go on.

* **SIGINT and SIGTERM** (Ctrl-C; a scheduler's ``scancel``, a pre-emption, ``kill``) become ``Interrupted``, a
  ``KeyboardInterrupt``, so every ``finally`` runs; the CLI prints the resume command and exits 130 or 143. A signal
  that arrives while a record is being written (``deferred()``, around every append) waits until the record is
  whole: the record in flight is finished, and the batch still being generated is dropped. SIGKILL runs nothing;
  resume drops a cut-off last line instead (``tracking.RecordLog``).
* **A full disk, a quota, a permission or a read-only file system** (``environment_failure``) is recognised on the
  ``OSError`` itself or on what it caused (torch and safetensors wrap the ``OSError`` of a failed write), and
  becomes one line with the exact ``--resume`` command (``resume_command``).
"""

from __future__ import annotations

import errno
import os
import shlex
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ENVIRONMENT = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "the operation is not permitted",
    errno.EROFS: "the file system is read-only",
}
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + the signal's number, as shells report it
_MESSAGE_HINTS = {"No space left on device": errno.ENOSPC, "Disk quota exceeded": errno.EDQUOT,
                  "Read-only file system": errno.EROFS, "Permission denied": errno.EACCES}


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM, raised in the main thread between records."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.signum, 128 + self.signum)


class _State(threading.local):
    depth = 0
    pending: int | None = None


_state = _State()


def _handler(signum, frame) -> None:
    if _state.depth:
        _state.pending = signum  # raised when the record being written is whole
        return
    raise Interrupted(signum)


@contextmanager
def handled() -> Iterator[None]:
    """SIGINT and SIGTERM raise ``Interrupted`` inside the block (main thread only; elsewhere a no-op); the
    previous handlers come back after it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _handler) for s in EXIT_CODES}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextmanager
def deferred() -> Iterator[None]:
    """A signal that arrives inside the block is raised when it ends: what the block writes is written whole."""
    _state.depth += 1
    try:
        yield
    finally:
        _state.depth -= 1
        if _state.depth == 0 and _state.pending is not None:
            signum, _state.pending = _state.pending, None
            raise Interrupted(signum)


FULL_BELOW = 64 * 2**20  # bytes left to unprivileged writers: a write that failed there was a full disk


def environment_failure(exc: BaseException, run_dir: Path | None = None) -> tuple[str, str | None] | None:
    """``(what, file)`` when ``exc`` (or an exception that caused it) is a failure of the environment, else None.
    Some writers lose the ``OSError`` (torch's zip writer on a path: "unexpected pos 643776 vs 643728"), so an
    exception that names none counts as a full disk where ``run_dir``'s file system has less than ``FULL_BELOW``
    left."""
    found = _named_failure(exc)
    if found is None and run_dir is not None:
        try:
            stats = os.statvfs(run_dir)
        except OSError:
            return None
        if stats.f_bavail * stats.f_frsize < FULL_BELOW:
            return ENVIRONMENT[errno.ENOSPC], None
    return found


def _named_failure(exc: BaseException) -> tuple[str, str | None] | None:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in ENVIRONMENT:
            return ENVIRONMENT[exc.errno], exc.filename
        text = str(exc)
        for hint, code in _MESSAGE_HINTS.items():
            if hint in text:
                return ENVIRONMENT[code], None
        exc = exc.__cause__ if exc.__suppress_context__ else (exc.__cause__ or exc.__context__)
    return None


def resume_command(argv: list[str], run_dir: Path | None) -> str:
    """The command line that continues this run: the same arguments with ``--out RUN_DIR --resume`` right after
    the command name (``report`` has no ``--resume``: it reuses finished evaluations by itself)."""
    words = list(argv[1:])
    command, rest, kept = words[0], words[1:], []
    skip = False
    for word in rest:
        if skip:
            skip = False
        elif word == "--out":
            skip = True
        elif not (word == "--resume" or word.startswith("--out=")):
            kept.append(word)
    if command == "report" or run_dir is None:
        return "verireason " + shlex.join(words)
    return "verireason " + shlex.join([command, "--out", str(run_dir), "--resume", *kept])


def saved_note(run_dir: Path | None, interrupted: bool = False) -> str:
    """Where the finished part of the run is, and what resume redoes: a training run (it logs ``metrics.jsonl``)
    restarts from its last complete checkpoint; an evaluation redoes the batch in flight."""
    if run_dir is None:
        return "no run directory was made"
    if (run_dir / "metrics.jsonl").exists():
        done = sorted(p.name for p in (run_dir / "checkpoints").glob("step_*") if (p / "trainer_state.json").is_file())
        redo = f"resume starts from checkpoints/{done[-1]}" if done else "no checkpoint yet: resume starts over"
    else:
        redo = "the batch in flight was dropped" if interrupted else "a cut-off last line is dropped on resume"
    return f"what finished is saved in {run_dir} ({redo})"
