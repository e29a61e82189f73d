"""``verireason plan COMMAND``: the per-GPU memory of that exact run, term by term, its predicted step time and a
verdict, before anything loads (``memory_plan``); and the same check that every training command runs at start on
the GPUs it finds (``check_fits``), refusing a run that cannot fit unless ``trainer.check_memory=false``.

The run's config is composed exactly as the command would compose it (same options and overrides); the model's
shape comes from its local ``config.json`` or the alias's ``arch`` in ``conf/model/`` (no download).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from verireason.errors import UserError
from verireason.memory_plan import GPU, GPUS, Arch, Workload, cheapest_fix, make_plan, render

TRAINING = ("rl-gen", "rl-verify", "sft-init", "stv", "vil", "s2r")


def arch_of(model) -> Arch:
    """The shape of ``model`` (a ``ModelCfg``): its directory's config.json, else the alias's stored ``arch``."""
    config = Path(str(model.path)).expanduser() / "config.json" if model.path not in (None, "embedded") else None
    if config is not None and config.is_file():
        return Arch.from_config(json.loads(config.read_text()))
    if model.arch is not None and model.arch.hidden:
        a = model.arch
        return Arch(a.hidden, a.layers, a.intermediate, a.heads, a.kv_heads, a.vocab, a.tied, a.head_dim)
    raise UserError(f"no shape for model {model.name!r}: give a local model directory (with config.json), or add "
                    f"arch: {{hidden, layers, intermediate, heads, kv_heads, vocab, tied}} to its conf/model/ file")


def _trainer(cfg):
    """The settings a training config keeps in ``trainer`` (sft-init keeps them at the top level)."""
    return getattr(cfg, "trainer", None) or cfg


def workload(command: str, cfg, world: int, prompt: int, engine: str) -> Workload:
    """What the run does, from its typed config: lengths, micro-batch, frozen copies, sharding, LoRA, engine."""
    from verireason.precision import mixed_precision

    t = _trainer(cfg)
    sft = command == "sft-init" or (command == "s2r" and cfg.stage == "bi")
    if command == "s2r" and cfg.stage == "data":
        raise UserError("s2r --stage data trains nothing; plan --stage bi, orl or prl")
    max_tokens = (cfg.max_length if command == "sft-init" else cfg.bi.max_length) if sft else cfg.sampling.max_tokens
    # the longest sequence: a verifier's prompt carries a whole response (rl-verify, stv, vil's checks)
    length = max_tokens if sft else prompt + max_tokens * (2 if command in ("rl-verify", "stv", "vil") else 1)
    optim = cfg.optim
    rows = max(1, optim.micro_batch_tokens // length) if optim.micro_batch_tokens else optim.micro_batch_size
    keeps = _keeps_initial(command, cfg)
    verifier = arch_of(cfg.verifier) if command == "vil" and cfg.verifier is not None else None
    algo = getattr(cfg, "algo", None)
    per_step = (cfg.batch_size if command == "sft-init" else cfg.bi.batch_size) if sft else (
        t.prompts_per_step * t.group_size)
    old = bool(algo and (algo.epochs > 1 or algo.mini_batches > 1 or algo.kl_coef
                         or (algo.mini_batch_prompts and algo.mini_batch_prompts < t.prompts_per_step)))
    return Workload(
        command=command if command != "s2r" else f"s2r --stage {cfg.stage}", arch=arch_of(cfg.model), world=world,
        sharding=t.sharding, lora_rank=cfg.lora.rank, lora_targets=tuple(cfg.lora.target_modules),
        keeps_initial=keeps, verifier=verifier, micro_rows=min(rows, per_step), micro_len=length,
        completion=max_tokens, checkpointing=t.gradient_checkpointing,
        bf16=mixed_precision(t.mixed_precision, "cuda") == "bf16",
        distill=command == "stv" and cfg.method in ("opd", "stv"), engine="hf" if sft else engine,
        gen_batch=0 if sft else cfg.engine.batch_size,
        vllm_share=0.0 if sft else cfg.engine.train_gpu_memory_utilization,
        rollouts=per_step, prompt=0 if sft else prompt, max_tokens=max_tokens, old_logprobs=old)


def _keeps_initial(command: str, cfg) -> bool:
    """Whether the run keeps a frozen initial model beside the policy (recipes.rl_train.build_learner's rule)."""
    if command in ("rl-gen", "rl-verify"):
        return bool(cfg.algo.kl_coef)
    if command == "sft-init":
        return bool(cfg.kl_coef)
    if command == "stv":
        return cfg.distill.teacher == "frozen" and cfg.method != "verdict_rl" or bool(cfg.algo.kl_coef)
    if command == "vil":
        return cfg.verifier is None or bool(cfg.algo.kl_coef)
    return cfg.stage in ("orl", "prl") or bool(cfg.bi.kl_coef)  # s2r: RL folds its KL in; BI has its own


def pick_gpu(name: str, memory_gb: float | None) -> GPU:
    if name not in GPUS:
        raise UserError(f"unknown --gpu {name!r}; valid: {', '.join(GPUS)}")
    gpu = GPUS[name]
    return replace(gpu, memory_gb=memory_gb) if memory_gb else gpu


def report(command: str, cfg, gpus: int, nodes: int, gpu: GPU, prompt: int, engine: str) -> str:
    """The plan of the run, and the same run under each sharding, with and without LoRA."""
    w = workload(command, cfg, gpus * nodes, prompt, engine)
    plan = make_plan(w, gpu)
    text = render(plan, None if plan.fits else cheapest_fix(w, gpu, gpus))
    rows = ["", "the same run, other layouts (GiB per GPU):", "", "| sharding | full fine-tuning | LoRA rank 16 |",
            "|---|---|---|"]
    for sharding in ("none", "fsdp2", "zero3"):
        cells = []
        for rank in (0, 16):
            p = make_plan(replace(w, sharding=sharding, lora_rank=rank), gpu)
            cells.append(f"{p.total / 2**30:.1f} ({'fits' if p.fits else 'does not fit'})")
        rows.append(f"| {sharding} | {cells[0]} | {cells[1]} |")
    return text + "\n" + "\n".join(rows)


def check_fits(command: str, cfg) -> None:
    """At the start of a training run on GPUs: refuse it (one line) when the plan says it cannot fit."""
    import os

    import torch

    t = _trainer(cfg)
    if command not in TRAINING or not torch.cuda.is_available() or not getattr(t, "check_memory", False):
        return
    if command == "s2r" and cfg.stage == "data":
        return
    memory = torch.cuda.get_device_properties(0).total_memory / 1e9
    world = int(os.environ.get("WORLD_SIZE", "1"))
    gpu = GPU(torch.cuda.get_device_name(0), memory, GPUS["h100"].bandwidth, GPUS["h100"].flops)
    try:
        w = workload(command, cfg, world, 200, "vllm" if cfg_engine(cfg) == "vllm" else "hf")
    except UserError:
        return  # no shape known for this model: nothing to check against
    plan = make_plan(w, gpu)
    if not plan.fits:
        fix = cheapest_fix(w, gpu, max(torch.cuda.device_count(), 1))
        key = "trainer.check_memory" if hasattr(cfg, "trainer") else "check_memory"
        raise UserError(f"{w.command} needs about {plan.total / 2**30:.0f} GiB per GPU (largest: "
                        f"{plan.largest.name}, {plan.largest.bytes / 2**30:.0f} GiB) and this GPU has "
                        f"{memory:.0f} GB; " + (f"the cheapest change that fits: {fix}; " if fix else "")
                        + f"see `verireason plan {command}`; to start anyway: {key}=false")


def cfg_engine(cfg) -> str:
    engine = getattr(cfg, "engine", None)
    if engine is None:
        return "hf"
    from verireason.generation import pick_training_engine

    return pick_training_engine(engine.name)
