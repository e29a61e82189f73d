"""Per-token log-probabilities and the losses of training: clipped policy gradient, masked SFT, distillation.

* ``pg_loss``: PPO's clipped surrogate with separate low/high clip ranges (DAPO clip-higher, papers.md §1.5), the
  dual-clip bound for negative advantages (verl ``clip_ratio_c``), token-mean or sequence-mean aggregation, and an
  optional KL penalty to a frozen reference (the k3 estimator, exp(ref - logp) - (ref - logp) - 1).
* ``part_pg_loss``: S²R's clipped loss per action ("part"): one ratio per part from its mean log-ratio, one
  advantage per part, averaged over parts (papers.md §3.5, §3.8; a whole response is one part for ORL).
* ``sft_loss``: cross-entropy on the trained tokens plus S²R's token-level full-vocabulary KL to the initial
  model (papers.md §3.4).
* ``generalized_jsd`` / ``sampled_reverse_kl``: the divergences of STV's on-policy distillation (papers.md §2.3,
  §2.9) between a student and a teacher scored on the same completion tokens; the first over the full vocabulary
  (or the student's top k), in checkpointed chunks of positions, the second from the sampled tokens alone.

``pg_loss`` and ``sft_loss`` take a ``denom``: the number of tokens (token-mean) or sequences (sequence-mean) in the whole mini-batch, so
gradients accumulated over micro-batches equal those of one big batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from verireason.collate import TrainBatch

LOSS_AGG = ("token_mean", "seq_mean", "part_mean", "seq_part_mean")
PART_AGGS = ("part_mean", "seq_part_mean")  # one PPO ratio per action (S²R)


def forward_logits(model, batch: TrainBatch) -> torch.Tensor:
    """Logits [B, C, V] (float32) predicting ``batch.targets``; only the last C + 1 positions are projected."""
    out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids,
                logits_to_keep=batch.keep, use_cache=False)
    return out.logits[:, :-1].float()  # [B, C, V]


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(target) [B, C] from logits [B, C, V] without materializing the full log-softmax."""
    return logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)


@torch.no_grad()
def token_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy [B, C] of the sampling distribution at each position (a diagnostic; not differentiated)."""
    logp = torch.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(-1)


def aggregate(values: torch.Tensor, mask: torch.Tensor, agg: str, denom: float | None = None) -> torch.Tensor:
    """Sum of masked per-token ``values`` [B, C] divided by ``denom`` tokens (token_mean) or sequences
    (seq_mean, after averaging within each sequence); ``denom`` defaults to this batch's own count."""
    if agg == "token_mean":
        return (values * mask).sum() / (denom if denom is not None else mask.sum().clamp(min=1))
    if agg == "seq_mean":
        per_seq = (values * mask).sum(-1) / mask.sum(-1).clamp(min=1)  # [B]
        return per_seq.sum() / (denom if denom is not None else per_seq.shape[0])
    raise ValueError(f"unknown loss_agg {agg!r}; valid: {', '.join(LOSS_AGG)}")


