"""Run directories and what is written into them as a run goes.

``results/<command>/<run>/`` holds ``config.yaml`` and ``run.json`` (written at the start), ``samples.jsonl``
(appended after every generation batch, so a kill loses at most one batch) and ``summary.json`` / ``summary.md``.
Protocols add ``verifications.jsonl`` (``self_verify``) or ``chains.jsonl`` (``vr_loop``), written the same way.
``--resume`` reads them back and continues with the problems that have no complete group yet.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from verireason.errors import UserError
from verireason.files import naming, write_atomic
from verireason.interrupts import deferred
from verireason.records import Chain, Round, Sample

RESULTS_DIR = Path("results")
# Keys whose change would make resumed samples incomparable with the ones already on disk.
RESUME_KEYS = ("model", "sampling", "prompt", "grader", "protocol", "verify", "verifier", "samples", "algo", "reward",
               "schedule", "data", "kl_coef")


def new_run_dir(command: str, label: str) -> Path:
    """``results/<command>/<label>-<YYYYmmdd-HHMMSS>``."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return RESULTS_DIR / command / f"{label.replace('/', '_')}-{stamp}"


def latest_run_dir(command: str) -> Path:
    """The most recently modified run of a command (for ``--resume`` without ``--out``)."""
    runs = [p for p in (RESULTS_DIR / command).glob("*") if (p / "config.yaml").is_file()]
    if not runs:
        raise UserError(f"--resume: no earlier run in {RESULTS_DIR / command}; pass --out DIR")
    return max(runs, key=lambda p: max(f.stat().st_mtime for f in p.iterdir()))


def check_resumable(run_dir: Path, cfg) -> None:
    """Refuse to mix samples made under a different model, sampling, prompt or grader."""
    saved = OmegaConf.load(run_dir / "config.yaml")
    plain = lambda node: OmegaConf.to_container(node) if isinstance(node, DictConfig) else node  # noqa: E731
    changed = [k for k in RESUME_KEYS if plain(saved.get(k)) != plain(cfg.get(k))]
    if changed:
        raise UserError(f"--resume: {run_dir} was made with a different {', '.join(changed)}; "
                        "resume with the same settings or choose a new --out")


def _decode(record_type: type, data: dict):
    if record_type is Chain:
        return Chain(**{**data, "rounds": [Round(**r) for r in data["rounds"]]})
    return record_type(**data)


class RecordLog:
    """A JSONL file of one record type (``Sample``, ``Verdict``, ``Chain``), appended and flushed batch by batch.

    A record type's ``KEY`` names the fields that identify a record (``Sample``: bench, problem and sample index);
    each key counts once however the file came to hold it twice (two writers before the run lock existed, a file
    joined by hand): ``read`` keeps the first line of each key, and ``keep_complete``, which a resuming run calls,
    rewrites the file without the repeats. Either says so in one line naming them."""

    def __init__(self, path: Path, record_type: type = Sample):
        self.path = path
        self.record_type = record_type

    def append(self, records: Iterable) -> None:
        lines = "".join(json.dumps(dataclasses.asdict(r), ensure_ascii=False) + "\n" for r in records)
        with deferred(), naming(self.path), self.path.open("a", encoding="utf-8") as handle:  # signals wait
            handle.write(lines)
            handle.flush()

    def read(self) -> list:
        """All records on disk, each key once."""
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        records = [self._decode(line, lineno) for lineno, line in enumerate(lines, start=1)]
        return [records[i] for i in self._first_of_each_key(records)]

    def _decode(self, line: str, lineno: int):
        try:
            return _decode(self.record_type, json.loads(line))
        except (json.JSONDecodeError, TypeError) as exc:
            raise UserError(f"{self.path}:{lineno}: not a {self.record_type.__name__} record ({exc})") from None

    def _first_of_each_key(self, records: list) -> list[int]:
        """Indices of the records to keep: the first of each ``KEY`` (all of them for a type without one); a
        one-line note names the repeats dropped."""
        fields = getattr(self.record_type, "KEY", None)
        if not fields:
            return list(range(len(records)))
        keep, repeats = first_of_each(range(len(records)), lambda i: tuple(getattr(records[i], f) for f in fields))
        if repeats:
            named = ", ".join("/".join(map(str, k)) for k in repeats[:3]) + (", …" if len(repeats) > 3 else "")
            print(f"note: {self.path} holds {len(repeats)} repeated record(s) ({named}; key "
                  f"{'/'.join(fields)}); each counted once, the first kept", file=sys.stderr, flush=True)
        return keep

    def keep_complete(self, n: int, key=lambda r: (r.bench, r.problem_id)) -> set:
        """Drop a line cut off by a kill, repeated records and groups with fewer than n records (one atomic
        rewrite, the kept lines byte for byte); return the complete groups' keys."""
        text = self.path.read_text(encoding="utf-8") if self.path.exists() else ""
        whole = text[: text.rfind("\n") + 1]  # a line cut off by a kill is dropped
        lines = whole.splitlines(keepends=True)
        records = [self._decode(line, lineno) for lineno, line in enumerate(lines, start=1)]
        unique = self._first_of_each_key(records)
        counts: dict = {}
        for i in unique:
            counts[key(records[i])] = counts.get(key(records[i]), 0) + 1
        complete = {k for k, count in counts.items() if count >= n}
        kept = [lines[i] for i in unique if key(records[i]) in complete]
        if len(kept) != len(lines) or whole != text:
            write_atomic(self.path, "".join(kept))
        return complete


