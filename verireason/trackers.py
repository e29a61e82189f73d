"""Live runs in the trackers researchers watch: TensorBoard, Weights & Biases, Trackio (``log.trackers``).

Each backend gets the same keys as ``metrics.jsonl`` at the same step, the resolved config, a table of sampled
completions every ``log.samples_every`` steps and the figures at the end; only the main process logs. Offline first,
everything inside the run directory: TensorBoard event files in ``tensorboard/``, a W&B run in ``wandb/`` in offline
mode unless ``WANDB_MODE`` says otherwise (its id kept in ``wandb_id.txt``, so a resumed run continues the same W&B
run), Trackio's local store in ``trackio/`` (``TRACKIO_DIR``, unless set). A resumed run continues after its
checkpoint: TensorBoard purges the events past it, W&B and Trackio resume the run by id or name.

The libraries are an optional extra (``pip install -e ".[trackers]"``); ``check`` says in one line which one is
missing before anything loads.
"""

from __future__ import annotations

import importlib.util
import math
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

from verireason.errors import UserError

TRACKERS = {"tensorboard": "tensorboard", "wandb": "wandb", "trackio": "trackio"}  # name → module it needs


def check(names: Sequence[str]) -> None:
    """One-line error for an unknown tracker or one whose library is not installed."""
    for name in names:
        if name not in TRACKERS:
            raise UserError(f"unknown log.trackers entry {name!r}; valid: {', '.join(TRACKERS)}")
        if importlib.util.find_spec(TRACKERS[name]) is None:
            raise UserError(f"log.trackers: {name} is not installed; pip install -e \".[trackers]\" (or pip install "
                            f"{TRACKERS[name]})")


def _scalars(metrics: dict) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


class _TensorBoard:
    def __init__(self, run_dir: Path, config: dict, resume_step: int | None, **_):
        from torch.utils.tensorboard import SummaryWriter

        # purge_step drops events a resumed run logs again
        self.writer = SummaryWriter(str(run_dir / "tensorboard"),
                                    purge_step=resume_step + 1 if resume_step is not None else None)
        if resume_step is None:
            import yaml

            self.writer.add_text("config", "```\n" + yaml.safe_dump(config, sort_keys=False) + "\n```", 0)

    def log(self, metrics: dict[str, float], step: int) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def table(self, columns: list[str], rows: list[list], step: int) -> None:
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in row) + " |" for row in rows]
        self.writer.add_text("samples", "\n".join(lines), step)

    def figure(self, path: Path, step: int) -> None:
        import matplotlib.image

        self.writer.add_image(path.stem, matplotlib.image.imread(str(path))[..., :3], step, dataformats="HWC")

    def close(self) -> None:
        self.writer.close()


class _WandB:
    def __init__(self, run_dir: Path, config: dict, resume_step: int | None, project: str, **_):
        import wandb

        id_file = run_dir / "wandb_id.txt"
        run_id = id_file.read_text().strip() if id_file.exists() else uuid.uuid4().hex[:12]
        id_file.write_text(run_id)
        self.wandb = wandb
        self.run = wandb.init(project=project, name=run_dir.name, id=run_id, resume="allow", dir=str(run_dir),
                              config=config, mode=os.environ.get("WANDB_MODE", "offline"),
                              settings=wandb.Settings(silent=True, console="off"))

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.run.log(metrics, step=step)

    def table(self, columns: list[str], rows: list[list], step: int) -> None:
        self.run.log({"samples": self.wandb.Table(columns=columns, data=rows)}, step=step)

    def figure(self, path: Path, step: int) -> None:
        self.run.log({path.stem: self.wandb.Image(str(path))}, step=step)

    def close(self) -> None:
        self.run.finish()


class _Trackio:
    def __init__(self, run_dir: Path, config: dict, resume_step: int | None, project: str, **_):
        os.environ.setdefault("TRACKIO_DIR", str(run_dir / "trackio"))  # read when trackio is imported
        import trackio

        self.trackio = trackio
        self.run = trackio.init(project=project, name=run_dir.name, config=config, resume="allow", embed=False,
                                auto_log_gpu=False, auto_log_cpu=False)

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.trackio.log(metrics, step=step)

    def table(self, columns: list[str], rows: list[list], step: int) -> None:
        import pandas

        self.trackio.log({"samples": self.trackio.Table(dataframe=pandas.DataFrame(rows, columns=columns))}, step=step)

    def figure(self, path: Path, step: int) -> None:
        self.trackio.log({path.stem: self.trackio.Image(str(path))}, step=step)

    def close(self) -> None:
        self.trackio.finish()


_BACKENDS = {"tensorboard": _TensorBoard, "wandb": _WandB, "trackio": _Trackio}


class Trackers:
    """The trackers of ``names`` for one run (none: every call does nothing). ``resume_step``: the checkpoint a
    resumed run continues after (None for a fresh run)."""

    def __init__(self, names: Sequence[str], run_dir: Path, config: dict, *, resume_step: int | None = None,
                 project: str = "verireason"):
        check(names)
        self.backends = [_BACKENDS[n](run_dir, config, resume_step, project=project) for n in names]
        self.last_step = resume_step or 0

    def log(self, metrics: dict, step: int) -> None:
        values = _scalars(metrics)
        self.last_step = step
        for backend in self.backends:
            backend.log(values, step)

    def table(self, columns: list[str], rows: list[list], step: int) -> None:
        for backend in self.backends:
            backend.table(columns, rows, step)

    def figure(self, path: Path) -> None:
        if path.exists():
            for backend in self.backends:
                backend.figure(path, self.last_step)

    def close(self) -> None:
        for backend in self.backends:
            backend.close()
        self.backends = []