def pg_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, *,
            clip_low: float = 0.2, clip_high: float = 0.28, dual_clip: float | None = None,
            agg: str = "token_mean", denom: float | None = None, ref_logp: torch.Tensor | None = None,
            kl_coef: float = 0.0, kl_clamp: float | None = None,
            weights: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Clipped policy-gradient loss. logp, old_logp, mask, ref_logp: [B, C]; advantages: [B] (one per sequence)
    or [B, C] (per token). ``weights`` [B, C] (no gradient) multiply each token's clipped term before the KL is
    added: truncated importance weights for a rollout engine that samples from slightly different probabilities
    than the trainer computes (``tis_weights``). ``kl_clamp``: the k3 estimate is clamped to ±kl_clamp, as verl's
    ``low_var_kl`` does (10)."""
    adv = advantages.unsqueeze(-1) if advantages.dim() == 1 else advantages  # [B, 1] or [B, C]
    ratio = torch.exp(logp - old_logp)  # [B, C]
    unclipped = -adv * ratio
    clipped = -adv * ratio.clamp(1 - clip_low, 1 + clip_high)
    loss = torch.maximum(unclipped, clipped)  # the pessimistic bound
    if dual_clip is not None:  # for A < 0 the ratio can grow without bound: cap the loss at -A * c
        loss = torch.where(adv < 0, torch.minimum(loss, -adv * dual_clip), loss)
    if weights is not None:
        loss = loss * weights
    kl = torch.zeros_like(logp)
    if ref_logp is not None and kl_coef:
        delta = ref_logp - logp
        kl = torch.exp(delta) - delta - 1  # k3: unbiased, non-negative estimate of KL(pi || ref)
        if kl_clamp is not None:
            kl = kl.clamp(-kl_clamp, kl_clamp)
        loss = loss + kl_coef * kl
    total = aggregate(loss, mask, agg, denom)
    n = mask.sum().clamp(min=1)
    stats = {
        "clip_frac": float(((clipped > unclipped).float() * mask).sum() / n),
        "ratio": float((ratio.detach() * mask).sum() / n),
        "kl": float((kl.detach() * mask).sum() / n),
    }
    return total, stats


def tis_weights(old_logp: torch.Tensor, sample_logp: torch.Tensor, cap: float) -> torch.Tensor:
    """Truncated importance weights min(π_train(y) / π_sample(y), cap) per token [B, C], no gradient: the
    correction verl and TRL apply when the rollout engine (vLLM) and the trainer disagree on the sampled tokens'
    probabilities (Yao et al., "Your efficient RL framework secretly brings you off-policy RL training", 2025)."""
    return torch.exp(old_logp.detach() - sample_logp).clamp(max=cap)


def logprob_mismatch(old_logp: torch.Tensor, sample_logp: torch.Tensor, mask: torch.Tensor,
                     threshold: float) -> tuple[float, float]:
    """Summed |log π_train − log π_sample| over the masked tokens, and how many of them differ by more than
    ``threshold`` nats (the caller divides both by its token count)."""
    diff = (old_logp.detach() - sample_logp).abs() * mask
    return float(diff.sum()), float(((diff > threshold).float() * mask).sum())


def part_pg_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                 parts: torch.Tensor, *, clip_low: float = 0.2, clip_high: float = 0.2, denom: float | None = None,
                 max_log_ratio: float = 10.0, per_sequence: bool = False,
                 **_: object) -> tuple[torch.Tensor, dict[str, float]]:
    """S²R's clipped policy-gradient loss over actions (papers.md §3.5, §3.8). logp, old_logp, mask: [B, C];
    advantages: [B] or [B, C] (constant within a part: the part's mean is used); parts: [B, C] long, -1 outside
    every part.

    Per part p: ratio_p = exp(clamp(mean_{t∈p}(logp − old_logp), ±max_log_ratio)); loss_p = max(−A_p·ratio_p,
    −A_p·clip(ratio_p, 1 − clip_low, 1 + clip_high)); the total is Σ_p loss_p / ``denom`` parts (default: this
    batch's), or with ``per_sequence`` (S²R's ``compute_loss_splitpart_inkl_sentence``) each sequence's mean over its
    parts, summed over sequences / ``denom`` sequences. Only trained tokens (``mask``) count toward a part."""
    rows, width = logp.shape
    adv = advantages.unsqueeze(-1).expand(rows, width) if advantages.dim() == 1 else advantages
    slots = int(parts.max().clamp(min=0)) + 1
    valid = (parts >= 0) & mask.bool()
    index = torch.where(valid, parts + slots * torch.arange(rows, device=parts.device).unsqueeze(-1), rows * slots)
    index, weight = index.flatten(), valid.flatten().to(logp.dtype)

    def per_part(values: torch.Tensor) -> torch.Tensor:  # sum over each part's trained tokens: [rows * slots]
        out = torch.zeros(rows * slots + 1, dtype=values.dtype, device=values.device)
        return out.index_add(0, index, values.flatten() * weight)[:-1]

    count = per_part(torch.ones_like(logp))
    present = count > 0
    n = count.clamp(min=1)
    log_ratio = (per_part(logp - old_logp) / n).clamp(-max_log_ratio, max_log_ratio)
    part_adv = per_part(adv.to(logp.dtype)) / n
    ratio = torch.exp(log_ratio)
    unclipped = -part_adv * ratio
    clipped = -part_adv * ratio.clamp(1 - clip_low, 1 + clip_high)
    loss = torch.where(present, torch.maximum(unclipped, clipped), 0.0)
    parts_here = present.sum().clamp(min=1)
    if per_sequence:
        per_row = loss.view(rows, slots).sum(-1) / present.view(rows, slots).sum(-1).clamp(min=1)
        total = per_row.sum() / (denom if denom is not None else rows)
    else:
        total = loss.sum() / (denom if denom is not None else parts_here)
    stats = {"clip_frac": float(((clipped > unclipped) & present).sum() / parts_here),
             "ratio": float((ratio.detach() * present).sum() / parts_here), "kl": 0.0}
    return total, stats


def sft_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, *, ref_logits: torch.Tensor | None = None,
             kl_coef: float = 0.0, denom: float | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Token-mean cross-entropy on masked tokens, plus ``kl_coef`` × full-vocabulary KL(policy || reference).
    logits, ref_logits: [B, C, V]; targets, mask: [B, C]."""
    nll = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")  # [B, C]
    kl = torch.zeros_like(nll)
    if ref_logits is not None and kl_coef:
        logp, ref = torch.log_softmax(logits, -1), torch.log_softmax(ref_logits, -1)
        kl = (logp.exp() * (logp - ref)).sum(-1)  # [B, C]
    total = aggregate(nll + kl_coef * kl, mask, "token_mean", denom)
    n = mask.sum().clamp(min=1)
    return total, {"nll": float((nll.detach() * mask).sum() / n), "kl": float((kl.detach() * mask).sum() / n)}


# --- distillation divergences (STV's on-policy distillation, papers.md §2.3, §2.9) --------------------------------

DIVERGENCES = ("jsd", "sampled_reverse_kl")


def _jsd_terms(student: torch.Tensor, teacher: torch.Tensor, beta: float) -> torch.Tensor:
    """Generalized JSD per row of logits [N, V] (GKD, Agarwal et al. 2023, Eq. 1), in log space.

    M = β·T + (1−β)·S; JSD_β = β·KL(T‖M) + (1−β)·KL(S‖M). The endpoints are the limits GKD and TRL use, not the
    formula's degenerate value 0: β = 0 is the forward KL(T‖S), β = 1 the reverse KL(S‖T).
    """
    log_s, log_t = torch.log_softmax(student, -1), torch.log_softmax(teacher, -1)
    if beta == 0:
        return (log_t.exp() * (log_t - log_s)).sum(-1)
    if beta == 1:
        return (log_s.exp() * (log_s - log_t)).sum(-1)
    log_m = torch.logsumexp(torch.stack([log_t + math.log(beta), log_s + math.log(1 - beta)]), dim=0)
    kl_t = (log_t.exp() * (log_t - log_m)).sum(-1)
    kl_s = (log_s.exp() * (log_s - log_m)).sum(-1)
    return beta * kl_t + (1 - beta) * kl_s


def generalized_jsd(student_logits: torch.Tensor, teacher_logits: torch.Tensor, mask: torch.Tensor, *,
                    beta: float = 0.5, top_k: int | None = None, chunk: int | None = 1024) -> torch.Tensor:
    """Per-token generalized JSD [B, C] between student and teacher next-token distributions on the same
    (student-sampled) completion tokens; 0 where ``mask`` is 0. Gradient flows into ``student_logits`` only.

    logits: [B, C, V] aligned on the same positions; mask: [B, C]. ``top_k``: only the student's k most likely
    tokens, both distributions renormalized over them (TRL SDFT's top-k mode, papers.md §2.9). ``chunk``: positions
    per piece (views, no copies), each recomputed in the backward pass (activation checkpointing), so the memory
    beyond the logits and their gradient is that of one chunk × V rather than of every position; None computes all
    positions at once. Measured: docs/benchmarks.md, "Distillation divergence memory".
    """
    if not 0 <= beta <= 1:
        raise ValueError(f"beta={beta} must be in [0, 1]")
    vocab = student_logits.shape[-1]
    student, teacher = student_logits.reshape(-1, vocab), teacher_logits.detach().reshape(-1, vocab)  # views
    if chunk is None:
        values = _divergence(student, teacher, beta, top_k)
    else:
        from torch.utils.checkpoint import checkpoint

        values = torch.cat([checkpoint(_divergence, s, t, beta, top_k, use_reentrant=False)
                            for s, t in zip(student.split(chunk), teacher.split(chunk))])
    return torch.where(mask.bool(), values.reshape(mask.shape), 0.0)


def _divergence(student: torch.Tensor, teacher: torch.Tensor, beta: float, top_k: int | None) -> torch.Tensor:
    """JSD rows of [N, V] logits, over the student's top k tokens (both renormalized there) when ``top_k`` is set."""
    if top_k is not None and top_k < student.shape[-1]:
        index = student.detach().topk(top_k, dim=-1).indices  # [N, k]
        student, teacher = student.gather(-1, index), teacher.gather(-1, index)
    return _jsd_terms(student, teacher, beta)


def sampled_reverse_kl(student_logp: torch.Tensor, teacher_logp: torch.Tensor) -> torch.Tensor:
    """The sampled-token estimator of the reverse KL(S‖T), a separate objective from JSD (papers.md §2.9): per
    token ``(log S(y) − log T(y)).detach() · log S(y)``, whose gradient in expectation over y ~ S is that of
    KL(S‖T). Inputs: log-probs [B, C] of the sampled tokens; valid only for tokens the student sampled."""
    return (student_logp - teacher_logp).detach() * student_logp
