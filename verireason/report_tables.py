"""The tables and figure of ``verireason report``, computed from the evaluation folders' record files.

Every rate is a mean over problems with a 95% bootstrap interval over problems; every "initial -> final" change is
paired over the same problems. Three parts (issue: our numbers beside the papers', on one protocol layer):
(a) each run beside the papers' headline numbers it corresponds to (``conf/headlines.yaml``, papers.md §5);
(b) every model on the one protocol layer, and accuracy against tokens (V-R vs majority vote vs best-of-N);
(c) the run directories, the commands that made them and the evaluation folders each number comes from.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import yaml

from verireason.config import CONF_DIR, ModelCfg, ReportCfg
from verireason.files import write_atomic
from verireason.metrics import bootstrap_mean, majority_vote, paired_difference, pass_at_k
from verireason.records import Chain, Sample
from verireason.run_info import RunInfo
from verireason.tracking import RecordLog

HEADLINES = CONF_DIR / "headlines.yaml"
METRIC_NAMES = {"solve": "pass@1 (mean of n samples)", "vr_final": "V-R final pass@1, common verifier",
                "vr_verifier": "V-R final pass@1, initial model generating; its untrained self → this verifier "
                               "judging",
                "greedy": "greedy pass@1 (S²R protocol)"}


@dataclass
class Scores:
    """One evaluation's per-problem values and curves."""

    per_problem: dict[tuple[str, str], float]  # the headline rate of each problem
    extra: dict  # other numbers of the evaluation (round 0, maj@n, tokens, attempts ...)
    curve: list[tuple[float, float]]  # (tokens per problem or chain, accuracy)


def _per_problem(pairs) -> dict[tuple[str, str], float]:
    groups = defaultdict(list)
    for key, value in pairs:
        groups[key].append(float(value))
    return {k: sum(v) / len(v) for k, v in groups.items()}


def solve_scores(folder: Path) -> tuple[Scores, dict]:
    """pass@1 per problem; maj@k and (oracle) best-of-k against k x tokens per sample."""
    samples = RecordLog(folder / "samples.jsonl", Sample).read()
    groups = defaultdict(list)
    for s in samples:
        groups[(s.bench, s.problem_id)].append(s)
    n = min((len(g) for g in groups.values()), default=0)
    tokens = sum(s.tokens for s in samples) / max(len(samples), 1)
    ordered = {k: sorted(g, key=lambda s: s.sample_index) for k, g in groups.items()}
    majority = [(k * tokens, sum(majority_vote([(s.extracted, s.correct) for s in g[:k]]) for g in ordered.values())
                 / len(ordered)) for k in range(1, n + 1)]
    best = [(k * tokens, sum(pass_at_k(len(g), sum(s.correct for s in g), k) for g in ordered.values()) / len(ordered))
            for k in range(1, n + 1)]
    summary = json.loads((folder / "summary.json").read_text())
    extra = {"n": n, "tokens": tokens, f"maj@{n}": majority[-1][1] if majority else float("nan"),
             "truncated": sum(s.finish_reason == "length" for s in samples) / max(len(samples), 1)}
    scores = Scores(_per_problem(((s.bench, s.problem_id), s.correct) for s in samples), extra, majority)
    return scores, {"majority": majority, "best_of_n_oracle": best, "summary": summary}


def greedy_scores(folder: Path) -> Scores:
    """Greedy pass@1 of the whole response and S²R's attempt rates (papers.md §3.6)."""
    samples = RecordLog(folder / "samples.jsonl", Sample).read()
    summary = json.loads((folder / "summary.json").read_text())
    rows = [row for key, row in summary.items() if "/" not in key and isinstance(row, dict) and key != "mean"]
    weight = sum(r.get("samples", 0) for r in rows) or 1

    def pooled(name: str) -> float:
        values = [(r[name], r.get("samples", 0)) for r in rows if isinstance(r.get(name), (int, float))]
        return sum(v * w for v, w in values) / weight if values else float("nan")

    extra = {name: pooled(name) for name in ("mean_attempts", "incorrect_to_correct", "correct_to_incorrect", "tnr")}
    extra["tokens"] = sum(s.tokens for s in samples) / max(len(samples), 1)
    return Scores(_per_problem(((s.bench, s.problem_id), s.correct) for s in samples), extra, [])


