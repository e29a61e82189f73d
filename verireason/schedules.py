"""Paper 1's training schedules (papers.md §1.6): how generation and self-verification updates interleave.

* ``generate``: GRPO on solutions (Learn to Generate). With ``probe_every`` it also measures, without training on
  it, how well the policy judges a balanced set of its own answers, so both curves of ``training.png`` exist.
* ``verify_only``: solutions are sampled and graded only as data; the update uses verification rollouts on the
  balanced on-policy set (Learn to Self-Verify, §1.4).
* ``verify_init``: ``verify_only`` for ``init_steps`` steps, then ``generate`` from that state with a fresh
  optimizer and warmup (the paper runs the second stage as a new job from the first stage's checkpoint).
* ``verify_alter``: a generation update every step; each step's balanced verification pairs go into a buffer;
  every ``interval`` steps one verification update on up to ``verify_batch`` shuffled buffered pairs, then the
  buffer is flushed and the current step's pairs added (the official alternating trainer). Separate updates,
  separate metrics.
* ``mixed``: generation and verification rollouts of the same step in one batch and one loss. **Our
  interpretation** of the paper's Mixed-Train baseline, which has no released code.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from verireason.records import Sample
from verireason.rollouts import Objectives
from verireason.trainer import Timer


@dataclass
class Schedule:
    name: str = "generate"
    init_steps: int = 10
    interval: int = 5
    verify_batch: int | None = None
    probe_every: int = 0
    buffer: list[tuple[Sample, bool]] = field(default_factory=list)  # verify_alter's pending pairs

    def step(self, obj: Objectives, step: int, timer: Timer) -> dict:
        return SCHEDULES[self.name](self, obj, step, timer)

    def state(self) -> dict:
        """What a checkpoint must keep: the verify-alter buffer."""
        return {"buffer": [[dataclasses.asdict(s), label] for s, label in self.buffer]}

    def load_state(self, state: dict) -> None:
        self.buffer = [(Sample(**s), label) for s, label in state.get("buffer", [])]


def generate(schedule: Schedule, obj: Objectives, step: int, timer: Timer) -> dict:
    batch = obj.solve(step, timer)
    metrics = dict(batch.metrics)
    if schedule.probe_every and step % schedule.probe_every == 0:  # measured before the update, like the samples
        _, probe = obj.verify(obj.balanced(batch.samples, step), step, timer, prefix="probe")
        metrics.update(probe)
    return {**metrics, **obj.update("generate", batch.rollouts, step, timer)}


def verify_only(schedule: Schedule, obj: Objectives, step: int, timer: Timer) -> dict:
    batch = obj.solve(step, timer)  # data only: no update on these
    rollouts, metrics = obj.verify(obj.balanced(batch.samples, step), step, timer)
    return {**batch.metrics, **metrics, **obj.update("verify", rollouts, step, timer)}


def verify_init(schedule: Schedule, obj: Objectives, step: int, timer: Timer) -> dict:
    if step <= schedule.init_steps:
        return {**verify_only(schedule, obj, step, timer), "stage": 1}
    if step == schedule.init_steps + 1:
        obj.learner.restart_optimizer()
    return {**generate(schedule, obj, step, timer), "stage": 2}


def verify_alter(schedule: Schedule, obj: Objectives, step: int, timer: Timer) -> dict:
    batch = obj.solve(step, timer)
    metrics = {**batch.metrics, **obj.update("generate", batch.rollouts, step, timer)}
    if step % schedule.interval == 0 and schedule.buffer:
        pending = list(schedule.buffer)
        random.Random(obj.seed * 1_000_003 + step + 17).shuffle(pending)
        rollouts, verify_metrics = obj.verify(pending[: schedule.verify_batch or obj.prompts_per_step], step, timer)
        metrics.update(verify_metrics)
        metrics.update(obj.update("verify", rollouts, step, timer))
        schedule.buffer = []
    schedule.buffer += obj.balanced(batch.samples, step)
    return {**metrics, "verify/buffer": len(schedule.buffer)}


def mixed(schedule: Schedule, obj: Objectives, step: int, timer: Timer) -> dict:
    batch = obj.solve(step, timer)
    rollouts, metrics = obj.verify(obj.balanced(batch.samples, step), step, timer)
    return {**batch.metrics, **metrics, **obj.update("mixed", batch.rollouts + rollouts, step, timer)}


SCHEDULES: dict[str, Callable[[Schedule, Objectives, int, Timer], dict]] = {
    "generate": generate, "verify_only": verify_only, "verify_init": verify_init, "verify_alter": verify_alter,
    "mixed": mixed,
}