def first_of_each(items: Iterable, key) -> tuple[list, list]:
    """``(kept, repeated keys)``: the first item of each ``key(item)``, in order, and the keys seen again."""
    kept, seen, repeats = [], set(), []
    for item in items:
        k = key(item)
        if k in seen:
            repeats.append(k)
        else:
            seen.add(k)
            kept.append(item)
    return kept, repeats


def write_summary(run_dir: Path, summary: dict[str, dict], title: str, notes: Sequence[str] = ()) -> str:
    """Write ``summary.json`` and ``summary.md``; return the Markdown table (with its notes)."""
    write_atomic(run_dir / "summary.json", json.dumps({**summary, **({"notes": list(notes)} if notes else {})},
                                                      indent=2) + "\n")
    table = markdown_table(summary) + "".join(f"\n\n{note}" for note in notes)
    write_atomic(run_dir / "summary.md", f"# {title}\n\n{table}\n")
    return table


def markdown_table(summary: dict[str, dict]) -> str:
    """One row per benchmark; columns in the order of the first benchmark's metrics."""
    columns: list[str] = []
    for metrics in summary.values():
        columns += [k for k in metrics if k not in columns]
    lines = ["| bench | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for bench, metrics in summary.items():
        lines.append(f"| {bench} | " + " | ".join(_fmt(metrics.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) <= 1 else f"{value:.1f}"
    return str(value)


def mean_row(summary: dict[str, dict], keys: Sequence[str]) -> dict[str, float]:
    """The unweighted mean over benchmarks (the papers' "Avg" column) of the given metrics."""
    rows = list(summary.values())
    return {k: sum(r[k] for r in rows) / len(rows) for k in keys if all(k in r for r in rows)}


class RunLog:
    """Training logs of a run, written by the main process only: ``metrics.jsonl`` (one line per step) and
    ``rollouts/step_XXXXXX.jsonl`` (every rollout of the step), and the same to the trackers of ``log``
    (``LogCfg``; ``verireason.trackers``). ``truncate_after(step)`` drops what a resumed run will redo, so no step
    is logged twice, and opens the trackers after that step (a fresh run calls it with -1). ``close`` at the end."""

    def __init__(self, run_dir: Path, enabled: bool = True, log=None):
        self.run_dir = run_dir
        self.enabled = enabled
        self.metrics_path = run_dir / "metrics.jsonl"
        self.log_cfg = log
        self.trackers = None

    def open_trackers(self, resume_step: int | None) -> None:
        if not (self.enabled and self.log_cfg is not None and self.log_cfg.trackers) or self.trackers is not None:
            return
        import yaml

        from verireason.trackers import Trackers

        config_file = self.run_dir / "config.yaml"
        config = yaml.safe_load(config_file.read_text()) if config_file.exists() else {}
        self.trackers = Trackers(self.log_cfg.trackers, self.run_dir, config, resume_step=resume_step,
                                 project=self.log_cfg.project)

    def log(self, step: int, metrics: dict) -> None:
        if self.enabled:
            clean = {k: None if isinstance(v, float) and v != v else v for k, v in metrics.items()}  # NaN → null
            with deferred(), naming(self.metrics_path), self.metrics_path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps({"step": step, **clean}) + "\n")
            if self.trackers is not None:
                self.trackers.log(metrics, step)

    def rollouts(self, step: int, records: Iterable) -> None:
        if self.enabled:
            records = list(records)
            (self.run_dir / "rollouts").mkdir(exist_ok=True)
            RecordLog(self.run_dir / "rollouts" / f"step_{step:06d}.jsonl").append(records)
            if self.trackers is not None and step % self.log_cfg.samples_every == 0:
                self.trackers.table(*sample_table(records[: self.log_cfg.samples]), step)

    def figure(self, path: Path) -> None:
        """A figure the run drew (its final training curves) to the trackers."""
        if self.trackers is not None:
            self.trackers.figure(path)

    def close(self) -> None:
        if self.trackers is not None:
            self.trackers.close()
            self.trackers = None

    def truncate_after(self, step: int) -> None:
        if not self.enabled:
            return
        self.open_trackers(step if step >= 0 else None)
        rows = [r for r in read_metrics(self.metrics_path) if r["step"] <= step]
        write_atomic(self.metrics_path, "".join(json.dumps(r) + "\n" for r in rows))
        for path in (self.run_dir / "rollouts").glob("step_*.jsonl"):
            if int(path.stem.split("_")[1]) > step:
                path.unlink()


def sample_table(rollouts: Sequence) -> tuple[list[str], list[list]]:
    """(columns, rows) of sampled completions for a tracker: prompt, completion, reward, verdict (the verifier's
    claim where the rollout is a verification, else empty)."""
    rows = []
    for r in rollouts:
        meta = getattr(r, "meta", None) or {}
        claimed = meta.get("claimed", meta.get("verdicts", ""))
        rows.append([getattr(r, "prompt", ""), getattr(r, "completion", ""), float(getattr(r, "reward", 0.0)),
                     "" if claimed is None else str(claimed)])
    return ["prompt", "completion", "reward", "verdict"], rows


def read_metrics(path: Path) -> list[dict]:
    """The lines of a ``metrics.jsonl``, one per step (a line cut off by a kill is skipped; a step written twice
    counts once, its first line, with a one-line note)."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    rows, repeats = first_of_each(rows, lambda row: row.get("step"))
    if repeats:
        print(f"note: {path} logs step(s) {', '.join(map(str, repeats[:5]))}{', …' if len(repeats) > 5 else ''} "
              "more than once; each counted once, the first kept", file=sys.stderr, flush=True)
    return rows
