"""Per-token log-probabilities and the two losses of training: clipped policy gradient and masked SFT.

* ``pg_loss``: PPO's clipped surrogate with separate low/high clip ranges (DAPO clip-higher, papers.md §1.5), the
  dual-clip bound for negative advantages (verl ``clip_ratio_c``), token-mean or sequence-mean aggregation, and an
  optional KL penalty to a frozen reference (the k3 estimator, exp(ref - logp) - (ref - logp) - 1).
* ``sft_loss``: cross-entropy on the trained tokens plus S²R's token-level full-vocabulary KL to the initial
  model (papers.md §3.4).

Both take a ``denom``: the number of tokens (token-mean) or sequences (sequence-mean) in the whole mini-batch, so
gradients accumulated over micro-batches equal those of one big batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from verireason.collate import TrainBatch

LOSS_AGG = ("token_mean", "seq_mean")


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
            kl_coef: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
    """Clipped policy-gradient loss. logp, old_logp, mask, ref_logp: [B, C]; advantages: [B]."""
    adv = advantages.unsqueeze(-1)  # [B, 1]
    ratio = torch.exp(logp - old_logp)  # [B, C]
    unclipped = -adv * ratio
    clipped = -adv * ratio.clamp(1 - clip_low, 1 + clip_high)
    loss = torch.maximum(unclipped, clipped)  # the pessimistic bound
    if dual_clip is not None:  # for A < 0 the ratio can grow without bound: cap the loss at -A * c
        loss = torch.where(adv < 0, torch.minimum(loss, -adv * dual_clip), loss)
    kl = torch.zeros_like(logp)
    if ref_logp is not None and kl_coef:
        delta = ref_logp - logp
        kl = torch.exp(delta) - delta - 1  # k3: unbiased, non-negative estimate of KL(pi || ref)
        loss = loss + kl_coef * kl
    total = aggregate(loss, mask, agg, denom)
    n = mask.sum().clamp(min=1)
    stats = {
        "clip_frac": float(((clipped > unclipped).float() * mask).sum() / n),
        "ratio": float((ratio.detach() * mask).sum() / n),
        "kl": float((kl.detach() * mask).sum() / n),
    }
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
