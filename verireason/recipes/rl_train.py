"""``verireason rl-gen`` and ``verireason rl-verify``: paper 1's RL on generation and on self-verification.

Learning to Self-Verify (papers.md §1.4-1.7). Both commands wire the same pieces and differ only in the
schedule: ``rl-gen`` trains generation (``schedule=generate``); ``rl-verify`` trains self-verification
(``verify_only``, the default) or combines both objectives (``verify_init``, ``verify_alter``, ``mixed``). Per step:
rollouts from the live policy → rewards → group advantages → clipped policy-gradient update, phases timed.

Writes ``results/<command>/<run>/``: ``config.yaml``, ``metrics.jsonl``, ``rollouts/step_*.jsonl``,
``eval/step_*.jsonl`` (held-out samples), ``checkpoints/step_*/`` (``save_pretrained`` + optimizer, scheduler,
RNG) and ``training.png``. ``--resume`` restarts from the last checkpoint without losing or repeating a step.

Run: ``verireason rl-verify --model smollm2-135m --bench arith preset=cpu_small schedule.name=verify_alter``.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

from verireason.adapters import INITIAL, policy_and_initial
from verireason.advantages import ADVANTAGES
from verireason.checkpoint import latest_checkpoint
from verireason.config import RLCfg
from verireason.data import load_problems
from verireason.errors import UserError
from verireason.generation import pick_training_engine
from verireason.grading import GRADERS, Grader
from verireason.losses import LOSS_AGG, PART_AGGS
from verireason.metrics import summarize
from verireason.models import load_tokenizer, resolve_model_path
from verireason.plotting import TRAINING_PANELS, plot_training
from verireason.plugins import RewardPlugins
from verireason.prompts import VERDICT_PARSERS, chat_text, solve_messages
from verireason.records import Problem, graded_sample
from verireason.papers.self_verify import SCHEDULES, Objectives, Schedule, no_log
from verireason.tracking import RecordLog, RunLog, read_metrics
from verireason.loops import rl_loop
from verireason.trainer import LOGPROB_TEMPERATURES, LR_STEPS, Distill, Learner, build_accelerator

COMMAND_SCHEDULES = {"rl-gen": ("generate",), "rl-verify": tuple(SCHEDULES)}


def check(cfg: RLCfg, command: str) -> None:
    """Reject settings the loop cannot run, before anything is loaded."""
    valid = COMMAND_SCHEDULES[command]
    if cfg.schedule.name not in valid:
        hint = " (verification schedules are rl-verify's)" if command == "rl-gen" else ""
        raise UserError(f"{command}: unknown schedule.name={cfg.schedule.name!r}; valid: {', '.join(valid)}{hint}")
    check_choices(cfg)
    buffer = overlong_buffer(cfg)
    if buffer > cfg.sampling.max_tokens:  # the official reward manager asserts this too
        raise UserError(f"reward.overlong_buffer={buffer} is longer than sampling.max_tokens="
                        f"{cfg.sampling.max_tokens}; valid: 0 (off) to {cfg.sampling.max_tokens}")


def problems_of(benches: dict, data_dir: str | None, limit: int | None) -> list[tuple[str, Problem]]:
    return [(name, p) for name, bench in benches.items() for p in load_problems(name, bench, data_dir, limit)]


def training_dtype(cfg) -> str:
    return "float32" if cfg.model.dtype == "auto" else cfg.model.dtype  # fp32 master weights; AMP via accelerate


def build_learner(cfg, path: str, accelerator, distill: Distill | None = None, reference: bool = False) -> Learner:
    """The policy at ``path`` (the initial model or a checkpoint) with the optimizer and loss of ``cfg`` (any
    training config with ``model``, ``algo``, ``optim``, ``engine`` and ``lora``), the frozen initial model as its
    ``ref_model`` when the loss's KL is on, ``reference`` asks for it (S²R folds its KL into the advantage) or the
    distillation term's teacher is ``INITIAL`` (STV's frozen teacher; the same object then), and an optional
    distillation term (paper 2). Under LoRA the initial model is the policy with its adapters off (adapters.py)."""
    device, dtype = str(accelerator.device), training_dtype(cfg)
    wants_teacher = distill is not None and distill.teacher == INITIAL
    keep = bool(cfg.algo.kl_coef or reference or wants_teacher)
    policy, ref = policy_and_initial(path, resolve_model_path(cfg.model), cfg.lora, dtype, device,
                                     cfg.trainer.gradient_checkpointing, keep_initial=keep, seed=cfg.seed)
    if wants_teacher:
        distill.teacher = ref
    return Learner(accelerator, policy, load_tokenizer(path), ref_model=ref, **asdict(cfg.optim),
                   **asdict(cfg.algo), sampling_temperature=cfg.sampling.temperature,
                   mixed_precision=cfg.trainer.mixed_precision, sharding=cfg.trainer.sharding,
                   gen_batch_size=cfg.engine.batch_size, max_context=cfg.model.max_context,
                   distill=distill, rollout_engine=build_rollout_engine(cfg, path, accelerator))


def build_rollout_engine(cfg, path: str, accelerator):
    """The colocated vLLM engine for ``engine.name`` = vllm (or auto with vLLM and a GPU), one per process and
    seeded per process; None: rollouts come from ``generate`` on the live policy."""
    if pick_training_engine(cfg.engine.name) != "vllm":
        return None
    from verireason.colocate import ColocatedVLLM

    e = cfg.engine
    return ColocatedVLLM(path, dtype=cfg.model.dtype, max_context=cfg.model.max_context,
                         seed=cfg.seed + accelerator.process_index,
                         gpu_memory_utilization=e.train_gpu_memory_utilization,
                         enable_prefix_caching=e.enable_prefix_caching, sleep_level=e.sleep_level,
                         logprob_temperature=cfg.algo.logprob_temperature)


OFFICIAL_OVERLONG = {"verify_only": 512, "verify_init": 512}  # Learning_to_self_verify.sh; the other scripts: off


def overlong_buffer(cfg: RLCfg) -> int:
    """``reward.overlong_buffer``, or where it is null the schedule's official script's (papers.md §1.6b). Where the
    script's buffer is longer than ``sampling.max_tokens`` (a laptop run: the official reward manager refuses to
    start there) it is off."""
    if cfg.reward.overlong_buffer is not None:
        return cfg.reward.overlong_buffer
    official = OFFICIAL_OVERLONG.get(cfg.schedule.name, 0)
    return official if official <= cfg.sampling.max_tokens else 0


def check_choices(cfg) -> None:
    """The named choices every training config shares: advantage, loss aggregation, grader, verdict parser."""
    choices = (("algo.advantage", cfg.algo.advantage, ADVANTAGES), ("algo.loss_agg", cfg.algo.loss_agg, LOSS_AGG),
               ("grader.name", cfg.grader.name, GRADERS), ("prompt.verdict", cfg.prompt.verdict, VERDICT_PARSERS),
               ("algo.logprob_temperature", cfg.algo.logprob_temperature, LOGPROB_TEMPERATURES),
               ("optim.lr_step", cfg.optim.lr_step, LR_STEPS))
    for key, value, valid in choices:
        if value not in valid:
            raise UserError(f"unknown {key}={value!r}; valid: {', '.join(valid)}")
    if cfg.algo.mini_batch_prompts is not None and cfg.algo.mini_batches > 1:
        raise UserError(f"algo.mini_batches={cfg.algo.mini_batches} and algo.mini_batch_prompts="
                        f"{cfg.algo.mini_batch_prompts} both size the mini-batches: set one and null the other "
                        f"(algo.mini_batch_prompts=null algo.mini_batches=N for N equal parts)")
    if cfg.algo.tis_cap is not None and cfg.algo.loss_agg in PART_AGGS:
        raise UserError("algo.tis_cap weights tokens; loss_agg=part_mean takes one ratio per action: use one or the "
                        "other")
    if pick_training_engine(cfg.engine.name) == "vllm" and cfg.engine.tensor_parallel_size != 1:
        raise UserError("engine.tensor_parallel_size: training's vLLM engine holds the whole model in each process "
                        "(tensor parallelism inside it is not built); valid: 1")
    if not cfg.bench:
        raise UserError("no training benchmark: pass --bench (e.g. arith, math_train, dapo_math_17k)")


def restore(learner: Learner, log: RunLog, checkpoint: Path | None, run_dir: Path, main: bool) -> tuple[int, dict]:
    """The step to continue from and the saved extra state: a checkpoint's (its logs cut after it) or a fresh
    run's (0, {}, logs emptied)."""
    if checkpoint is None:
        if main:
            log.truncate_after(-1)
        return 0, {}
    state = learner.load(checkpoint)
    log.truncate_after(state["step"])
    if main:
        print(f"resuming {run_dir} from {checkpoint.name}", flush=True)
    return state["step"], state


