"""Paper 2, Self-Trained Verification and verifier-in-the-loop RL (papers.md §2.2-2.4, §2.8-2.9).

**Verifier training** (``VerifierTraining``, ``verireason stv``). Candidates are the generator's own attempts
(§2.8): read from an ``eval`` run's ``samples.jsonl`` or sampled by the policy each step, graded, each with its
problem's reference solution. The student verifier (the policy) judges a candidate from the student prompt
(problem and solution) and writes feedback and a verdict. Each verification is a ``Rollout`` carrying both of STV's
signals:

* ``teacher_prompt_ids``: the same model's privileged prompt (problem, candidate, the true verdict, the reference;
  ``informed_verify_user``), under which a ``trainer.Distill`` teacher scores exactly the student's tokens (OPD);
* ``reward``: verdict-RL's, 1 when the verdict matches the grader's truth *and* feedback is present, else 0.

The four methods (§4.3) differ only in the update: ``verdict_rl`` is GRPO on the reward; ``opd`` the divergence
alone (``pg_coef=0``); ``stv`` is ``opd_coef · L_OPD + pg_coef · L_PG`` on the same samples (the official form);
``sft`` trains, through the masked SFT update, on the informed teacher's own verifications whose verdict is right.

**ViL** (``VerifierInTheLoop``, ``verireason vil``): the generator is trained inside V-R episodes with a frozen
verifier. ``online``: a group of episodes per problem (attempt → verdict + feedback → refined attempt, up to
``rounds``), the reward the final attempt's correctness, one advantage per episode spread over every generator turn
of that episode (per-token advantages); ``prompts``: RL on the next turn of pre-built [problem, attempt, feedback]
prompts from a V-R eval run (§2.8). Each generator turn is trained as its own rollout under the very prompt it was
sampled from: refine(problem, previous attempt, feedback), as the V-R loop of §2.2 and ``eval --protocol vr_loop``
condition it, so the attempt and the feedback are prompt tokens and are never trained.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from verireason.advantages import group_advantages
from verireason.collate import pack
from verireason.config import PromptCfg, SamplingCfg
from verireason.data import step_problems
from verireason.errors import UserError
from verireason.generation import Generator
from verireason.grading import Grader
from verireason.metrics import verification_metrics, vr_metrics
from verireason.prompts import (
    VERDICT_STOPS,
    chat_text,
    feedback_of,
    feedback_text,
    informed_verify_messages,
    parse_verdict,
    refine_messages,
    solve_messages,
    verify_messages,
)
from verireason.protocols import run_vr_chains
from verireason.records import Chain, Judged, Problem, Rollout, Sample, graded_sample
from verireason.tracking import RecordLog
from verireason.trainer import Learner, Timer, chunks

MIN_FEEDBACK_WORDS = 3  # "feedback is present": at least this many words besides the verdict line (ours, §2.7)
METHODS = ("sft", "verdict_rl", "opd", "stv")
VIL_MODES = ("online", "prompts")
VIL_REWARDS = ("final", "every_round")
CANDIDATE_BALANCE = ("alternate", "labels")


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def has_feedback(verification: str, min_words: int = MIN_FEEDBACK_WORDS) -> bool:
    """Whether a verification says something (``min_words`` words or more) besides its verdict line."""
    return len(feedback_text(verification).split()) >= min_words


def verdict_rl_reward(claimed: bool | None, truth: bool, verification: str,
                      min_words: int = MIN_FEEDBACK_WORDS) -> float:
    """STV's verdict-RL reward (§2.3): 1 when the verdict matches the truth and feedback is present, else 0."""
    return 1.0 if claimed is not None and claimed == truth and has_feedback(verification, min_words) else 0.0


# --- candidates (§2.8) --------------------------------------------------------------------------------------------

Pool = dict[tuple[str, str], list[Sample]]  # (bench, problem id) → that problem's graded attempts


def run_file(path: str | Path, name: str, what: str) -> Path:
    """``path`` itself, or ``path/name`` when it is a run directory; a one-line error when it does not exist."""
    path = Path(path)
    file = path / name if path.is_dir() else path
    if not file.exists():
        raise UserError(f"{what}: {file} does not exist; pass a run directory or its {name}")
    return file


