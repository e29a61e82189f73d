"""``verireason eval``: sample, grade and score a model on benchmarks (protocol ``solve``).

All three papers report this: paper 1 as Acc@16 (16 samples at temperature 0.6, top-p 0.95; ``sampling=acc16``,
papers.md §1.8), S²R as greedy pass@1 (``sampling=greedy prompt=qwen25_math_cot``, §3.6), STV as pass@1 over
independent chains (§2.2). One run writes, per benchmark, n samples per problem to ``samples.jsonl`` as batches
finish, then accuracy, unbiased pass@k, maj@n, mean response tokens and truncation rate to ``summary.json``/``.md``.

Run: ``verireason eval --model smollm2-135m --bench arith --limit 16 sampling=demo``.
"""

from __future__ import annotations

from pathlib import Path

from verireason.config import EvalCfg
from verireason.data import load_problems
from verireason.generation import Generator, build_generator
from verireason.grading import Grader
from verireason.metrics import summarize
from verireason.models import resolve_model_path
from verireason.prompts import chat_text, solve_messages
from verireason.records import Problem, Sample
from verireason.tracking import SampleLog, mean_row, write_summary


def run(cfg: EvalCfg, run_dir: Path, generator: Generator | None = None) -> dict[str, dict]:
    """Evaluate ``cfg.model`` on ``cfg.bench`` into ``run_dir``; returns the summary per benchmark."""
    problems = {name: load_problems(name, bench, cfg.data_dir, cfg.limit) for name, bench in cfg.bench.items()}
    log = SampleLog(run_dir / "samples.jsonl")
    done = log.keep_complete(cfg.sampling.n)
    todo = [(name, p) for name, ps in problems.items() for p in ps if (name, p.id) not in done]
    if done:
        print(f"resuming {run_dir}: {len(done)} problems done, {len(todo)} to go", flush=True)
    if todo:
        if generator is None:
            generator = build_generator(cfg.engine, cfg.model, resolve_model_path(cfg.model), cfg.seed)
        grader = Grader(cfg.grader.name, cfg.grader.timeout_s)
        try:
            _sample_and_grade(cfg, todo, generator, grader, log)
        finally:
            grader.close()
    selected = {(name, p.id) for name, ps in problems.items() for p in ps}
    samples = [s for s in log.read() if (s.bench, s.problem_id) in selected]
    summary = {name: summarize([s for s in samples if s.bench == name]) for name in problems}
    if len(summary) > 1:
        summary["mean"] = mean_row(summary, ["accuracy", "pass@1", "mean_tokens"])
    table = write_summary(run_dir, summary, f"eval: {cfg.model.name}")
    print(f"\n{table}\n\nsamples, summary.json and summary.md are in {run_dir}")
    return summary


def _sample_and_grade(cfg: EvalCfg, todo: list[tuple[str, Problem]], generator: Generator, grader: Grader,
                      log: SampleLog) -> None:
    """Generate in batches (longest problems first, so a batch pads little), grade, append to the log."""
    from tqdm import tqdm

    todo = sorted(todo, key=lambda item: -len(item[1].problem))
    per_batch = generator.prompts_per_call(cfg.sampling)
    with tqdm(total=len(todo) * cfg.sampling.n, unit="sample", desc="eval", disable=not cfg.progress) as bar:
        for start in range(0, len(todo), per_batch):
            batch = todo[start : start + per_batch]
            prompts = [chat_text(generator.tokenizer, solve_messages(p, cfg.prompt, cfg.model.system_prompt))
                       for _, p in batch]
            completions = generator.generate(prompts, cfg.sampling, seed=cfg.seed + start)
            flat = [(name, p, prompt, i, c) for (name, p), prompt, cs in zip(batch, prompts, completions)
                    for i, c in enumerate(cs)]
            grades = grader.grade_many([(c.text, p.answer) for _, p, _, _, c in flat])
            log.append(
                Sample(bench=name, problem_id=p.id, sample_index=i, prompt=prompt, completion=c.text,
                       extracted=g.extracted, correct=g.correct, formatted=g.formatted, tokens=c.tokens,
                       finish_reason=c.finish_reason, gold=p.answer, level=p.level)
                for (name, p, prompt, i, c), g in zip(flat, grades)
            )
            bar.update(len(flat))
