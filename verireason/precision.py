"""Numeric precision chosen by the hardware (``model.dtype=auto``, ``trainer.mixed_precision=auto``).

``auto`` weights are bf16 on CUDA and on a CPU whose torch build reports native bf16 matrix instructions (AMX
tiles or AVX512-BF16, asked of torch itself: ``torch.cpu._is_amx_tile_supported`` /
``_is_avx512_bf16_supported``), fp32 elsewhere. Sampling engines (eval, V-R loops, judges) load their weights in that
dtype. Training keeps fp32 master weights and AdamW state and runs forward and backward under bf16 autocast where
``auto`` would pick bf16 (``mixed_precision=auto``), by ``torch.autocast`` in the ``Learner`` (what accelerate's
bf16 setting does, without its once-per-process state); log-softmax,
losses, KL and advantages are computed in fp32 (``losses.forward_logits`` casts the logits).
``VERIREASON_CPU_BF16=0`` (or 1) overrides the CPU's answer, for a forced fp32 run or a test.
"""

from __future__ import annotations

import os

PRECISIONS = ("auto", "bf16", "no")


def cpu_has_bf16() -> bool:
    """Whether this CPU does bf16 matrix work in hardware, as torch reports it."""
    forced = os.environ.get("VERIREASON_CPU_BF16")
    if forced in ("0", "1"):
        return forced == "1"
    import torch

    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def auto_dtype(device: str):
    """The dtype ``auto`` means on ``device``: bf16 on CUDA or a bf16-capable CPU, else fp32."""
    import torch

    if device.startswith("cuda") or (device.startswith("cpu") and cpu_has_bf16()):
        return torch.bfloat16
    return torch.float32


def mixed_precision(setting: str, device: str) -> str:
    """accelerate's ``mixed_precision`` for a training run: ``bf16`` or ``no``."""
    if setting not in PRECISIONS:
        from verireason.errors import UserError

        raise UserError(f"unknown mixed_precision={setting!r}; valid: {', '.join(PRECISIONS)}")
    if setting == "auto":
        import torch

        return "bf16" if auto_dtype(device) == torch.bfloat16 else "no"
    return setting


def describe(device: str, setting: str = "auto") -> dict[str, str]:
    """What ``auto`` picks here, for ``run.json``."""
    return {"device": device, "auto_dtype": str(auto_dtype(device)).replace("torch.", ""),
            "training_mixed_precision": mixed_precision(setting, device), "cpu_bf16": str(cpu_has_bf16())}
