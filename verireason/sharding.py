"""FSDP2 sharding owned by the suite (``trainer.sharding=fsdp2``): torch's ``fully_shard`` on each decoder block and
then the root, the pattern torchtitan and torchtune use, the same code on CPU (gloo) and GPU (NCCL), under
``torchrun`` or ``accelerate launch`` alike (accelerate only starts the processes; it is not asked to wrap).

Each of N processes holds 1/N of every parameter, gradient and AdamW state. What that asks of the rest of the
trainer, and how the ``Learner`` meets it:

* A sharded forward or backward is a collective (each block all-gathers its parameters), so every process runs the
  same number of them: ``lockstep(n)`` is the largest count over the processes, and the ``Learner`` pads its
  micro-batches with empty ones (a forward whose loss is multiplied by zero: no gradient, no statistics).
* Generation runs a different number of forwards on each process, so it samples from a **replica**: an unsharded
  copy of the policy, refreshed from the gathered weights (``gathered_state_dict``, torch's distributed state-dict
  API) the first time it is needed after an optimizer step. The weights pushed into a colocated vLLM engine and
  the ones a checkpoint saves are the replica's (LoRA adapters merged, ``adapters.full_state_dict``). On a GPU node
  the vLLM engine samples; the replica then costs one model's weights per process (bf16: 2 bytes per parameter).
* The frozen initial model (KL reference, STV's teacher, ViL's verifier) is kept whole on every process: it has no
  gradient or optimizer state, so sharding it would save only its weights, and whole it runs its forwards without
  collectives (a verifier generates as many tokens as its own prompts need). Under LoRA it is the policy itself with
  the adapters off, sharded with it, and used only in lockstep (reference log-probs), never to generate.
* The optimizer state is saved with torch's distributed checkpoint (``optimizer/`` in the checkpoint, each process
  writing its shards) and loaded back shard for shard: resume needs the same number of processes.

GPU: parameters compute in bf16 and gradients reduce in fp32 (``MixedPrecisionPolicy``); CPU: full precision.
"""

from __future__ import annotations

from pathlib import Path

import torch

SHARDINGS = ("none", "fsdp2")
OPTIMIZER_DIR = "optimizer"  # inside a checkpoint: the sharded AdamW state (torch.distributed.checkpoint)


def decoder_blocks(model) -> list[torch.nn.Module]:
    """The model's repeated blocks: the modules whose class its transformers class names in ``_no_split_modules``
    (e.g. ``LlamaDecoderLayer``, ``Qwen2DecoderLayer``), under a peft wrapper too."""
    from verireason.adapters import is_peft

    base = model.get_base_model() if is_peft(model) else model
    names = set(getattr(base, "_no_split_modules", None) or ())
    blocks = [m for m in model.modules() if type(m).__name__ in names]
    if not blocks:
        raise ValueError(f"{type(base).__name__} names no decoder block class (_no_split_modules); cannot shard it")
    return blocks


def shard_model(model, device_type: str):
    """``fully_shard`` each decoder block, then the root (embeddings, final norm, head; tied weights stay tied);
    in place, returns ``model``. Needs the process group (accelerate's ``Accelerator`` starts it)."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    if device_type == "cuda":
        policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    else:
        policy = MixedPrecisionPolicy()
    for block in decoder_blocks(model):
        fully_shard(block, mp_policy=policy)
    fully_shard(model, mp_policy=policy)
    return model


def gathered_state_dict(model) -> dict[str, torch.Tensor]:
    """The sharded model's full weights on every process (a collective; names as the unsharded model has them)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True))


def lockstep(count: int, device: torch.device) -> int:
    """The largest ``count`` over all processes (a collective): how many sharded forwards each must run."""
    import torch.distributed as dist

    value = torch.tensor([count], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return int(value.item())


def grad_norm_value(norm) -> float:
    """``clip_grad_norm_``'s total norm as a float: over sharded gradients it is a DTensor, reduced here."""
    return float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)


def save_optimizer(model, optimizer, folder: Path) -> None:
    """Every process writes its shards of the AdamW state into ``folder`` (a collective)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    dcp.save({"optimizer": get_optimizer_state_dict(model, optimizer)}, checkpoint_id=str(folder))


def load_optimizer(model, optimizer, folder: Path) -> None:
    """Load the AdamW shards ``save_optimizer`` wrote (a collective; the same number of processes)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict, set_optimizer_state_dict

    state = {"optimizer": get_optimizer_state_dict(model, optimizer)}  # a template with this process's shards
    dcp.load(state, checkpoint_id=str(folder))
    set_optimizer_state_dict(model, optimizer, state["optimizer"])
