"""``verireason report RUN_DIR...``: finished runs of the three papers on one protocol layer, beside the papers'.

Every run's final checkpoint, and (``initial=true``) the model it started from, is evaluated on the same held-out
problems with the same grader and token budget (``conf/report.yaml``), each model prompted as its run prompted it
(``run_prompts``: a trained model's prompt is its interface; S²R's answers under a system prompt, STV's verifier reads
the whole solution) or, with ``run_prompts=false``, every model with the report's ``prompt``:

* ``solve``: ``sampling.n`` samples per problem: standalone pass@1 (the papers' Acc@n), maj@k and pass@k curves;
* ``vr_loop``: ``verify.chains`` verify-refine chains of ``verify.rounds`` rounds with ONE common verifier for every
  model (``--verifier``; default the first run's initial model), papers.md §2.2: round-0 and final pass@1, and
  accuracy against the tokens spent next to majority vote and (oracle) best-of-N at the same tokens;
* ``s2r_attempts``: greedy decoding, the response split into attempts and verifications (papers.md §3.6);
* for STV runs, also V-R loops with the run's initial model generating and its trained verifier judging, against
  the same loops judged by the untrained verifier (the initial model itself): the comparison STV reports (papers.md
  §5 row 11).

Evaluations go to ``<out>/evals/<key>/`` through ``verireason eval``'s own recipe (resumable, with progress) and are
keyed by everything that decides their result (checkpoint, protocol, problems, sampling, prompt, verifier, grader,
seed), so a second report over the same runs reuses them. ``report_tables`` turns them into ``report.md``,
``report.json`` and ``report.png``.
"""

from __future__ import annotations

import gc
import hashlib
import json
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from omegaconf import OmegaConf

from verireason.config import EvalCfg, ModelCfg, PromptCfg, ReportCfg
from verireason.files import write_atomic
from verireason.run_info import RunInfo, read_runs

KINDS = ("solve", "vr_loop", "s2r_attempts", "vr_verifier")


@dataclass(frozen=True)
class Job:
    """One evaluation: ``kind`` of ``model`` (judged by ``verifier`` in V-R loops) into ``folder``."""

    kind: str
    model: ModelCfg
    verifier: ModelCfg | None
    cfg: EvalCfg
    key: str
    folder: Path


def _same_model(a: ModelCfg | None, b: ModelCfg | None) -> bool:
    return a is not None and b is not None and (a.path, a.gguf_file) == (b.path, b.gguf_file)


def run_prompt(cfg: ReportCfg, run: RunInfo | None) -> PromptCfg:
    """The prompts ``run``'s models are evaluated with: the run's own (``run_prompts``), else the report's."""
    return run.prompt if cfg.run_prompts and run is not None and run.prompt is not None else cfg.prompt


GENERATION = ("user", "system", "refine_user")  # the prompt fields a generator reads; the rest are the verifier's


def joint_prompt(generator: PromptCfg, judge: PromptCfg) -> PromptCfg:
    """The prompts of an evaluation whose generator and verifier may come from different runs: the generator's for
    solving and refining, the verifier's for verifying and reading verdicts; exactly ``judge`` when the generation
    prompts are the same (so one model's solving is evaluated once, whichever run it came from)."""
    if all(getattr(generator, f) == getattr(judge, f) for f in GENERATION):
        return judge
    return replace(judge, name=f"{generator.name}+{judge.name}", **{f: getattr(generator, f) for f in GENERATION})


def eval_cfg(cfg: ReportCfg, kind: str, model: ModelCfg, verifier: ModelCfg | None, prompt: PromptCfg) -> EvalCfg:
    """The ``verireason eval`` config of one evaluation; the same problems, grader and budget for every model."""
    sampling = cfg.sampling
    if kind == "s2r_attempts":
        sampling = replace(sampling, n=1, temperature=0.0, top_p=1.0)
    vr = kind in ("vr_loop", "vr_verifier")
    return EvalCfg(model=model, bench=cfg.bench, sampling=sampling, prompt=prompt, engine=cfg.engine,
                   grader=cfg.grader, protocol="vr_loop" if vr else kind, verify=cfg.verify,
                   verifier=None if not vr or _same_model(model, verifier) else verifier, limit=cfg.limit,
                   seed=cfg.seed, data_dir=cfg.data_dir, progress=cfg.progress)


