"""LoRA for every training command, through ``peft``, and the initial model as the same weights with the adapters
switched off.

A 7B policy fine-tuned in full needs about 16 bytes per parameter for weights, gradients and AdamW state; with LoRA
only the adapters (a fraction of a percent of the parameters) have gradients and optimizer state. Where a method
needs the initial model (the KL reference of rl-gen / rl-verify / sft-init, STV's frozen teacher, ViL's default
verifier, S²R's reference), LoRA gives it for free: the base weights never change, so ``AdaptersOff(policy)`` is
that model, and no second copy is loaded (what TRL and verl do for their LoRA reference too).

* ``apply_lora(model, cfg)``: peft's ``get_peft_model`` with ``LoraCfg`` (rank, alpha, dropout, target modules);
  with ``adapter`` a checkpoint's ``adapter/`` directory, its trained weights are loaded (resume, next stage).
* ``AdaptersOff(policy)``: forward and ``generate`` of the base model, under peft's ``disable_adapter``, in eval mode
  and without gradient; ``to``/``train``/``requires_grad_`` leave the shared weights alone.
* ``full_state_dict(model)``: the full weights under the base model's own names with each adapter's delta merged
  (W + B·A·alpha/r), computed without touching W: what a checkpoint's ``model.safetensors`` holds (so ``eval`` and
  ``asymmetry-probe`` load it like any model) and what the colocated vLLM engine receives.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from verireason.config import LoraCfg

ADAPTER_DIR = "adapter"  # inside a checkpoint: peft's save_pretrained of the adapter alone
INITIAL = "initial"  # a Distill teacher to be resolved to the frozen initial model (recipes.rl_train.build_learner)


def is_peft(model) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


def apply_lora(model, cfg: LoraCfg, adapter: Path | None = None, seed: int = 0):
    """``model`` wrapped with fresh LoRA adapters, or with the trained ones saved at ``adapter``; base weights
    frozen. Fresh adapters are drawn from ``seed`` (on a generator of their own: every process of a run, and a
    rerun, starts from the same adapters, whatever ran before). Gradient checkpointing (if the model has it on) keeps working: the input embeddings are marked as
    requiring grad, as peft's own k-bit preparation does, so checkpointed blocks see a differentiable input."""
    from peft import LoraConfig, PeftModel, get_peft_model

    if adapter is not None:
        peft_model = PeftModel.from_pretrained(model, str(adapter), is_trainable=True)
    else:
        targets = cfg.target_modules[0] if list(cfg.target_modules) == ["all-linear"] else list(cfg.target_modules)
        config = LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=targets,
                            bias="none", task_type="CAUSAL_LM")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            peft_model = get_peft_model(model, config)
    if getattr(model, "is_gradient_checkpointing", False):
        peft_model.enable_input_require_grads()
    return peft_model


def trainable_parameters(model) -> list[torch.nn.Parameter]:
    """The parameters the optimizer holds: all of them in full fine-tuning, the adapters' under LoRA."""
    return [p for p in model.parameters() if p.requires_grad]


class AdaptersOff:
    """The initial model as a view of a LoRA policy: its base weights with the adapters switched off.

    Not an ``nn.Module`` on purpose: moving it, putting it in eval mode or freezing it must not touch the policy it
    shares its weights with, so ``to``, ``train`` and ``requires_grad_`` are no-ops here; each call runs in eval mode
    and restores the policy's mode after."""

    def __init__(self, policy):
        self.policy = policy

    @contextmanager
    def _base(self) -> Iterator[torch.nn.Module]:
        was_training = self.policy.training
        self.policy.train(False)
        try:
            with self.policy.disable_adapter(), torch.no_grad():
                yield self.policy
        finally:
            self.policy.train(was_training)

    def __call__(self, *args, **kwargs):
        with self._base() as model:
            return model(*args, **kwargs)

    def generate(self, *args, **kwargs):
        with self._base() as model:
            return model.generate(*args, **kwargs)

    def parameters(self):
        return self.policy.parameters()

    @property
    def generation_config(self):
        return self.policy.generation_config

    @property
    def config(self):
        return self.policy.config

    def to(self, *args, **kwargs) -> "AdaptersOff":
        return self

    def train(self, mode: bool = True) -> "AdaptersOff":
        return self

    def requires_grad_(self, requires_grad: bool = True) -> "AdaptersOff":
        return self


def _base_name(name: str) -> str:
    """A peft parameter name as the base model names it: ``base_model.model.`` and ``.base_layer`` removed."""
    name = name.removeprefix("base_model.model.")
    return name.replace(".base_layer.", ".")


@torch.no_grad()
def full_state_dict(model) -> dict[str, torch.Tensor]:
    """The model's parameters under the base model's names (tied weights once, as ``named_parameters`` has them);
    a LoRA model's adapters merged into them, computed beside the base weights, which stay as they are."""
    if not is_peft(model):
        return dict(model.named_parameters())
    from peft.tuners.lora import LoraLayer

    deltas = {}
    for name, module in model.named_modules():
        if isinstance(module, LoraLayer) and not module.merged:
            adapters = [a for a in module.active_adapters if a in module.lora_A]
            if adapters:
                deltas[_base_name(name + ".base_layer.weight")] = sum(module.get_delta_weight(a) for a in adapters)
    out = {}
    for name, tensor in model.named_parameters():
        if ".lora_" in name:  # lora_A, lora_B (and peft's other adapter tensors)
            continue
        base = _base_name(name)
        out[base] = tensor + deltas[base].to(tensor.dtype) if base in deltas else tensor
    return out


def save_adapter(model, directory: Path) -> None:
    """peft's adapter files (config and weights) into ``directory``."""
    model.save_pretrained(str(directory))


def policy_and_initial(path: str, initial: str, lora: LoraCfg, dtype: str, device: str, checkpointing: bool,
                       keep_initial: bool, seed: int = 0):
    """The policy to train and, with ``keep_initial``, the frozen initial model beside it (else None).

    Full fine-tuning: the policy is the model at ``path`` (the initial model or a checkpoint to resume), the initial
    model a second copy loaded from ``initial``. LoRA: the policy is the initial model with adapters (fresh, or a
    checkpoint's ``adapter/`` when ``path`` is one), the initial model that policy with its adapters off."""
    from verireason.errors import UserError
    from verireason.models import load_causal_lm, load_policy

    if not lora.rank:
        policy = load_policy(path, dtype, device, checkpointing)
        return policy, load_causal_lm(initial, dtype, device) if keep_initial else None
    adapter = Path(path) / ADAPTER_DIR if Path(path) != Path(initial) else None
    if adapter is not None and not (adapter / "adapter_config.json").is_file():
        raise UserError(f"{path} holds no LoRA adapter ({ADAPTER_DIR}/adapter_config.json): it was trained in full; "
                        f"resume it with lora.rank=0, or start a LoRA run from it with --model {path}")
    policy = apply_lora(load_policy(initial, dtype, device, checkpointing), lora, adapter, seed)
    return policy, AdaptersOff(policy) if keep_initial else None