def _tokens_through(chain: Chain, r: int) -> int:
    """Tokens a chain has spent once round ``r`` is decided: its responses up to r, the verifications before r."""
    last = min(r, len(chain.rounds) - 1)
    return (sum(x.tokens for x in chain.rounds[: last + 1])
            + sum(x.verify_tokens for x in chain.rounds[: min(r, len(chain.rounds))]))


def vr_scores(folder: Path, rounds: int) -> Scores:
    """Final-round pass@1 per problem; accuracy after each round against the tokens spent per chain."""
    chains = RecordLog(folder / "chains.jsonl", Chain).read()
    curve = [(sum(_tokens_through(c, r) for c in chains) / len(chains),
              sum(c.rounds[min(r, len(c.rounds) - 1)].correct for c in chains) / len(chains))
             for r in range(rounds + 1)] if chains else []
    extra = {"round0": _per_problem(((c.bench, c.problem_id), c.rounds[0].correct) for c in chains),
             "accept": sum(c.accepted_round is not None for c in chains) / max(len(chains), 1),
             "tokens": curve[-1][0] if curve else float("nan"), "chains": len(chains)}
    final = _per_problem(((c.bench, c.problem_id), c.rounds[-1].correct) for c in chains)
    return Scores(final, extra, curve)


def _rate(mean: float, lo: float | None = None, hi: float | None = None) -> str:
    """A rate in percent, with its interval when given."""
    if mean != mean:
        return "–"
    return f"{100 * mean:.1f}" + (f" [{100 * lo:.1f}, {100 * hi:.1f}]" if lo is not None else "")


def _change(delta: tuple[float, float, float, int]) -> str:
    mean, lo, hi, n = delta
    return "–" if mean != mean else f"{100 * mean:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}] ({n} problems)"


def headlines() -> list[dict]:
    return yaml.safe_load(HEADLINES.read_text())


def matching_headlines(run: RunInfo, rows: list[dict]) -> list[dict]:
    return [h for h in rows if h["for"]["command"] == run.command
            and h["for"].get("variant") in (None, run.variant)]


class Evaluations:
    """The scores of every evaluation folder of a report (each read once), and their reference names E1, E2, ..."""

    def __init__(self, jobs: dict, rounds: int):
        self.jobs, self.rounds, self._cache, self.names = jobs, rounds, {}, {}
        for job in jobs.values():
            self.names.setdefault(job.folder, f"E{len(self.names) + 1}")

    def scores(self, label: str, kind: str) -> Scores | None:
        job = self.jobs.get((label, kind))
        if job is None:
            return None
        if job.folder not in self._cache:
            if kind == "solve":
                self._cache[job.folder] = solve_scores(job.folder)
            elif kind == "s2r_attempts":
                self._cache[job.folder] = (greedy_scores(job.folder), None)
            else:
                self._cache[job.folder] = (vr_scores(job.folder, self.rounds), None)
        return self._cache[job.folder][0]

    def curves(self, label: str) -> dict | None:
        return self._cache[self.jobs[(label, "solve")].folder][1] if self.scores(label, "solve") else None

    def ref(self, label: str, kind: str) -> str:
        return self.names[self.jobs[(label, kind)].folder]


# ours -> (the final model's evaluation, the initial model's)
OURS = {"solve": ("solve", "solve"), "vr_final": ("vr_loop", "vr_loop"), "greedy": ("s2r_attempts", "s2r_attempts"),
        "vr_verifier": ("vr_verifier", "vr_verifier")}


def paper_rows(runs: list[RunInfo], evals: Evaluations, seed: int) -> list[dict]:
    """Part (a): each run beside every headline row it corresponds to."""
    out = []
    for ref, run in enumerate(runs, 1):
        for h in matching_headlines(run, headlines()):
            final_kind, initial_kind = OURS[h["ours"]]
            final = evals.scores(f"{run.label}:final", final_kind)
            initial = evals.scores(f"{run.label}:initial", initial_kind)
            row = {"paper": h["paper"], "row": h["row"], "setting": h["setting"], "metric": h["metric"],
                   "reported": h["reported"], "source": h["source"], "run": f"R{ref}", "label": run.label,
                   "model": run.initial.name if run.initial else run.final.name, "steps": run.steps,
                   "ours_metric": METRIC_NAMES[h["ours"]], "final": bootstrap_mean(list(final.per_problem.values()),
                                                                                    seed),
                   "evals": [evals.ref(f"{run.label}:final", final_kind)]}
            if initial is not None:
                row["initial"] = bootstrap_mean(list(initial.per_problem.values()), seed)
                row["change"] = paired_difference(final.per_problem, initial.per_problem, seed)
                row["evals"].append(evals.ref(f"{run.label}:initial", initial_kind))
            out.append(row)
    return out


