"""Premise checks for the three miniatures (issue: measure each paper's premise before spending the run).

Each check measures one premise in minutes, prints the measurement with its 95% bootstrap interval over problems,
writes it to ``--record`` (JSON) and exits 0 when the premise holds, 3 when it fails (with what it found and what
the miniature needs), so ``run_small.sh`` stops before the long part.

* ``accuracy EVAL_DIR --between 0.3 0.7``: paper 1. A task where the warm-up model is right 30-70% of the time, so
  RL on generation has both rewards to learn from and room to move (papers.md §1.5).
* ``mixed EVAL_DIR --min-share S``: paper 1. GRPO learns only from groups whose samples disagree: the share of
  problems the warm-up model solves in some samples and fails in others (its 95% interval) must reach ``S``. A
  warm-up that leaves the policy nearly deterministic fails it however its accuracy lies.
* ``pilot RUN_DIR``: paper 1. A short ``rl-gen`` run (held-out evaluation at step 0 and its last step, the
  ``eval/step_*.jsonl`` it writes) moved held-out accuracy by more than its interval: the paired 95% interval of
  last - first over the same problems lies above 0.
* ``informed MODEL --candidates EVAL_DIR``: paper 2. The informed teacher (the STV teacher prompt: the true verdict
  and the reference) judges held-out candidates far better than the uninformed student prompt (STV's claim rests on
  this gap, papers.md §2.3): balanced accuracy >= ``--teacher-min`` for the teacher. With ``--student-min`` on a
  model fine-tuned on the true verdicts it is paper 2's learnability ceiling: can the student learn to judge these
  candidates at all?
* ``verifier MODEL --candidates EVAL_DIR``: paper 2's ViL. The trained verifier ViL freezes judges the held-out
  candidates under the plain verifier prompt: balanced accuracy >= ``--min-balanced`` with its 95% interval above
  0.5 (papers.md §2.4: ViL's gain comes through the verifier's feedback and verdicts).
* ``bi-data DATA_DIR``: paper 3. BI data with enough trajectories holding a verified wrong attempt and its
  correction (S²R used 3.1k trajectories, papers.md §3.3): ``--min-trajectories`` and ``--min-corrections``.
* ``recall EVAL_DIR --min-recall R --min-balanced B``: paper 3. The BI model's error recall (verdict "wrong" on its
  own wrong attempts, ``s2r_attempts``' ``tnr``) on held-out problems, and the balanced accuracy of the same verdicts
  (with its interval), since a model that calls every attempt wrong has recall 1 and judges nothing.

Usage: python experiments/premises.py accuracy results/paper1-small/premise-eval --between 0.3 0.7
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

from verireason.metrics import balanced_accuracy_interval, bootstrap_mean, verification_metrics

HOLDS, FAILS = 0, 3


def _verdict(name: str, holds: bool, found: dict, need: str, record: str | None) -> int:
    line = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in found.items())
    print(f"premise {name}: {'holds' if holds else 'FAILS'}: {line}" + ("" if holds else f"; the miniature needs {need}"))
    if record:
        Path(record).parent.mkdir(parents=True, exist_ok=True)
        Path(record).write_text(json.dumps({"premise": name, "holds": holds, **found, "needs": need}, indent=2) + "\n")
    return HOLDS if holds else FAILS


def accuracy(args) -> int:
    per_problem = _per_problem(Path(args.eval_dir) / "samples.jsonl")
    mean, lo, hi = bootstrap_mean(list(per_problem.values()))
    low, high = args.between
    return _verdict("accuracy", low <= mean <= high,
                    {"accuracy": mean, "ci_low": lo, "ci_high": hi, "problems": len(per_problem)},
                    f"accuracy in [{low}, {high}] (choose other levels or another warm-up)", args.record)


def mixed(args) -> int:
    per_problem = _per_problem(Path(args.eval_dir) / "samples.jsonl")
    share, lo, hi = bootstrap_mean([float(0 < v < 1) for v in per_problem.values()])
    return _verdict("mixed", share >= args.min_share,
                    {"mixed_share": share, "ci_low": lo, "ci_high": hi, "problems": len(per_problem)},
                    f"a mixed share >= {args.min_share} (a warm-up that keeps entropy: fewer epochs, a lower SFT "
                    "learning rate)", args.record)


def _per_problem(path: Path) -> dict:
    from verireason.records import Sample
    from verireason.tracking import RecordLog

    groups = defaultdict(list)
    for s in RecordLog(path, Sample).read():
        groups[(s.bench, s.problem_id)].append(float(s.correct))
    return {k: sum(v) / len(v) for k, v in groups.items()}


def pilot(args) -> int:
    from verireason.metrics import paired_difference

    steps = sorted((Path(args.run_dir) / "eval").glob("step_*.jsonl"))
    if len(steps) < 2:
        print(f"premise pilot: FAILS: {args.run_dir}/eval holds {len(steps)} held-out evaluations; it needs step 0 "
              "and a later one (trainer.eval_every)")
        return FAILS
    first, last = _per_problem(steps[0]), _per_problem(steps[-1])
    mean, lo, hi, n = paired_difference(last, first)
    found = {"first_step": steps[0].stem, "last_step": steps[-1].stem, "first": sum(first.values()) / len(first),
             "last": sum(last.values()) / len(last), "change": mean, "ci_low": lo, "ci_high": hi, "problems": n}
    need = ("a held-out gain whose paired 95% interval excludes 0, not a loss (a smaller learning rate, a KL to the "
            "initial model)" if hi < 0 else "a held-out gain whose paired 95% interval excludes 0 within the budget "
            "(more steps, prompts per step or a larger learning rate)")
    return _verdict("pilot", lo > 0, found, need, args.record)


def candidate_problems(eval_dir: str | Path) -> list:
    """The (bench, Problem) pairs an ``eval`` run sampled, reference solutions included, from its config.yaml."""
    from omegaconf import OmegaConf

    from verireason.config import BenchCfg
    from verireason.data import load_problems

    made = OmegaConf.load(Path(eval_dir) / "config.yaml")
    return [(name, p) for name, node in made.bench.items()
            for p in load_problems(name, OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(BenchCfg), node)),
                                   made.get("data_dir"), made.get("limit"))]


def _judged(model: str, candidates: str, per_label: int, max_tokens: int, prompts: tuple[str, ...]) -> dict:
    """Balanced accuracy (with its interval), TPR, TNR and unparseable share of ``model`` judging the held-out
    candidates once each under the STV ``prompts`` named (``teacher``: the informed prompt; ``student``: the plain
    one)."""
    from verireason.config import compose, to_object
    from verireason.generation import build_generator
    from verireason.models import resolve_model_path
    from verireason.papers.stv import held_out_candidates, read_candidates
    from verireason.prompts import chat_text, informed_verify_messages, parse_verdict, verify_messages
    from verireason.protocols import generate_batched

    cfg = to_object(compose("eval", ["model=local", f"model.path='{model}'", "model.name=premise", "prompt=stv",
                                     "verify=demo", f"verify.sampling.max_tokens={max_tokens}"]))
    problems = candidate_problems(candidates)
    pool = read_candidates(candidates, problems)
    judged = held_out_candidates(pool, {(b, p.id): p for b, p in problems}, per_label)
    generator = build_generator(cfg.engine, cfg.model, resolve_model_path(cfg.model), 0)
    tok, system, sampling = generator.tokenizer, cfg.model.system_prompt, cfg.verify.sampling
    messages = {"teacher": lambda j: informed_verify_messages(j.problem, j.response, j.correct, cfg.prompt, system),
                "student": lambda j: verify_messages(j.problem, j.response, cfg.prompt, system)}
    found = {}
    for name in prompts:
        texts = [chat_text(tok, messages[name](j)) for j in judged]
        outputs = generate_batched(generator, texts, sampling, 0)
        pairs = [(parse_verdict(c.text, cfg.prompt.verdict), j.correct) for j, cs in zip(judged, outputs) for c in cs]
        metrics = verification_metrics(pairs)
        found[f"{name}_balanced_accuracy"] = metrics["verify_balanced_accuracy"]
        found[f"{name}_ci_low"], found[f"{name}_ci_high"] = balanced_accuracy_interval(pairs)
        found[f"{name}_unparseable"] = metrics["unparseable"]
        found[f"{name}_tpr"], found[f"{name}_tnr"] = metrics.get("tpr", 0.0), metrics.get("tnr", 0.0)
    found["candidates"] = len(judged)
    return found


def informed(args) -> int:
    """The teacher prompt and the student prompt on the same held-out candidates, same model and sampling."""
    found = _judged(args.model, args.candidates, args.per_label, args.max_tokens, ("teacher", "student"))
    holds = (found["teacher_balanced_accuracy"] >= args.teacher_min
             and found["student_balanced_accuracy"] >= args.student_min)
    need = (f"teacher balanced accuracy >= {args.teacher_min} (well above the student's ~0.5): a warm-up that teaches "
            "the informed prompt to use its verdict" if not args.student_min else
            f"student balanced accuracy >= {args.student_min}: candidates whose rightness the student can learn to see")
    return _verdict("informed", holds, found, need, args.record)


def verifier(args) -> int:
    """ViL's premise: the frozen verifier it trains the generator with judges held-out candidates, balanced accuracy
    >= the minimum and its 95% interval above chance (a verifier at chance only adds noise to the reward)."""
    found = _judged(args.model, args.candidates, args.per_label, args.max_tokens, ("student",))
    found = {k.replace("student_", ""): v for k, v in found.items()}
    holds = found["balanced_accuracy"] >= args.min_balanced and found["ci_low"] > 0.5
    return _verdict("verifier", holds, found, f"a trained verifier with balanced accuracy >= {args.min_balanced} and a "
                    "95% interval above 0.5 (a verifier that judges, for ViL to train the generator with)", args.record)


def bi_data(args) -> int:
    summary = json.loads((Path(args.data_dir) / "data_summary.json").read_text())
    buckets = {int(k): v for k, v in summary.get("trajectories_by_wrong_attempts", {}).items()}
    corrections = sum(v for k, v in buckets.items() if k > 0)
    found = {"trajectories": summary["trajectories"], "with_corrections": corrections,
             "sample_accuracy": summary.get("sample_accuracy", float("nan"))}
    holds = summary["trajectories"] >= args.min_trajectories and corrections >= args.min_corrections
    return _verdict("bi-data", holds, found, f">= {args.min_trajectories} trajectories, >= {args.min_corrections} with "
                    "a verified wrong attempt and its correction (more problems or samples per problem)", args.record)


def recall(args) -> int:
    """Error recall alone is met by a model that calls every attempt wrong, so the premise also needs its verdicts to
    discriminate: balanced accuracy (error recall and TPR together) over the same verifications >= the minimum."""
    lines = (Path(args.eval_dir) / "attempts.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    pairs = [pair for row in rows for pair in zip(row["verdicts"], row["verified_correct"])]
    found = verification_metrics(pairs)
    low, high = balanced_accuracy_interval(pairs)
    recall_, balanced = found.get("tnr", float("nan")), found.get("verify_balanced_accuracy", float("nan"))
    found = {"error_recall": recall_, "tpr": found.get("tpr", float("nan")), "balanced_accuracy": balanced,
             "balanced_ci_low": low, "balanced_ci_high": high, "unparseable": found.get("unparseable", float("nan")),
             "verifications": len(pairs)}
    holds = recall_ >= args.min_recall and balanced >= args.min_balanced
    return _verdict("recall", holds, found, f"error recall >= {args.min_recall} and balanced accuracy >= "
                    f"{args.min_balanced} (verdicts that tell wrong attempts from right ones, not a constant "
                    "'incorrect')", args.record)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="check", required=True)
    a = sub.add_parser("accuracy")
    a.add_argument("eval_dir")
    a.add_argument("--between", nargs=2, type=float, default=(0.3, 0.7))
    m = sub.add_parser("mixed")
    m.add_argument("eval_dir")
    m.add_argument("--min-share", type=float, default=0.3)
    pi = sub.add_parser("pilot")
    pi.add_argument("run_dir")
    i, v = sub.add_parser("informed"), sub.add_parser("verifier")
    for judge in (i, v):  # a model judging the held-out candidates of an eval run
        judge.add_argument("model")
        judge.add_argument("--candidates", required=True)
        judge.add_argument("--per-label", type=int, default=2)
        judge.add_argument("--max-tokens", type=int, default=96)
    i.add_argument("--teacher-min", type=float, default=0.75)
    i.add_argument("--student-min", type=float, default=0.0,
                   help="also require this of the student prompt (the learnability ceiling: a model fine-tuned on "
                        "the true verdicts)")
    v.add_argument("--min-balanced", type=float, default=0.6)
    b = sub.add_parser("bi-data")
    b.add_argument("data_dir")
    b.add_argument("--min-trajectories", type=int, default=300)
    b.add_argument("--min-corrections", type=int, default=100)
    r = sub.add_parser("recall")
    r.add_argument("eval_dir")
    r.add_argument("--min-recall", type=float, default=0.3)
    r.add_argument("--min-balanced", type=float, default=0.55)
    for p in (a, m, pi, i, v, b, r):
        p.add_argument("--record", help="write the measurement here (JSON)")
    args = parser.parse_args(argv)
    checks = {"accuracy": accuracy, "mixed": mixed, "pilot": pilot, "informed": informed, "verifier": verifier,
              "bi-data": bi_data, "recall": recall}
    return checks[args.check](args)


if __name__ == "__main__":
    sys.exit(main())
