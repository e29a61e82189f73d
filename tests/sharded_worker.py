"""One process of tests/test_sharding.py's uneven-update check, run under torchrun: the processes get different
numbers of rollouts and of supervised micro-batches (so under FSDP2 the one with fewer runs lockstep fillers), make
two policy updates (two epochs: the old log-probs are a sharded forward too) and one supervised update, and rank 0
writes the gathered weights and the statistics.

Usage: torchrun --nproc_per_node 2 tests/sharded_worker.py MODEL_DIR none|fsdp2 OUT.pt
"""

from __future__ import annotations

import sys

import torch

from verireason.collate import pack
from verireason.models import load_causal_lm, load_tokenizer
from verireason.records import Rollout
from verireason.trainer import Learner, build_accelerator


def main() -> None:
    model_dir, sharding, out = sys.argv[1:4]
    accelerator = build_accelerator("cpu")
    rank = accelerator.process_index
    learner = Learner(accelerator, load_causal_lm(model_dir, "float32").train(), load_tokenizer(model_dir), lr=1e-3,
                      weight_decay=0.0, warmup_steps=0, grad_clip=1.0, micro_batch_size=1, epochs=2,
                      mixed_precision="no", sharding=sharding)
    count = 5 if rank == 0 else 2  # rank 0: five micro-batches, rank 1: two (+ three fillers under FSDP2)
    rollouts = [Rollout("generate", f"g{i // 2}", "", "", (3, 40 + i, 41), tuple(range(60, 63 + i)) + (2,),
                        float((i + rank) % 2), "stop") for i in range(count)]
    stats = learner.update(rollouts, seed=1)
    sizes = [1, 1, 1] if rank == 0 else [1]
    batches = [pack([[3, 50 + k]], [[70, 71 + k, 2]], [[True, True, True]], [0.0], learner.pad_id) for k in sizes]
    sft = learner.sft_update(batches)
    with learner._generation_model() as whole:  # the gathered weights (the replica under FSDP2)
        weights = {k: v.detach().clone() for k, v in whole.state_dict().items()}
    if rank == 0:
        torch.save({"weights": weights, "loss": stats["loss"], "sft_loss": sft["loss"],
                    "grad_norm": stats["grad_norm"]}, out)
    accelerator.wait_for_everyone()


if __name__ == "__main__":
    main()
