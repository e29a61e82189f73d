"""One figure of paper 1's asymmetry experiment: generation and self-verification accuracy per checkpoint for an
rl-gen run against an rl-verify run, read from the two ``asymmetry.csv`` files that ``run_small.sh`` writes.

Usage: python experiments/paper1/plot_small.py results/paper1-small
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from verireason.plotting import read_csv  # noqa: E402


def main(root: Path) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), dpi=120, sharey=True)
    for run, style in (("rl-gen", "o-"), ("rl-verify", "s-")):
        rows = sorted(read_csv(root / f"probe-{run}" / "asymmetry.csv"), key=lambda r: int(r["step"]))
        steps = [int(r["step"]) for r in rows]
        axes[0].plot(steps, [float(r["gen_accuracy"]) for r in rows], style, label=run)
        axes[1].plot(steps, [float(r["verify_balanced_accuracy"] or "nan") for r in rows], style, label=run)
    axes[0].set_title("generation accuracy (held-out arith)")
    axes[1].set_title("self-verification balanced accuracy")
    axes[1].axhline(0.5, color="grey", linestyle="--", linewidth=1, label="chance")
    for ax in axes:
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("SmolLM2-135M-Instruct, CPU: training generation vs training self-verification")
    fig.tight_layout()
    path = root / "asymmetry_small.png"
    fig.savefig(path)
    return path


if __name__ == "__main__":
    print(main(Path(sys.argv[1])))
