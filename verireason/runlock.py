"""One writer per run directory: a lock its main process holds for the run's whole life.

Two processes appending to one ``samples.jsonl`` (a double submission, ``--resume`` while the run still runs,
``report`` evaluating into the same folder) would each skip only what was on disk when they started and write the
rest twice. The lock makes the second one stop before it writes anything: one line, exit 2, naming the holder.

The lock is ``filelock.FileLock`` on ``<run>/run.lock``: an ``flock`` the kernel drops when its process ends, however
it ends (a ``kill -9`` too), so a dead holder's lock is simply taken over by the next start. The holder (host, pid,
command, start time) is written beside it to ``run.lock.json`` so that a refusal can say who holds the run.

What is detected where:

* one host, any local file system: every second writer;
* a shared file system across hosts: where ``flock`` reaches the server (NFSv3 with NLM and NFSv4 on Linux, Lustre
  mounted ``-o flock``, GPFS/Spectrum Scale), a writer on another host is refused too, and a crashed host's lock is
  freed when the server's lease for it expires (NFSv4: about 90 s). Lustre mounted ``localflock`` checks each node
  on its own, so two nodes are not kept apart; a file system without ``flock`` (Lustre ``noflock``, some FUSE
  mounts) takes no lock at all, and the run says so in one line and goes on unprotected.

Under ``torchrun`` only the process of global rank 0 takes the lock; the other ranks belong to the same run.
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import socket
import sys
from datetime import datetime
from pathlib import Path

from verireason.errors import UserError
from verireason.files import write_atomic

LOCK_FILE = "run.lock"
HOLDER_FILE = "run.lock.json"
NO_LOCKS = (errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL)  # flock refused by the file system


class RunLocked(UserError):
    """Another live process holds the run directory."""


def is_main_process() -> bool:
    """The process that owns the run's files: global rank 0 under a launcher, the only process otherwise."""
    return os.environ.get("RANK", "0") == "0"


def holder_text(run_dir: Path) -> str:
    """Who holds ``run_dir`` as the holder file says (``pid 123 on node7 since …: verireason eval …``)."""
    try:
        holder = json.loads((Path(run_dir) / HOLDER_FILE).read_text(encoding="utf-8"))
        return (f"pid {holder['pid']} on {holder['host']} since {holder['started']}: "
                f"{holder['command']}")
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (it has not written its name yet)"


class RunLock:
    """The lock of one run directory; ``acquire`` makes the directory if needed. Keep the object: a lock that
    is garbage-collected is released."""

    def __init__(self, run_dir: Path, argv: list[str] | None = None):
        from filelock import FileLock

        self.run_dir = Path(run_dir)
        self.argv = list(sys.argv if argv is None else argv)
        self._lock = FileLock(str(self.run_dir / LOCK_FILE), timeout=0)
        self.held = False

    def acquire(self) -> "RunLock":
        """Take the lock at once or raise ``RunLocked``; on a file system without locks, warn and go on."""
        from filelock import Timeout

        self.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            raise RunLocked(f"{self.run_dir} is in use by {holder_text(self.run_dir)}; wait for it to end (then "
                            "--resume), or choose another --out") from None
        except OSError as exc:
            if exc.errno not in NO_LOCKS:
                raise
            print(f"note: the file system of {self.run_dir} takes no locks ({exc.strerror}): nothing keeps a second "
                  "process from writing this run", file=sys.stderr, flush=True)
            return self
        self.held = True
        holder = {"host": socket.gethostname(), "pid": os.getpid(), "command": "verireason " + shlex.join(self.argv[1:]),
                  "started": datetime.now().isoformat(timespec="seconds")}
        write_atomic(self.run_dir / HOLDER_FILE, json.dumps(holder) + "\n")
        return self

    def release(self) -> None:
        if self.held:
            (self.run_dir / HOLDER_FILE).unlink(missing_ok=True)
            self._lock.release()
            self.held = False
