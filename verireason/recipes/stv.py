"""``verireason stv``: train a verifier with ``sft``, ``verdict_rl``, ``opd`` or ``stv`` (paper 2, papers.md §2.3, §2.8).

Wires ``papers.stv.VerifierTraining`` to the training engine: the policy is the student verifier; ``opd``/``stv``
add a ``Distill`` term whose teacher is the frozen initial model (``distill.teacher=frozen``, loaded once beside
the policy; under LoRA the policy with its adapters off) or the live policy; ``sft`` trains on the informed
teacher's right verifications. Per step ``metrics.jsonl`` has the verifier's accuracy, balanced accuracy, TPR,
TNR, precision of accepts, unparseable rate, feedback tokens, reward and divergence per token; held-out
verification metrics (``heldout/*``) on a fixed candidate set every ``trainer.eval_every`` steps; checkpoints that
``eval --verifier`` loads; ``--resume``; ``training.png``.

Run: ``verireason stv --method stv --bench arith preset=stv_cpu`` (laptop) or
``verireason stv --model qwen3-8b preset=stv --data-dir data/`` (the paper's setting, papers.md §2.6).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from verireason.adapters import INITIAL
from verireason.checkpoint import latest_checkpoint
from verireason.config import STVCfg
from verireason.errors import UserError
from verireason.grading import Grader
from verireason.losses import DIVERGENCES
from verireason.models import resolve_model_path
from verireason.papers.stv import (
    METHODS,
    Pool,
    VerifierTraining,
    check_balance,
    held_out_candidates,
    read_candidates,
    run_file,
    sample_pool,
    with_verdict_stops,
)
from verireason.records import Judged, Problem, Sample
from verireason.recipes.rl_train import build_learner, check_choices, problems_of, restore, train
from verireason.tracking import RecordLog, RunLog
from verireason.trainer import Distill, Learner, build_accelerator

PANELS = (
    ("verifier (training candidates)", ("stv/verify_balanced_accuracy", "stv/tpr", "stv/tnr", "stv/accept_rate",
                                        "teacher/verify_balanced_accuracy")),
    ("held-out verification", ("heldout/verify_balanced_accuracy", "heldout/tpr", "heldout/tnr", "heldout/precision",
                               "heldout/unparseable")),
    ("reward / feedback present", ("stv/reward", "stv/feedback", "teacher/reward")),
    ("divergence per token", ("update/jsd", "update/sampled_rkl")),
    ("verification tokens", ("stv/tokens", "stv/feedback_tokens", "teacher/tokens")),
    ("loss", ("update/loss",)),
)
HELDOUT_FILE = "heldout_candidates.jsonl"


def check(cfg: STVCfg) -> None:
    """Reject settings the run cannot use, before anything is loaded."""
    if cfg.method not in METHODS:
        raise UserError(f"unknown method {cfg.method!r}; valid: {', '.join(METHODS)}")
    check_balance(cfg.candidates.balance)
    if cfg.distill.teacher not in ("frozen", "live"):
        raise UserError(f"unknown distill.teacher={cfg.distill.teacher!r}; valid: frozen, live")
    if cfg.distill.divergence not in DIVERGENCES:
        raise UserError(f"unknown distill.divergence={cfg.distill.divergence!r}; valid: {', '.join(DIVERGENCES)}")
    if cfg.prompt.informed_verify_user is None:
        raise UserError(f"prompt {cfg.prompt.name!r} has no teacher prompt (informed_verify_user); use prompt=stv")
    for key, path in (("candidates.samples", cfg.candidates.samples),
                      ("candidates.heldout_samples", cfg.candidates.heldout_samples)):
        if path:
            run_file(path, "samples.jsonl", f"{key} (an eval run)")
    check_choices(cfg)


def distill_term(cfg: STVCfg) -> Distill | None:
    """The method's distillation term: none for verdict_rl and sft, OPD alone for opd, OPD + PG for stv."""
    if cfg.method not in ("opd", "stv"):
        return None
    d = cfg.distill
    return Distill(INITIAL if d.teacher == "frozen" else "live", coef=d.opd_coef,
                   pg_coef=d.pg_coef if cfg.method == "stv" else 0.0, beta=d.beta, top_k=d.top_k, chunk=d.chunk,
                   divergence=d.divergence)


