"""Figure and table of the small paper-3 run (``run_small.sh``), drawn from its files only.

(a) greedy pass@1 on the held-out problems of the warm-up, BI, ORL and PRL models, with 95% bootstrap intervals over
problems; (b) Fig. 3's verification and correction metrics of the same greedy responses (verification accuracy,
error recall, correct precision, incorrect→correct and correct→incorrect rates, attempts per response), each with its
interval; (c) the two RL runs' training curves (reward and last-attempt accuracy per step; held-out greedy accuracy
at its evaluations). Writes ``small.png`` and ``summary.md`` into the run folder.

Usage: python experiments/paper3/plot_small.py results/paper3-small
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

MODELS = ("warmup", "bi", "orl", "prl")
LABELS = {"warmup": "warm-up (initial)", "bi": "S²R-BI", "orl": "S²R-ORL", "prl": "S²R-PRL"}


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def per_problem(run: Path) -> list[dict]:
    """One record per held-out problem (greedy: one response each): pass, attempts, verdict pairs."""
    attempts = {(r["problem_id"], r["sample_index"]): r for r in _rows(run / "attempts.jsonl")}
    out = []
    for s in _rows(run / "samples.jsonl"):
        a = attempts.get((s["problem_id"], s["sample_index"]), {})
        out.append({"correct": s["correct"], "tokens": s["tokens"], "attempts": a.get("attempts_correct", []),
                    "pairs": list(zip(a.get("verdicts", []), a.get("verified_correct", [])))})
    return out


def _ratio(num: Callable[[dict], int], den: Callable[[dict], int]) -> Callable[[Sequence[dict]], float]:
    def value(rows: Sequence[dict]) -> float:
        d = sum(den(r) for r in rows)
        return sum(num(r) for r in rows) / d if d else float("nan")
    return value


def _transitions(r: dict, start: bool, end: bool) -> int:
    seq = r["attempts"]
    return sum(a == start and b == end for a, b in zip(seq, seq[1:]))


# how many cases each metric is a share of (reported beside it: some rates rest on a handful of cases)
CASES: dict[str, Callable[[dict], int]] = {
    "verify_acc": lambda r: len(r["pairs"]),
    "error_recall": lambda r: sum(not t for _, t in r["pairs"]),
    "correct_precision": lambda r: sum(v is True for v, _ in r["pairs"]),
    "i→c": lambda r: sum(not a for a in r["attempts"][:-1]),
    "c→i": lambda r: sum(a for a in r["attempts"][:-1]),
}
METRICS: dict[str, Callable[[Sequence[dict]], float]] = {
    "pass@1": _ratio(lambda r: r["correct"], lambda r: 1),
    "attempts": _ratio(lambda r: len(r["attempts"]), lambda r: 1),
    "verify_acc": _ratio(lambda r: sum(v is not None and v == t for v, t in r["pairs"]), lambda r: len(r["pairs"])),
    "error_recall": _ratio(lambda r: sum(v is False for v, t in r["pairs"] if not t),
                           lambda r: sum(not t for _, t in r["pairs"])),
    "correct_precision": _ratio(lambda r: sum(t for v, t in r["pairs"] if v is True),
                                lambda r: sum(v is True for v, _ in r["pairs"])),
    "i→c": _ratio(lambda r: _transitions(r, False, True), lambda r: sum(not a for a in r["attempts"][:-1])),
    "c→i": _ratio(lambda r: _transitions(r, True, False), lambda r: sum(a for a in r["attempts"][:-1])),
}


def bootstrap(rows: Sequence[dict], metric: Callable[[Sequence[dict]], float], n: int = 2000,
              seed: int = 0) -> tuple[float, float, float]:
    """(value, 2.5th, 97.5th percentile) over problems resampled with replacement."""
    rng, value = random.Random(seed), metric(rows)
    draws = sorted(x for x in (metric([rng.choice(rows) for _ in rows]) for _ in range(n)) if x == x)
    if not draws:
        return value, float("nan"), float("nan")
    return value, draws[int(0.025 * len(draws))], draws[int(0.975 * len(draws)) - 1]


def _fmt(v: tuple[float, float, float], cases: int | None = None) -> str:
    n = "" if cases is None else f" (n={cases})"
    return f"–{n}" if v[0] != v[0] else f"{v[0]:.3f} [{v[1]:.3f}, {v[2]:.3f}]{n}"


def paired_difference(a: Sequence[dict], b: Sequence[dict], n: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """pass@1 of b − a on the same problems, with a paired bootstrap interval."""
    pairs = list(zip(a, b))
    diff = lambda ps: sum(y["correct"] - x["correct"] for x, y in ps) / len(ps)  # noqa: E731
    rng = random.Random(seed)
    draws = sorted(diff([rng.choice(pairs) for _ in pairs]) for _ in range(n))
    return diff(pairs), draws[int(0.025 * n)], draws[int(0.975 * n) - 1]


def main(root: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    evals = {m: per_problem(root / f"eval-{m}") for m in MODELS if (root / f"eval-{m}" / "samples.jsonl").exists()}
    table = {m: {k: bootstrap(rows, f) for k, f in METRICS.items()} for m, rows in evals.items()}
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.6))
    names = list(evals)
    for i, m in enumerate(names):
        v = table[m]["pass@1"]
        axes[0].bar(i, v[0], yerr=[[v[0] - v[1]], [v[2] - v[0]]], capsize=4, color=f"C{i}")
    axes[0].set_xticks(range(len(names)), [LABELS[m] for m in names])
    axes[0].set_ylabel("greedy pass@1 (held-out)")
    axes[0].set_title(f"(a) pass@1, 95% bootstrap CI over {len(next(iter(evals.values()), []))} problems")
    keys = list(CASES)
    width = 0.8 / max(len(names), 1)
    for i, m in enumerate(names):
        vals = [table[m][k] for k in keys]
        xs = [j + (i - (len(names) - 1) / 2) * width for j in range(len(keys))]
        axes[1].bar(xs, [0 if v[0] != v[0] else v[0] for v in vals], width, label=LABELS[m], color=f"C{i}",
                    yerr=[[0 if v[0] != v[0] else v[0] - v[1] for v in vals],
                          [0 if v[0] != v[0] else v[2] - v[0] for v in vals]], capsize=2)
        for x, k in zip(xs, keys):
            axes[1].text(x, 1.02, str(sum(CASES[k](r) for r in evals[m])), ha="center", fontsize=6, color=f"C{i}")
    axes[1].set_xticks(range(len(keys)), ["verify acc.", "error recall", "correct prec.", "incorr.→corr.",
                                          "corr.→incorr."], fontsize=8)
    axes[1].set_ylim(0, 1.4)
    axes[1].set_title("(b) Fig. 3's metrics, same responses (numbers: cases; no bar: none)")
    axes[1].legend(fontsize=7, ncol=2, loc="upper left")
    for level, style in (("orl", "-"), ("prl", "--")):
        rows = _rows(root / level / "metrics.jsonl")
        train = [r for r in rows if "s2r/reward" in r]
        held = [r for r in rows if "heldout/accuracy" in r]
        axes[2].plot([r["step"] for r in train], [r["s2r/accuracy"] for r in train], style, color="C2",
                     label=f"{level.upper()} train last-attempt acc.")
        axes[2].plot([r["step"] for r in train], [r["s2r/attempts"] / 4 for r in train], style, color="C4",
                     label=f"{level.upper()} attempts / 4")
        axes[2].plot([r["step"] for r in held], [r["heldout/accuracy"] for r in held], style, marker="o", color="C3",
                     label=f"{level.upper()} held-out greedy acc.")
    axes[2].set_xlabel("RL step")
    axes[2].set_title("(c) ORL (solid) and PRL (dashed) during training")
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(root / "small.png", dpi=110)
    lines = ["| model | " + " | ".join(METRICS) + " |", "|---" * (len(METRICS) + 1) + "|"]
    lines += [f"| {LABELS[m]} | " + " | ".join(_fmt(table[m][k], sum(CASES[k](r) for r in evals[m]) if k in CASES
                                                   else None) for k in METRICS) + " |" for m in names]
    if "bi" in evals:
        lines.append("")
        for m in ("orl", "prl"):
            if m in evals:
                d = paired_difference(evals["bi"], evals[m])
                lines.append(f"- {LABELS[m]} − S²R-BI pass@1 (paired, same problems): {d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}]")
        if "warmup" in evals:
            d = paired_difference(evals["warmup"], evals["bi"])
            lines.append(f"- S²R-BI − warm-up pass@1 (paired): {d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}]")
    data = root / "data" / "data_summary.json"
    if data.exists():
        lines += ["", "data stage: `" + json.dumps(json.loads(data.read_text())) + "`"]
    (root / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
