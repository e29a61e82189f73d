"""``verireason eval``: sample, grade and score a model on benchmarks under one of four protocols.

* ``solve``: n samples per problem; accuracy (the papers' Acc@n), unbiased pass@k, maj@n, tokens, truncation.
  Paper 1 reports Acc@16 (``sampling=acc16``, papers.md §1.8), S²R greedy pass@1 (``sampling=greedy
  prompt=qwen25_math_cot``, §3.6).
* ``self_verify``: then the model (or ``--verifier``) judges each sample: verification accuracy, balanced
  accuracy, TPR, TNR, precision, F1, unparseable rate, per level, and verification-guided majority vote (§1.8).
* ``vr_loop``: verify-refine chains (§2.2): per-round accuracy, accept rate, inflation, precision at coverage, and
  compute-matched baselines.
* ``s2r_attempts``: S²R responses split into attempts and verifications (§3.2, §3.6).

``--samples FILE`` judges existing responses instead of generating them. Everything is written as batches finish
and resumes with ``--resume``. Run: ``verireason eval --model smollm2-135m --bench arith --limit 16 sampling=demo``.
"""

from __future__ import annotations

from pathlib import Path

from verireason.config import EvalCfg, ModelCfg
from verireason.data import load_problems, read_responses
from verireason.errors import UserError
from verireason.generation import Generator, build_generator
from verireason.grading import Grader
from verireason.metrics import summarize
from verireason.models import resolve_model_path
from verireason.prompts import chat_text, solve_messages
from verireason.protocols import generate_batched
from verireason.records import Problem, Sample, graded_sample
from verireason.recipes import eval_protocols
from verireason.tracking import RecordLog, RunLog, mean_row, write_summary

PROTOCOLS = ("solve", "self_verify", "vr_loop", "s2r_attempts")


class Engines:
    """The generator and verifier engines, built on first use (a ``--samples`` run may need neither)."""

    def __init__(self, cfg: EvalCfg, generator: Generator | None = None, verifier: Generator | None = None):
        self.cfg, self._generator, self._verifier = cfg, generator, verifier

    def _build(self, model: ModelCfg) -> Generator:
        return build_generator(self.cfg.engine, model, resolve_model_path(model), self.cfg.seed)

    def generator(self) -> Generator:
        if self._generator is None:
            self._generator = self._build(self.cfg.model)
        return self._generator

    def verifier(self) -> Generator:
        if self._verifier is None:
            self._verifier = self.generator() if self.cfg.verifier is None else self._build(self.cfg.verifier)
        return self._verifier


def run(cfg: EvalCfg, run_dir: Path, generator: Generator | None = None,
        verifier: Generator | None = None) -> dict[str, dict]:
    """Evaluate into ``run_dir``; returns the summary (one row per benchmark, and per level where measured)."""
    if cfg.protocol not in PROTOCOLS:
        raise UserError(f"unknown protocol {cfg.protocol!r}; valid: {', '.join(PROTOCOLS)}")
    engines = Engines(cfg, generator, verifier)
    grader = Grader(cfg.grader.name, cfg.grader.timeout_s, cfg.grader.workers)
    notes: list[str] = []
    try:
        if cfg.protocol == "vr_loop":
            summary = eval_protocols.vr_loop(cfg, run_dir, _problems(cfg), engines, grader)
        else:
            samples = _file_samples(cfg, grader) if cfg.samples else solve_samples(cfg, run_dir, engines, grader)
            benches = list(dict.fromkeys(s.bench for s in samples))
            summary = {b: summarize([s for s in samples if s.bench == b]) for b in benches}
            if cfg.protocol == "self_verify":
                notes += eval_protocols.self_verify(cfg, run_dir, samples, summary, engines)
            if cfg.protocol == "s2r_attempts":
                eval_protocols.s2r_attempts(run_dir, samples, summary, grader)
    finally:
        grader.close()
    benches = [k for k in summary if "/" not in k]
    if len(benches) > 1:
        summary["mean"] = mean_row({b: summary[b] for b in benches}, ["accuracy", "pass@1", "mean_tokens"])
    table = write_summary(run_dir, summary, f"eval ({cfg.protocol}): {cfg.model.name}", notes)
    log_summary(cfg, run_dir, summary)
    print(f"\n{table}\n\nresults are in {run_dir}")
    return summary


