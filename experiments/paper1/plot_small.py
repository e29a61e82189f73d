"""Figure and table of paper 1's asymmetry experiment in miniature (``run_small.sh``), drawn from its files only.

For each run (``rl-gen``, ``rl-verify`` verify_only, ``rl-verify-alter``) and each probed checkpoint (the SFT
checkpoint is step 0): (a) generation accuracy on the probe's held-out problems, 95% bootstrap interval over
problems; (b) balanced self-verification accuracy on the balanced set of those samples, 95% bootstrap interval
resampled within each label; (c) the mean length of the generated solutions in tokens (paper 1, §1.1: verification
RL gives shorter traces). ``summary.md`` adds TPR/TNR and, per run, the paired change from step 0 to the last
checkpoint over the same problems, for the probe and for the run's own held-out evaluations (``eval/step_*.jsonl``),
the change in length, and each run against rl-gen at the same last step (generation and length, paired).

Usage: python experiments/paper1/plot_small.py results/paper1-small
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from verireason.metrics import (  # noqa: E402
    balanced_accuracy_interval, bootstrap_mean, paired_difference, verification_metrics,
)
from verireason.records import Sample, Verdict  # noqa: E402
from verireason.tracking import RecordLog  # noqa: E402

RUNS = (("rl-gen", "o-"), ("rl-verify", "s-"), ("rl-verify-alter", "^-"))


def per_problem(source: Path | list[Sample], field: str = "correct") -> dict[tuple[str, str], float]:
    """Each problem's mean of ``field`` (the share of correct samples, or their mean length in ``tokens``) in a
    ``samples.jsonl``-shaped file or a list of its samples."""
    groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    for s in RecordLog(source, Sample).read() if isinstance(source, Path) else source:
        groups[(s.bench, s.problem_id)].append(float(getattr(s, field)))
    return {k: sum(v) / len(v) for k, v in groups.items()}


def checkpoint_row(step_dir: Path) -> dict:
    """Generation and self-verification of one probed checkpoint, each with its 95% interval."""
    samples = RecordLog(step_dir / "samples.jsonl", Sample).read()
    gen, gen_lo, gen_hi = bootstrap_mean(list(per_problem(samples).values()))
    judged = step_dir / "verifications.jsonl"
    pairs = [(v.claimed, v.truth) for v in RecordLog(judged, Verdict).read()] if judged.exists() else []
    nan = float("nan")
    m = verification_metrics(pairs)
    tpr, tnr = m.get("tpr", nan), m.get("tnr", nan)
    ba_lo, ba_hi = balanced_accuracy_interval(pairs)
    return {"step": int(step_dir.name.split("_")[-1]), "gen": gen, "gen_lo": gen_lo, "gen_hi": gen_hi,
            "ba": m.get("verify_balanced_accuracy", nan), "ba_lo": ba_lo, "ba_hi": ba_hi, "tpr": tpr, "tnr": tnr,
            "verify_set": len(pairs), "tokens": sum(s.tokens for s in samples) / max(len(samples), 1),
            "samples": len(samples)}


def probe_rows(root: Path, run: str) -> list[dict]:
    return [checkpoint_row(d) for d in sorted((root / f"probe-{run}").glob("step_*")) if (d / "samples.jsonl").exists()]


def paired_change(first: Path, last: Path, field: str = "correct") -> str:
    """``last − first`` over the problems both hold, with its paired 95% interval: points of accuracy, or tokens."""
    mean, lo, hi, n = paired_difference(per_problem(last, field), per_problem(first, field))
    scale, unit = (100, "") if field == "correct" else (1, " tokens")
    return f"{scale * mean:+.1f} [{scale * lo:+.1f}, {scale * hi:+.1f}]{unit} ({n} problems)"


def plot(rows: dict[str, list[dict]], path: Path) -> Path:
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.9), dpi=120)
    for offset, (run, style) in zip((-0.3, 0.0, 0.3), RUNS):
        got = rows.get(run) or []
        if not got:
            continue
        x = [r["step"] + offset for r in got]
        for ax, key in ((axes[0], "gen"), (axes[1], "ba")):
            err = [[r[key] - r[f"{key}_lo"] for r in got], [r[f"{key}_hi"] - r[key] for r in got]]
            ax.errorbar(x, [r[key] for r in got], yerr=err, fmt=style, capsize=3, label=run)
        axes[2].plot(x, [r["tokens"] for r in got], style, label=run)
    axes[0].set_title("generation accuracy (held-out arith)")
    axes[1].set_title("self-verification balanced accuracy")
    axes[2].set_title("mean solution length (tokens)")
    axes[1].axhline(0.5, color="grey", linestyle="--", linewidth=1, label="chance")
    for ax in axes:
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("SmolLM2-135M-Instruct, CPU: training generation vs training self-verification (95% intervals)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def summary(root: Path, rows: dict[str, list[dict]]) -> str:
    lines = ["| run | step | generation [95% CI] | self-verification balanced [95% CI] | TPR | TNR | verify set | "
             "mean tokens |", "|---|---|---|---|---|---|---|---|"]
    for run, _ in RUNS:
        for r in rows.get(run) or []:
            lines.append(f"| {run} | {r['step']} | {r['gen']:.3f} [{r['gen_lo']:.3f}, {r['gen_hi']:.3f}] | "
                         f"{r['ba']:.3f} [{r['ba_lo']:.3f}, {r['ba_hi']:.3f}] | {r['tpr']:.2f} | {r['tnr']:.2f} | "
                         f"{r['verify_set']} | {r['tokens']:.1f} |")
    lines += ["", "| run | generation, last probed step − step 0 (points, paired) | the run's own held-out "
              "evaluation, last − step 0 (points, paired) |", "|---|---|---|"]
    for run, _ in RUNS:
        steps = sorted((root / f"probe-{run}").glob("step_*/samples.jsonl"))
        evals = sorted((root / run / "eval").glob("step_*.jsonl"))
        probe = paired_change(steps[0], steps[-1]) if len(steps) > 1 else "–"
        own = f"{paired_change(evals[0], evals[-1])}, {evals[0].stem} → {evals[-1].stem}" if len(evals) > 1 else "–"
        lines.append(f"| {run} | {probe} | {own} |")
    lines += ["", "| run | mean solution length, last − step 0 | against rl-gen at the last step: generation | "
              "against rl-gen: length |", "|---|---|---|---|"]
    base = sorted((root / "probe-rl-gen").glob("step_*/samples.jsonl"))
    for run, _ in RUNS:
        steps = sorted((root / f"probe-{run}").glob("step_*/samples.jsonl"))
        if len(steps) < 2:
            continue
        vs = run != "rl-gen" and base and base[-1].parent.name == steps[-1].parent.name
        lines.append(f"| {run} | {paired_change(steps[0], steps[-1], 'tokens')} | "
                     f"{paired_change(base[-1], steps[-1]) if vs else '–'} | "
                     f"{paired_change(base[-1], steps[-1], 'tokens') if vs else '–'} |")
    return "\n".join(lines) + "\n"


def main(root: Path) -> Path:
    rows = {run: probe_rows(root, run) for run, _ in RUNS}
    (root / "summary.md").write_text(summary(root, rows))
    return plot(rows, root / "asymmetry_small.png")


if __name__ == "__main__":
    print(main(Path(sys.argv[1])))
