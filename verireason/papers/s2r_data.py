"""Paper 3, S²R's data construction (papers.md §3.3, corrected by the official code in §3.8), written as it goes.

1. ``sample``: K = 5 responses per problem from the initial policy (T = 0.7, 2,048 tokens) → ``samples.jsonl``;
2. ``judge``: up to 5 unique extracted answers per problem (the gold one first when sampled), each verified by a
   judge with the verbatim confirmative prompt, post-edited and filtered by its conclusion sentence →
   ``judgements.jsonl``;
3. ``build``: exact-match wrong counts, the difficulty buckets and keep probabilities, the byte-exact trajectory as
   ``sft-init`` segments → ``sft.jsonl`` (one chat record per trajectory) and ``rl.jsonl`` (the problems, in the
   benchmark schema, for ``--stage orl|prl``), with counts in ``data_summary.json``.

Each step skips the work already on disk, so a killed run resumes where it stopped. ``import_dataset`` turns
locally staged ``S2R-data/S2R-dataset`` files into the same two outputs.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from verireason.config import PromptCfg, SamplingCfg
from verireason.errors import UserError
from verireason.files import write_atomic
from verireason.generation import Generator
from verireason.grading import Grader
from verireason.judge import Judge
from verireason.papers.s2r import (
    SYSTEM,
    confirmative_prompt,
    filter_verdict,
    plan_trajectory,
    post_edit,
    segments_of_response,
    trajectory_segments,
    wrong_count,
)
from verireason.prompts import chat_text, solve_messages
from verireason.protocols import generate_batched
from verireason.records import Problem, Sample, graded_sample
from verireason.tracking import RecordLog

CHUNK = 32  # problems per written batch


@dataclass(frozen=True)
class Judgement:
    """A judge's confirmative verification of one extracted answer: a line of ``judgements.jsonl``.

    ``verdict`` is what the conclusion filter reads (None: no verdict or "cannot verify"); ``kept`` when it agrees
    with ``truth`` (the grader's judgement of the answer)."""

    KEY: ClassVar[tuple[str, ...]] = ("bench", "problem_id", "answer")

    bench: str
    problem_id: str
    answer: str
    truth: bool
    verification: str
    verdict: bool | None
    kept: bool


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="problem", disable=not enabled)


def sample(engine: Generator, problems: Sequence[tuple[str, Problem]], prompt: PromptCfg, system: str | None,
           sampling: SamplingCfg, grader: Grader, log: RecordLog, seed: int, progress: bool = True) -> list[Sample]:
    """``sampling.n`` graded responses per problem, appended to ``log`` a chunk of problems at a time; problems
    already complete on disk are skipped (a line cut by a kill is dropped first)."""
    done = log.keep_complete(sampling.n)
    todo = [(b, p) for b, p in problems if (b, p.id) not in done]
    with _progress(len(problems), "sample", progress) as bar:
        bar.update(len(problems) - len(todo))
        for start in range(0, len(todo), CHUNK):
            chunk = todo[start : start + CHUNK]
            texts = [chat_text(engine.tokenizer, solve_messages(p, prompt, system)) for _, p in chunk]
            outputs = generate_batched(engine, texts, sampling, seed + 7_919 * start)
            flat = [(b, p, t, k, c) for (b, p), t, cs in zip(chunk, texts, outputs) for k, c in enumerate(cs)]
            grades = grader.grade_many([(c.text, p.answer) for _, p, _, _, c in flat])
            log.append(graded_sample(b, p, t, k, c, g) for (b, p, t, k, c), g in zip(flat, grades))
            bar.update(len(chunk))
    return log.read()  # each (problem, sample index) once


def candidate_answers(samples: Sequence[Sample], limit: int = 5) -> list[tuple[str, bool]]:
    """Up to ``limit`` unique extracted answers with their truth, a correct one first when one was sampled
    (§3.3 step 2: "the gold one first, if sampled")."""
    seen: dict[str, bool] = {}
    for s in sorted(samples, key=lambda s: (not s.correct, s.sample_index)):
        if s.extracted is not None and s.extracted not in seen:
            seen[s.extracted] = s.correct
    return list(seen.items())[:limit]


