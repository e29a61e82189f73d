"""What a finished run is, read from its directory: the command that made it, its variant (schedule, method or
stage), the model it started from, its final checkpoint, the steps it trained and the prompts it used
(``verireason report``).

A run directory holds ``config.yaml`` (the resolved config) and ``run.json`` (the command line); training runs add
``checkpoints/step_*``. A model directory or a ``conf/model`` alias stands for itself (a base model with no run).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields, replace
from pathlib import Path

from omegaconf import OmegaConf

from verireason.checkpoint import STATE_FILE, latest_checkpoint
from verireason.config import CONF_DIR, ModelCfg, PromptCfg, group_options
from verireason.errors import UserError

TRAINING = ("rl-gen", "rl-verify", "sft-init", "stv", "vil", "s2r")


@dataclass(frozen=True)
class RunInfo:
    """One entry of a report: a training run's final checkpoint, or a model on its own."""

    label: str  # unique within a report: the run directory's name, or the model's
    command: str | None  # rl-gen | rl-verify | sft-init | stv | vil | s2r; None for a bare model
    variant: str | None  # rl: the schedule; stv: the method; s2r: the stage
    final: ModelCfg  # the model evaluated: the latest checkpoint, prompted as the run prompted its model
    initial: ModelCfg | None  # the model the run started from
    steps: int | None
    path: Path | None  # the run directory
    argv: str  # the command line that made it ("" for a bare model)
    prompt: PromptCfg | None = None  # the prompts the run trained its model with (None: a bare model)


def _from_node(schema: type, node):
    """``schema``'s dataclass from a config node, keeping only the schema's fields."""
    keys = {f.name for f in fields(schema)}
    merged = OmegaConf.merge(OmegaConf.structured(schema), {k: v for k, v in node.items() if k in keys})
    return OmegaConf.to_object(merged)


def _command(run: Path, cfg) -> str | None:
    """``run.json``'s command; for runs made before it was recorded, the command line's, else the config's shape."""
    meta = json.loads((run / "run.json").read_text()) if (run / "run.json").is_file() else {}
    if meta.get("command"):
        return meta["command"]
    argv = meta.get("argv") or []
    if len(argv) > 1 and argv[1] in TRAINING:
        return argv[1]
    if "stage" in cfg:
        return "s2r"
    if "method" in cfg:
        return "stv"
    if "vil" in cfg:
        return "vil"
    if "schedule" in cfg:
        return "rl-gen" if cfg.schedule.name == "generate" else "rl-verify"
    return "sft-init" if "epochs" in cfg else None


def _variant(command: str, cfg) -> str | None:
    return {"rl-gen": lambda: cfg.schedule.name, "rl-verify": lambda: cfg.schedule.name, "stv": lambda: cfg.method,
            "s2r": lambda: cfg.stage}.get(command, lambda: None)()


def _argv(run: Path) -> str:
    meta = json.loads((run / "run.json").read_text()) if (run / "run.json").is_file() else {}
    argv = list(meta.get("argv") or [])
    if argv and argv[0].endswith(("verireason", "__main__.py")):
        argv[0] = "verireason"
    return " ".join(argv)


def read_run(entry: str, base: ModelCfg) -> RunInfo:
    """The report entry for a run directory, a model directory or a model alias (``UserError`` if none of these,
    or a run with no finished checkpoint)."""
    path = Path(entry).expanduser()
    if entry in group_options("model") and entry != "local":
        alias = _from_node(ModelCfg, OmegaConf.load(CONF_DIR / "model" / f"{entry}.yaml"))
        return RunInfo(entry, None, None, alias, None, None, None, "")
    if (path / "config.json").is_file():
        return RunInfo(path.name, None, None, replace(base, name=path.name, path=str(path)), None, None, None, "")
    if not (path / "config.yaml").is_file():
        raise UserError(f"{entry!r} is neither a run directory (config.yaml), a model directory (config.json) nor a "
                        f"model alias ({', '.join(a for a in group_options('model') if a != 'local')})")
    cfg = OmegaConf.load(path / "config.yaml")
    command = _command(path, cfg)
    if command not in TRAINING:
        raise UserError(f"{path} is not a training run ({command or 'unknown command'}); valid: the run directories "
                        f"of {', '.join(TRAINING)}")
    ckpt = latest_checkpoint(path)
    if ckpt is None:
        raise UserError(f"{path} holds no finished checkpoint (checkpoints/step_*/{STATE_FILE}): is the run done?")
    initial = _start_name(_from_node(ModelCfg, cfg.model))
    steps = json.loads((ckpt / STATE_FILE).read_text())["step"]
    final = replace(initial, name=f"{path.name}@{ckpt.name}", path=str(ckpt.resolve()), arch=None)
    prompt = _from_node(PromptCfg, cfg.prompt) if "prompt" in cfg else None
    return RunInfo(path.name, command, _variant(command, cfg), final, initial, steps, path, _argv(path), prompt)


def _start_name(model: ModelCfg) -> ModelCfg:
    """A run that started from another run's checkpoint names it like a final model (``bi@step_000019``)."""
    path = Path(model.path or "")
    return replace(model, name=f"{path.parent.parent.name}@{path.name}") if path.parent.name == "checkpoints" else model


def read_runs(entries: list[str], base: ModelCfg) -> list[RunInfo]:
    """Every entry read (all checked before anything is evaluated); labels made unique, and initial models of one
    name but different paths named with their folder (``paper1-small/init``, ``paper2-small/init``)."""
    if not entries:
        raise UserError("report needs at least one run directory, model directory or model alias")
    runs, seen = [], {}
    for entry in entries:
        run = read_run(entry, base)
        count = seen[run.label] = seen.get(run.label, 0) + 1
        runs.append(run if count == 1 else replace(run, label=f"{run.label}-{count}"))
    paths: dict[str, set] = {}
    for run in runs:
        if run.initial is not None:
            paths.setdefault(run.initial.name, set()).add(run.initial.path)

    def named(model: ModelCfg) -> ModelCfg:
        shared = len(paths.get(model.name, ())) > 1
        return replace(model, name=f"{Path(model.path).parent.name}/{model.name}") if shared else model

    return [replace(run, initial=named(run.initial)) if run.initial is not None else run for run in runs]
