"""Checkpoints a run can resume from and any tool can load.

``<run>/checkpoints/step_XXXXXX/`` holds the policy as ``save_pretrained`` writes it (so transformers, vLLM and
``asymmetry-probe`` load it directly), the tokenizer, ``trainer_state.json`` (step plus the recipe's own state,
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
                    state: dict) -> Path:
    """Write the checkpoint of ``step`` (every process must call this)."""
    final = checkpoint_dir(run_dir, step)
    tmp = final.with_name(final.name + ".tmp")
    weights = accelerator.get_state_dict(model)  # gathers FSDP / ZeRO-3 shards; a collective, so on every rank
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        accelerator.unwrap_model(model).save_pretrained(tmp, state_dict=weights, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    accelerator.wait_for_everyone()
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng_state()},
               tmp / f"rank{accelerator.process_index}.pt")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / STATE_FILE).write_text(json.dumps({"step": step, **state}) + "\n")  # inside .tmp: renamed below
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        for older in (run_dir / "checkpoints").glob("step_*"):  # resume needs only the latest optimizer state
            if older != final:
                for blob in older.glob("rank*.pt"):
                    blob.unlink()
    accelerator.wait_for_everyone()
    return final


def load_training_state(ckpt: Path, accelerator, optimizer, scheduler) -> dict:
    """Restore optimizer, scheduler and RNG of this process; return ``trainer_state.json``. The weights are
    loaded by building the policy from ``ckpt`` itself."""
    blob = torch.load(ckpt / f"rank{accelerator.process_index}.pt", map_location="cpu", weights_only=False)
    optimizer.load_state_dict(blob["optimizer"])
    scheduler.load_state_dict(blob["scheduler"])
    set_rng_state(blob["rng"])
    return json.loads((ckpt / STATE_FILE).read_text())