def train(cfg, learner: Learner, log: RunLog, run_dir: Path, start: int, step_fn, eval_fn, *, evaluates: bool,
          state_fn, title: str, panels=TRAINING_PANELS,
          postfix: tuple[str, ...] = ("generate/reward", "verify/accuracy")) -> None:
    """``rl_loop`` with a training config's cadences (``cfg.trainer``: steps, checkpoints, evaluation when
    ``evaluates``) and progress setting, redrawing ``training.png`` (``title``, ``panels``) at every checkpoint on
    the main process. Shared by every RL recipe."""
    main = learner.accelerator.is_main_process

    def draw() -> None:
        if main:
            plot_training(read_metrics(log.metrics_path), run_dir / "training.png", title, panels)

    try:
        rl_loop(step_fn, learner=learner, run_log=log, start_step=start, max_steps=cfg.trainer.max_steps,
                save_every=cfg.trainer.save_every, eval_every=cfg.trainer.eval_every if evaluates else 0,
                eval_fn=eval_fn, state_fn=state_fn, run_dir=run_dir, on_save=draw, progress=cfg.progress,
                postfix=postfix)
        log.figure(run_dir / "training.png")
    finally:
        log.close()


def run(cfg: RLCfg, run_dir: Path, command: str = "rl-verify") -> Path:
    """Train into ``run_dir``; returns the last checkpoint."""
    check(cfg, command)
    accelerator = build_accelerator(cfg.trainer.device)
    main = accelerator.is_main_process
    run_dir.mkdir(parents=True, exist_ok=True)
    problems = problems_of(cfg.bench, cfg.data_dir, cfg.limit)
    held_out = problems_of(cfg.eval_bench, cfg.data_dir, cfg.eval_limit)
    resume_from = latest_checkpoint(run_dir) if cfg.resume else None
    learner = build_learner(cfg, str(resume_from or resolve_model_path(cfg.model)), accelerator)
    log = RunLog(run_dir, enabled=main, log=cfg.log)
    schedule = Schedule(cfg.schedule.name, cfg.schedule.init_steps, cfg.schedule.interval, cfg.schedule.verify_batch,
                        cfg.trainer.probe_every)
    start, state = restore(learner, log, resume_from, run_dir, main)
    schedule.load_state(state)
    grader = Grader(cfg.grader.name, cfg.grader.timeout_s, cfg.grader.workers)
    official = OFFICIAL_OVERLONG.get(cfg.schedule.name, 0)
    if main and cfg.reward.overlong_buffer is None and official and not overlong_buffer(cfg):
        print(f"note: the {cfg.schedule.name} script's {official}-token overlong buffer is longer than "
              f"sampling.max_tokens={cfg.sampling.max_tokens}: off (set reward.overlong_buffer=N to use one)", flush=True)
    reward = {"correct_value": cfg.reward.correct, "incorrect_value": cfg.reward.incorrect,
              "overlong_buffer": overlong_buffer(cfg), "overlong_penalty": cfg.reward.overlong_penalty}
    objectives = Objectives(
        learner=learner, problems=problems, prompt=cfg.prompt, system=cfg.model.system_prompt,
        sampling=replace(cfg.sampling, n=cfg.trainer.group_size),
        verify_sampling=replace(cfg.sampling, n=cfg.trainer.verify_group_size), grader=grader,
        prompts_per_step=cfg.trainer.prompts_per_step, seed=cfg.seed, reward=reward,
        pass_rate_scale=cfg.reward.verify_pass_rate_scale,
        # verify_init's second stage is Learning_to_generate.sh, whose overlong buffer is off
        stage2_reward={**reward, "overlong_buffer": 0} if cfg.reward.overlong_buffer is None else None,
        plugins=RewardPlugins.from_cfg(cfg.reward, cfg.grader.timeout_s),
        on_rollouts=log.rollouts if cfg.trainer.log_rollouts else no_log)

    try:
        train(cfg, learner, log, run_dir, start, lambda step, timer: schedule.step(objectives, step, timer),
              lambda step: evaluate(learner, held_out, cfg, grader, run_dir, step, main), evaluates=bool(held_out),
              state_fn=schedule.state, title=f"{command} {cfg.schedule.name}: {cfg.model.name}")
    finally:
        grader.close()
    if main:
        print(f"results are in {run_dir}")
    return latest_checkpoint(run_dir)


