"""Paper 1, Learning to Self-Verify (papers.md §1.4-1.7): its rollout makers and training schedules.

**Objectives.** ``Objectives`` holds everything a step needs (policy, training problems, prompts, sampling,
grader, rewards) and offers the four moves every schedule is made of:

* ``solve(step)``: sample ``group_size`` solutions for the step's prompts, grade them, reward them;
* ``balanced(samples, step)``: the balanced on-policy verification set of §1.4 from those graded samples;
* ``verify(pairs, step)``: sample ``verify_group_size`` answer-only verifications per pair, reward agreement with
  the grader's label;
* ``update(objective, rollouts, step)``: one policy update on them, logged under the objective's prefix.

Every process works on its share of the prompts; graded samples and verification outcomes are gathered, so every
process builds the same verification set and the logged metrics cover the whole step.

**Schedules** (§1.6): how generation and self-verification updates interleave.

* ``generate``: GRPO on solutions (Learn to Generate). With ``probe_every`` it also measures, without training on
  it, how well the policy judges a balanced set of its own answers, so both curves of ``training.png`` exist.
* ``verify_only``: solutions are sampled and graded only as data; the update uses verification rollouts on the
  balanced on-policy set (Learn to Self-Verify, §1.4).
* ``verify_init``: ``verify_only`` for ``init_steps`` steps, then ``generate`` from that state with a fresh
  optimizer and warmup (the paper runs the second stage as a new job from the first stage's checkpoint).
* ``verify_alter``: a generation update every step; each step's balanced verification pairs go into a buffer;
  every ``interval`` steps one verification update on the first chunk of the shuffled buffer (the last buffered
  set's ``target_size``, or ``verify_batch``), then the buffer is flushed and the current step's pairs added (the
  official alternating trainer). Separate updates, separate metrics.
* ``mixed``: generation and verification rollouts of the same step in one batch and one loss. **Our
  interpretation** of the paper's Mixed-Train baseline, which has no released code.
"""


from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from verireason.balance import BalancedSet, balanced_set
from verireason.config import PromptCfg, SamplingCfg
from verireason.data import step_problems
from verireason.grading import Grader
from verireason.metrics import verification_metrics
from verireason.plugins import RewardPlugins
from verireason.prompts import chat_text, parse_verdict, solve_messages, verify_messages
from verireason.records import Problem, Rollout, Sample, graded_sample
from verireason.rewards import solve_reward, verify_reward
from verireason.trainer import Learner, Timer


def no_log(step: int, rollouts: list[Rollout]) -> None:
    """The rollout sink of a run that keeps no rollouts."""


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


@dataclass
class SolveBatch:
    rollouts: list[Rollout]  # this process's rollouts (what it trains on)
    samples: list[Sample]  # every process's graded samples (what the verification set is built from)
    metrics: dict[str, float]


