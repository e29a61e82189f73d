"""The training engine: a ``Learner`` (policy, optimizer, rollout engine, one ``update``).

* ``Learner.update(rollouts)``: group advantages (or the rollouts' own per-token advantages) → mini-batches →
  clipped policy-gradient loss, its ratio per token or, with ``loss_agg=part_mean``, per action from the action's
  mean log-ratio (S²R, papers.md §3.5) (plus, with a ``Distill``, a JSD term to a teacher on the same tokens,
  papers.md §2.3) → AdamW step, with gradient accumulation over micro-batches (papers.md §1.5, §1.7).
* ``sft_update``: masked supervised updates with an optional KL to the initial model (papers.md §3.4).

The loops that drive it are in ``verireason.loops``.

Distribution goes through ``accelerate``: the same code runs on one CPU, one GPU, or many GPUs/nodes under
``torchrun`` or ``accelerate launch`` (DDP; the suite's own FSDP2 with ``sharding="fsdp2"``, ``sharding.py``;
DeepSpeed ZeRO-3, unverified; configs in ``conf/accelerate/``). LoRA policies come from ``adapters.py``. Each
process samples and trains on its share of the prompts; graded results are gathered so every process builds the
same verification set. Rollouts (``rollouts.Rollouts``, the Learner's sampling side) come from the live policy
through ``HFGenerator.from_model``, or from a colocated vLLM engine (``colocate.ColocatedVLLM``) into which the
trainer pushes its weights after every optimizer step, before the next rollout. Either engine records each sampled
token's log-prob; the update logs how far the trainer's own log-probs of the same tokens are from them
(``logprob_diff``) and can weight each token by the truncated importance ratio (``tis_cap``).
"""

from __future__ import annotations

import copy
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from functools import partial
from dataclasses import dataclass
from pathlib import Path

import torch

from verireason.adapters import AdaptersOff, trainable_parameters
from verireason.advantages import group_advantages
from verireason.checkpoint import load_training_state, save_checkpoint
from verireason.collate import TrainBatch, pack, rollouts_to_batch
from verireason.losses import (
    DIVERGENCES,
    PART_AGGS,
    aggregate,
    forward_logits,
    generalized_jsd,
    logprob_mismatch,
    part_pg_loss,
    pg_loss,
    sampled_reverse_kl,
    sft_loss,
    tis_weights,
    token_entropy,
    token_logprobs,
)
from verireason.records import Rollout
from verireason.rollouts import Rollouts
from verireason.sharding import SHARDINGS, grad_norm_value, lockstep, shard_model


