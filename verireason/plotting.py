"""Figures drawn from files (CSV, JSONL), never from live objects, so any figure can be redrawn later."""

from __future__ import annotations

import csv
from pathlib import Path

from verireason.files import save_figure


def read_csv(path: Path) -> list[dict[str, str]]:
    """The complete rows of a CSV (a row cut off by a kill, with empty trailing fields, is skipped)."""
    with path.open(newline="") as handle:
        return [row for row in csv.DictReader(handle) if None not in row.values()]


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
    save_figure(fig, path)
    plt.close(fig)
    return path


TRAINING_PANELS = (
    ("reward", ("generate/reward", "verify/reward")),
    ("accuracy", ("generate/accuracy", "verify/accuracy", "probe/verify_accuracy")),
    ("response tokens", ("generate/tokens", "verify/tokens")),
    ("held-out accuracy", ("*/accuracy",)),  # every eval/<bench>/accuracy column
    ("loss", ("generate/loss", "verify/loss", "sft/loss")),
    ("entropy / KL", ("generate/entropy", "verify/entropy", "generate/kl", "verify/kl", "sft/kl")),
)


def _columns(rows: list[dict], key: str) -> list[str]:
    """``key`` itself, or for ``*/<suffix>`` every ``eval/<bench>/<suffix>`` column of ``rows``."""
    if not key.startswith("*/"):
        return [key]
    return sorted({k for r in rows for k in r if k.startswith("eval/") and k.endswith(key[1:])})


def plot_training(rows: list[dict], path: Path, title: str = "",
                  panels_spec: tuple[tuple[str, tuple[str, ...]], ...] = TRAINING_PANELS) -> Path | None:
    """Training curves from ``metrics.jsonl`` rows: one panel per quantity (``panels_spec``: title and metric keys,
    ``*/<suffix>`` for every held-out benchmark's column), one line per key; panels with no data are left out.
    Returns None when there is nothing to draw."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = []
    for name, keys in panels_spec:
        keys = [c for k in keys for c in _columns(rows, k)]
        present = [k for k in keys if any(k in r for r in rows)]
        if present:
            panels.append((name, present))
    if not panels:
        return None
    cols = 2 if len(panels) > 1 else 1
    fig, axes = plt.subplots((len(panels) + cols - 1) // cols, cols, figsize=(6 * cols, 3.2 * ((len(panels) + 1) // cols)),
                             dpi=110, squeeze=False)
    for ax, (name, keys) in zip(axes.flat, panels):
        for key in keys:
            points = [(r["step"], r[key]) for r in rows if key in r and r[key] is not None]
            ax.plot([p[0] for p in points], [p[1] for p in points], "o-" if len(points) < 30 else "-",
                    markersize=3, label=key)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path


def plot_report(data: dict, path: Path) -> Path:
    """``verireason report``'s figure, from ``report.json``: (left) pass@1, V-R final pass@1 and greedy pass@1 of
    every model with 95% intervals; (right) accuracy against tokens: V-R rounds (solid), majority of N (dashed)
    and best-of-N with a perfect selector (dotted, an upper bound)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = data["models"]
    fig, (bars, curves) = plt.subplots(1, 2, figsize=(12, 4.4), dpi=120)
    metrics = [("pass@1", "pass@1 (n samples)"), ("vr_final", "V-R final, common verifier"), ("greedy", "greedy")]
    width = 0.8 / len(metrics)
    for j, (key, label) in enumerate(metrics):
        xs = [i + (j - 1) * width for i in range(len(models))]
        means = [100 * m[key][0] for m in models]
        errors = [[100 * (m[key][0] - m[key][1]) for m in models], [100 * (m[key][2] - m[key][0]) for m in models]]
        bars.bar(xs, means, width, yerr=errors, capsize=3, label=label)
    bars.set_xticks(range(len(models)), [m["name"][-28:] for m in models], rotation=20, ha="right", fontsize=7)
    bars.set_ylabel("accuracy, % (95% CI over problems)")
    bars.set_title("one protocol layer")
    bars.legend(fontsize=7)
    bars.grid(axis="y", alpha=0.3)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, m in enumerate(models):
        color = colors[i % len(colors)]
        for key, style, label in (("vr_curve", "o-", "V-R"), ("majority_curve", "s--", "majority"),
                                  ("best_of_n_oracle_curve", ":", "best-of-N oracle")):
            points = m[key]
            if points:
                curves.plot([p[0] for p in points], [100 * p[1] for p in points], style, color=color,
                            label=f"{m['name'][-20:]} {label}", alpha=0.5 if key.startswith("best") else 1.0)
    curves.set_xlabel("tokens per problem (V-R: per chain)")
    curves.set_ylabel("accuracy, %")
    curves.set_title("accuracy against tokens spent")
    curves.legend(fontsize=6, ncol=2)
    curves.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path
