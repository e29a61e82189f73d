"""Benchmarks and training sources as lists of ``Problem``.

Precedence: a built-in generator (``arith``); else a normalized JSONL file ``<data_dir>/<bench>.jsonl`` (schema
of ``shared/benchmarks/README.md``: ``id, problem, answer, solution``, optional ``level``); else the benchmark's
Hugging Face hub dataset through ``datasets``, mapped by the field names in ``conf/bench/<bench>.yaml``.
"""

from __future__ import annotations

import json
import os
import random
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from verireason import arith
from verireason.config import BenchCfg
from verireason.errors import UserError
from verireason.grading import last_boxed
from verireason.records import Problem
from verireason.tracking import first_of_each

DATA_DIR_ENV = "VERIREASON_DATA_DIR"


def _after_hash(value: str) -> str:
    return value.split("####")[-1].strip().replace(",", "")


def _last_boxed(value: str) -> str:
    boxed = last_boxed(value)
    return boxed if boxed is not None else value


ANSWER_TRANSFORMS: dict[str, Callable[[Any], str]] = {
    "none": str,
    "after_hash": lambda v: _after_hash(str(v)),  # GSM8K: "...#### 72"
    "last_boxed": lambda v: _last_boxed(str(v)),  # MATH: the answer is the last \boxed{} of the solution
    "first": lambda v: str(v[0] if isinstance(v, list) else v),  # OlympiadBench: final_answer is a list
}


def resolve_data_dir(data_dir: str | None) -> Path | None:
    """``--data-dir``, else ``$VERIREASON_DATA_DIR``, else None."""
    chosen = data_dir or os.environ.get(DATA_DIR_ENV)
    return Path(chosen).expanduser() if chosen else None


def read_jsonl_problems(path: Path, source: str) -> list[Problem]:
    """Problems from a normalized JSONL file; malformed lines are reported with file and line number."""
    problems, seen = [], set()
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}:{lineno}: malformed JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise UserError(f"{path}:{lineno}: expected a JSON object with id, problem, answer")
            missing = [k for k in ("id", "problem", "answer") if record.get(k) is None]
            if missing:
                raise UserError(f"{path}:{lineno}: missing field(s) {', '.join(missing)}; "
                                "a record needs id, problem, answer (solution, level optional)")
            pid = str(record["id"])
            if pid in seen:
                raise UserError(f"{path}:{lineno}: duplicate id {pid!r}")
            seen.add(pid)
            problems.append(Problem(
                id=pid, problem=str(record["problem"]), answer=str(record["answer"]), source=source,
                solution=record.get("solution"), level=None if record.get("level") is None else str(record["level"]),
            ))
    return problems


def _field(record: dict, path: str | None) -> Any:
    """A dotted path into a hub record (``reward_model.ground_truth``, ``prompt.0.content``)."""
    if path is None:
        return None
    value: Any = record
    for part in path.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def load_hub_problems(name: str, bench: BenchCfg) -> list[Problem]:
    """Problems from the benchmark's hub dataset (needs network or a populated HF cache)."""
    import datasets

    rows = datasets.load_dataset(bench.hub, bench.subset, split=bench.split)
    transform = ANSWER_TRANSFORMS[bench.answer_transform]
    problems = []
    for index, record in enumerate(rows):
        solution = _field(record, bench.solution_field)
        level = _field(record, bench.level_field)
        problems.append(Problem(
            id=f"{name}-{index}", problem=str(_field(record, bench.problem_field)),
            answer=transform(_field(record, bench.answer_field)), source=name,
            solution=ANSWER_TRANSFORMS["first"](solution) if solution is not None else None,
            level=None if level is None else str(level),
        ))
    return problems


def load_problems(name: str, bench: BenchCfg, data_dir: str | None = None, limit: int | None = None) -> list[Problem]:
    """The problems of one benchmark (the first ``limit`` of them)."""
    if bench.answer_transform not in ANSWER_TRANSFORMS:
        raise UserError(f"bench.{name}.answer_transform={bench.answer_transform!r}; valid: {', '.join(ANSWER_TRANSFORMS)}")
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be at least 1 (got {limit})")
    if bench.generator == "arith":
        size = bench.size if limit is None else min(bench.size, limit)
        problems = arith.generate(size, bench.seed, list(bench.levels))
    elif bench.generator is not None:
        raise UserError(f"bench.{name}.generator={bench.generator!r}; valid: arith")
    else:
        problems = _load_file_or_hub(name, bench, resolve_data_dir(data_dir))
    problems = problems[:limit] if limit is not None else problems
    if not problems:
        raise UserError(f"benchmark {name!r} selected no problems")
    return problems