def read_candidates(path: str | Path, problems: Sequence[tuple[str, Problem]]) -> Pool:
    """Graded attempts from an ``eval`` run (its directory or ``samples.jsonl``), keyed by problem; only problems
    of ``problems`` are kept (their reference solutions are what the teacher reads)."""
    file = run_file(path, "samples.jsonl", "candidates (an eval run)")
    known = {(b, p.id) for b, p in problems}
    pool: Pool = defaultdict(list)
    for s in RecordLog(file, Sample).read():
        if (s.bench, s.problem_id) in known:
            pool[(s.bench, s.problem_id)].append(s)
    if not pool:
        benches = ", ".join(sorted({b for b, _ in problems}))
        raise UserError(f"candidates: no sample in {file} belongs to the training problems (--bench {benches}); "
                        "sample them with `verireason eval` on the same benchmark")
    return dict(pool)


def pick_candidates(pool: Pool, keys: Sequence[tuple[str, str]], rng: random.Random,
                    balance: str = "alternate") -> list[Sample]:
    """One attempt per key, alternating the wanted label (correct, incorrect, …).

    ``alternate``: the wanted label where the key's problem has it, else any of its attempts, so a step's candidates
    are as balanced as its problems allow and all-wrong problems (STV's Hardest bin) still count. ``labels``: where
    the key's problem lacks the wanted label, an attempt with that label from another problem of ``pool``, so every
    step judges as many correct as incorrect attempts (as paper 1's code balances its verification data): a
    verifier that cannot yet judge then gains nothing, in expectation, by always answering the majority verdict.
    Ours, both: the paper's per-step candidate mix is unknown (§2.7)."""
    check_balance(balance)
    by_label = ({label: [s for key in sorted(pool) for s in pool[key] if s.correct == label] for label in (True, False)}
                if balance == "labels" else {True: [], False: []})
    out = []
    for k, key in enumerate(keys):
        label = k % 2 == 0
        want = [s for s in pool[key] if s.correct == label] or by_label[label]
        out.append(rng.choice(want or pool[key]))
    return out


def check_balance(balance: str) -> None:
    """A one-line error for an unknown ``candidates.balance``."""
    if balance not in CANDIDATE_BALANCE:
        raise UserError(f"unknown candidates.balance={balance!r}; valid: {', '.join(CANDIDATE_BALANCE)}")


def judged(sample: Sample, problem: Problem) -> Judged:
    return Judged(problem, sample.bench, sample.sample_index, sample.completion, sample.correct)


def held_out_candidates(pool: Pool, problems: dict[tuple[str, str], Problem], per_label: int = 1) -> list[Judged]:
    """A fixed verification set: up to ``per_label`` correct and ``per_label`` incorrect attempts per problem."""
    out = []
    for key, attempts in sorted(pool.items()):
        for label in (True, False):
            out += [judged(s, problems[key]) for s in [a for a in attempts if a.correct == label][:per_label]]
    return out


def sample_pool(learner: Learner, problems: Sequence[tuple[str, Problem]], prompt: PromptCfg, system: str | None,
                sampling: SamplingCfg, grader: Grader, seed: int) -> Pool:
    """``sampling.n`` graded attempts per problem from the current policy (this process's problems)."""
    texts = [chat_text(learner.tokenizer, solve_messages(p, prompt, system)) for _, p in problems]
    outputs = learner.generate(texts, sampling, seed)
    flat = [(b, p, t, k, c) for (b, p), t, cs in zip(problems, texts, outputs) for k, c in enumerate(cs)]
    grades = grader.grade_many([(c.text, p.answer) for _, p, _, _, c in flat])
    pool: Pool = defaultdict(list)
    for (b, p, t, k, c), g in zip(flat, grades):
        pool[(b, p.id)].append(graded_sample(b, p, t, k, c, g))
    return dict(pool)


# --- verifier rollouts (§2.3) -------------------------------------------------------------------------------------