def model_rows(runs: list[RunInfo], evals: Evaluations, seed: int) -> list[dict]:
    """Part (b): every model evaluated (initial models shared by several runs once) on the one protocol layer."""
    rows, seen = [], {}
    for ref, run in enumerate(runs, 1):
        for role in ("initial", "final"):
            label = f"{run.label}:{role}"
            if (label, "solve") not in evals.jobs:
                continue
            folder = evals.jobs[(label, "solve")].folder
            if folder in seen:
                seen[folder]["runs"].append(f"R{ref}")
                continue
            solve, vr, greedy = (evals.scores(label, k) for k in ("solve", "vr_loop", "s2r_attempts"))
            model = run.final if role == "final" else run.initial
            n = solve.extra["n"]
            matched = max(1, min(n, round(vr.extra["tokens"] / max(solve.extra["tokens"], 1e-9))))
            curves = evals.curves(label)
            row = {"name": model.name, "role": role if run.command else "model", "runs": [f"R{ref}"],
                   "steps": run.steps if role == "final" else 0, "path": model.path,
                   "pass@1": bootstrap_mean(list(solve.per_problem.values()), seed), "n": n,
                   f"maj@{n}": solve.extra[f"maj@{n}"], "tokens_per_sample": solve.extra["tokens"],
                   "vr_round0": bootstrap_mean(list(vr.extra["round0"].values()), seed),
                   "vr_final": bootstrap_mean(list(vr.per_problem.values()), seed), "vr_accept": vr.extra["accept"],
                   "vr_change": paired_difference(vr.per_problem, vr.extra["round0"], seed),
                   "vr_tokens_per_chain": vr.extra["tokens"], "vr_curve": vr.curve,
                   "matched_n": matched, "majority_matched": curves["majority"][matched - 1][1],
                   "best_of_n_oracle_matched": curves["best_of_n_oracle"][matched - 1][1],
                   "majority_curve": curves["majority"], "best_of_n_oracle_curve": curves["best_of_n_oracle"],
                   "greedy": bootstrap_mean(list(greedy.per_problem.values()), seed), **{
                       f"s2r_{k}": v for k, v in greedy.extra.items()},
                   "evals": [evals.ref(label, k) for k in ("solve", "vr_loop", "s2r_attempts")]}
            seen[folder] = row
            rows.append(row)
    return rows


def _link(target: Path, out: Path) -> str:
    return os.path.relpath(Path(target).resolve(), out.resolve())


