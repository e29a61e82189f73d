"""Figure and table of the small paper-2 run (``run_small.sh``), drawn from its files only.

(a) held-out verification balanced accuracy against training step, per method, ±1 standard error over the held-out
candidates; (b) V-R loops on held-out problems with each verifier: round-0 and final pass@1 with 95% bootstrap
intervals over problems; (c) precision of accepted answers against coverage (the share of chains accepted so far),
round by round. Writes ``small.png`` and ``summary.md`` into the run folder.

Usage: python experiments/paper2/plot_small.py results/paper2-small
"""

from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path

METHODS = ("verdict_rl", "opd", "stv", "sft")
VERIFIERS = ("untrained", *METHODS)


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def heldout_curve(run: Path) -> list[tuple[int, float, float, dict]]:
    """(step, balanced accuracy, its standard error, row) at every held-out evaluation of a verifier run."""
    out = []
    for row in _rows(run / "metrics.jsonl"):
        tpr, tnr, n = row.get("heldout/tpr"), row.get("heldout/tnr"), row.get("heldout/verifications")
        if tpr is None or tnr is None or not n:
            continue
        half = n / 2  # the held-out set has as many correct as incorrect candidates where problems allow
        se = 0.5 * math.sqrt(tpr * (1 - tpr) / half + tnr * (1 - tnr) / half)
        out.append((row["step"], (tpr + tnr) / 2, se, row))
    return out


def late_accept(run: Path, last: int = 5) -> str:
    """The share of "Yes" among a run's own training verifications over its last ``last`` steps: near 0 or 1, the
    verifier answers one verdict whatever it reads, and a GRPO group of identical verdicts has no advantage."""
    rates = [r["stv/accept_rate"] for r in _rows(run / "metrics.jsonl") if "stv/accept_rate" in r][-last:]
    return f"{sum(rates) / len(rates):.2f}" if rates else "–"


def chains(run: Path) -> dict[str, list[dict]]:
    by_problem: dict[str, list[dict]] = {}
    for c in _rows(run / "chains.jsonl"):
        by_problem.setdefault(c["problem_id"], []).append(c)
    return by_problem


def pass_at_round(problem_chains: list[dict], r: int) -> float:
    return sum(c["rounds"][min(r, len(c["rounds"]) - 1)]["correct"] for c in problem_chains) / len(problem_chains)


def bootstrap(values: list[float], rng: random.Random, reps: int = 2000) -> tuple[float, float, float]:
    """Mean and 95% percentile interval of the mean over resampled problems."""
    means = sorted(sum(rng.choice(values) for _ in values) / len(values) for _ in range(reps))
    return sum(values) / len(values), means[int(0.025 * reps)], means[int(0.975 * reps) - 1]


def coverage_curve(by_problem: dict[str, list[dict]], rounds: int) -> list[tuple[float, float]]:
    """(accept rate, precision of accepted) after each round r = 1..R."""
    everything = [c for cs in by_problem.values() for c in cs]
    out = []
    for r in range(1, rounds + 1):
        accepted = [c for c in everything if c["accepted_round"] is not None and c["accepted_round"] < r]
        if accepted:
            precision = sum(c["rounds"][c["accepted_round"]]["correct"] for c in accepted) / len(accepted)
            out.append((len(accepted) / len(everything), precision))
    return out


def main(root: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = random.Random(0)
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(16, 4.4), dpi=110)
    table = ["| verifier | held-out bal. acc. step 0 → last (±SE) | TPR | TNR | unparseable | training accept, last 5 steps | "
             "V-R round-0 pass@1 | final pass@1 [95% CI] | final − round-0 [95% CI] | accept | inflation | precision |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for k, name in enumerate(VERIFIERS):
        curve = heldout_curve(root / f"stv-{name}") if name != "untrained" else []
        if curve:
            a.errorbar([p[0] for p in curve], [p[1] for p in curve], yerr=[p[2] for p in curve], marker="o",
                       color=f"C{k}", capsize=3, label=name)
        by_problem = chains(root / f"vr-{name}")
        if not by_problem:
            continue
        summaries = json.loads((root / f"vr-{name}" / "summary.json").read_text())
        summary = summaries[next(key for key in summaries if "/" not in key and key != "mean")]
        final_round = max(int(key[5:].split("/")[0]) for key in summary if key.startswith("round") and "/" in key)
        r0 = [pass_at_round(cs, 0) for cs in by_problem.values()]
        rf = [pass_at_round(cs, final_round) for cs in by_problem.values()]
        m0, lo0, hi0 = bootstrap(r0, rng)
        mf, lof, hif = bootstrap(rf, rng)
        md, lod, hid = bootstrap([f - z for f, z in zip(rf, r0)], rng)
        b.errorbar([k - 0.12], [m0], yerr=[[m0 - lo0], [hi0 - m0]], fmt="o", color="grey", capsize=3,
                   label="round 0" if k == 0 else None)
        b.errorbar([k + 0.12], [mf], yerr=[[mf - lof], [hif - mf]], fmt="s", color=f"C{k}", capsize=3,
                   label=f"final (round {final_round})" if k == 0 else None)
        cov = coverage_curve(by_problem, final_round)
        if cov:
            c.plot([p[0] for p in cov], [p[1] for p in cov], "o-", color=f"C{k}", label=name)
        first, last = (curve[0], curve[-1]) if curve else (None, None)
        held = (f"{first[1]:.2f} → {last[1]:.2f} (±{last[2]:.2f})" if curve else "– (no training)")
        tpr = f"{last[3]['heldout/tpr']:.2f}" if curve else "–"
        tnr = f"{last[3]['heldout/tnr']:.2f}" if curve else "–"
        unp = f"{last[3]['heldout/unparseable']:.2f}" if curve else "–"
        accept = summary.get(f"round{final_round}/accept")
        inflation = summary.get(f"round{final_round}/inflation")
        precision = summary.get(f"round{final_round}/precision")
        fmt = lambda v: "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"  # noqa: E731
        one = late_accept(root / f"stv-{name}") if name != "untrained" else "–"
        table.append(f"| {name} | {held} | {tpr} | {tnr} | {unp} | {one} | {m0:.3f} | {mf:.3f} [{lof:.3f}, {hif:.3f}] | "
                     f"{md:+.3f} [{lod:+.3f}, {hid:+.3f}] | {fmt(accept)} | {fmt(inflation)} | {fmt(precision)} |")
    a.axhline(0.5, color="grey", linestyle="--", linewidth=1, label="chance")
    a.set(title="(a) held-out verification", xlabel="training step", ylabel="balanced accuracy", ylim=(0, 1))
    a.legend(fontsize=8)
    b.set_xticks(range(len(VERIFIERS)), VERIFIERS, rotation=20)
    b.set(title="(b) V-R loops on held-out problems", ylabel="pass@1 (95% CI over problems)", ylim=(0, 1))
    b.legend(fontsize=8)
    c.set(title="(c) precision vs coverage, by round", xlabel="share of chains accepted",
          ylabel="precision of accepted answers", xlim=(0, 1.02), ylim=(0, 1.02))
    c.legend(fontsize=8)
    for ax in (a, b, c):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(root / "small.png")
    (root / "summary.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))
    print(f"figure: {root / 'small.png'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