def verification_rollouts(learner, judged: Sequence[Judged], prompt: PromptCfg, system: str | None,
                          sampling: SamplingCfg, seed: int, group_prefix: str = "stv",
                          min_words: int = MIN_FEEDBACK_WORDS) -> tuple[list[Rollout], dict]:
    """``sampling.n`` student verifications of each judged candidate (one GRPO group per candidate), as rollouts
    with teacher prompts and verdict-RL rewards, and their metrics over every process (``learner.gather``)."""
    tok = learner.tokenizer
    student = [chat_text(tok, verify_messages(j.problem, j.response, prompt, system)) for j in judged]
    teacher = [chat_text(tok, informed_verify_messages(j.problem, j.response, j.correct, prompt, system))
               for j in judged]
    outputs = learner.generate(student, sampling, seed)
    rollouts, outcomes = [], []
    for i, (j, s_text, t_text, completions) in enumerate(zip(judged, student, teacher, outputs)):
        s_ids = tuple(tok(s_text, add_special_tokens=False)["input_ids"])
        t_ids = tuple(tok(t_text, add_special_tokens=False)["input_ids"])
        for c in completions:
            claimed = parse_verdict(c.text, prompt.verdict)
            reward = verdict_rl_reward(claimed, j.correct, c.text, min_words)
            rollouts.append(Rollout("stv", f"{group_prefix}-{i}", s_text, c.text, s_ids, c.token_ids, reward,
                                    c.finish_reason, {"problem_id": j.problem.id, "truth": j.correct,
                                                      "claimed": claimed}, teacher_prompt_ids=t_ids,
                                    sample_logprobs=c.logprobs))
            outcomes.append(_outcome(tok, claimed, j.correct, c, reward, min_words))
    return rollouts, verifier_metrics(learner.gather(outcomes), "stv")


def _outcome(tok, claimed: bool | None, truth: bool, completion, reward: float, min_words: int) -> tuple:
    """What ``verifier_metrics`` needs of one verification."""
    return (claimed, truth, completion.tokens, reward, has_feedback(completion.text, min_words),
            len(tok(feedback_text(completion.text), add_special_tokens=False)["input_ids"]))


def verifier_metrics(outcomes: Sequence[tuple], prefix: str) -> dict[str, float]:
    """Per-step verifier metrics from (claimed, truth, tokens, reward, has feedback, feedback tokens) tuples."""
    confusion = verification_metrics([(o[0], o[1]) for o in outcomes])
    keep = ("verify_accuracy", "verify_balanced_accuracy", "tpr", "tnr", "precision", "unparseable", "verifications")
    return {f"{prefix}/reward": _mean([o[3] for o in outcomes]), f"{prefix}/feedback": _mean([o[4] for o in outcomes]),
            f"{prefix}/feedback_tokens": _mean([o[5] for o in outcomes]),
            f"{prefix}/tokens": _mean([o[2] for o in outcomes]),
            f"{prefix}/accept_rate": _mean([o[0] is True for o in outcomes]),
            **{f"{prefix}/{k}": confusion[k] for k in keep if k in confusion}}