@dataclass
class Objectives:
    learner: Learner
    problems: list[tuple[str, Problem]]
    prompt: PromptCfg
    system: str | None
    sampling: SamplingCfg  # n = rollouts per prompt
    verify_sampling: SamplingCfg  # n = verifications per verification prompt
    grader: Grader
    prompts_per_step: int
    seed: int = 0
    reward: dict | None = None  # solve_reward keyword arguments
    pass_rate_scale: bool = True  # the code's ×min(pass_rate, 0.5) on verification rewards
    stage2_reward: dict | None = None  # verify_init's second stage's rewards, where they differ
    plugins: RewardPlugins | None = None  # reward.fn / reward.extra
    on_rollouts: Callable[[int, list[Rollout]], None] = no_log

    def _seed(self, step: int) -> int:
        """The step's sampling seed: a function of the run seed and the step alone, so a resumed run repeats it."""
        return self.seed * 7_919 + step * 104_729

    def solve(self, step: int, timer: Timer) -> SolveBatch:
        """Generation rollouts for the step's prompts (1.4 step 1)."""
        slots = self.learner.shard(list(enumerate(step_problems(self.problems, step, self.prompts_per_step, self.seed))))
        mine = [item for _, item in slots]
        tok = self.learner.tokenizer
        texts = [chat_text(tok, solve_messages(p, self.prompt, self.system)) for _, p in mine]
        with timer.phase("gen"):
            outputs = self.learner.generate(texts, self.sampling, self._seed(step))
        # A GRPO group is one prompt slot of the step (a problem drawn twice in one step makes two groups).
        pairs = [(bench, p, text, k, c, f"{step}:{slot}:{p.id}")
                 for (slot, (bench, p)), text, cs in zip(slots, texts, outputs) for k, c in enumerate(cs)]
        with timer.phase("grade"):
            grades = self.grader.grade_many([(c.text, p.answer) for _, p, _, _, c, _ in pairs])
            # The code labels a sample by its reward (reward >= 0.5 is "Yes"), the overlong penalty included, and a
            # group's pass rate is its share of such samples (§1.6b).
            base = [solve_reward(g.correct, c.tokens, self.sampling.max_tokens, **(self.reward or {}))
                    for (_, _, _, _, c, _), g in zip(pairs, grades)]
            # reward plug-ins (reward.fn / reward.extra) change what the policy is trained on, not the labels
            rewards = (self.plugins.rewards(base, [(p, c, g) for (_, p, _, _, c, _), g in zip(pairs, grades)])
                       if self.plugins else base)
        labels = [g.formatted and r >= 0.5 for g, r in zip(grades, base)]
        rates: dict[str, list[bool]] = {}
        for (_, _, _, _, _, group), label in zip(pairs, labels):  # a group lives on one process: its rate is local
            rates.setdefault(group, []).append(label)
        prompt_ids = {t: tuple(tok(t, add_special_tokens=False)["input_ids"]) for t in texts}
        samples, rollouts = [], []
        for (bench, p, text, k, c, group), g, reward, label in zip(pairs, grades, rewards, labels):
            meta = {"pass_rate": _mean(rates[group]), "group": group, "label": label}
            samples.append(graded_sample(bench, p, text, k, c, g, meta))
            rollouts.append(Rollout("generate", group, text, c.text, prompt_ids[text],
                                    c.token_ids, reward, c.finish_reason,
                                    {"problem_id": p.id, "correct": g.correct, "extracted": g.extracted},
                                    sample_logprobs=c.logprobs))
        everything = self.learner.gather(samples)
        rewards = self.learner.gather([r.reward for r in rollouts])
        metrics = {"generate/reward": _mean(rewards), "generate/accuracy": _mean([s.correct for s in everything]),
                   "generate/tokens": _mean([s.tokens for s in everything]),
                   "generate/truncated": _mean([s.finish_reason == "length" for s in everything]),
                   "generate/boxed": _mean([s.formatted for s in everything])}
        return SolveBatch(rollouts, everything, metrics)

    def balanced(self, samples: Sequence[Sample], step: int) -> BalancedSet:
        """§1.4 steps 2-5 (§1.6b) on every process's samples, with the same seeded choices on every process; a
        sample's label is the code's ``reward >= 0.5`` (``meta["label"]``)."""
        groups: dict[str, list[Sample]] = {}
        for s in samples:
            groups.setdefault(s.meta["group"], []).append(s)
        return balanced_set(list(groups.values()), random.Random(self.seed * 1_000_003 + step),
                            label=lambda s: s.meta.get("label", s.correct))

    def verify(self, pairs: Sequence[tuple[Sample, bool]], step: int, timer: Timer,
               prefix: str = "verify") -> tuple[list[Rollout], dict[str, float]]:
        """Verification rollouts for ``pairs`` (§1.4 step 6) and their metrics under ``prefix``."""
        mine = self.learner.shard(list(enumerate(pairs)))
        tok = self.learner.tokenizer
        texts = [chat_text(tok, verify_messages(_problem(s), s.completion, self.prompt, self.system)) for _, (s, _) in mine]
        with timer.phase("gen"):
            outputs = self.learner.generate(texts, self.verify_sampling, self._seed(step) + 1)
        rollouts, outcomes = [], []
        overlong = self.reward or {}
        for (i, (s, label)), text, completions in zip(mine, texts, outputs):
            ids = tuple(tok(text, add_special_tokens=False)["input_ids"])
            rate = s.meta.get("pass_rate") if self.pass_rate_scale else None
            for c in completions:
                claimed = parse_verdict(c.text, self.prompt.verdict)
                reward = verify_reward(claimed, label, rate, tokens=c.tokens, max_tokens=self.verify_sampling.max_tokens,
                                       overlong_buffer=overlong.get("overlong_buffer", 0),
                                       overlong_penalty=overlong.get("overlong_penalty", 1.0))
                rollouts.append(Rollout("verify", f"verify-{step}-{i}", text, c.text, ids, c.token_ids,
                                        reward, c.finish_reason,
                                        {"problem_id": s.problem_id, "label": label, "claimed": claimed},
                                        sample_logprobs=c.logprobs))
                outcomes.append((claimed, label, c.tokens, rollouts[-1].reward))
        outcomes = self.learner.gather(outcomes)
        confusion = verification_metrics([(claimed, label) for claimed, label, _, _ in outcomes])
        metrics = {f"{prefix}/reward": _mean([o[3] for o in outcomes]), f"{prefix}/prompts": len(pairs),
                   f"{prefix}/accuracy": confusion["verify_accuracy"] if outcomes else 0.0,
                   f"{prefix}/balanced_accuracy": confusion.get("verify_balanced_accuracy") if outcomes else None,
                   f"{prefix}/unparseable": confusion.get("unparseable", 0.0) if outcomes else 0.0,
                   f"{prefix}/yes_rate": _mean([o[0] is True for o in outcomes]),  # 0 or 1: verdicts collapsed
                   f"{prefix}/tokens": _mean([o[2] for o in outcomes])}
        return rollouts, metrics

    def update(self, objective: str, rollouts: list[Rollout], step: int, timer: Timer) -> dict[str, float]:
        """One policy update on ``rollouts``, its statistics under ``objective/``; the rollouts are logged."""
        self.on_rollouts(step, self.learner.gather(rollouts))
        if not any(self.learner.gather([len(rollouts)])):  # e.g. every group all-wrong: nothing to verify
            return {f"{objective}/skipped": 1.0}
        with timer.phase(f"update_{objective}"):
            stats = self.learner.update(rollouts, seed=self.seed * 7_919 + step)
        return {f"{objective}/{k}": v for k, v in stats.items()}


