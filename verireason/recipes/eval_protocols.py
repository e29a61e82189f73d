"""The ``self_verify``, ``vr_loop`` and ``s2r_attempts`` parts of ``verireason eval`` (see ``evaluate``).

Each writes its per-item records as batches finish (``verifications.jsonl``, ``chains.jsonl``, ``attempts.jsonl``)
and adds its metrics to the summary, per benchmark and, where the data has levels, per level.
"""

from __future__ import annotations

import json
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

from verireason.config import EvalCfg
from verireason.files import write_atomic
from verireason.grading import Grader
from verireason.metrics import (
    compute_matched,
    guided_majority_correct,
    transition_rates,
    verification_metrics,
    vr_metrics,
)
from verireason.prompts import parse_verdict
from verireason.protocols import run_vr_chains, split_s2r, verify
from verireason.records import Chain, Judged, Problem, Sample, Verdict
from verireason.tracking import RecordLog

GUIDED_NOTE = ("vmaj@n: verification-guided majority vote, OUR interpretation of paper 1 (papers.md §1.10): the "
               "majority over the answers the model itself accepted, plain majority where it accepted none.")


def self_verify(cfg: EvalCfg, run_dir: Path, samples: list[Sample], summary: dict, engines) -> list[str]:
    """Judge every sample; add verifier metrics (per benchmark and level) and guided majority vote."""
    from tqdm import tqdm

    log = RecordLog(run_dir / "verifications.jsonl", Verdict)
    n = cfg.verify.sampling.n
    done = log.keep_complete(n, key=lambda v: (v.bench, v.problem_id, v.sample_index))
    todo = [Judged(Problem(s.problem_id, s.problem, s.gold, s.bench, level=s.level), s.bench, s.sample_index,
                   s.completion, s.correct) for s in samples if (s.bench, s.problem_id, s.sample_index) not in done]
    if todo:
        verifier = engines.verifier()
        system = (cfg.verifier or cfg.model).system_prompt
        per_write = verifier.prompts_per_call(cfg.verify.sampling)  # one engine call per write
        with tqdm(total=len(todo) * n, unit="seq", desc="verify", disable=not cfg.progress) as bar, \
                reporting((verifier,), bar.update):
            for start in range(0, len(todo), per_write):
                chunk, before = todo[start : start + per_write], bar.n
                verdicts = verify(verifier, chunk, cfg.prompt, system, cfg.verify.sampling, cfg.seed + start,
                                  cfg.verify.stop_at_verdict)
                log.append(v for vs in verdicts for v in vs)
                bar.update(before + len(chunk) * n - bar.n)  # engines that report nothing move per write
    keys = {(s.bench, s.problem_id, s.sample_index) for s in samples}
    verdicts = [v for v in log.read() if (v.bench, v.problem_id, v.sample_index) in keys]
    _add_verifier_rows(summary, verdicts)
    _add_guided_majority(summary, samples, verdicts)
    return [GUIDED_NOTE]


def _add_verifier_rows(summary: dict, verdicts: list[Verdict]) -> None:
    by_bench, by_level = defaultdict(list), defaultdict(list)
    for v in verdicts:
        by_bench[v.bench].append((v.claimed, v.truth))
        if v.level is not None:
            by_level[(v.bench, v.level)].append((v.claimed, v.truth))
    for bench, pairs in by_bench.items():
        summary[bench].update(verification_metrics(pairs))
    for (bench, level), pairs in sorted(by_level.items()):
        summary[f"{bench}/{level}"] = verification_metrics(pairs)


def _add_guided_majority(summary: dict, samples: list[Sample], verdicts: list[Verdict]) -> None:
    claims = defaultdict(list)
    for v in verdicts:
        claims[(v.bench, v.problem_id, v.sample_index)].append(v.claimed is True)
    groups = defaultdict(list)
    for s in samples:
        groups[(s.bench, s.problem_id)].append(s)
    per_bench = defaultdict(list)
    for (bench, _), group in groups.items():
        accepted = [sum(c := claims[(s.bench, s.problem_id, s.sample_index)]) * 2 > len(c) for s in group]
        per_bench[bench].append(guided_majority_correct(group, accepted))
    for bench, outcomes in per_bench.items():
        summary[bench][f"vmaj@{summary[bench]['n']}"] = sum(outcomes) / len(outcomes)