@dataclass
class VerifierTraining:
    """One STV step (§2.3, §2.8): the step's candidates → the method's samples → one update of the verifier.

    ``pool`` holds candidates read from an eval run; None samples ``candidate_sampling.n`` attempts per problem with
    the policy each step. ``teacher_model`` is the frozen informed teacher for ``sft`` (None: the live policy)."""

    learner: Learner
    method: str
    problems: list[tuple[str, Problem]]
    prompt: PromptCfg
    system: str | None
    sampling: SamplingCfg  # n = verifications per candidate (a GRPO group)
    candidate_sampling: SamplingCfg  # n = attempts per problem when the policy samples them
    grader: Grader
    prompts_per_step: int  # candidates per step
    seed: int = 0
    pool: Pool | None = None
    teacher_model: object = None
    feedback_words: int = MIN_FEEDBACK_WORDS
    balance: str = "alternate"  # candidates.balance: how a step's candidates are balanced (pick_candidates)
    on_rollouts: Callable[[int, list[Rollout]], None] = lambda step, rollouts: None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise UserError(f"unknown method {self.method!r}; valid: {', '.join(METHODS)}")
        self.by_key = {(b, p.id): p for b, p in self.problems}

    def _seed(self, step: int) -> int:
        return self.seed * 7_919 + step * 104_729

    def candidates(self, step: int, timer: Timer) -> tuple[list[Judged], dict]:
        """This process's candidates for ``step`` and the share of them that is correct (over every process)."""
        rng = random.Random(self._seed(step))
        if self.pool is not None:
            problems = [(bench, self.by_key[(bench, pid)]) for bench, pid in sorted(self.pool)]
            keys = [(b, p.id) for b, p in step_problems(problems, step, self.prompts_per_step, self.seed)]
            chosen = self.learner.shard(pick_candidates(self.pool, keys, rng, self.balance))
        else:
            mine = self.learner.shard(step_problems(self.problems, step, self.prompts_per_step, self.seed))
            with timer.phase("gen_candidates"):
                pool = sample_pool(self.learner, mine, self.prompt, self.system, self.candidate_sampling, self.grader,
                                   self._seed(step) + 3)
            chosen = pick_candidates(pool, [(b, p.id) for b, p in mine], rng, self.balance)
        correct = self.learner.gather([s.correct for s in chosen])
        return [judged(s, self.by_key[(s.bench, s.problem_id)]) for s in chosen], {"candidates/correct": _mean(correct)}

    def step(self, step: int, timer: Timer) -> dict:
        cands, metrics = self.candidates(step, timer)
        if self.method == "sft":
            return {**metrics, **self._sft(cands, step, timer)}
        with timer.phase("gen"):
            rollouts, stats = verification_rollouts(self.learner, cands, self.prompt, self.system, self.sampling,
                                                    self._seed(step) + 1, min_words=self.feedback_words)
        self.on_rollouts(step, self.learner.gather(rollouts))
        with timer.phase("update"):
            update = self.learner.update(rollouts, seed=self._seed(step))
        return {**metrics, **stats, **{f"update/{k}": v for k, v in update.items()}}

    def _sft(self, cands: list[Judged], step: int, timer: Timer) -> dict:
        """STV's SFT baseline: the informed teacher verifies each candidate; its verifications whose verdict is
        right and that carry feedback become SFT targets under the student prompt (masked SFT, prompt untrained)."""
        tok = self.learner.tokenizer
        teacher = [chat_text(tok, informed_verify_messages(j.problem, j.response, j.correct, self.prompt, self.system))
                   for j in cands]
        with timer.phase("gen"):
            outputs = self.learner.generate(teacher, self.sampling, self._seed(step) + 1, model=self.teacher_model)
        examples, outcomes = [], []
        for j, completions in zip(cands, outputs):
            student = chat_text(tok, verify_messages(j.problem, j.response, self.prompt, self.system))
            student_ids = tok(student, add_special_tokens=False)["input_ids"]
            for c in completions:
                claimed = parse_verdict(c.text, self.prompt.verdict)
                reward = verdict_rl_reward(claimed, j.correct, c.text, self.feedback_words)
                outcomes.append(_outcome(tok, claimed, j.correct, c, reward, self.feedback_words))
                if reward:
                    examples.append((student_ids, c.token_ids))
        metrics = verifier_metrics(self.learner.gather(outcomes), "teacher")
        kept = self.learner.gather(examples)  # shared out again: under DDP every process must run a backward pass
        metrics["sft/kept"] = len(kept)
        world, rank = self.learner.accelerator.num_processes, self.learner.accelerator.process_index
        if len(kept) < world:
            return {**metrics, "sft/skipped": 1.0}
        examples = kept[rank::world]
        batches = [pack([p for p, _ in chunk], [c for _, c in chunk], [[True] * len(c) for _, c in chunk],
                        [0.0] * len(chunk), self.learner.pad_id)
                   for chunk in chunks(examples, self.learner.micro_batch_size)]
        with timer.phase("update"):
            update = self.learner.sft_update(batches)
        return {**metrics, **{f"update/{k}": v for k, v in update.items()}}

    def held_out(self, cands: Sequence[Judged], sampling: SamplingCfg, seed: int) -> dict[str, float]:
        """The student verifier on a fixed held-out candidate set (no update): ``heldout/*`` metrics."""
        mine = self.learner.shard(list(cands))
        _, stats = verification_rollouts(self.learner, mine, self.prompt, self.system, sampling, seed,
                                         min_words=self.feedback_words)
        return {k.replace("stv/", "heldout/", 1): v for k, v in stats.items() if not k.endswith("/reward")}


# --- verifier-in-the-loop RL of the generator (§2.4, §2.8) -----------------------------------------------------------


