"""Atomic rewrites of results files: the new content goes to a temporary file beside the target, is flushed to
disk and renamed over it (``os.replace`` is atomic on POSIX and Windows), so a kill at any moment leaves either
the old file or the new one, never an emptied or half-written one. Appends (``RecordLog.append``,
``RunLog.log``) need no such care: a cut-off last line is dropped when the run resumes."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def naming(path: Path) -> Iterator[None]:
    """An ``OSError`` raised inside (a full disk, a permission) names ``path`` when it names no file itself, so the
    one-line message can say which file could not be written."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None:
            exc.filename = str(path)
        raise


def _replace_via_temp(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with naming(path):
            write(tmp)
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path``'s content with ``text`` (UTF-8) in one step."""

    def write(tmp: Path) -> None:
        with tmp.open("w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())

    _replace_via_temp(Path(path), write)


def save_figure(fig, path: Path) -> None:
    """``fig.savefig`` into ``path`` in one step (the format from the suffix)."""
    path = Path(path)
    _replace_via_temp(path, lambda tmp: fig.savefig(tmp, format=path.suffix.lstrip(".") or "png"))
