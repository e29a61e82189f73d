"""``verireason s2r``: S²R (paper 3, papers.md §3) in four stages, each a run directory of its own.

* ``--stage data`` (``papers.s2r_data``): K samples per problem, the judge's confirmative verifications, the
  difficulty-bucketed trajectories → ``sft.jsonl`` (``sft-init`` records with per-segment train flags) and
  ``rl.jsonl`` (the problems for RL); or ``construct.import_dir`` to import the released S2R-dataset files.
* ``--stage bi``: behaviour initialization through ``sft-init``'s masked SFT with KL to the initial model.
* ``--stage orl`` / ``--stage prl`` (``papers.s2r_rl``): outcome- or process-level RL from the BI checkpoint,
  with held-out greedy pass@1 and Fig. 3's rates, checkpoints (the PRL baseline inside), ``--resume``, curves.

Run (laptop, every stage in minutes): ``verireason s2r --stage data preset=s2r_cpu``, then
``verireason s2r --stage bi --data <data run> preset=s2r_cpu`` and ``verireason s2r --stage orl --model <bi
checkpoint> --data <data run> preset=s2r_cpu``. Full scale: ``experiments/paper3/run_full.sh``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from verireason.checkpoint import latest_checkpoint
from verireason.config import S2RCfg, SFTCfg
from verireason.data import read_jsonl_problems
from verireason.errors import UserError
from verireason.generation import build_generator
from verireason.grading import Grader
from verireason.judge import EngineJudge, HTTPJudge, Judge
from verireason.models import resolve_model_path
from verireason.papers import s2r_data
from verireason.losses import PART_AGGS
from verireason.papers.s2r import PrefixBaseline, load_prefix_whitelist
from verireason.papers.s2r_actions import DELIMITER_TOKENS, VERDICTS
from verireason.papers.s2r_rl import DELIMITER_PARTS, LEVELS, S2RTraining
from verireason.recipes.rl_train import build_learner, check_choices, problems_of, restore, train
from verireason.records import Problem, Sample
from verireason.tracking import RecordLog, RunLog
from verireason.trainer import build_accelerator

STAGES = ("data", "bi", *LEVELS)
PANELS = (
    ("reward / last-attempt accuracy", ("s2r/reward", "s2r/accuracy", "heldout/accuracy")),
    ("verification (Fig. 3)", ("s2r/verify_accuracy", "s2r/error_recall", "s2r/correct_precision",
                               "heldout/verify_accuracy")),
    ("correction (Fig. 3)", ("s2r/incorrect_to_correct", "s2r/correct_to_incorrect", "heldout/incorrect_to_correct")),
    ("attempts per response", ("s2r/attempts", "heldout/attempts")),
    ("tokens / truncated", ("s2r/tokens",)),
    ("KL to the BI model (summed, nats)", ("s2r/kl",)),
)


def check(cfg: S2RCfg) -> None:
    """Reject settings the stage cannot use, before anything is loaded."""
    if cfg.stage not in STAGES:
        raise UserError(f"unknown stage {cfg.stage!r}; valid: {', '.join(STAGES)}")
    if cfg.stage == "bi" and not cfg.data:
        raise UserError("s2r --stage bi needs --data: a `s2r --stage data` run (or its sft.jsonl)")
    if cfg.data and cfg.stage != "data":
        data_file(cfg.data, "sft.jsonl" if cfg.stage == "bi" else "rl.jsonl")
    if cfg.stage in LEVELS:
        if cfg.algo.loss_agg not in PART_AGGS:
            raise UserError(f"s2r --stage {cfg.stage} trains per action: algo.loss_agg must be one of "
                            f"{', '.join(PART_AGGS)} (got {cfg.algo.loss_agg!r})")
        rl = cfg.rl
        for key, value, valid in (("rl.verdict", rl.verdict, VERDICTS),
                                  ("rl.delimiter_parts", rl.delimiter_parts, DELIMITER_PARTS),
                                  ("rl.delimiter_tokens", rl.delimiter_tokens, DELIMITER_TOKENS)):
            if value not in valid:
                raise UserError(f"unknown {key}={value!r}; valid: {', '.join(valid)}")
        if rl.prefix_whitelist is not None:
            load_prefix_whitelist(rl.prefix_whitelist)
        if cfg.algo.kl_coef:
            raise UserError("S²R folds the KL into the advantage: set rl.kl_coef, and leave algo.kl_coef at 0")
    if cfg.construct.import_dir and not Path(cfg.construct.import_dir).is_dir():
        raise UserError(f"construct.import_dir={cfg.construct.import_dir!r} is not a folder")
    if cfg.stage in LEVELS or (cfg.stage == "data" and not cfg.construct.import_dir):
        check_choices(cfg)


def data_file(path: str, name: str) -> Path:
    """``path`` itself when it is a file, else ``path/name`` (a data run); one clear error when neither exists."""
    p = Path(path).expanduser()
    chosen = p / name if p.is_dir() else p
    if not chosen.is_file():
        raise UserError(f"--data {path}: no {name} there (pass a `s2r --stage data` run or the file itself)")
    return chosen


def run(cfg: S2RCfg, run_dir: Path) -> Path:
    """Run the stage into ``run_dir``; returns its main output (the data folder or the last checkpoint)."""
    check(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    out = {"data": construct, "bi": behaviour_init}.get(cfg.stage, reinforce)(cfg, run_dir)
    print(f"results are in {run_dir}")
    return out


# --- stage 0: data ------------------------------------------------------------------------------------------------


def build_judge(cfg: S2RCfg, policy) -> Judge:
    """The endpoint (``construct.judge.url``), else ``--judge``, else the policy's own engine."""
    j = cfg.construct.judge
    if j.url:
        return HTTPJudge(j.url, j.api_model, j.sampling, j.api_key_env, j.timeout_s, j.concurrency)
    engine = policy if cfg.judge_model is None else build_generator(
        cfg.engine, cfg.judge_model, resolve_model_path(cfg.judge_model), cfg.seed)
    return EngineJudge(engine, j.sampling)