@dataclass(frozen=True)
class RefinePrompt:
    """A pre-built next-turn prompt of a V-R chain (§2.8): a rejected attempt and the verifier's feedback."""

    bench: str
    problem: Problem
    response: str
    feedback: str


def read_refine_prompts(path: str | Path, problems: Sequence[tuple[str, Problem]]) -> list[RefinePrompt]:
    """Every rejected round of a ``vr_loop`` eval run (its directory or ``chains.jsonl``) whose problem is among
    ``problems``, as the [problem, attempt, feedback] prompt of the refinement it led to."""
    file = run_file(path, "chains.jsonl", "vil.chains (an `eval --protocol vr_loop` run)")
    by_key = {(b, p.id): p for b, p in problems}
    out = []
    for chain in RecordLog(file, Chain).read():
        problem = by_key.get((chain.bench, chain.problem_id))
        for r in chain.rounds if problem is not None else []:
            if r.verified and r.verdict is not True:
                out.append(RefinePrompt(chain.bench, problem, r.response, feedback_of(r.verification)))
    if not out:
        raise UserError(f"vil.chains: {file} has no rejected round of the training problems; run the V-R eval on "
                        "the same --bench")
    return out


@dataclass
class VerifierInTheLoop:
    """One ViL step (§2.4): GRPO on the generator (the policy) inside V-R episodes with a frozen verifier."""

    learner: Learner
    verifier: Generator | None  # the frozen verifier's engine (online mode)
    mode: str
    problems: list[tuple[str, Problem]]
    prompt: PromptCfg
    systems: tuple[str | None, str | None]  # generator's, verifier's system prompt
    sampling: SamplingCfg  # n = episodes (online) or refinements (prompts) per problem: a GRPO group
    verify_sampling: SamplingCfg
    rounds: int  # verify-refine rounds per training episode
    grader: Grader
    prompts_per_step: int
    seed: int = 0
    reward: str = "final"  # final: the last attempt's correctness; every_round: each turn's own correctness
    stop_at_verdict: bool = False
    refine_prompts: list[RefinePrompt] | None = None  # prompts mode
    on_rollouts: Callable[[int, list[Rollout]], None] = lambda step, rollouts: None

    def __post_init__(self) -> None:
        if self.mode not in VIL_MODES:
            raise UserError(f"unknown vil.mode={self.mode!r}; valid: {', '.join(VIL_MODES)}")
        if self.reward not in VIL_REWARDS:
            raise UserError(f"unknown vil.reward={self.reward!r}; valid: {', '.join(VIL_REWARDS)}")

    def _seed(self, step: int) -> int:
        return self.seed * 7_919 + step * 104_729

    def step(self, step: int, timer: Timer) -> dict:
        with timer.phase("gen"):
            rollouts, metrics = (self._online if self.mode == "online" else self._prompts)(step)
        self.on_rollouts(step, self.learner.gather(rollouts))
        with timer.phase("update"):
            update = self.learner.update(rollouts, seed=self._seed(step))
        return {**metrics, **{f"update/{k}": v for k, v in update.items()}}

    def _online(self, step: int) -> tuple[list[Rollout], dict]:
        """A group of V-R episodes per problem; every generator turn is a rollout carrying its episode's advantage."""
        mine = self.learner.shard(step_problems(self.problems, step, self.prompts_per_step, self.seed))
        turns: list[tuple[int, str, object]] = []
        with self.learner.engine() as generator:
            chains = run_vr_chains(generator, self.verifier, mine, self.prompt, self.systems, self.sampling,
                                   self.verify_sampling, self.rounds, self.sampling.n, self.grader, self._seed(step),
                                   self.stop_at_verdict, on_turn=lambda i, text, c: turns.append((i, text, c)))
        episode = [float(c.rounds[-1].correct) for c in chains]
        groups = [f"{step}:{i // self.sampling.n}:{c.problem_id}" for i, c in enumerate(chains)]
        advantage = group_advantages(episode, groups, self.learner.advantage).tolist()
        tok, ids, seen = self.learner.tokenizer, {}, defaultdict(int)
        rollouts = []
        for i, text, c in turns:
            r = seen[i]
            seen[i] += 1
            ids.setdefault(text, tuple(tok(text, add_special_tokens=False)["input_ids"]))
            correct = chains[i].rounds[r].correct
            if self.reward == "final":
                reward, credit = episode[i], (advantage[i],) * len(c.token_ids)
            else:
                reward, credit = float(correct), None
            rollouts.append(Rollout("vil", groups[i], text, c.text, ids[text], c.token_ids, reward, c.finish_reason,
                                    {"problem_id": chains[i].problem_id, "round": r, "correct": correct},
                                    token_advantages=credit, sample_logprobs=c.logprobs))
        everything = self.learner.gather(chains)
        metrics = {f"vil/{k}": v for k, v in vr_metrics(everything, self.rounds).items()
                   if k in ("round0_pass@1", "final_pass@1", "tokens_per_chain") or k.endswith(("/accept", "/inflation"))}
        metrics["vil/turns"] = _mean([len(c.rounds) for c in everything])
        metrics["vil/reward"] = _mean(self.learner.gather([r.reward for r in rollouts]))
        return rollouts, metrics

    def _prompts(self, step: int) -> tuple[list[Rollout], dict]:
        """``sampling.n`` refinements of each of the step's pre-built [problem, attempt, feedback] prompts."""
        pool = [(p.bench, p) for p in self.refine_prompts]
        mine = self.learner.shard(list(enumerate(step_problems(pool, step, self.prompts_per_step, self.seed))))
        tok = self.learner.tokenizer
        texts = [chat_text(tok, refine_messages(rp.problem, rp.response, rp.feedback, self.prompt, self.systems[0]))
                 for _, (_, rp) in mine]
        outputs = self.learner.generate(texts, self.sampling, self._seed(step))
        ids = [tuple(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]
        flat = [(slot, rp, t, i, c) for (slot, (_, rp)), t, i, cs in zip(mine, texts, ids, outputs) for c in cs]
        grades = self.grader.grade_many([(c.text, rp.problem.answer) for _, rp, _, _, c in flat])
        rollouts = [Rollout("vil", f"{step}:{slot}", t, c.text, i, c.token_ids, float(g.correct), c.finish_reason,
                            {"problem_id": rp.problem.id, "correct": g.correct}, sample_logprobs=c.logprobs)
                    for (slot, rp, t, i, c), g in zip(flat, grades)]
        rewards = self.learner.gather([r.reward for r in rollouts])
        return rollouts, {"vil/reward": _mean(rewards), "vil/refine_accuracy": _mean(rewards),
                          "vil/tokens": _mean(self.learner.gather([len(r.completion_ids) for r in rollouts]))}


def vr_evaluation(learner: Learner, verifier: Generator, problems: Sequence[tuple[str, Problem]], prompt: PromptCfg,
                  systems: tuple[str | None, str | None], sampling: SamplingCfg, verify_sampling: SamplingCfg,
                  rounds: int, chains: int, grader: Grader, seed: int, stop_at_verdict: bool) -> dict[str, float]:
    """Held-out V-R loops of the live generator with the frozen verifier: round-0 (standalone) and final pass@1,
    accept rate and inflation per benchmark (``eval/<bench>/...``)."""
    mine = problems[learner.accelerator.process_index :: learner.accelerator.num_processes]
    with learner.engine() as generator:
        out = run_vr_chains(generator, verifier, mine, prompt, systems, sampling, verify_sampling, rounds, chains,
                            grader, seed, stop_at_verdict) if mine else []
    everything = learner.gather(out)
    metrics = {}
    for bench in dict.fromkeys(c.bench for c in everything):
        row = vr_metrics([c for c in everything if c.bench == bench], rounds)
        for key in ("round0_pass@1", "final_pass@1", f"round{rounds}/accept", f"round{rounds}/inflation",
                    f"round{rounds}/precision"):
            metrics[f"eval/{bench}/{key.replace(f'round{rounds}/', 'final_')}"] = row[key]
    return metrics


def with_verdict_stops(sampling: SamplingCfg, prompt: PromptCfg, on: bool) -> SamplingCfg:
    """``sampling`` that ends each verification at its verdict when ``on`` (``verify.stop_at_verdict``)."""
    return replace(sampling, stop_after=[*sampling.stop_after, *VERDICT_STOPS[prompt.verdict]]) if on else sampling