def _problem(s: Sample) -> Problem:
    return Problem(id=s.problem_id, problem=s.problem, answer=s.gold, source=s.bench, level=s.level)


@dataclass
class Schedule:
    name: str = "generate"
    init_steps: int = 10
    interval: int = 5
    verify_batch: int | None = None
    probe_every: int = 0
    buffer: list[tuple[Sample, bool]] = field(default_factory=list)  # verify_alter's pending pairs
    chunk: int = 0  # verify_alter: the last buffered set's target_size, the code's chunk of the buffer

    def step(self, obj: Objectives, step: int, timer: Timer) -> dict:
        return SCHEDULES[self.name](self, obj, step, timer)

    def state(self) -> dict:
        """What a checkpoint must keep: the verify-alter buffer."""
        return {"buffer": [[dataclasses.asdict(s), label] for s, label in self.buffer], "chunk": self.chunk}

    def load_state(self, state: dict) -> None:
        self.buffer = [(Sample(**s), label) for s, label in state.get("buffer", [])]
        self.chunk = int(state.get("chunk", 0))


def generate(schedule: Schedule, obj: Objectives, step: int, timer: Timer) -> dict:
    batch = obj.solve(step, timer)
    metrics = dict(batch.metrics)
    if schedule.probe_every and step % schedule.probe_every == 0:  # measured before the update, like the samples
        _, probe = obj.verify(obj.balanced(batch.samples, step).pairs, step, timer, prefix="probe")
        metrics.update(probe)
    return {**metrics, **obj.update("generate", batch.rollouts, step, timer)}


def verify_only(schedule: Schedule, obj: Objectives, step: int, timer: Timer) -> dict:
    batch = obj.solve(step, timer)  # data only: no update on these
    rollouts, metrics = obj.verify(obj.balanced(batch.samples, step).pairs, step, timer)
    return {**batch.metrics, **metrics, **obj.update("verify", rollouts, step, timer)}


def verify_init(schedule: Schedule, obj: Objectives, step: int, timer: Timer) -> dict:
    if step <= schedule.init_steps:
        return {**verify_only(schedule, obj, step, timer), "stage": 1}
    if step == schedule.init_steps + 1:
        obj.learner.restart_optimizer()
    if obj.stage2_reward is not None:
        obj.reward = obj.stage2_reward
    return {**generate(schedule, obj, step, timer), "stage": 2}


def verify_alter(schedule: Schedule, obj: Objectives, step: int, timer: Timer) -> dict:
    """The official alternating trainer: every ``interval`` steps, the shuffled buffer's first chunk, of the last
    buffered set's ``target_size`` = 2 × (valid groups // 2) (``verify_batch`` overrides it), gets one verification
    update, and the buffer is flushed. Where that size is 0 the code crashes (``range`` with step 0); here the
    update is skipped and the buffer still flushed."""
    batch = obj.solve(step, timer)
    metrics = {**batch.metrics, **obj.update("generate", batch.rollouts, step, timer)}
    if step % schedule.interval == 0 and schedule.buffer:
        pending = list(schedule.buffer)
        random.Random(obj.seed * 1_000_003 + step + 17).shuffle(pending)
        chunk = schedule.verify_batch or schedule.chunk
        if chunk:
            rollouts, verify_metrics = obj.verify(pending[:chunk], step, timer)
            metrics.update(verify_metrics)
            metrics.update(obj.update("verify", rollouts, step, timer))
        else:
            metrics["verify/skipped"] = 1.0
        schedule.buffer = []
    balanced = obj.balanced(batch.samples, step)
    schedule.buffer += balanced.pairs
    schedule.chunk = balanced.target_size
    return {**metrics, "verify/buffer": len(schedule.buffer)}


def mixed(schedule: Schedule, obj: Objectives, step: int, timer: Timer) -> dict:
    batch = obj.solve(step, timer)
    rollouts, metrics = obj.verify(obj.balanced(batch.samples, step).pairs, step, timer)
    return {**batch.metrics, **metrics, **obj.update("mixed", batch.rollouts + rollouts, step, timer)}


SCHEDULES: dict[str, Callable[[Schedule, Objectives, int, Timer], dict]] = {
    "generate": generate, "verify_only": verify_only, "verify_init": verify_init, "verify_alter": verify_alter,
    "mixed": mixed,
}