def construct(cfg: S2RCfg, run_dir: Path) -> Path:
    """Stage 0 (§3.3): sample → judge → build, each written as it goes and skipped where already on disk."""
    c = cfg.construct
    if c.import_dir:
        summary = s2r_data.import_dataset(Path(c.import_dir), run_dir, c.import_sft, c.import_rl,
                                          lambda name: print(f"imported {name}", flush=True))
        print(f"imported: {summary}")
        return run_dir
    problems = problems_of(cfg.bench, cfg.data_dir, cfg.limit)
    if c.decontaminate and cfg.eval_bench:
        held = [p for _, p in problems_of(cfg.eval_bench, cfg.data_dir, None)]
        problems = s2r_data.decontaminate(problems, held)
    grader = Grader(cfg.grader.name, cfg.grader.timeout_s, cfg.grader.workers)
    try:
        policy = build_generator(cfg.engine, cfg.model, resolve_model_path(cfg.model), cfg.seed)
        samples = s2r_data.sample(policy, problems, cfg.prompt, cfg.prompt.system or cfg.model.system_prompt,
                                  c.sampling, grader, RecordLog(run_dir / "samples.jsonl", Sample), cfg.seed,
                                  cfg.progress)
        judgements = s2r_data.judge(build_judge(cfg, policy), samples,
                                    s2r_data.judgement_log(run_dir / "judgements.jsonl"), c.max_answers,
                                    cfg.seed + 1, cfg.progress)
    finally:
        grader.close()
    summary = s2r_data.build(problems, samples, judgements, run_dir, cfg.seed)
    print(f"{summary['trajectories']} trajectories from {summary['problems']} problems "
          f"(sample accuracy {summary['sample_accuracy']:.3f}; {summary['judgements_kept']} of "
          f"{summary['judgements']} verifications kept): sft.jsonl, rl.jsonl")
    return run_dir


# --- stage 1: behaviour initialization ------------------------------------------------------------------------------