def job_key(cfg: EvalCfg, verifier: ModelCfg | None) -> str:
    """A digest of everything that decides an evaluation's result (not its name, folder or progress bars)."""
    def model(m: ModelCfg | None):
        return None if m is None else {k: v for k, v in asdict(m).items() if k not in ("name", "arch")}

    body = asdict(cfg)
    for name in ("out", "resume", "progress", "log", "samples", "model", "verifier"):
        body.pop(name, None)
    body["model"] = model(cfg.model)
    body["verifier"] = model(verifier) if cfg.protocol == "vr_loop" else None
    return hashlib.sha1(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _slug(text: str) -> str:
    return re.sub(r"[^\w.-]+", "_", text)[:60]


def plan_jobs(cfg: ReportCfg, runs: list[RunInfo], out: Path) -> tuple[ModelCfg, dict[tuple[str, str], Job]]:
    """The common verifier and every evaluation the report needs, by (role label, kind); one Job per distinct key."""
    source = None if cfg.verifier else next((r for r in runs if r.initial is not None), runs[0])
    verifier = cfg.verifier or (source.initial or source.final)
    judging = run_prompt(cfg, source)
    jobs: dict[tuple[str, str], Job] = {}
    by_key: dict[str, Job] = {}

    def add(label: str, kind: str, model: ModelCfg, judge: ModelCfg | None, prompt: PromptCfg) -> None:
        ecfg = eval_cfg(cfg, kind, model, judge, prompt)
        key = job_key(ecfg, judge)
        if key not in by_key:
            by_key[key] = Job(kind, model, judge, ecfg, key, out / "evals" / f"{_slug(label)}-{kind}-{key}")
        jobs[(label, kind)] = by_key[key]

    for run in runs:
        own = run_prompt(cfg, run)
        models = [("final", run.final)] + ([("initial", run.initial)] if cfg.initial and run.initial else [])
        for role, model in models:
            for kind in ("solve", "vr_loop", "s2r_attempts"):
                add(f"{run.label}:{role}", kind, model, verifier, joint_prompt(own, judging))
        if run.command == "stv" and run.initial is not None:  # STV's number: the run's generator judged by the
            add(f"{run.label}:final", "vr_verifier", run.initial, run.final, own)  # trained verifier, against the
            if cfg.initial:  # untrained one (the same model before training), both under the run's prompts
                add(f"{run.label}:initial", "vr_verifier", run.initial, run.initial, own)
    return verifier, jobs


def run_job(job: Job) -> None:
    """Evaluate (or reuse the finished evaluation in ``job.folder``)."""
    from verireason.recipes import evaluate

    if (job.folder / "key.json").is_file():  # written last: the evaluation is complete
        return
    job.folder.mkdir(parents=True, exist_ok=True)
    write_atomic(job.folder / "config.yaml", OmegaConf.to_yaml(OmegaConf.structured(job.cfg)))
    evaluate.run(job.cfg, job.folder)
    write_atomic(job.folder / "key.json", json.dumps({"key": job.key, "kind": job.kind, "model": job.model.path,
                                                      "verifier": (job.verifier or job.model).path}) + "\n")
    gc.collect()


def run(cfg: ReportCfg, out: Path) -> Path:
    """Evaluate what the report needs into ``out/evals`` and write ``report.md``, ``report.json``, ``report.png``."""
    from verireason.report_tables import write_report

    runs = read_runs(list(cfg.runs), cfg.model)
    verifier, jobs = plan_jobs(cfg, runs, out)
    unique = list({j.key: j for j in jobs.values()}.values())
    todo = [j for j in unique if not (j.folder / "key.json").is_file()]
    print(f"report: {len(runs)} runs, {len(unique)} evaluations ({len(unique) - len(todo)} reused), common "
          f"verifier {verifier.name} ({verifier.path})", flush=True)
    for i, job in enumerate(todo, 1):
        print(f"\nreport: evaluation {i}/{len(todo)}: {job.kind} of {job.model.name}"
              + (f", verifier {job.verifier.name}" if job.kind.startswith("vr") and job.verifier else ""), flush=True)
        run_job(job)
    path = write_report(cfg, runs, verifier, jobs, out)
    print(f"\nreport.md, report.json and report.png are in {out}")
    return path