def log_summary(cfg: EvalCfg, run_dir: Path, summary: dict[str, dict]) -> None:
    """The summary to ``log.trackers`` at step 0, as ``<bench>/<metric>`` (the keys of ``summary.json``)."""
    if not cfg.log.trackers:
        return
    log = RunLog(run_dir, log=cfg.log)
    log.open_trackers(None)
    log.trackers.log({f"{bench}/{k}": v for bench, row in summary.items() for k, v in row.items()}, 0)
    log.close()


def _problems(cfg: EvalCfg) -> list[tuple[str, Problem]]:
    return [(name, p) for name, bench in cfg.bench.items() for p in load_problems(name, bench, cfg.data_dir, cfg.limit)]


def _file_samples(cfg: EvalCfg, grader: Grader) -> list[Sample]:
    """Samples from ``--samples FILE``; the file's own correctness labels win over our grader's where present."""
    rows = read_responses(Path(cfg.samples))
    rows = rows[: cfg.limit] if cfg.limit else rows
    flat = [(bench, p, i, resp, None if labels is None else labels[i])
            for bench, p, responses, labels in rows for i, resp in enumerate(responses)]
    grades = grader.grade_many([(resp, p.answer) for _, p, _, resp, _ in flat])
    return [Sample(bench=bench, problem_id=p.id, sample_index=i, prompt="", completion=resp, extracted=g.extracted,
                   correct=g.correct if label is None else bool(label), formatted=g.formatted, tokens=0,
                   finish_reason="unknown", gold=p.answer, level=p.level, problem=p.problem,
                   meta={"label": "grader" if label is None else "file"})
            for (bench, p, i, resp, label), g in zip(flat, grades)]


def solve_samples(cfg: EvalCfg, run_dir: Path, engines: Engines, grader: Grader) -> list[Sample]:
    """n graded samples per problem, appended to ``samples.jsonl`` batch by batch (resumable)."""
    from tqdm import tqdm

    problems = _problems(cfg)
    log = RecordLog(run_dir / "samples.jsonl", Sample)
    done = log.keep_complete(cfg.sampling.n)
    todo = sorted([(b, p) for b, p in problems if (b, p.id) not in done], key=lambda item: -len(item[1].problem))
    if done:
        print(f"resuming {run_dir}: {len(done)} problems done, {len(todo)} to go", flush=True)
    if todo:
        generator = engines.generator()
        system = cfg.model.system_prompt
        with tqdm(total=len(todo) * cfg.sampling.n, unit="sample", desc="solve", disable=not cfg.progress) as bar, \
                eval_protocols.reporting([generator], bar.update):  # finished sequences inside each generate call
            size = generator.prompts_per_call(cfg.sampling)
            for start in range(0, len(todo), size):
                batch = todo[start : start + size]
                prompts = [chat_text(generator.tokenizer, solve_messages(p, cfg.prompt, system)) for _, p in batch]
                completions = generate_batched(generator, prompts, cfg.sampling, cfg.seed + start)
                flat = [(b, p, prompt, i, c) for (b, p), prompt, cs in zip(batch, prompts, completions)
                        for i, c in enumerate(cs)]
                grades = grader.grade_many([(c.text, p.answer) for _, p, _, _, c in flat])
                log.append(graded_sample(b, p, prompt, i, c, g) for (b, p, prompt, i, c), g in zip(flat, grades))
                bar.n = min(start + size, len(todo)) * cfg.sampling.n  # exact once the batch is on disk
                bar.refresh()
    selected = {(b, p.id) for b, p in problems}
    return [s for s in log.read() if (s.bench, s.problem_id) in selected]