def held_out(cfg: STVCfg, learner: Learner, grader: Grader, run_dir: Path, problems: list[tuple[str, Problem]],
             main: bool) -> list[Judged]:
    """The fixed held-out verification set: from ``candidates.heldout_samples``, else attempts the initial policy
    sampled at the start of the run (kept in ``heldout_candidates.jsonl``, so a resumed run judges the same set)."""
    if not problems:
        return []
    if cfg.candidates.heldout_samples:
        pool = read_candidates(cfg.candidates.heldout_samples, problems)
    else:
        log = RecordLog(run_dir / HELDOUT_FILE, Sample)
        samples = log.read()
        if not samples:
            rank, world = learner.accelerator.process_index, learner.accelerator.num_processes
            mine = sample_pool(learner, problems[rank::world], cfg.prompt, cfg.model.system_prompt,
                               cfg.candidates.sampling, grader, cfg.seed + 15_485_863)
            samples = learner.gather([s for attempts in mine.values() for s in attempts])
            if main:
                log.append(samples)
        pool: Pool = {}
        for s in samples:
            pool.setdefault((s.bench, s.problem_id), []).append(s)
    by_key = {(b, p.id): p for b, p in problems}
    return held_out_candidates(pool, by_key, cfg.candidates.heldout_per_label)


def run(cfg: STVCfg, run_dir: Path) -> Path:
    """Train the verifier into ``run_dir``; returns the last checkpoint."""
    check(cfg)
    accelerator = build_accelerator(cfg.trainer.device)
    main = accelerator.is_main_process
    run_dir.mkdir(parents=True, exist_ok=True)
    problems = problems_of(cfg.bench, cfg.data_dir, cfg.limit)
    held_problems = problems_of(cfg.eval_bench, cfg.data_dir, cfg.eval_limit)
    pool = read_candidates(cfg.candidates.samples, problems) if cfg.candidates.samples else None
    initial = resolve_model_path(cfg.model)
    needs_frozen = cfg.distill.teacher == "frozen" and cfg.method != "verdict_rl"
    resume_from = latest_checkpoint(run_dir) if cfg.resume else None
    learner = build_learner(cfg, str(resume_from or initial), accelerator, distill_term(cfg),
                            reference=needs_frozen)
    frozen = learner.ref_model if needs_frozen else None  # the initial model, loaded once (LoRA: adapters off)
    log = RunLog(run_dir, enabled=main, log=cfg.log)
    start, _ = restore(learner, log, resume_from, run_dir, main)
    grader = Grader(cfg.grader.name, cfg.grader.timeout_s, cfg.grader.workers)
    sampling = with_verdict_stops(replace(cfg.sampling, n=cfg.trainer.group_size), cfg.prompt, cfg.stop_at_verdict)
    training = VerifierTraining(
        learner=learner, method=cfg.method, problems=problems, prompt=cfg.prompt, system=cfg.model.system_prompt,
        sampling=sampling, candidate_sampling=cfg.candidates.sampling, grader=grader,
        prompts_per_step=cfg.trainer.prompts_per_step, seed=cfg.seed, pool=pool, teacher_model=frozen,
        feedback_words=cfg.feedback_words, balance=cfg.candidates.balance,
        on_rollouts=log.rollouts if cfg.trainer.log_rollouts else lambda step, rollouts: None)
    eval_sampling = with_verdict_stops(cfg.eval_sampling, cfg.prompt, cfg.stop_at_verdict)

    try:
        heldout = held_out(cfg, learner, grader, run_dir, held_problems, main) if cfg.trainer.eval_every else []
        train(cfg, learner, log, run_dir, start, training.step,
              lambda step: training.held_out(heldout, eval_sampling, cfg.seed + 15_485_867), evaluates=bool(heldout),
              state_fn=dict, title=f"stv --method {cfg.method}: {cfg.model.name}", panels=PANELS,
              postfix=("stv/verify_balanced_accuracy", "stv/reward", "update/jsd"))
    finally:
        grader.close()
    if main:
        print(f"results are in {run_dir}")
    return latest_checkpoint(run_dir)
