"""Checkpoints a run can resume from and any tool can load.

``<run>/checkpoints/step_XXXXXX/`` holds the policy as ``save_pretrained`` writes it (so transformers, vLLM and
``asymmetry-probe`` load it directly; under LoRA the adapters merged into it, and the adapter alone in
``adapter/``, which ``--resume`` reads), the tokenizer, ``trainer_state.json`` (step plus the recipe's own state,
e.g. the verify-alter buffer) and one ``rank<R>.pt`` per process with its optimizer, scheduler and RNG states (a
sharded optimizer, FSDP or ZeRO-3, keeps its shard per rank; resume with the same number of processes). A
checkpoint is written to ``.tmp`` and renamed when complete, so a kill mid-save never leaves a half checkpoint
that resume would pick up. Only the latest checkpoint keeps its optimizer state (for a 7B model that is
tens of GB); earlier ones keep their weights for ``asymmetry-probe``.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import torch

from verireason.adapters import ADAPTER_DIR, full_state_dict, is_peft, save_adapter
from verireason.errors import UserError
from verireason.sharding import OPTIMIZER_DIR, load_optimizer, save_optimizer

STATE_FILE = "trainer_state.json"


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return run_dir / "checkpoints" / f"step_{step:06d}"


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The complete checkpoint with the highest step, if any."""
    done = [p for p in (run_dir / "checkpoints").glob("step_*") if (p / STATE_FILE).is_file()]
    return max(done, key=lambda p: int(p.name.split("_")[1])) if done else None


def rng_state() -> dict:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(accelerator, model, tokenizer, optimizer, scheduler, run_dir: Path, step: int,
                    state: dict, sharded=None) -> Path:
    """Write the checkpoint of ``step`` (every process must call this). ``sharded``: the FSDP2 policy whose
    optimizer state is saved shard by shard (``model`` is then its gathered replica)."""
    final = checkpoint_dir(run_dir, step)
    tmp = final.with_name(final.name + ".tmp")
    unwrapped = accelerator.unwrap_model(model)
    lora = is_peft(unwrapped)
    # gathers FSDP / ZeRO-3 shards (a collective, so on every rank); LoRA: the adapters merged into the base weights
    weights = full_state_dict(unwrapped) if lora else accelerator.get_state_dict(model)
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        if lora:  # the adapter alone (resume, peft users) beside the merged model every tool loads
            save_adapter(unwrapped, tmp / ADAPTER_DIR)
            unwrapped = unwrapped.get_base_model()
        unwrapped.save_pretrained(tmp, state_dict=weights, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    accelerator.wait_for_everyone()
    blob = {"scheduler": scheduler.state_dict(), "rng": rng_state()}
    if sharded is None:
        blob["optimizer"] = optimizer.state_dict()
    else:
        save_optimizer(sharded, optimizer, tmp / OPTIMIZER_DIR)
    with (tmp / f"rank{accelerator.process_index}.pt").open("wb") as handle:  # a full disk: the OSError survives
        torch.save(blob, handle)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / STATE_FILE).write_text(json.dumps({"step": step, **state}) + "\n")  # inside .tmp: renamed below
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        for older in (run_dir / "checkpoints").glob("step_*"):  # resume needs only the latest optimizer state
            if older != final:
                for blob in older.glob("rank*.pt"):
                    blob.unlink()
                shutil.rmtree(older / OPTIMIZER_DIR, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_training_state(ckpt: Path, accelerator, optimizer, scheduler, sharded=None) -> dict:
    """Restore optimizer, scheduler and RNG of this process; return ``trainer_state.json``. The weights are
    loaded by building the policy from ``ckpt`` itself (LoRA: its ``adapter/``). ``sharded``: the FSDP2 policy,
    whose optimizer shards are read from ``optimizer/``."""
    blob = torch.load(ckpt / f"rank{accelerator.process_index}.pt", map_location="cpu", weights_only=False)
    if sharded is None:
        if "optimizer" not in blob:
            raise UserError(f"{ckpt} was saved by a sharded run (trainer.sharding=fsdp2): resume it sharded")
        optimizer.load_state_dict(blob["optimizer"])
    else:
        if not (ckpt / OPTIMIZER_DIR).is_dir():
            raise UserError(f"{ckpt} was saved by an unsharded run: resume it with trainer.sharding=none")
        load_optimizer(sharded, optimizer, ckpt / OPTIMIZER_DIR)
    scheduler.load_state_dict(blob["scheduler"])
    set_rng_state(blob["rng"])
    return json.loads((ckpt / STATE_FILE).read_text())
