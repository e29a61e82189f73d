"""STV's difficulty bins (papers.md §2.8): problems binned by the generator's own pass rate over k samples.

The official data are DAPO-Math rollouts of the generator binned by pass@1: ``0.0_0.0`` (Hardest: none of k correct)
and ``0.0_0.2`` (Hard: 0 < p < 0.2; with k = 32, 1 to 6 correct). ``write_bins`` reads an ``eval`` run
(``samples.jsonl`` and its ``config.yaml``), bins its problems, and writes one normalized JSONL file per bin and
benchmark (``<bench>_hardest.jsonl``, ``<bench>_hard.jsonl``: ``id, problem, answer, solution, level`` plus
``pass_rate`` and ``k``), which ``--data-dir`` reads (``--bench dapo_hard``, or ``--bench custom
bench.custom.file=<bench>_hard.jsonl``). Reference solutions come from the benchmark itself, reloaded with the
run's own settings, since the STV teacher reads them.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from verireason.errors import UserError
from verireason.files import write_atomic
from verireason.records import Problem, Sample

BIN_NAMES = ("hardest", "hard")


def bin_of(correct: int, k: int, hard_below: float = 0.2) -> str | None:
    """``hardest`` (0 of k), ``hard`` (0 < correct/k < hard_below) or None (easier)."""
    if correct == 0:
        return "hardest"
    return "hard" if correct / k < hard_below else None


def pass_counts(samples: Sequence[Sample]) -> dict[tuple[str, str], tuple[int, int]]:
    """(correct, k) per (bench, problem id)."""
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for s in samples:
        entry = counts[(s.bench, s.problem_id)]
        entry[0] += int(s.correct)
        entry[1] += 1
    return {key: (c, k) for key, (c, k) in counts.items()}


def binned(samples: Sequence[Sample], problems: dict[tuple[str, str], Problem],
           hard_below: float = 0.2) -> dict[tuple[str, str], list[tuple[Problem, int, int]]]:
    """(bench, bin) → [(problem, correct, k)], in the order the problems first appear in ``samples``."""
    out: dict[tuple[str, str], list[tuple[Problem, int, int]]] = defaultdict(list)
    for (bench, pid), (correct, k) in pass_counts(samples).items():
        name = bin_of(correct, k, hard_below)
        if name is not None:
            out[(bench, name)].append((problems[(bench, pid)], correct, k))
    return out


def write_bins(run_dir: Path, out_dir: Path, hard_below: float = 0.2) -> dict[tuple[str, str], int]:
    """Bin an ``eval`` run's problems into ``out_dir``; returns (bench, bin) → problems written (0 for empty)."""
    from omegaconf import OmegaConf

    from verireason.config import BenchCfg
    from verireason.data import load_problems
    from verireason.tracking import RecordLog

    if not (run_dir / "samples.jsonl").is_file() or not (run_dir / "config.yaml").is_file():
        raise UserError(f"{run_dir} is not an eval run: it needs samples.jsonl and config.yaml")
    cfg = OmegaConf.load(run_dir / "config.yaml")
    samples = RecordLog(run_dir / "samples.jsonl").read()
    if not samples:
        raise UserError(f"{run_dir}/samples.jsonl holds no samples")
    problems = {}
    for bench in dict.fromkeys(s.bench for s in samples):
        spec = BenchCfg(**OmegaConf.to_container(cfg.bench[bench]))
        problems.update({(bench, p.id): p for p in load_problems(bench, spec, cfg.get("data_dir"), cfg.get("limit"))})
    groups = binned(samples, problems, hard_below)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for bench in dict.fromkeys(s.bench for s in samples):
        for name in BIN_NAMES:
            rows = groups.get((bench, name), [])
            write_atomic(out_dir / f"{bench}_{name}.jsonl", "".join(json.dumps(
                {"id": p.id, "problem": p.problem, "answer": p.answer, "solution": p.solution, "level": p.level,
                 "pass_rate": correct / k, "k": k}, ensure_ascii=False) + "\n" for p, correct, k in rows))
            written[(bench, name)] = len(rows)
    return written