def judge(judge_model: Judge, samples: Sequence[Sample], log: RecordLog, max_answers: int, seed: int,
          progress: bool = True) -> list[Judgement]:
    """The confirmative verification of each problem's candidate answers, appended to ``log`` a chunk at a time;
    answers already judged on disk are skipped."""
    log.keep_complete(1, key=lambda j: (j.bench, j.problem_id, j.answer))
    done = {(j.bench, j.problem_id, j.answer) for j in log.read()}
    by_problem: dict[tuple[str, str], list[Sample]] = defaultdict(list)
    for s in samples:
        by_problem[(s.bench, s.problem_id)].append(s)
    items = [(key, answer, truth, group[0].problem)
             for key, group in by_problem.items() for answer, truth in candidate_answers(group, max_answers)]
    todo = [i for i in items if (*i[0], i[1]) not in done]
    with _progress(len(items), "judge", progress) as bar:
        bar.update(len(items) - len(todo))
        for start in range(0, len(todo), CHUNK):
            chunk = todo[start : start + CHUNK]
            texts = judge_model.answer([confirmative_prompt(q, a) for _, a, _, q in chunk], seed + start)
            records = []
            for ((bench, pid), answer, truth, _), text in zip(chunk, texts):
                verdict, edited = filter_verdict(post_edit(text))
                records.append(Judgement(bench, pid, answer, truth, edited, verdict, verdict is not None and verdict == truth))
            log.append(records)
            bar.update(len(chunk))
    return log.read()  # each (problem, answer) once


@dataclass(frozen=True)
class Built:
    """The outcome of one problem in ``build``: its bucket's wrong count and what was made of it."""

    wrong: int
    record: dict | None  # the SFT record, None when dropped
    reason: str  # kept | not_drawn | no_verified_correct | no_verified_wrong


def build_problem(problem: Problem, bench: str, samples: Sequence[Sample], judgements: Sequence[Judgement],
                  draw: float) -> Built:
    """One problem's trajectory (§3.3 step 4, §3.8): its bucket by exact-match wrong count, the verified wrong
    answers it uses (each once), a correct attempt with its verification, kept when ``draw`` < the keep
    probability."""
    wrong = wrong_count([s.extracted for s in samples], problem.answer)
    kept = {j.answer: j for j in judgements if j.kept}
    correct = [s for s in sorted(samples, key=lambda s: s.sample_index) if s.correct and s.extracted in kept]
    wrong_answers = list(dict.fromkeys(s.extracted for s in sorted(samples, key=lambda s: s.sample_index)
                                       if not s.correct and s.extracted in kept))
    plan = plan_trajectory(wrong, len(wrong_answers), bool(correct))
    if plan is None:
        return Built(wrong, None, "no_verified_correct" if not correct else "no_verified_wrong")
    attempts, keep_p = plan
    if draw >= keep_p:
        return Built(wrong, None, "not_drawn")
    first = {a: next(s for s in samples if s.extracted == a) for a in wrong_answers[:attempts]}
    segments = trajectory_segments([(first[a].completion.strip(), kept[a].verification.strip()) for a in first],
                                   (correct[0].completion.strip(), kept[correct[0].extracted].verification.strip()))
    record = {"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": problem.problem},
                           {"role": "assistant", "content": segments}],
              "meta": {"bench": bench, "problem_id": problem.id, "wrong_count": wrong, "wrong_attempts": attempts}}
    return Built(wrong, record, "kept")


