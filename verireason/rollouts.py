"""The rollout side of the ``Learner`` (``trainer.py``): the whole policy for sampling, the rollout engine over it,
the weight push into a colocated vLLM engine, and the processes' shares of a step's prompts.

``Rollouts`` is a mixin: it reads the ``Learner``'s ``model``, ``accelerator``, ``tokenizer``, ``rollout_engine``,
``sharded`` / ``replica`` / ``replica_stale`` (FSDP2, ``sharding.py``), ``engine_stale``, ``push_seconds``,
``gen_batch_size``, ``max_context``, ``temperature`` and its ``autocast()``. Under FSDP2 every sampler reads the
unsharded replica, refreshed from the gathered weights the first time it is needed after an optimizer step (a
collective, reached by every process at the same point); LoRA policies are pushed with their adapters merged.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext

import torch

from verireason.adapters import full_state_dict
from verireason.config import SamplingCfg
from verireason.generation import HFGenerator
from verireason.protocols import generate_batched
from verireason.records import Completion
from verireason.sharding import gathered_state_dict


class Rollouts:
    """Sampling from the policy a ``Learner`` trains (see the module docstring for what it reads)."""

    @contextmanager
    def _generation_model(self) -> Iterator[torch.nn.Module]:
        """The full, unwrapped policy in eval mode: under FSDP2 the replica (refreshed first if an optimizer step ran
        since: a collective); under ZeRO-3 the shards gathered for the duration."""
        from accelerate.utils import DistributedType

        if self.sharded:
            if self.replica_stale:
                self.replica.load_state_dict(gathered_state_dict(self.model))
                self.replica_stale = False
            yield self.replica
            return
        if self.accelerator.distributed_type == DistributedType.DEEPSPEED:
            import deepspeed

            gather = deepspeed.zero.GatheredParameters(list(self.model.parameters()), modifier_rank=None)
        else:
            gather = nullcontext()
        model = self.accelerator.unwrap_model(self.model)
        with gather:
            model.train(False)  # eval mode
            try:
                yield model
            finally:
                model.train()

    @contextmanager
    def engine(self, model=None) -> Iterator[HFGenerator]:
        """A rollout engine over the current policy (or over ``model``, a frozen one), valid inside the block:
        the colocated vLLM engine, awake and holding the current weights, when there is one."""
        if model is None and self.rollout_engine is not None:
            with self.rollout_engine.awake() as engine:
                self.sync_engine()
                yield engine
            return
        # under bf16 mixed precision the fp32 policy samples in bf16 here, for every caller (V-R episodes too)
        with nullcontext(model) if model is not None else self._generation_model() as chosen, self.autocast():
            yield HFGenerator.from_model(chosen, self.tokenizer, batch_size=self.gen_batch_size,
                                         max_context=self.max_context, record_logprobs=model is None,
                                         logprob_temperature="raw" if self.temperature == 1.0 else "sampling")

    def sync_engine(self) -> None:
        """Push the policy's weights into the colocated engine if an optimizer step ran since the last push (the
        engine must be awake). Pushing once before the next rollout, not after each of PPO's mini-batch steps,
        samples exactly the same: the engine is not read in between."""
        if self.rollout_engine is None or not self.engine_stale:
            return
        start = time.perf_counter()
        with self._generation_model() as policy:  # gathered under FSDP / ZeRO-3
            self.rollout_engine.push(full_state_dict(policy).items())  # LoRA: the adapters merged in
        self.engine_stale = False
        self.push_seconds += time.perf_counter() - start

    def generate(self, prompts: list[str], sampling: SamplingCfg, seed: int, model=None) -> list[list[Completion]]:
        """``sampling.n`` completions per prompt from the current policy, or from ``model`` (a frozen teacher or
        verifier on the same device), for this process's prompts only."""
        if self.sharded and model is None:
            with self._generation_model():  # the replica refreshed on every process, prompts or not
                pass
        if not prompts:
            return []
        with self.engine(model) as engine:
            return generate_batched(engine, prompts, sampling, seed)

    def shard(self, items: Sequence) -> list:
        """This process's share of ``items`` (every process gets the same count; a remainder is dropped)."""
        world = self.accelerator.num_processes
        usable = len(items) - len(items) % world
        return list(items[self.accelerator.process_index : usable : world])

    def gather(self, items: list) -> list:
        """Every process's ``items``, concatenated in process order (a collective)."""
        if self.accelerator.num_processes == 1:
            return items
        from accelerate.utils import gather_object

        return gather_object(items)