class Timer:
    """Seconds per named phase, accumulated until ``pop``."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start

    def pop(self) -> dict[str, float]:
        out = {f"time/{k}": round(v, 3) for k, v in self.seconds.items()}
        self.seconds.clear()
        return out


def build_accelerator(device: str = "auto"):
    """An ``Accelerator``; on a machine without CUDA (or with device=cpu) it runs on CPU (gloo when distributed)."""
    from accelerate import Accelerator

    return Accelerator(cpu=device == "cpu" or (device == "auto" and not torch.cuda.is_available()))


LOGPROB_TEMPERATURES = ("sampling", "raw")
LR_STEPS = ("update", "optimizer")


def warmup_factor(step: int, warmup: int) -> float:
    """The LR multiplier at scheduler step ``step``: ``step / warmup`` during warmup (0 at the first), then 1."""
    return step / warmup if step < warmup else 1.0


def chunks(items: Sequence, size: int) -> list:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _split(items: list, parts: int) -> list[list]:
    """``items`` in ``parts`` contiguous, nearly equal pieces."""
    bounds = [round(i * len(items) / parts) for i in range(parts + 1)]
    return [items[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]


def _pad_left(rows: Sequence[torch.Tensor], width: int) -> torch.Tensor:
    """Per-rollout 1-D tensors left-padded with zeros to ``width``: [B, width]."""
    return torch.stack([torch.cat([torch.zeros(width - len(r)), r]) for r in rows])


def _moves(rollout: Rollout, advantage: float) -> bool:
    """Whether a rollout can contribute any gradient to the policy-gradient loss (a non-zero advantage somewhere on
    a trained token)."""
    if rollout.token_advantages is None:
        return advantage != 0 and rollout.trained_tokens > 0
    flags = rollout.trained or (True,) * len(rollout.completion_ids)
    return any(a != 0 and f for a, f in zip(rollout.token_advantages, flags))


@dataclass
class Distill:
    """A distillation term in the policy update (STV's on-policy distillation, papers.md §2.3, §2.9): the loss
    becomes ``pg_coef · L_PG + coef · L_JSD``, with L_JSD the generalized JSD between the policy (student) and
    ``teacher`` on the rollouts' own completion tokens, the teacher reading each rollout's ``teacher_prompt_ids``.

    ``teacher`` is a frozen model (no gradient; e.g. the initial weights) or ``"live"``: the current policy itself,
    under no_grad. ``beta``, ``top_k``, ``chunk`` are those of ``losses.generalized_jsd``. With
    ``divergence="sampled_reverse_kl"`` the term is ``losses.sampled_reverse_kl`` on the sampled tokens instead (a
    different objective, logged as ``sampled_rkl``, never as ``jsd``)."""

    teacher: object
    coef: float = 1.0
    pg_coef: float = 1.0
    beta: float = 0.5
    top_k: int | None = None
    chunk: int | None = 1024
    divergence: str = "jsd"  # or "sampled_reverse_kl": the sampled-token reverse-KL estimator, not a JSD

    def __post_init__(self) -> None:
        if self.divergence not in DIVERGENCES:
            raise ValueError(f"unknown divergence {self.divergence!r}; valid: {', '.join(DIVERGENCES)}")


class Learner(Rollouts):
    """The policy being trained, its optimizer and LR schedule, and its rollout engine: ``HFGenerator`` over the
    live policy (``rollout_engine=None``) or a ``ColocatedVLLM`` kept in step by weight pushes.

    ``tis_cap``: weight each token's policy-gradient term by min(π_train / π_sample, tis_cap) (truncated
    importance sampling; None: off). ``logprob_diff_threshold``: the nats past which a token counts in
    ``logprob_diff_frac``."""

    def __init__(self, accelerator, model, tokenizer, *, ref_model=None, lr: float, weight_decay: float,
                 warmup_steps: int, grad_clip: float, micro_batch_size: int, advantage: str = "grpo",
                 clip_low: float = 0.2, clip_high: float = 0.28, dual_clip: float | None = None,
                 loss_agg: str = "token_mean", kl_coef: float = 0.0, epochs: int = 1, mini_batches: int = 1,
                 mini_batch_prompts: int | None = None, tis_cap: float | None = None,
                 logprob_diff_threshold: float = 0.1, logprob_temperature: str = "sampling",
                 sampling_temperature: float = 1.0, kl_clamp: float | None = None, lr_step: str = "optimizer",
                 micro_batch_tokens: int | None = None, mixed_precision: str = "no", sharding: str = "none",
                 gen_batch_size: int = 64, max_context: int = 4096, distill: Distill | None = None,
                 rollout_engine=None):
        self.accelerator = accelerator
        self.tokenizer = tokenizer
        self.ref_model = ref_model.to(accelerator.device).train(False) if ref_model is not None else None
        self.distill = distill
        if distill is not None and distill.teacher != "live":
            distill.teacher = distill.teacher.to(accelerator.device).train(False).requires_grad_(False)
        self.hyper = dict(clip_low=clip_low, clip_high=clip_high, dual_clip=dual_clip, agg=loss_agg, kl_coef=kl_coef,
                          kl_clamp=kl_clamp)
        self.advantage, self.epochs, self.mini_batches = advantage, epochs, mini_batches
        self.mini_batch_prompts = mini_batch_prompts
        if logprob_temperature not in LOGPROB_TEMPERATURES:
            raise ValueError(f"unknown logprob_temperature {logprob_temperature!r}; valid: {', '.join(LOGPROB_TEMPERATURES)}")
        if lr_step not in LR_STEPS:
            raise ValueError(f"unknown lr_step {lr_step!r}; valid: {', '.join(LR_STEPS)}")
        # the divisor of the logits for every log-prob the trainer computes (and the engines record)
        self.temperature = sampling_temperature if logprob_temperature == "sampling" and sampling_temperature > 0 else 1.0
        self.lr_step = lr_step
        self.last_lr = lr
        self.micro_batch_size, self.grad_clip = micro_batch_size, grad_clip
        self.micro_batch_tokens = micro_batch_tokens
        from verireason.precision import mixed_precision as resolve

        # bf16 autocast around every forward pass, fp32 master weights and optimizer state (precision.py). Applied
        # here rather than through accelerate's mixed_precision, whose state is one per process and refuses a
        # second setting (a notebook or test suite running several commands); for bf16 it is the same autocast.
        self.bf16 = resolve(mixed_precision, accelerator.device.type) == "bf16"
        self.warmup_steps = warmup_steps
        if sharding not in SHARDINGS:
            raise ValueError(f"unknown sharding {sharding!r}; valid: {', '.join(SHARDINGS)}")
        self.sharded = sharding == "fsdp2"
        # FSDP2 (sharding.py): generation and the frozen LoRA base read an unsharded replica of the policy
        self.replica = copy.deepcopy(model).train(False).requires_grad_(False) if self.sharded else None
        self.replica_stale = False
        if self.sharded and isinstance(self.ref_model, AdaptersOff):  # the base weights never change: no collective
            self.ref_model.policy = self.replica
        if self.sharded:
            model = shard_model(model, accelerator.device.type)
        # all parameters in full fine-tuning, the adapters' under LoRA (adapters.py)
        optimizer = torch.optim.AdamW(trainable_parameters(model), lr=lr, weight_decay=weight_decay)
        # FSDP2 is not wrapped again; the scheduler is not passed through prepare() (stepped once per process)
        self.model, self.optimizer = (model, optimizer) if self.sharded else accelerator.prepare(model, optimizer)
        self.scheduler = self._new_scheduler()
        self.gen_batch_size, self.max_context = gen_batch_size, max_context
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.skip_zero_advantage = accelerator.num_processes == 1  # see _optimizer_step
        self.tis_cap, self.diff_threshold = tis_cap, logprob_diff_threshold
        self.rollout_engine = rollout_engine
        self.engine_stale = True  # the engine's weights differ from the policy's (pushed before the next rollout)
        self.push_seconds = 0.0  # spent pushing weights into the engine, all pushes so far

    def _new_scheduler(self):
        """Linear warmup from 0 to the full rate over ``warmup_steps`` scheduler steps, then constant (verl's
        ``get_constant_schedule_with_warmup``; HF's warmup likewise starts at 0). The scheduler steps once per
        ``update`` call (``lr_step=update``, verl) or once per optimizer step (``optimizer``)."""
        return torch.optim.lr_scheduler.LambdaLR(self.optimizer, partial(warmup_factor, warmup=self.warmup_steps))

    def restart_optimizer(self) -> None:
        """A fresh AdamW state and warmup, as when a new training stage starts from a checkpoint (verify-init)."""
        self.optimizer.state.clear()
        self.scheduler = self._new_scheduler()

    # --- updates ------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def _logprobs(self, model, rollouts: Sequence[Rollout]) -> list[torch.Tensor]:
        """Per-rollout completion log-probs under ``model`` (no gradient), for PPO's old policy or the reference."""
        rollouts = list(rollouts)
        out: list[torch.Tensor | None] = [None] * len(rollouts)
        plans = self.micro_plan(rollouts, range(len(rollouts)))
        real = self._lockstep(plans, [0])
        for k, plan in enumerate(plans):
            chunk = [rollouts[i] for i in plan]
            batch = rollouts_to_batch(chunk, [0.0] * len(chunk), self.pad_id).to(self.accelerator.device)
            with self.autocast():  # the frozen copies compute as the policy does
                logp = token_logprobs(self._logits(model, batch), batch.targets).float().cpu()
            if k >= real:  # a lockstep filler: its forward only keeps the processes in step
                continue
            for i, row, r in zip(plan, logp, chunk):
                out[i] = row[len(row) - len(r.completion_ids):]
        return out

    def _lockstep(self, plan: list[list[int]], filler: list[int]) -> int:
        """Under FSDP2, pad ``plan`` in place with ``filler`` micro-batches up to the largest count over the
        processes (sharded forwards are collectives); returns how many of them are real."""
        real = len(plan)
        if self.sharded:
            plan.extend([filler] * (lockstep(real, self.accelerator.device) - real))
        return real

    def autocast(self):
        """bf16 autocast on the training device when mixed precision is on; else nothing."""
        return torch.autocast(self.accelerator.device.type, dtype=torch.bfloat16) if self.bf16 else nullcontext()

    def _logits(self, model, batch: TrainBatch) -> torch.Tensor:
        """``model``'s logits [B, C, V] of the batch's completion positions, divided by ``temperature`` (the
        distribution the log-probs are of: the sampling one, or the raw logits when it is 1)."""
        logits = forward_logits(model, batch)
        return logits / self.temperature if self.temperature != 1.0 else logits

    def logprobs(self, rollouts: Sequence[Rollout], reference: bool = False) -> list[torch.Tensor]:
        """Per-rollout completion log-probs [len(completion_ids)] under the current policy (or the frozen
        reference), without gradient: PPO's old policy, or the KL terms S²R folds into its advantages."""
        return self._logprobs(self.ref_model if reference else self.model, rollouts)

    def update(self, rollouts: Sequence[Rollout], seed: int = 0, old: list[torch.Tensor] | None = None) -> dict[str, float]:
        """One policy update on this process's rollouts: ``epochs`` × ``mini_batches`` optimizer steps. ``old``:
        the rollouts' log-probs under the sampling policy, when the caller already has them (``logprobs``)."""
        rollouts = list(rollouts)
        adv = group_advantages([r.reward for r in rollouts], [r.group for r in rollouts], self.advantage).tolist()
        if old is None and (self.epochs > 1 or len(self._mini_batches(rollouts, None)) > 1):
            old = self._logprobs(self.model, rollouts)
        ref = self._logprobs(self.ref_model, rollouts) if self.ref_model is not None and self.hyper["kl_coef"] else None
        order = torch.Generator().manual_seed(seed)
        stats: dict[str, float] = defaultdict(float)
        for _ in range(self.epochs):
            for mini in self._mini_batches(rollouts, order):
                for key, value in self._optimizer_step(rollouts, adv, mini, old, ref).items():
                    stats[key] += value
        self._end_update()
        steps = max(stats.pop("optimizer_steps", 1), 1)
        tokens = stats.pop("tokens", 0)
        out = {k: v / steps for k, v in stats.items()}
        out.update(tokens_in_loss=tokens / self.epochs, lr=self.last_lr,
                   zero_adv_frac=sum(not _moves(r, a) for r, a in zip(rollouts, adv)) / max(len(adv), 1))
        return out

    def _mini_batches(self, rollouts: Sequence[Rollout], order: torch.Generator | None) -> list[list[int]]:
        """The rollout indices of each optimizer step of one pass, in a seeded random order (``order``; None: in
        order). With ``mini_batch_prompts`` the mini-batches have a fixed size, as verl's ``data.split``: that many
        prompts × each prompt's rollouts, shared over the processes, the last one taking the rest; else
        ``mini_batches`` nearly equal parts."""
        n = len(rollouts)
        perm = list(range(n))
        if self.mini_batch_prompts is None:
            if self.mini_batches > 1 and order is not None:
                perm = torch.randperm(n, generator=order).tolist()
            return _split(perm, self.mini_batches)
        per_prompt = n / max(len({r.group for r in rollouts}), 1)
        size = max(1, round(self.mini_batch_prompts * per_prompt / self.accelerator.num_processes))
        if size < n and order is not None:
            perm = torch.randperm(n, generator=order).tolist()
        return chunks(perm, size)

    def _optimizer_step(self, rollouts, adv, indices, old, ref) -> dict[str, float]:
        """Accumulate the mini-batch ``indices`` over micro-batches, then clip and step.

        Rollouts with zero advantage (all-equal groups) contribute exactly zero gradient when there is no KL term,
        so on one process they are not run at all; they still count in the loss denominator, and when nothing is
        left the optimizer steps on zero gradients, as it would have. (Under DDP every process must run the same
        number of backward passes, so there all rollouts run.)"""
        tokens = sum(rollouts[i].trained_tokens for i in indices)
        agg = self.hyper["agg"]
        denom = {"token_mean": tokens, "seq_mean": len(indices), "seq_part_mean": len(indices),
                 "part_mean": sum(rollouts[i].part_count for i in indices)}[agg]
        if self.skip_zero_advantage and ref is None and self.distill is None:
            indices = [i for i in indices if _moves(rollouts[i], adv[i])]
        micro = self.micro_plan(rollouts, indices)
        real = self._lockstep(micro, [indices[0] if indices else 0])
        ran = max(sum(rollouts[i].trained_tokens for i in indices), 1)  # statistics are over what ran
        if not micro:
            for p in trainable_parameters(self.model):
                p.grad = torch.zeros_like(p)
        totals: dict[str, float] = defaultdict(float, loss=0.0, clip_frac=0.0, kl=0.0)
        totals["entropy"] = 0.0 if real else float("nan")  # nothing ran: no entropy to report
        batches = [rollouts_to_batch([rollouts[i] for i in chunk], [adv[i] for i in chunk], self.pad_id)
                   for chunk in micro]
        if real:  # the share of the forward passes' positions that are padding
            totals["padding"] = 1 - sum(float(b.attention_mask.sum()) for b in batches[:real]) / sum(
                b.attention_mask.numel() for b in batches[:real])
        for k, (chunk, batch) in enumerate(zip(micro, self._micro_batches(batches))):
            # a lockstep filler (FSDP2) runs the same forward and backward with its loss zeroed, into no statistics
            sink = totals if k < real else defaultdict(float)
            with self.autocast():
                logits = self._logits(self.model, batch)  # [B, C, V], fp32
            logp = token_logprobs(logits, batch.targets)  # [B, C]
            width = logp.shape[1]
            old_logp = _pad_left([old[i] for i in chunk], width).to(logp) if old else logp.detach()
            ref_logp = _pad_left([ref[i] for i in chunk], width).to(logp) if ref else None
            weights = None
            if batch.sample_logp is not None:  # the engine's probabilities vs the trainer's (sampling weights)
                diff, over = logprob_mismatch(old_logp, batch.sample_logp, batch.loss_mask, self.diff_threshold)
                sink["logprob_diff"] += diff / ran
                sink["logprob_diff_frac"] += over / ran
                if self.tis_cap is not None:
                    weights = tis_weights(old_logp, batch.sample_logp, self.tis_cap)
                    sink["tis_weight"] += float((weights * batch.loss_mask).sum()) / ran
            if agg in PART_AGGS:
                if batch.parts is None:
                    raise ValueError(f"loss_agg={agg} needs rollouts with parts (S²R's actions)")
                loss, s = part_pg_loss(logp, old_logp, batch.advantages, batch.loss_mask, batch.parts,
                                       clip_low=self.hyper["clip_low"], clip_high=self.hyper["clip_high"],
                                       denom=max(denom, 1), per_sequence=agg == "seq_part_mean")
            else:
                loss, s = pg_loss(logp, old_logp, batch.advantages, batch.loss_mask, denom=denom, ref_logp=ref_logp,
                                  weights=weights, **self.hyper)
            if self.distill is not None:
                d = self.distill
                term = self._divergence(logits, logp, batch, [rollouts[i] for i in chunk])  # [B, C]
                loss = d.pg_coef * loss + d.coef * aggregate(term, batch.loss_mask, self.hyper["agg"], denom)
                key = "jsd" if d.divergence == "jsd" else "sampled_rkl"
                sink[key] += float((term.detach() * batch.loss_mask).sum()) / ran
            if k >= real:
                loss = loss * 0.0
            self.accelerator.backward(loss)
            share = float(batch.loss_mask.sum()) / ran
            sink["loss"] += loss.item()
            for key in ("clip_frac", "kl"):
                sink[key] += s[key] * share
            sink["entropy"] += float((token_entropy(logits) * batch.loss_mask).sum()) / ran
        return {**totals, **self._apply(), "tokens": tokens, "optimizer_steps": 1}

    def _divergence(self, logits, logp, batch: TrainBatch, rollouts: Sequence[Rollout]) -> torch.Tensor:
        """The distillation term per completion token [B, C] (0 where not trained)."""
        d = self.distill
        teacher = self.teacher_logits(rollouts)
        if d.divergence == "jsd":
            return generalized_jsd(logits, teacher, batch.loss_mask, beta=d.beta, top_k=d.top_k, chunk=d.chunk)
        teacher_logp = token_logprobs(teacher, batch.targets)
        return sampled_reverse_kl(logp, teacher_logp) * batch.loss_mask

    @torch.no_grad()
    def teacher_logits(self, rollouts: Sequence[Rollout]) -> torch.Tensor:
        """The distillation teacher's logits [B, C, V] on the rollouts' completion tokens, read under each rollout's
        ``teacher_prompt_ids``: aligned position for position with the student's ``forward_logits`` of the same
        rollouts, since both batches are left-padded and end with the same completions."""
        batch = pack([r.teacher_prompt_ids or r.prompt_ids for r in rollouts], [r.completion_ids for r in rollouts],
                     [[True] * len(r.completion_ids) for r in rollouts], [0.0] * len(rollouts), self.pad_id)
        batch = batch.to(self.accelerator.device)
        if self.distill.teacher != "live":
            with self.autocast():
                return forward_logits(self.distill.teacher, batch)
        with self._generation_model() as policy, self.autocast():  # the current weights, in eval mode
            return forward_logits(policy, batch)

    def micro_plan(self, rollouts: Sequence[Rollout], indices: Sequence[int]) -> list[list[int]]:
        """``indices`` in micro-batches, longest first: ``micro_batch_size`` sequences each, or with
        ``micro_batch_tokens`` packed greedily so that rows × the longest row stays within the budget."""
        size = lambda i: len(rollouts[i].prompt_ids) + len(rollouts[i].completion_ids)  # noqa: E731
        order = sorted(indices, key=lambda i: -size(i))
        if self.micro_batch_tokens is None:
            return chunks(order, self.micro_batch_size)
        plan: list[list[int]] = []
        for i in order:
            if plan and size(plan[-1][0]) * (len(plan[-1]) + 1) <= self.micro_batch_tokens:
                plan[-1].append(i)
            else:
                plan.append([i])
        return plan

    def _micro_batches(self, batches: Sequence[TrainBatch]) -> Iterator[TrainBatch]:
        """Each micro-batch on the device; the caller's backward runs inside ``no_sync`` for all but the last, so
        gradients are all-reduced once per optimizer step (FSDP2 reduce-scatters each micro-batch's)."""
        for k, batch in enumerate(batches):
            last = k == len(batches) - 1 or self.sharded
            with nullcontext() if last else self.accelerator.no_sync(self.model):
                yield batch.to(self.accelerator.device)

    def _end_update(self) -> None:
        """The end of one update call: verl's schedule (``lr_step=update``) steps here, once."""
        if self.lr_step == "update":
            self.scheduler.step()

    def _apply(self) -> dict[str, float]:
        if self.sharded:  # over the shards: the global norm, as a DTensor
            norm = grad_norm_value(torch.nn.utils.clip_grad_norm_(trainable_parameters(self.model), self.grad_clip))
        else:
            norm = self.accelerator.clip_grad_norm_(trainable_parameters(self.model), self.grad_clip)
        self.last_lr = self.optimizer.param_groups[0]["lr"]  # the rate this step used
        self.optimizer.step()
        self.engine_stale = self.replica_stale = True
        if self.lr_step == "optimizer":
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return {"grad_norm": float(norm)}

    # --- supervised ---------------------------------------------------------------------------------------------

    def sft_update(self, batches: Sequence[TrainBatch], kl_coef: float = 0.0) -> dict[str, float]:
        """One optimizer step over micro-batches of a supervised batch (token-mean over all trained tokens)."""
        tokens = sum(float(b.loss_mask.sum()) for b in batches)
        totals: dict[str, float] = defaultdict(float)
        batches = list(batches)
        plan = [[k] for k in range(len(batches))]
        real = self._lockstep(plan, [0])
        for k, batch in enumerate(self._micro_batches([batches[i] for i, in plan])):
            with self.autocast():
                logits = forward_logits(self.model, batch)
            ref_logits = None
            if self.ref_model is not None and kl_coef:
                with torch.no_grad(), self.autocast():
                    ref_logits = forward_logits(self.ref_model, batch)
            loss, s = sft_loss(logits, batch.targets, batch.loss_mask, ref_logits=ref_logits, kl_coef=kl_coef,
                               denom=max(tokens, 1))
            if k >= real:  # a lockstep filler (FSDP2): the same collectives, no gradient, no statistics
                self.accelerator.backward(loss * 0.0)
                continue
            self.accelerator.backward(loss)
            share = float(batch.loss_mask.sum()) / max(tokens, 1)
            totals["loss"] += loss.item()
            for key, value in s.items():
                totals[key] += value * share
        out = {**totals, **self._apply(), "trained_tokens": tokens, "lr": self.last_lr}
        self._end_update()  # one sft_update is one update call
        return out

    # --- checkpoints --------------------------------------------------------------------------------------------

    def save(self, run_dir: Path, step: int, state: dict) -> Path:
        if not self.sharded:
            return save_checkpoint(self.accelerator, self.model, self.tokenizer, self.optimizer, self.scheduler,
                                   run_dir, step, state)
        with self._generation_model() as whole:  # the replica, gathered: the weights the checkpoint holds
            return save_checkpoint(self.accelerator, whole, self.tokenizer, self.optimizer, self.scheduler,
                                   run_dir, step, state, sharded=self.model)

    def load(self, ckpt: Path) -> dict:
        return load_training_state(ckpt, self.accelerator, self.optimizer, self.scheduler,
                                   sharded=self.model if self.sharded else None)
