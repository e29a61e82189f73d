"""``verireason sft-init``: supervised fine-tuning with per-segment loss masks and a token-level KL.

S²R's behaviour initialization (papers.md §3.4): cross-entropy only on trained segments (verifications and the
final correct attempt; wrong attempts masked) plus ``kl_coef`` × full-vocabulary KL to the frozen initial model on
the same tokens (paper Table 7: lr 5e-6, batch 32, KL 0.1 or 0.01, 3 epochs). Also plain SFT from chat or
prompt/completion JSONL (``kl_coef=0``). See ``verireason.examples`` for the accepted records.

Writes ``metrics.jsonl`` (loss, nll, kl, grad norm, lr, tokens, seconds per step), checkpoints every
``save_every`` steps and at the end (``save_pretrained``), and ``training.png``; ``--resume`` continues from the
last checkpoint with the same data order.

Run: ``verireason sft-init --model smollm2-135m --data my_sft.jsonl kl_coef=0.1 epochs=3``.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path

from verireason.checkpoint import latest_checkpoint
from verireason.collate import pack
from verireason.config import SFTCfg
from verireason.examples import read_examples
from verireason.adapters import policy_and_initial
from verireason.models import load_tokenizer, resolve_model_path
from verireason.plotting import plot_training
from verireason.tracking import RunLog, read_metrics
from verireason.loops import sft_batches, sft_steps
from verireason.trainer import Learner, build_accelerator


def run(cfg: SFTCfg, run_dir: Path) -> Path:
    """Fine-tune into ``run_dir``; returns the last checkpoint."""
    from tqdm import tqdm

    accelerator = build_accelerator(cfg.device)
    main = accelerator.is_main_process
    run_dir.mkdir(parents=True, exist_ok=True)
    base = resolve_model_path(cfg.model)
    resume_from = latest_checkpoint(run_dir) if cfg.resume else None
    path = str(resume_from or base)
    tokenizer = load_tokenizer(path)
    examples = read_examples(Path(cfg.data), tokenizer, cfg.max_length)
    dtype = "float32" if cfg.model.dtype == "auto" else cfg.model.dtype
    device = str(accelerator.device)
    policy, ref = policy_and_initial(path, base, cfg.lora, dtype, device, cfg.gradient_checkpointing,
                                     keep_initial=bool(cfg.kl_coef), seed=cfg.seed)
    learner = Learner(accelerator, policy, tokenizer, ref_model=ref, mixed_precision=cfg.mixed_precision,
                      sharding=cfg.sharding,
                      **asdict(cfg.optim))
    log = RunLog(run_dir, enabled=main, log=cfg.log)
    start = learner.load(resume_from)["step"] if resume_from else 0
    log.truncate_after(start if resume_from else -1)
    total = sft_steps(len(examples), cfg.batch_size, cfg.epochs, cfg.max_steps)
    plan = sft_batches(len(examples), cfg.batch_size, cfg.epochs, cfg.seed)[:total]
    for step in tqdm(range(start + 1, total + 1), initial=start, total=total, desc="sft", unit="step",
                     disable=not (cfg.progress and main)):
        began = time.perf_counter()
        mine = learner.shard(plan[step - 1]) or plan[step - 1][: 1]
        batches = [pack([examples[i].prompt_ids for i in chunk], [examples[i].completion_ids for i in chunk],
                        [examples[i].trained for i in chunk], [0.0] * len(chunk), learner.pad_id)
                   for chunk in learner.micro_plan(examples, mine)]
        stats = learner.sft_update(batches, cfg.kl_coef)
        log.log(step, {**{f"sft/{k}": v for k, v in stats.items()}, "epoch": (step - 1) // math.ceil(len(examples) / cfg.batch_size),
                       "time/step": round(time.perf_counter() - began, 3)})
        if step % cfg.save_every == 0 or step == total:
            learner.save(run_dir, step, {})
            if main:
                plot_training(read_metrics(log.metrics_path), run_dir / "training.png", f"sft-init: {cfg.model.name}")
    log.figure(run_dir / "training.png")
    log.close()
    if main:
        print(f"results are in {run_dir}")
    return latest_checkpoint(run_dir)
