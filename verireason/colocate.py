"""Training's vLLM rollout engine, colocated with the trainer: one engine in each training process.

The pattern TRL calls "colocate" (verl's hybrid engine does the same): the engine lives in the trainer's own
process (vLLM's engine core in-process, ``external_launcher`` when the trainer is distributed, so each process of
``accelerate launch`` holds one engine), shares the GPU with the policy through vLLM's sleep mode (weights off
the GPU and the KV cache freed while the trainer updates), and samples from the current policy because the
trainer pushes its weights in after every optimizer step, before the next rollout:

    learner.generate(...)  →  wake up  →  push weights if an optimizer step ran since the last push
                           →  reset the prefix cache (its KV entries were computed by the old weights)
                           →  sample (vLLM's own sampling, per-request seeds where the build allows)
                           →  sleep

The push goes through vLLM's public worker-extension route: ``LLM(worker_extension_cls=...)`` adds
``WeightSync``'s methods to every worker and ``LLM.collective_rpc`` calls them; the weights are the trainer's
full parameters (FSDP and ZeRO-3 gather them first, ``Learner._generation_model``), handed over one tensor at a
time (no second full copy on the GPU) to vLLM's in-place reload, which runs the model's own ``load_weights``
(mapping Hugging Face names onto vLLM's fused layers) and re-processes the weights into its kernels' layout.
Tensor parallelism inside the training engine is not built: each process holds a whole model (a 7B model in bf16
fits one 80 GB GPU).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch

from verireason.generation import VLLMGenerator


class WeightSync:
    """vLLM worker extension (mixed into each worker by ``worker_extension_cls``): what the trainer calls through
    ``collective_rpc``."""

    def load_pushed(self, weights: Iterable[tuple[str, torch.Tensor]]) -> int:
        """Load Hugging Face-named tensors into the worker's model through vLLM's in-place reload (the model's
        own ``load_weights`` between the layer-wise set-up and post-processing its kernels need), one tensor
        on the device at a time; returns how many were loaded."""
        device = next(self.model_runner.get_model().parameters()).device
        count = 0

        def moved():
            nonlocal count
            for name, tensor in weights:
                count += 1
                yield name, tensor.to(device)

        self.reload_weights(weights_iterator=moved())
        return count

    def weight_sum(self, name_part: str) -> float:
        """The sum of every parameter whose vLLM name contains ``name_part`` (a cheap fingerprint for tests)."""
        model = self.model_runner.get_model()
        return float(sum(p.float().sum() for n, p in model.named_parameters() if name_part in n))


# names wrappers add to a parameter's path (FSDP, activation checkpointing, torch.compile; DDP's leading
# "module."), which Hugging Face checkpoints, and so vLLM's loaders, do not have
WRAPPER_PARTS = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.", "_orig_mod.")


def hf_name(name: str) -> str:
    for part in WRAPPER_PARTS:
        name = name.replace(part, "")
    return name.removeprefix("module.")


class ColocatedVLLM(VLLMGenerator):
    """A ``VLLMGenerator`` that the trainer keeps in step with the policy: ``push`` new weights, ``awake`` around
    sampling. It records each sampled token's log-prob (for the mismatch metrics and truncated importance
    sampling, ``Learner``)."""

    def __init__(self, path: str, *, dtype: str = "auto", max_context: int = 4096, seed: int = 0,
                 gpu_memory_utilization: float = 0.3, enable_prefix_caching: bool = True, sleep_level: int = 1,
                 logprob_temperature: str = "raw"):
        # The engine core runs in this process: no second process (whose spawn would re-run the caller's script),
        # and pushed tensors are passed by reference instead of being serialized to another process.
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        sleeping = sleep_level > 0 and torch.cuda.is_available()  # sleep mode is CUDA's (cumem allocator)
        # the sample log-probs under the trainer's distribution: raw logits, or after temperature ("processed";
        # training samples with top_p = 1 and no top-k, so that is logits / temperature)
        mode = "processed_logprobs" if logprob_temperature == "sampling" else "raw_logprobs"
        extra = dict(worker_extension_cls="verireason.colocate.WeightSync", logprobs_mode=mode,
                     enable_sleep_mode=sleeping)
        if distributed:  # one engine per trainer process, on the trainer's own process group
            extra["distributed_executor_backend"] = "external_launcher"
        super().__init__(path, dtype=dtype, max_context=max_context, seed=seed,
                         gpu_memory_utilization=gpu_memory_utilization, tensor_parallel_size=1,
                         enable_prefix_caching=enable_prefix_caching, record_logprobs=True, **extra)
        self.sleep_level = sleep_level if sleeping else 0
        self._asleep, self._depth = False, 0
        self._sleep()

    def push(self, named: Iterable[tuple[str, torch.Tensor]]) -> int:
        """Load the trainer's parameters (Hugging Face names, any wrapper prefixes removed) into the engine and
        reset its prefix cache; returns the number of tensors pushed."""
        # a generator is handed over as it is: the engine core runs in this process (see __init__)
        count = self.llm.collective_rpc("load_pushed", args=(((hf_name(n), t.detach()) for n, t in named),))[0]
        self.llm.reset_prefix_cache()
        return count

    def weight_sum(self, name_part: str) -> float:
        return self.llm.collective_rpc("weight_sum", args=(name_part,))[0]

    @contextmanager
    def awake(self) -> Iterator["ColocatedVLLM"]:
        """The engine with its weights and KV cache on the GPU for the block; asleep again after the outermost
        block (blocks may nest: a rollout inside a verify-refine loop's block)."""
        if self._asleep:
            self.llm.wake_up()
            self._asleep = False
        self._depth += 1
        try:
            yield self
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._sleep()

    def _sleep(self) -> None:
        if self.sleep_level and not self._asleep:
            self.llm.sleep(level=self.sleep_level)
            self._asleep = True