def _load_file_or_hub(name: str, bench: BenchCfg, data_dir: Path | None) -> list[Problem]:
    file_name = bench.file or f"{name}.jsonl"
    if data_dir is not None:
        if not data_dir.is_dir():
            raise UserError(f"data directory {data_dir} does not exist")
        if (data_dir / file_name).is_file():
            return read_jsonl_problems(data_dir / file_name, name)
    if bench.hub is None:
        raise UserError(f"benchmark {name!r} has no hub dataset and {file_name} is not in the data directory")
    try:
        return load_hub_problems(name, bench)
    except Exception as exc:  # noqa: BLE001 - network, cache and schema failures all end the same way
        where = f"{file_name} is not in {data_dir}" if data_dir else "no --data-dir / $VERIREASON_DATA_DIR is set"
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"benchmark {name!r}: {where}, and the hub dataset {bench.hub} could not be loaded "
                        f"({reason[:200]})") from None


def read_responses(path: Path) -> list[tuple[str, Problem, list[str], list[bool] | None]]:
    """Existing responses to judge (``eval --samples FILE``): ``(bench, problem, responses, labels or None)``.

    Two layouts are read: one problem per line with ``responses`` (and optionally ``correct`` labels), as in
    ``shared/benchmarks/qwen25math_math_cot_samples.jsonl``; or a ``samples.jsonl`` written by ``verireason eval``.
    """
    if not path.is_file():
        raise UserError(f"--samples {path}: no such file")
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}:{lineno}: malformed JSON ({exc.msg})") from None
    if rows and "responses" in rows[0]:
        return [(path.stem, Problem(id=str(r["id"]), problem=r["problem"], answer=str(r["answer"]), source=path.stem,
                                    solution=r.get("solution"), level=r.get("level")),
                 list(r["responses"]), r.get("correct")) for r in rows]
    if rows and {"bench", "problem_id", "completion", "problem"} <= set(rows[0]):
        grouped: dict[tuple[str, str], tuple[Problem, list[str], list[bool]]] = {}
        for r in _each_sample_once(rows, path):
            key = (r["bench"], r["problem_id"])
            if key not in grouped:
                grouped[key] = (Problem(id=r["problem_id"], problem=r["problem"], answer=r["gold"], source=r["bench"],
                                        level=r.get("level")), [], [])
            grouped[key][1].append(r["completion"])
            grouped[key][2].append(bool(r["correct"]))
        return [(bench, p, responses, labels) for (bench, _), (p, responses, labels) in grouped.items()]
    raise UserError(f"--samples {path}: expected lines with id, problem, answer, responses (and correct), "
                    "or a samples.jsonl written by verireason eval (with its problem field)")


def _each_sample_once(rows: list[dict], path: Path) -> list[dict]:
    """The first line of each (bench, problem, sample index) of a ``samples.jsonl`` (lines without an index are all
    kept), with a one-line note naming the repeats."""
    # a line without a sample index is its own key (id): all such lines are kept
    kept, repeats = first_of_each(rows, lambda r: (r["bench"], r["problem_id"], r.get("sample_index", id(r))))
    if repeats:
        named = ["/".join(map(str, key)) for key in repeats]
        print(f"note: {path} holds {len(repeats)} repeated sample(s) ({', '.join(named[:3])}"
              f"{', …' if len(repeats) > 3 else ''}); each counted once, the first kept", file=sys.stderr, flush=True)
    return kept


def step_problems(problems: Sequence[tuple[str, Problem]], step: int, size: int, seed: int) -> list[tuple[str, Problem]]:
    """The ``size`` prompts of ``step`` (1-based): epochs of seeded permutations, read in order, so any step's
    batch is known without replaying earlier ones (what resume needs)."""
    out = []
    for i in range((step - 1) * size, step * size):
        epoch, offset = divmod(i, len(problems))
        order = list(range(len(problems)))
        random.Random(seed * 1_000_003 + epoch).shuffle(order)
        out.append(problems[order[offset]])
    return out
