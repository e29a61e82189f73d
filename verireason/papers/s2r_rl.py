"""Paper 3, S²R's online RL (papers.md §3.5, corrected by the official code in §3.8): outcome-level (ORL) and
process-level (PRL) rewards over a response's actions, as rollouts for the one update path.

A response is split into actions as the code splits it (``papers.s2r_actions``): "Wait," opens a verify action,
"Let me try again.\n\n" a solve action, with PRL's merge of repeated delimiters and its empty actions; the EOS
token is never a label. Then:

* ORL (``orl_advantages``): reward ±1 for the last attempt's answer, the RLOO baseline over the 4 samples of a
  prompt, ``kl_coef · Σ_t (log π_old − log π_ref)`` subtracted from it, zero-advantage samples weigh nothing; the
  whole response is one part, so the PPO ratio is taken from its mean log-ratio.
* PRL (``prl_advantages``): per-action rewards (solve ±1; verify +1 when its verdict matches the truth of the
  attempt before it), the running ``PrefixBaseline`` keyed by reward history, bonuses after the baseline, the
  truncation rule (a flat −1), and each part's advantage minus ``kl_coef`` × its own summed KL; all delimiter
  tokens of a response form one part (``delimiter_parts=pooled``); the loss is averaged over each sequence's
  parts, then over sequences (``algo.loss_agg=seq_part_mean``).

``S2RTraining.step`` is one RL step of either; ``held_out`` is the §3.6 greedy evaluation with the Fig. 3 rates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import torch

from verireason.advantages import group_advantages
from verireason.config import PromptCfg, SamplingCfg
from verireason.data import step_problems
from verireason.grading import Grader
from verireason.metrics import transition_rates, verification_metrics
from verireason.papers.s2r import PrefixBaseline, history_keys
from verireason.papers.s2r_actions import Action, Scored, delimiter_ids, score_actions, split_actions
from verireason.prompts import chat_text, solve_messages
from verireason.records import Problem, Rollout
from verireason.trainer import Learner, Timer

LEVELS = ("orl", "prl")
DELIMITER_PARTS = ("pooled", "each")


# --- advantages -------------------------------------------------------------------------------------------------


def orl_advantages(rewards: Sequence[float], groups: Sequence, kl_sums: Sequence[float], kl_coef: float) -> list[float]:
    """ORL (§3.5, §3.8): the RLOO advantage of the last attempt's ±1 reward minus ``kl_coef`` × the sample's summed
    KL to the reference; a sample whose RLOO advantage is 0 gets 0 (no KL term either)."""
    base = group_advantages([max(-10.0, min(10.0, r)) for r in rewards], groups, "rloo").tolist()
    return [0.0 if b == 0 else b - kl_coef * k for b, k in zip(base, kl_sums)]


def action_rewards(scored: Scored) -> list[tuple[str, float] | None]:
    """Raw PRL reward per action (None for a delimiter): solve ±1; verify +1 when its verdict equals the truth of
    the attempt before it, else −1. Empty actions get theirs too (the code grades "" as a wrong attempt)."""
    out: list[tuple[str, float] | None] = []
    for k, a in enumerate(scored.actions):
        if a.kind == "delimiter":
            out.append(None)
        elif a.kind == "solve":
            out.append(("solve", 1.0 if scored.correct[k] else -1.0))
        else:
            verdict = scored.verdicts.get(k)
            out.append(("verify", 1.0 if verdict is not None and verdict[0] == verdict[1] else -1.0))
    return out


def bonus(scored: Scored, k: int, verify_bonus: bool, flip_bonus: bool) -> float:
    """The code's bonuses, applied to the advantage after the baseline (§3.8): ×2 for a verify action whose attempt
    was correct (``use_veri_bonus``), ×2 for a solve action whose correctness differs from the previous attempt's
    (``use_bonus``)."""
    a = scored.actions[k]
    if a.kind == "verify" and verify_bonus and k in scored.verdicts and scored.verdicts[k][1]:
        return 2.0
    if a.kind == "solve" and flip_bonus:
        before = [scored.correct[j] for j in sorted(scored.correct) if j < k]
        if before and before[-1] != scored.correct[k]:
            return 2.0
    return 1.0


def prl_advantages(scored: Sequence[Scored], kl_parts: Sequence[Sequence[float]], baseline: PrefixBaseline,
                   kl_coef: float, gather: Callable[[list], list] = lambda items: items, *,
                   verify_bonus: bool = True, flip_bonus: bool = True,
                   truncation_penalty: bool = True) -> list[list[float]]:
    """PRL's advantage per action of each response (§3.5, §3.8, §3.9): ``(r − b(h)) × bonus − kl_coef · KL_part``,
    b read from the statistics before this batch (then every process's actions update them with their **raw**
    rewards, through ``gather``). The last piece of a response cut off without EOS, after at least one delimiter,
    gets a flat −1 instead of ``(r − b) × bonus`` (``truncation_penalty``). A delimiter has no reward and keeps only
    its KL term (``kl_parts[i][k]``: the KL of the part action k's tokens are trained in)."""
    rewards = [action_rewards(s) for s in scored]
    batch = []
    for per in rewards:
        real = [r for r in per if r is not None]
        batch += list(zip(history_keys(real), (r for _, r in real)))
    centred = iter(baseline.advantages(batch, gather))
    out = []
    for s, per, kl in zip(scored, rewards, kl_parts):
        cut = s.truncated_last if truncation_penalty else None
        row = []
        for k, r in enumerate(per):
            a = 0.0 if r is None else next(centred) * bonus(s, k, verify_bonus, flip_bonus)
            row.append((-1.0 if k == cut else a) - kl_coef * kl[k])
        out.append(row)
    return out


# --- the training step ------------------------------------------------------------------------------------------


def part_tokens(actions: Sequence[Action], length: int, pooled: bool = True) -> tuple[tuple[int, ...], tuple[bool, ...]]:
    """Per-token part index (-1 outside every trained action, e.g. the EOS or a trailing PRL delimiter) and trained
    flags for a response of ``length`` tokens. ``pooled``: every delimiter token of the response is in one part
    (the code's part 0: one ratio and one KL sum for all of them); else each delimiter is its own part (ours)."""
    parts = [-1] * length
    first_delimiter = next((k for k, a in enumerate(actions) if a.kind == "delimiter"), None)
    for k, a in enumerate(actions):
        if a.trained:
            part = first_delimiter if pooled and a.kind == "delimiter" else k
            parts[a.start : a.end] = [part] * (a.end - a.start)
    return tuple(parts), tuple(p >= 0 for p in parts)


def part_kl(delta: torch.Tensor, parts: Sequence[int], actions: Sequence[Action]) -> list[float]:
    """Per action, the summed ``delta`` (log π_old − log π_ref) over the tokens of the part it is trained in (a
    pooled delimiter carries the whole pool's sum; an untrained action 0)."""
    if not parts:
        return [0.0] * len(actions)
    index = torch.tensor(parts, dtype=torch.long)
    kept = index >= 0
    sums = torch.zeros(int(index.max().clamp(min=0)) + 1, dtype=torch.float64)
    sums = sums.index_add(0, index[kept], delta[: len(parts)][kept].double()).tolist()  # one sum per part
    return [sums[parts[a.start]] if a.trained and a.end > a.start and parts[a.start] >= 0 else 0.0 for a in actions]


def response_metrics(scored: Sequence[Scored], prefix: str) -> dict[str, float]:
    """Fig. 3's rates and the per-response counts over every response of a step (or of an evaluation)."""
    pairs = [v for s in scored for v in s.verdicts.values()]
    rates = transition_rates([s.attempts for s in scored])
    confusion = verification_metrics(pairs) if pairs else {}
    out = {f"{prefix}/accuracy": _mean([s.last_correct for s in scored]),
           f"{prefix}/attempts": rates["mean_attempts"],
           f"{prefix}/incorrect_to_correct": rates["incorrect_to_correct"],
           f"{prefix}/correct_to_incorrect": rates["correct_to_incorrect"],
           f"{prefix}/truncated": _mean([not s.finished for s in scored])}
    if confusion:  # error recall = TNR (wrong attempts judged wrong); correct precision = precision of "correct"
        out.update({f"{prefix}/verify_accuracy": confusion["verify_accuracy"],
                    f"{prefix}/error_recall": confusion["tnr"], f"{prefix}/correct_precision": confusion["precision"]})
    return out


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


@dataclass
class S2RTraining:
    """One S²R RL step (§3.5): ``sampling.n`` responses per prompt from the policy → actions → ORL or PRL
    advantages (with the KL to the reference model folded in) → one update with a per-part PPO ratio."""

    learner: Learner
    level: str  # orl | prl
    problems: list[tuple[str, Problem]]
    prompt: PromptCfg
    system: str | None
    sampling: SamplingCfg  # n = samples per prompt (4)
    grader: Grader
    prompts_per_step: int
    kl_coef: float
    seed: int = 0
    verify_bonus: bool = True
    flip_bonus: bool = True
    truncation_penalty: bool = True
    verdict: str = "code"  # s2r_actions.VERDICT_RULES
    delimiter_parts: str = "pooled"  # pooled (the code's) | each
    delimiter_tokens: str = "alone"  # s2r_actions.DELIMITER_TOKENS
    baseline: PrefixBaseline = field(default_factory=PrefixBaseline)
    on_rollouts: Callable[[int, list[Rollout]], None] = lambda step, rollouts: None

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"unknown level {self.level!r}; valid: {', '.join(LEVELS)}")
        if self.delimiter_parts not in DELIMITER_PARTS:
            raise ValueError(f"unknown delimiter_parts {self.delimiter_parts!r}; valid: {', '.join(DELIMITER_PARTS)}")
        self.delimiters = delimiter_ids(self.learner.tokenizer, self.delimiter_tokens)

    def _seed(self, step: int) -> int:
        return self.seed * 7_919 + step * 104_729

    def responses(self, problems: Sequence[tuple[str, Problem]], sampling: SamplingCfg,
                  seed: int) -> list[tuple[str, Problem, str, tuple[int, ...], object, Scored]]:
        """(group, problem, prompt text, prompt ids, completion, scored actions) per response of this process's
        problems; every solve action graded in one grader call."""
        tok = self.learner.tokenizer
        texts = [chat_text(tok, solve_messages(p, self.prompt, self.system)) for _, p in problems]
        outputs = self.learner.generate(texts, sampling, seed)
        rows = []
        for (bench, p), text, completions in zip(problems, texts, outputs):
            ids = tuple(tok(text, add_special_tokens=False)["input_ids"])
            rows += [(f"{bench}/{p.id}", p, text, ids, c,
                      split_actions(c.token_ids, *self.delimiters, tok.eos_token_id, merge=self.level == "prl"))
                     for c in completions]
        attempts = [(tok.decode(c.token_ids[a.start : a.end]), p.answer)
                    for _, p, _, _, c, actions in rows for a in actions if a.kind == "solve"]
        grades = iter(g.correct for g in self.grader.grade_many(attempts))
        out = []
        for group, p, text, ids, c, actions in rows:
            solved = [next(grades) for a in actions if a.kind == "solve"]
            out.append((group, p, text, ids, c,
                        score_actions(c.token_ids, actions, tok.decode, solved, c.finish_reason == "stop",
                                      self.verdict)))
        return out

    def step(self, step: int, timer: Timer) -> dict:
        mine = self.learner.shard(step_problems(self.problems, step, self.prompts_per_step, self.seed))
        with timer.phase("gen"):
            rows = self.responses(mine, self.sampling, self._seed(step))
        rollouts = [self._rollout(*row) for row in rows]
        with timer.phase("logprobs"):
            old = self.learner.logprobs(rollouts)
            ref = self.learner.logprobs(rollouts, reference=True) if self.kl_coef else [torch.zeros_like(o) for o in old]
        delta = [o - r for o, r in zip(old, ref)]  # log π_old − log π_ref per token
        rollouts = self._with_advantages(rollouts, [s for *_, s in rows], delta)
        self.on_rollouts(step, self.learner.gather(rollouts))
        with timer.phase("update"):
            update = self.learner.update(rollouts, seed=self._seed(step), old=old)
        metrics = response_metrics(self.learner.gather([s for *_, s in rows]), "s2r")
        kl = self.learner.gather([float(d.sum()) for d in delta])
        metrics.update({"s2r/reward": _mean(self.learner.gather([r.reward for r in rollouts])),
                        "s2r/tokens": _mean(self.learner.gather([len(r.completion_ids) for r in rollouts])),
                        "s2r/kl": _mean(kl)})
        return {**metrics, **{f"update/{k}": v for k, v in update.items()}}

    def _rollout(self, group: str, p: Problem, text: str, ids: tuple[int, ...], c, s: Scored) -> Rollout:
        """A response as a rollout: reward ±1 for its last attempt; trained on every trained action's tokens (never
        the EOS); parts: one per action with the delimiters pooled (PRL) or one for the whole response (ORL)."""
        parts, trained = part_tokens(s.actions, len(c.token_ids), pooled=self.delimiter_parts == "pooled")
        if self.level == "orl":
            parts = tuple(0 if f else -1 for f in trained)
        return Rollout("s2r", group, text, c.text, ids, c.token_ids, 1.0 if s.last_correct else -1.0, c.finish_reason,
                       {"problem_id": p.id, "attempts": s.attempts, "verdicts": [v for v, _ in s.verdicts.values()]},
                       trained=trained, parts=parts, sample_logprobs=c.logprobs)

    def _with_advantages(self, rollouts: list[Rollout], scored: list[Scored], delta: list[torch.Tensor]) -> list[Rollout]:
        """Each rollout with its per-token advantages: one value per response (ORL) or per action (PRL); ``delta``
        is each response's log π_old − log π_ref per token."""
        if self.level == "orl":
            sums = [float(d[torch.tensor(r.trained)].sum()) if r.trained_tokens else 0.0 for d, r in zip(delta, rollouts)]
            adv = orl_advantages([r.reward for r in rollouts], [r.group for r in rollouts], sums, self.kl_coef)
            return [replace(r, token_advantages=(a,) * len(r.completion_ids)) for r, a in zip(rollouts, adv)]
        kl_parts = [part_kl(d, r.parts, s.actions) for d, r, s in zip(delta, rollouts, scored)]
        adv = prl_advantages(scored, kl_parts, self.baseline, self.kl_coef, self.learner.gather,
                             verify_bonus=self.verify_bonus, flip_bonus=self.flip_bonus,
                             truncation_penalty=self.truncation_penalty)
        out = []
        for r, s, per in zip(rollouts, scored, adv):
            tokens = [0.0] * len(r.completion_ids)
            for a, value in zip(s.actions, per):
                tokens[a.start : a.end] = [value] * (a.end - a.start)
            out.append(replace(r, token_advantages=tuple(tokens)))
        return out

    def held_out(self, problems: Sequence[tuple[str, Problem]], sampling: SamplingCfg, seed: int) -> dict[str, float]:
        """§3.6's evaluation on held-out problems (greedy pass@1 of the last answer) with Fig. 3's rates."""
        rank, world = self.learner.accelerator.process_index, self.learner.accelerator.num_processes
        rows = self.responses(list(problems)[rank::world], replace(sampling, n=1), seed)
        return response_metrics(self.learner.gather([s for *_, s in rows]), "heldout")

    def state(self) -> dict:
        return {"prefix_baseline": self.baseline.state()}

    def load_state(self, state: dict) -> None:
        if "prefix_baseline" in state:
            self.baseline.load_state(state["prefix_baseline"])
