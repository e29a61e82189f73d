"""The two training loops over a ``Learner`` (``verireason.trainer``): ``rl_loop`` (steps of a schedule, then
evaluation, logging and checkpoints on their cadences, every phase timed as ``time/<phase>``) and the supervised
loop's batch plan (``sft_batches``, ``sft_steps``; papers.md §3.4)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from verireason.trainer import Learner, Timer


def rl_loop(step_fn: Callable[[int, Timer], dict], *, learner: Learner, run_log, start_step: int, max_steps: int,
            save_every: int, eval_every: int, eval_fn: Callable[[int], dict], state_fn: Callable[[], dict],
            run_dir: Path, on_save: Callable[[], None] = lambda: None, progress: bool = True,
            postfix: Sequence[str] = ("generate/reward", "verify/accuracy")) -> None:
    """Steps ``start_step + 1 … max_steps``: ``step_fn`` (rollouts and updates), evaluation every ``eval_every``
    steps (and at step 0 of a fresh run and at the end), a line of ``metrics.jsonl`` per step, and a checkpoint
    every ``save_every`` steps and at the end. The progress bar shows the ``postfix`` metrics of the last step."""
    from tqdm import tqdm

    timer = Timer()
    if start_step == 0 and eval_every:
        with timer.phase("eval"):
            baseline = eval_fn(0)
        run_log.log(0, {**baseline, **timer.pop()})
    bar = tqdm(range(start_step + 1, max_steps + 1), initial=start_step, total=max_steps, desc="train",
               disable=not (progress and learner.accelerator.is_main_process), unit="step")
    for step in bar:
        start, pushed = time.perf_counter(), learner.push_seconds
        metrics = step_fn(step, timer)
        if learner.rollout_engine is not None:  # inside time/gen: the weight pushes into the rollout engine
            metrics["time/push"] = round(learner.push_seconds - pushed, 3)
        if eval_every and (step % eval_every == 0 or step == max_steps):
            with timer.phase("eval"):
                metrics.update(eval_fn(step))
        metrics.update(timer.pop(), **{"time/step": round(time.perf_counter() - start, 3)})
        run_log.log(step, metrics)  # before the checkpoint: resume drops lines past the checkpoint it starts from
        if step % save_every == 0 or step == max_steps:
            with timer.phase("save"):  # counted in the next step's line
                learner.save(run_dir, step, state_fn())
            on_save()
        bar.set_postfix({k.split("/", 1)[1]: f"{v:.3f}" for k, v in metrics.items()
                         if k in postfix and isinstance(v, (int, float))})
    bar.close()


def sft_batches(total: int, batch_size: int, epochs: int, seed: int) -> list[list[int]]:
    """Example indices per optimizer step: a fresh seeded permutation per epoch, cut into batches."""
    gen = torch.Generator().manual_seed(seed)
    steps: list[list[int]] = []
    for _ in range(epochs):
        perm = torch.randperm(total, generator=gen).tolist()
        steps += [perm[i : i + batch_size] for i in range(0, total, batch_size)]
    return steps


def sft_steps(total: int, batch_size: int, epochs: int, max_steps: int | None) -> int:
    n = epochs * math.ceil(total / batch_size)
    return min(n, max_steps) if max_steps else n
