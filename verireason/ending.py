"""How one command holds its run directory and how it ends: the CLI runs every command inside ``guarded()``.

``hold(run_dir)`` takes the run directory's lock (``runlock``) for the rest of the command; ``guarded`` turns
every early end into one line on stderr (``interrupts``): bad input (exit 2), SIGINT or SIGTERM (what is saved and
the resume command, exit 130 or 143), a full disk, a quota, a permission or a read-only file system (the same,
exit 1); anything else is a bug and keeps its traceback. The lock is released however the command ends.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer

from verireason.errors import UserError


class Run:
    """The run directory a command writes and the lock it holds on it (set by ``hold``)."""

    dir: Optional[Path] = None
    lock = None


@contextmanager
def guarded() -> Iterator[None]:
    """Run a command's body: its early ends as one line and an exit code (module docstring), the lock released."""
    from verireason import interrupts

    try:
        with interrupts.handled():
            yield
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt as exc:
        from verireason.runlock import is_main_process

        how = f"interrupted ({exc})" if isinstance(exc, interrupts.Interrupted) else "interrupted"
        rest = (f"continue with: {interrupts.resume_command(sys.argv, Run.dir)}" if Run.dir is not None else "")
        if is_main_process():  # every rank of a launched run gets the signal; one line is enough
            typer.echo(f"\n{how}: {interrupts.saved_note(Run.dir, True)}" + (f"; {rest}" if rest else ""), err=True)
        raise typer.Exit(getattr(exc, "exit_code", 130)) from None
    except typer.Exit:
        raise
    except Exception as exc:  # noqa: BLE001 - only the environment's failures are turned into a line; the rest re-raise
        failure = interrupts.environment_failure(exc, Run.dir)
        if failure is None:
            raise
        what, file = failure
        fix = "free some space" if "space" in what or "quota" in what else "make it writable"
        where = f" writing {file}" if file else ""
        rest = (f"; {fix}, then continue with: {interrupts.resume_command(sys.argv, Run.dir)}"
                if Run.dir is not None else f"; {fix} and run the command again")
        typer.echo(f"error: {what}{where}: {interrupts.saved_note(Run.dir)}{rest}", err=True)
        raise typer.Exit(1) from None
    finally:
        if Run.lock is not None:
            Run.lock.release()
        Run.dir, Run.lock = None, None


def hold(run_dir: Path) -> None:
    """Take ``run_dir``'s lock for the rest of the command (the main process only; ``runlock``): a second writer is
    refused with one line naming the holder. The directory is made here if it is new."""
    from verireason.runlock import RunLock, is_main_process

    if is_main_process():
        Run.lock = RunLock(run_dir).acquire()  # a refusal removes nothing: the directory is the holder's
    Run.dir = run_dir
