"""``verireason asymmetry-probe``: generation vs self-verification accuracy across the checkpoints of a run.

Paper 1 (papers.md §1.1, figure ``training.png``) tracks both over training: RL on generation leaves
self-verification flat near chance; RL on self-verification lifts both. For each checkpoint (in step order) this
recipe samples ``sampling.n`` solutions per problem (generation accuracy), builds the balanced on-policy
verification set of §1.4 from them, has the same checkpoint judge it with the prompt family's verification prompt
(answer-only by default) and reports verification accuracy, balanced accuracy, TPR and TNR. It writes
``asymmetry.csv`` (a row per checkpoint, appended as each finishes; ``--resume`` skips finished ones) and
``asymmetry.png``; ``--from-csv`` redraws the figure without running anything.

Run: ``verireason asymmetry-probe --checkpoints results/rl-verify/<run>/ckpt`` or a comma list of model dirs.
"""

from __future__ import annotations

import csv
import gc
import random
import re
from dataclasses import replace
from pathlib import Path

from omegaconf import OmegaConf

from verireason.config import CONF_DIR, AsymmetryCfg, EvalCfg, ModelCfg, group_options
from verireason.errors import UserError
from verireason.balance import balanced_verification_set
from verireason.grading import Grader
from verireason.metrics import verification_metrics
from verireason.plotting import plot_asymmetry, read_csv
from verireason.protocols import verify
from verireason.records import Judged, Problem, Verdict
from verireason.recipes.evaluate import Engines, solve_samples
from verireason.tracking import RecordLog

COLUMNS = ["step", "checkpoint", "gen_accuracy", "verify_accuracy", "verify_balanced_accuracy", "tpr", "tnr",
           "unparseable", "verify_set", "samples"]


def _step(path: Path, position: int) -> int:
    digits = re.findall(r"\d+", path.name)
    return int(digits[-1]) if digits else position


def find_checkpoints(entries: list[str], base: ModelCfg) -> list[tuple[int, ModelCfg]]:
    """``(step, model config)`` per checkpoint, in step order. An entry is a model alias, a model directory, or
    a run folder whose sub-folders (up to two levels down) holding a ``config.json`` are its checkpoints."""
    found: list[tuple[int, ModelCfg]] = []
    for position, entry in enumerate(entries):
        path = Path(entry).expanduser()
        if entry in group_options("model"):
            alias = OmegaConf.merge(OmegaConf.structured(ModelCfg), OmegaConf.load(CONF_DIR / "model" / f"{entry}.yaml"))
            found.append((position, OmegaConf.to_object(alias)))
        elif (path / "config.json").is_file():
            found.append((_step(path, position), replace(base, name=path.name, path=str(path))))
        elif path.is_dir():
            inner = sorted({p.parent for p in [*path.glob("*/config.json"), *path.glob("*/*/config.json")]})
            if not inner:
                raise UserError(f"--checkpoints: {path} holds no model directory (no config.json below it)")
            found += [(_step(p, i), replace(base, name=p.name, path=str(p))) for i, p in enumerate(inner)]
        else:
            raise UserError(f"--checkpoints: {entry!r} is neither a model alias, a model directory nor a run folder")
    return sorted(found, key=lambda item: item[0])


def run(cfg: AsymmetryCfg, run_dir: Path) -> list[dict]:
    """Probe every checkpoint into ``run_dir``; returns the CSV rows."""
    if cfg.from_csv:
        source = Path(cfg.from_csv)
        if not source.is_file():
            raise UserError(f"--from-csv {source}: no such file")
        figure = plot_asymmetry(read_csv(source), source.with_suffix(".png"))
        print(f"redrew {figure}")
        return read_csv(source)
    if not cfg.checkpoints:
        raise UserError("asymmetry-probe needs --checkpoints (model dirs, aliases or a training run folder)")
    csv_path = run_dir / "asymmetry.csv"
    done = {r["checkpoint"] for r in read_csv(csv_path)} if csv_path.exists() else set()
    for step, model in find_checkpoints(list(cfg.checkpoints), cfg.model):
        if model.path in done:
            continue
        row = probe_checkpoint(cfg, model, step, run_dir / f"step_{step:06d}")
        _append_row(csv_path, row)
        title = f"asymmetry probe: {Path(cfg.checkpoints[0]).name}"
        plot_asymmetry(read_csv(csv_path), run_dir / "asymmetry.png", title)
        print(f"step {step}: generation {row['gen_accuracy']:.3f}, "
              f"self-verification balanced {row['verify_balanced_accuracy']:.3f}", flush=True)
    rows = read_csv(csv_path)
    print(f"\nasymmetry.csv and asymmetry.png are in {run_dir}")
    return rows


def probe_checkpoint(cfg: AsymmetryCfg, model: ModelCfg, step: int, out: Path) -> dict:
    """Generation accuracy and balanced self-verification metrics of one checkpoint."""
    out.mkdir(parents=True, exist_ok=True)
    eval_cfg = EvalCfg(model=model, bench=cfg.bench, sampling=cfg.sampling, prompt=cfg.prompt, engine=cfg.engine,
                       grader=cfg.grader, verify=cfg.verify, limit=cfg.limit, seed=cfg.seed, data_dir=cfg.data_dir,
                       progress=cfg.progress)
    engines = Engines(eval_cfg)
    grader = Grader(cfg.grader.name, cfg.grader.timeout_s, cfg.grader.workers)
    try:
        samples = solve_samples(eval_cfg, out, engines, grader)
    finally:
        grader.close()
    groups: dict[tuple[str, str], list] = {}
    for s in samples:
        groups.setdefault((s.bench, s.problem_id), []).append(s)
    pairs = balanced_verification_set(list(groups.values()), random.Random(cfg.seed + step))
    log = RecordLog(out / "verifications.jsonl", Verdict)
    log.path.unlink(missing_ok=True)  # the set is rebuilt deterministically, so a partial file is redone whole
    judged = [Judged(Problem(s.problem_id, s.problem, s.gold, s.bench, level=s.level), s.bench, s.sample_index,
                     s.completion, label) for s, label in pairs]
    if judged:
        verdicts = verify(engines.generator(), judged, cfg.prompt, model.system_prompt, cfg.verify.sampling, cfg.seed,
                          cfg.verify.stop_at_verdict)
        log.append(v for vs in verdicts for v in vs)
    metrics = verification_metrics([(v.claimed, v.truth) for v in log.read()])
    del engines
    gc.collect()
    return {"step": step, "checkpoint": model.path, "gen_accuracy": sum(s.correct for s in samples) / len(samples),
            "verify_accuracy": metrics.get("verify_accuracy", float("nan")),
            "verify_balanced_accuracy": metrics.get("verify_balanced_accuracy", float("nan")),
            "tpr": metrics.get("tpr", float("nan")), "tnr": metrics.get("tnr", float("nan")),
            "unparseable": metrics.get("unparseable", float("nan")), "verify_set": len(judged),
            "samples": len(samples)}


def _append_row(path: Path, row: dict) -> None:
    new = not path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow(row)