def render(cfg: ReportCfg, runs: list[RunInfo], verifier: ModelCfg, evals: Evaluations, papers: list[dict],
           models: list[dict], out: Path) -> str:
    benches = ", ".join(cfg.bench)
    s, v = cfg.sampling, cfg.verify
    prompts = ("each model prompted as its run prompted it (named in (c); in V-R loops the generator's run's prompts "
               "for solving and refining, the verifier's for verifying)" if cfg.run_prompts
               else f"prompt `{cfg.prompt.name}`")
    lines = ["# verireason report", "",
             f"Every model below was evaluated on the same problems: {benches} (first {cfg.limit} of each), grader "
             f"`{cfg.grader.name}`, {prompts}, {s.n} samples at T = {s.temperature} of at most "
             f"{s.max_tokens} tokens; V-R loops of {v.chains} chains × {v.rounds} rounds judged by ONE verifier, "
             f"`{verifier.name}` ({verifier.path}); greedy attempts of at most {s.max_tokens} tokens. Rates in "
             "percent, 95% bootstrap intervals over problems; changes paired over the same problems.", "",
             "These are miniatures, not reproductions: compare the direction of an effect and its interval, never "
             "the level, with the papers' numbers (their models, benchmarks and steps are in each row).", "",
             "## (a) Our runs beside the papers' headline numbers", "",
             "| paper (papers.md §5 row) | paper's setting | paper's metric | reported | our run | our model, steps | "
             "our metric | ours: initial → final | change [95% CI] | from |", "|---" * 10 + "|"]
    for p in papers:
        ours = (f"{_rate(p['initial'][0])} → " if "initial" in p else "") + _rate(*p["final"])
        lines.append(f"| {p['paper']} ({p['row']}) | {p['setting']} | {p['metric']} | {p['reported']} | "
                     f"{p['run']} `{p['label']}` | {p['model']}, {p['steps']} steps | {p['ours_metric']} | {ours} | "
                     f"{_change(p['change']) if 'change' in p else '–'} | {', '.join(p['evals'])} |")
    if not papers:
        lines.append("| (no run here corresponds to a headline row) |" + " |" * 9)
    n = models[0]["n"] if models else cfg.sampling.n
    lines += ["", "## (b) The three methods on one protocol layer", "",
              f"| model | role | runs | steps | pass@1 (n = {n}) | maj@{n} | V-R round 0 | V-R final | final − round 0 | "
              "accepted | S²R greedy | attempts / response | incorrect → correct | tokens / sample | from |",
              "|---" * 15 + "|"]
    for m in models:
        majority = m["maj@" + str(m["n"])]
        lines.append(f"| `{m['name']}` | {m['role']} | {', '.join(m['runs'])} | {m['steps']} | {_rate(*m['pass@1'])} | "
                     f"{_rate(majority)} | {_rate(*m['vr_round0'])} | {_rate(*m['vr_final'])} | "
                     f"{_change(m['vr_change'])} | "
                     f"{_rate(m['vr_accept'])} | {_rate(*m['greedy'])} | {m['s2r_mean_attempts']:.2f} | "
                     f"{_rate(m['s2r_incorrect_to_correct'])} | {m['tokens_per_sample']:.0f} | {', '.join(m['evals'])} |")
    lines += ["", "### Accuracy against tokens spent", "",
              "V-R loop final pass@1 at its tokens per chain (responses and verifications), beside majority vote and "
              "best-of-N with a perfect selector (an upper bound: pass@N) over N independent samples of about the same "
              "tokens (N = V-R tokens per chain / tokens per sample, at most n).", "",
              "| model | V-R final | tokens / chain | N | majority of N | best-of-N (oracle) |", "|---" * 6 + "|"]
    for m in models:
        lines.append(f"| `{m['name']}` | {_rate(m['vr_final'][0])} | {m['vr_tokens_per_chain']:.0f} | {m['matched_n']} | "
                     f"{_rate(m['majority_matched'])} | {_rate(m['best_of_n_oracle_matched'])} |")
    lines += ["", "![accuracy of every model on the one protocol layer, and accuracy against tokens](report.png)", "",
              "## (c) Where each number comes from", ""]
    for ref, run in enumerate(runs, 1):
        where = f"[{run.path}]({_link(run.path, out)})" if run.path else f"model `{run.final.path}`"
        lines.append(f"- **R{ref}** `{run.label}`: {where}; final model `{run.final.path}`"
                     + (f"\n  `{run.argv}`" if run.argv else ""))
    for folder, name in evals.names.items():
        job = next(j for j in evals.jobs.values() if j.folder == folder)
        judge = f", verifier `{(job.verifier or job.model).name}`" if job.kind.startswith("vr") else ""
        lines.append(f"- **{name}** [{_link(folder, out)}]({_link(folder, out)}): {job.kind} of `{job.model.name}`{judge}"
                     f", prompt `{job.cfg.prompt.name}`")
    meta = out / "run.json"
    argv = json.loads(meta.read_text())["argv"][1:] if meta.is_file() else ["report", *cfg.runs]
    lines += ["", f"Made by `verireason {' '.join(argv)}`; rerun it to redraw (the finished evaluations in "
              f"{out / 'evals'} are reused)."]
    return "\n".join(lines) + "\n"


def write_report(cfg: ReportCfg, runs: list[RunInfo], verifier: ModelCfg, jobs: dict, out: Path) -> Path:
    """``report.md`` (tables), ``report.json`` (every number and curve) and ``report.png``."""
    from verireason.plotting import plot_report

    evals = Evaluations(jobs, cfg.verify.rounds)
    papers, models = paper_rows(runs, evals, cfg.seed), model_rows(runs, evals, cfg.seed)
    data = {"verifier": {"name": verifier.name, "path": verifier.path}, "papers": papers, "models": models,
            "runs": [{"ref": f"R{i}", "label": r.label, "command": r.command, "variant": r.variant, "steps": r.steps,
                      "path": str(r.path) if r.path else None, "argv": r.argv} for i, r in enumerate(runs, 1)],
            "evals": {name: str(folder) for folder, name in evals.names.items()}}
    write_atomic(out / "report.json", json.dumps(data, indent=2) + "\n")
    plot_report(data, out / "report.png")
    path = out / "report.md"
    write_atomic(path, render(cfg, runs, verifier, evals, papers, models, out))
    return path
