"""Figures drawn from files (CSV, JSONL), never from live objects, so any figure can be redrawn later."""

from __future__ import annotations

import csv
from pathlib import Path


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def plot_asymmetry(rows: list[dict[str, str]], path: Path, title: str = "") -> Path:
    """Paper 1's asymmetry figure (papers.md §1.1): generation accuracy and self-verification balanced accuracy
    against training step, with the 0.5 chance line of a balanced verification set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(rows, key=lambda r: int(r["step"]))
    steps = [int(r["step"]) for r in rows]
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    ax.plot(steps, [float(r["gen_accuracy"]) for r in rows], "o-", label="generation accuracy")
    ax.plot(steps, [float(r["verify_balanced_accuracy"]) for r in rows], "s-",
            label="self-verification balanced accuracy")
    ax.axhline(0.5, color="grey", linestyle="--", linewidth=1, label="chance (balanced set)")
    ax.set_xlabel("training step")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title or "generation vs self-verification")
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