def vr_loop(cfg: EvalCfg, run_dir: Path, problems: list[tuple[str, Problem]], engines, grader: Grader) -> dict:
    """Run V-R chains problem batch by problem batch into ``chains.jsonl``; per-round metrics per benchmark."""
    from tqdm import tqdm

    log = RecordLog(run_dir / "chains.jsonl", Chain)
    done = log.keep_complete(cfg.verify.chains)
    todo = [(b, p) for b, p in problems if (b, p.id) not in done]
    if todo:
        generator, verifier = engines.generator(), engines.verifier()
        systems = (cfg.model.system_prompt, (cfg.verifier or cfg.model).system_prompt)
        size = max(1, generator.prompts_per_call(cfg.sampling) * cfg.sampling.n // cfg.verify.chains)
        per_problem = cfg.verify.chains * (1 + 2 * cfg.verify.rounds)  # sequences if no chain ever accepts
        with tqdm(total=len(todo) * per_problem, unit="seq", desc="vr_loop", disable=not cfg.progress) as bar, \
                reporting((generator, verifier), bar.update):
            for start in range(0, len(todo), size):
                chunk, before = todo[start : start + size], bar.n
                log.append(run_vr_chains(generator, verifier, chunk, cfg.prompt, systems, cfg.sampling,
                                         cfg.verify.sampling, cfg.verify.rounds, cfg.verify.chains, grader,
                                         cfg.seed + start, cfg.verify.stop_at_verdict, on_phase=lambda label:
                                         bar.set_postfix_str(f"problems {start + 1}-{start + len(chunk)} "
                                                             f"of {len(todo)}, {label}")))
                bar.update(before + len(chunk) * per_problem - bar.n)  # accepted chains skip their later rounds
    selected = {(b, p.id) for b, p in problems}
    chains = [c for c in log.read() if (c.bench, c.problem_id) in selected]
    summary = {}
    for bench in dict.fromkeys(b for b, _ in problems):
        mine = [c for c in chains if c.bench == bench]
        row = vr_metrics(mine, cfg.verify.rounds)
        summary[bench] = {"problems": len({c.problem_id for c in mine}), **row,
                          **compute_matched(mine, row["tokens_per_chain"])}
        for level in sorted({c.level for c in mine if c.level is not None}):
            summary[f"{bench}/{level}"] = vr_metrics([c for c in mine if c.level == level], cfg.verify.rounds)
    return summary


@contextmanager
def reporting(engines, update):
    """Let engines report finished sequences to ``update`` while the block runs (``Generator.progress``)."""
    saved = [getattr(e, "progress", None) for e in engines]
    for engine in engines:
        engine.progress = update
    try:
        yield
    finally:
        for engine, old in zip(engines, saved):
            engine.progress = old


def s2r_attempts(run_dir: Path, samples: list[Sample], summary: dict, grader: Grader) -> None:
    """Split each response into S²R attempts and verifications; correction and verification metrics."""
    split = [split_s2r(s.completion) for s in samples]
    attempts = [(i, text) for i, segments in enumerate(split) for kind, text in segments if kind == "solve"]
    grades = iter(grader.grade_many([(text, samples[i].gold) for i, text in attempts]))
    records, per_bench, per_level = [], defaultdict(lambda: ([], [])), defaultdict(lambda: ([], []))
    for s, segments in zip(samples, split):
        correct, pairs, last = [], [], None
        for kind, text in segments:
            if kind == "solve":
                last = next(grades).correct
                correct.append(last)
            elif last is not None:
                pairs.append((parse_verdict(text, "s2r_sentence"), last))
        records.append({"bench": s.bench, "problem_id": s.problem_id, "sample_index": s.sample_index,
                        "attempts_correct": correct, "verdicts": [c for c, _ in pairs],
                        "verified_correct": [t for _, t in pairs]})
        for key, table in ((s.bench, per_bench), (f"{s.bench}/{s.level}", per_level)):
            if s.level is not None or table is per_bench:
                table[key][0].append(correct)
                table[key][1].extend(pairs)
    write_atomic(run_dir / "attempts.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    for bench, (sequences, pairs) in per_bench.items():
        summary[bench].update({**transition_rates(sequences), **verification_metrics(pairs)})
    for key, (sequences, pairs) in sorted(per_level.items()):
        summary[key] = {**transition_rates(sequences), **verification_metrics(pairs)}