def behaviour_init(cfg: S2RCfg, run_dir: Path) -> Path:
    """Stage 1 (§3.4): ``sft-init`` on the trajectories, with the BI settings."""
    from verireason.recipes import sft_init

    b = cfg.bi
    sft = SFTCfg(model=cfg.model, data=str(data_file(cfg.data, "sft.jsonl")), optim=cfg.optim, kl_coef=b.kl_coef,
                 epochs=b.epochs, batch_size=b.batch_size, max_length=b.max_length, max_steps=b.max_steps,
                 save_every=b.save_every, device=cfg.trainer.device, seed=cfg.seed, out=str(run_dir),
                 resume=cfg.resume, progress=cfg.progress, log=cfg.log,
                 mixed_precision=cfg.trainer.mixed_precision,
                 gradient_checkpointing=cfg.trainer.gradient_checkpointing, lora=cfg.lora,
                 sharding=cfg.trainer.sharding)
    return sft_init.run(sft, run_dir)


# --- stage 2: online RL -----------------------------------------------------------------------------------------------


def rl_problems(cfg: S2RCfg) -> list[tuple[str, Problem]]:
    """``--data``'s rl.jsonl, else the ``--bench`` problems."""
    if cfg.data:
        problems = [("s2r", p) for p in read_jsonl_problems(data_file(cfg.data, "rl.jsonl"), "s2r")]
        return problems[: cfg.limit] if cfg.limit else problems
    return problems_of(cfg.bench, cfg.data_dir, cfg.limit)


def reinforce(cfg: S2RCfg, run_dir: Path) -> Path:
    """Stage 2 (§3.5): ORL or PRL from ``--model`` (the BI checkpoint), the KL measured against that same model."""
    accelerator = build_accelerator(cfg.trainer.device)
    main = accelerator.is_main_process
    problems = rl_problems(cfg)
    held_out = problems_of(cfg.eval_bench, cfg.data_dir, cfg.eval_limit)
    resume_from = latest_checkpoint(run_dir) if cfg.resume else None
    learner = build_learner(cfg, str(resume_from or resolve_model_path(cfg.model)), accelerator,
                            reference=cfg.rl.kl_coef > 0)
    log = RunLog(run_dir, enabled=main, log=cfg.log)
    start, state = restore(learner, log, resume_from, run_dir, main)
    grader = Grader(cfg.grader.name, cfg.grader.timeout_s, cfg.grader.workers)
    training = S2RTraining(
        learner=learner, level=cfg.stage, problems=problems, prompt=cfg.prompt,
        system=cfg.prompt.system or cfg.model.system_prompt, sampling=replace(cfg.sampling, n=cfg.trainer.group_size),
        grader=grader, prompts_per_step=cfg.trainer.prompts_per_step, kl_coef=cfg.rl.kl_coef, seed=cfg.seed,
        verify_bonus=cfg.rl.verify_bonus, flip_bonus=cfg.rl.flip_bonus,
        truncation_penalty=cfg.rl.truncation_penalty, verdict=cfg.rl.verdict, delimiter_parts=cfg.rl.delimiter_parts,
        delimiter_tokens=cfg.rl.delimiter_tokens,
        baseline=PrefixBaseline(cfg.rl.baseline_min_count, tracked=load_prefix_whitelist(cfg.rl.prefix_whitelist)
                                if cfg.rl.prefix_whitelist else None),
        on_rollouts=log.rollouts if cfg.trainer.log_rollouts else lambda step, rollouts: None)
    training.load_state(state)

    try:
        train(cfg, learner, log, run_dir, start, training.step,
              lambda step: training.held_out(held_out, cfg.eval_sampling, cfg.seed + 15_485_863),
              evaluates=bool(held_out), state_fn=training.state, title=f"s2r --stage {cfg.stage}: {cfg.model.name}",
              panels=PANELS, postfix=("s2r/reward", "s2r/accuracy", "s2r/attempts"))
    finally:
        grader.close()
    return latest_checkpoint(run_dir)
