"""Reward plug-ins (``reward.fn``, ``reward.extra``): a user's own reward terms without editing the package.

A plug-in is ``"module:function"`` (a module on ``sys.path``, or a ``path/to/file.py:function``), a plain function
``f(problem, completion, grade) -> float`` of the ``Problem``, the ``Completion`` (``text``, ``tokens``,
``finish_reason``, ``token_ids``) and the grader's ``Grade`` (``extracted``, ``correct``, ``formatted``).
``reward.fn`` replaces the correctness reward of a solution, each of ``reward.extra`` adds its term. Each call runs
in the grading step under the grader's time limit (``grader.timeout_s``); one that raises, returns a non-number or
runs past the limit stops the run with one line naming it. ``load`` is called before any model loads.

Example: ``experiments/reward_plugins.py`` (a brevity and a format term), used as
``reward.extra=[experiments/reward_plugins.py:brevity]``.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from verireason.errors import UserError

RewardFn = Callable[[object, object, object], float]


def load(spec: str) -> RewardFn:
    """The function ``spec`` names; one-line error when it cannot be imported or is not callable."""
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise UserError(f"reward plug-in {spec!r}: expected module:function (or path/to/file.py:function)")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name).expanduser()
            if not path.is_file():
                raise UserError(f"reward plug-in {spec!r}: no file {path}")
            loader = importlib.util.spec_from_file_location(f"verireason_plugin_{path.stem}", path)
            module = importlib.util.module_from_spec(loader)
            loader.loader.exec_module(module)
        else:
            if "" not in sys.path and str(Path.cwd()) not in sys.path:
                sys.path.insert(0, str(Path.cwd()))  # `module:function` from the directory the command runs in
            module = importlib.import_module(module_name)
    except UserError:
        raise
    except Exception as exc:  # the user's module failed to import: say which and why, in one line
        raise UserError(f"reward plug-in {spec!r} could not be imported: {type(exc).__name__}: {exc}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise UserError(f"reward plug-in {spec!r}: {module_name} has no function {attr!r}")
    return fn


@dataclass
class RewardPlugins:
    """The loaded ``reward.fn`` (or None) and ``reward.extra`` functions, with their names for error messages."""

    fn: tuple[str, RewardFn] | None
    extra: list[tuple[str, RewardFn]]
    timeout_s: float = 5.0

    @classmethod
    def from_cfg(cls, reward, timeout_s: float) -> "RewardPlugins":
        return cls((reward.fn, load(reward.fn)) if reward.fn else None, [(s, load(s)) for s in reward.extra],
                   timeout_s)

    def __bool__(self) -> bool:
        return self.fn is not None or bool(self.extra)

    def _call(self, name: str, fn: RewardFn, args: tuple) -> float:
        """``fn(*args)`` in a daemon thread, waited for ``timeout_s`` (a thread that never returns is left behind
        and does not keep the process alive)."""
        result: dict[str, object] = {}

        def target() -> None:
            try:
                result["value"] = fn(*args)
            except Exception as exc:  # reported below, in one line
                result["error"] = exc

        worker = threading.Thread(target=target, daemon=True, name=f"reward-plugin {name}")
        worker.start()
        worker.join(self.timeout_s)
        if worker.is_alive():
            raise UserError(f"reward plug-in {name!r} took longer than grader.timeout_s={self.timeout_s:g} s")
        if "error" in result:
            exc = result["error"]
            raise UserError(f"reward plug-in {name!r} raised {type(exc).__name__}: {exc}")
        value = result.get("value")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise UserError(f"reward plug-in {name!r} returned {value!r}; it must return a finite number")
        return float(value)

    def rewards(self, base: Sequence[float], items: Sequence[tuple[object, object, object]]) -> list[float]:
        """Each ``(problem, completion, grade)``'s reward: ``reward.fn`` (or ``base``) plus every extra term."""
        out = []
        for value, args in zip(base, items):
            if self.fn is not None:
                value = self._call(*self.fn, args)
            out.append(value + sum(self._call(name, fn, args) for name, fn in self.extra))
        return out