def evaluate(learner: Learner, problems: list[tuple[str, Problem]], cfg: RLCfg, grader: Grader, run_dir: Path,
             step: int, main: bool) -> dict[str, float]:
    """Held-out accuracy of the live policy (the papers validate every 10 steps): ``eval/<bench>/accuracy`` and
    ``eval/<bench>/tokens``; the graded samples go to ``eval/step_XXXXXX.jsonl``."""
    rank, world = learner.accelerator.process_index, learner.accelerator.num_processes
    mine = problems[rank::world]  # generation needs no collective, so shares may differ in size
    texts = [chat_text(learner.tokenizer, solve_messages(p, cfg.prompt, cfg.model.system_prompt)) for _, p in mine]
    outputs = learner.generate(texts, cfg.eval_sampling, cfg.seed + 15_485_863)
    flat = [(b, p, t, k, c) for (b, p), t, cs in zip(mine, texts, outputs) for k, c in enumerate(cs)]
    grades = grader.grade_many([(c.text, p.answer) for _, p, _, _, c in flat])
    samples = learner.gather([graded_sample(b, p, t, k, c, g) for (b, p, t, k, c), g in zip(flat, grades)])
    if main:
        (run_dir / "eval").mkdir(exist_ok=True)
        RecordLog(run_dir / "eval" / f"step_{step:06d}.jsonl").append(samples)
    metrics = {}
    for bench in dict.fromkeys(s.bench for s in samples):
        summary = summarize([s for s in samples if s.bench == bench])
        metrics[f"eval/{bench}/accuracy"] = summary["accuracy"]
        metrics[f"eval/{bench}/tokens"] = summary["mean_tokens"]
    return metrics