def build(problems: Sequence[tuple[str, Problem]], samples: Sequence[Sample], judgements: Sequence[Judgement],
          out_dir: Path, seed: int) -> dict:
    """``sft.jsonl``, ``rl.jsonl`` and ``data_summary.json`` in ``out_dir`` (each rewritten atomically);
    returns the summary. The keep draws are seeded per problem, so a rerun builds the same files."""
    by_problem: dict[tuple[str, str], list[Sample]] = defaultdict(list)
    for s in samples:
        by_problem[(s.bench, s.problem_id)].append(s)
    judged: dict[tuple[str, str], list[Judgement]] = defaultdict(list)
    for j in judgements:
        judged[(j.bench, j.problem_id)].append(j)
    sft, rl, reasons, buckets = [], [], Counter(), Counter()
    for bench, p in problems:
        group = by_problem.get((bench, p.id))
        if not group:
            continue
        built = build_problem(p, bench, group, judged.get((bench, p.id), []),
                              random.Random(f"{seed}:{bench}:{p.id}").random())
        reasons[built.reason] += 1
        if built.record is not None:
            sft.append(built.record)
            buckets[built.record["meta"]["wrong_attempts"]] += 1
        rl.append({"id": p.id, "problem": p.problem, "answer": p.answer, "solution": p.solution, "level": p.level,
                   "source": bench, "is_sft": built.record is not None})
    write_atomic(out_dir / "sft.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in sft))
    write_atomic(out_dir / "rl.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rl))
    kept_j = [j for j in judgements if j.kept]
    summary = {"problems": len(rl), "trajectories": len(sft), "outcomes": dict(reasons),
               "trajectories_by_wrong_attempts": {str(k): v for k, v in sorted(buckets.items())},
               "sample_accuracy": sum(s.correct for s in samples) / max(len(samples), 1),
               "judgements": len(judgements), "judgements_kept": len(kept_j),
               "judgements_unparsed": sum(j.verdict is None for j in judgements)}
    write_atomic(out_dir / "data_summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def decontaminate(problems: Sequence[tuple[str, Problem]], against: Sequence[Problem]) -> list[tuple[str, Problem]]:
    """Training problems whose text (whitespace collapsed, case folded) is not among ``against`` (§3.8: the
    training problems are decontaminated against MATH500)."""
    def norm(text: str) -> str:
        return re.sub(r"\s+", " ", text).strip().casefold()

    seen = {norm(p.problem) for p in against}
    return [(b, p) for b, p in problems if norm(p.problem) not in seen]


# --- import of the released S2R-data/S2R-dataset files ------------------------------------------------------------

_PROMPT_KEYS = ("prompt", "query", "question", "problem", "instruction", "input")
_RESPONSE_KEYS = ("response", "output", "completion", "answer_text")


def _records(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
        return data if isinstance(data, list) else [data]
    except json.JSONDecodeError:
        try:
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: neither JSON nor JSONL ({exc.msg})") from None


def import_sft(record: dict, where: str) -> dict:
    """A released SFT record as an ``sft-init`` chat record with S²R's segment flags (re-derived from the §3.2
    markers in the response): a chat whose last turn is the assistant's, or a prompt/response pair."""
    if "messages" in record:
        messages = [dict(m) for m in record["messages"]]
        if not messages or messages[-1].get("role") != "assistant" or not isinstance(messages[-1].get("content"), str):
            raise UserError(f"{where}: the last message must be the assistant's response text")
        messages[-1]["content"] = segments_of_response(messages[-1]["content"])
        return {"messages": messages}
    prompt = next((record[k] for k in _PROMPT_KEYS if isinstance(record.get(k), str)), None)
    response = next((record[k] for k in _RESPONSE_KEYS if isinstance(record.get(k), str)), None)
    if prompt is None or response is None:
        raise UserError(f"{where}: expected 'messages', or a prompt ({'/'.join(_PROMPT_KEYS)}) and a response "
                        f"({'/'.join(_RESPONSE_KEYS)}); found keys {', '.join(sorted(record)) or 'none'}")
    return {"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt},
                         {"role": "assistant", "content": segments_of_response(response)}]}


def import_rl(record: dict, index: int, where: str) -> dict:
    """A released RL record (``problem``, ``answer``, ``solution``, ``level``, ``is_sft``) in the benchmark schema."""
    if not isinstance(record.get("problem"), str) or record.get("answer") is None:
        raise UserError(f"{where}: an RL record needs 'problem' and 'answer'; found keys {', '.join(sorted(record))}")
    return {"id": str(record.get("id", f"s2r-{index}")), "problem": record["problem"], "answer": str(record["answer"]),
            "solution": record.get("solution"), "level": record.get("level"), "source": "s2r_dataset",
            "is_sft": bool(record.get("is_sft", False))}


def import_dataset(source: Path, out_dir: Path, sft_name: str, rl_name: str,
                   on_file: Callable[[str], None] = lambda name: None) -> dict:
    """``sft.jsonl`` and ``rl.jsonl`` from the staged S2R-dataset files ``source/sft_name`` and
    ``source/rl_name`` (either may be absent, not both)."""
    found = {name: source / name for name in (sft_name, rl_name) if (source / name).is_file()}
    if not found:
        raise UserError(f"{source}: neither {sft_name} nor {rl_name} is there (stage the files of "
                        "S2R-data/S2R-dataset in that folder, or set data.import_sft / data.import_rl)")
    summary = {}
    if sft_name in found:
        rows = [import_sft(r, f"{found[sft_name]}:{i + 1}") for i, r in enumerate(_records(found[sft_name]))]
        write_atomic(out_dir / "sft.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        summary["trajectories"] = len(rows)
        on_file(sft_name)
    if rl_name in found:
        rows = [import_rl(r, i, f"{found[rl_name]}:{i + 1}") for i, r in enumerate(_records(found[rl_name]))]
        write_atomic(out_dir / "rl.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        summary["problems"] = len(rows)
        on_file(rl_name)
    write_atomic(out_dir / "data_summary.json", json.dumps({"imported_from": str(source), **summary}, indent=2) + "\n")
    return summary


def judgement_log(path: Path) -> RecordLog:
    return RecordLog(path, Judgement)

