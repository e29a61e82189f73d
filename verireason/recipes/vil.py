"""``verireason vil``: RL of the generator inside verify-refine loops with a frozen verifier (paper 2, papers.md §2.4).

Wires ``papers.stv.VerifierInTheLoop`` to the training engine. The verifier (``--verifier``: a checkpoint of
``verireason stv``, an alias or a directory; default the initial model, the paper's "ViL + self-verify" ablation) is
loaded once, frozen, on the policy's device. ``vil.mode=online`` trains on V-R episodes sampled each step;
``vil.mode=prompts`` on the next turn of the [problem, attempt, feedback] prompts of a V-R eval run
(``vil.chains=RUN``). Every ``trainer.eval_every`` steps held-out V-R loops (``verify.chains`` × ``verify.rounds``)
give round-0 (standalone) and final pass@1 (``eval/<bench>/round0_pass@1``, ``final_pass@1``), as
``eval --protocol vr_loop --verifier`` does for any checkpoint. The paper's baseline, continued RLVR with the same
budget, is ``verireason rl-gen`` from the same generator for the same number of steps.

Run: ``verireason vil --bench arith preset=vil_cpu`` (laptop) or
``verireason vil --model GENERATOR --verifier STV_CHECKPOINT preset=vil --data-dir data/`` (papers.md §2.6).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from verireason.adapters import AdaptersOff
from verireason.checkpoint import latest_checkpoint
from verireason.config import ViLCfg
from verireason.errors import UserError
from verireason.generation import HFGenerator
from verireason.grading import Grader
from verireason.models import load_causal_lm, load_tokenizer, resolve_model_path
from verireason.papers.stv import (
    VIL_MODES,
    VIL_REWARDS,
    VerifierInTheLoop,
    read_refine_prompts,
    run_file,
    vr_evaluation,
)
from verireason.recipes.rl_train import build_learner, check_choices, problems_of, restore, train, training_dtype
from verireason.tracking import RunLog
from verireason.trainer import Learner, build_accelerator

PANELS = (
    ("reward", ("vil/reward",)),
    ("pass@1 in training episodes", ("vil/round0_pass@1", "vil/final_pass@1", "vil/refine_accuracy")),
    ("held-out V-R pass@1", ("*/round0_pass@1", "*/final_pass@1")),
    ("held-out accept rate vs accuracy", ("*/final_accept", "*/final_inflation")),
    ("turns / tokens", ("vil/turns",)),
    ("loss / entropy", ("update/loss", "update/entropy")),
)


def check(cfg: ViLCfg) -> None:
    """Reject settings the run cannot use, before anything is loaded."""
    if cfg.vil.mode not in VIL_MODES:
        raise UserError(f"unknown vil.mode={cfg.vil.mode!r}; valid: {', '.join(VIL_MODES)}")
    if cfg.vil.reward not in VIL_REWARDS:
        raise UserError(f"unknown vil.reward={cfg.vil.reward!r}; valid: {', '.join(VIL_REWARDS)}")
    if cfg.vil.mode == "prompts" and not cfg.vil.chains:
        raise UserError("vil.mode=prompts needs vil.chains=RUN: a `verireason eval --protocol vr_loop` run on --bench")
    if cfg.vil.mode == "prompts":
        run_file(cfg.vil.chains, "chains.jsonl", "vil.chains (an `eval --protocol vr_loop` run)")
    check_choices(cfg)


def frozen_verifier(cfg: ViLCfg, learner: Learner) -> HFGenerator:
    """The verifier's rollout engine: ``cfg.verifier``'s weights loaded once, no gradient, beside the policy; by
    default the initial model, which under LoRA is the policy with its adapters off (no second copy)."""
    model_cfg = cfg.verifier or cfg.model
    path = resolve_model_path(model_cfg)
    if cfg.verifier is None and cfg.lora.rank:  # FSDP2: the unsharded replica (its base weights never change)
        model = AdaptersOff(learner.replica if learner.sharded else learner.accelerator.unwrap_model(learner.model))
    else:
        model = load_causal_lm(path, training_dtype(cfg), str(learner.accelerator.device))
        model = model.train(False).requires_grad_(False)
    return HFGenerator.from_model(model, load_tokenizer(path), batch_size=cfg.engine.batch_size,
                                  max_context=model_cfg.max_context)


def run(cfg: ViLCfg, run_dir: Path) -> Path:
    """Train the generator into ``run_dir``; returns the last checkpoint."""
    check(cfg)
    accelerator = build_accelerator(cfg.trainer.device)
    main = accelerator.is_main_process
    run_dir.mkdir(parents=True, exist_ok=True)
    problems = problems_of(cfg.bench, cfg.data_dir, cfg.limit)
    held_problems = problems_of(cfg.eval_bench, cfg.data_dir, cfg.eval_limit)
    refine = read_refine_prompts(cfg.vil.chains, problems) if cfg.vil.mode == "prompts" else None
    resume_from = latest_checkpoint(run_dir) if cfg.resume else None
    learner = build_learner(cfg, str(resume_from or resolve_model_path(cfg.model)), accelerator)
    needs_verifier = cfg.vil.mode == "online" or (cfg.trainer.eval_every and held_problems)
    verifier = frozen_verifier(cfg, learner) if needs_verifier else None
    log = RunLog(run_dir, enabled=main, log=cfg.log)
    start, _ = restore(learner, log, resume_from, run_dir, main)
    grader = Grader(cfg.grader.name, cfg.grader.timeout_s, cfg.grader.workers)
    systems = (cfg.model.system_prompt, (cfg.verifier or cfg.model).system_prompt)
    check_sampling = replace(cfg.verify.sampling, n=1)
    loop = VerifierInTheLoop(
        learner=learner, verifier=verifier, mode=cfg.vil.mode, problems=problems, prompt=cfg.prompt, systems=systems,
        sampling=replace(cfg.sampling, n=cfg.trainer.group_size), verify_sampling=check_sampling,
        rounds=cfg.vil.rounds, grader=grader, prompts_per_step=cfg.trainer.prompts_per_step, seed=cfg.seed,
        reward=cfg.vil.reward, stop_at_verdict=cfg.verify.stop_at_verdict, refine_prompts=refine,
        on_rollouts=log.rollouts if cfg.trainer.log_rollouts else lambda step, rollouts: None)

    def evaluate(step: int) -> dict:
        return vr_evaluation(learner, verifier, held_problems, cfg.prompt, systems, cfg.eval_sampling, check_sampling,
                             cfg.verify.rounds, cfg.verify.chains, grader, cfg.seed + 15_485_863,
                             cfg.verify.stop_at_verdict)

    try:
        train(cfg, learner, log, run_dir, start, loop.step, evaluate, evaluates=bool(held_problems), state_fn=dict,
              title=f"vil ({cfg.vil.mode}): {cfg.model.name}", panels=PANELS, postfix=("vil/reward", "vil/final_pass@1"))
    finally:
        grader.close()
    if main:
        print(f"results are in {run_dir}")
    return latest_checkpoint(run_dir)
