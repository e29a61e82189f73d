"""The ``verireason`` command line: thin Typer commands that compose a config and call a recipe.

Typer owns argv; every command turns its options into Hydra overrides, appends the trailing ``key=value``
overrides, composes ``conf/<command>.yaml`` with the compose API, makes the run directory (the compose API makes
none) and calls ``recipes.<command>.run``. Heavy imports (torch, transformers) happen inside the commands, so
``verireason --help`` answers at once. Bad input ends with one line on stderr and exit code 2.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from verireason.ending import guarded as _user_errors
from verireason.ending import hold
from verireason.errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Experiments on LLM self-verification (Learning to Self-Verify, STV/ViL, S²R).")

OVERRIDES = {"allow_extra_args": True, "ignore_unknown_options": True}
ModelOpt = Annotated[Optional[str], typer.Option(help="model alias (conf/model), local model directory or hub id")]
BenchOpt = Annotated[Optional[str], typer.Option(help="benchmark name(s), comma-separated (conf/bench)")]
LimitOpt = Annotated[Optional[int], typer.Option(help="first N problems of each benchmark")]
DataDirOpt = Annotated[Optional[Path], typer.Option(help="directory of normalized <bench>.jsonl files")]
OutOpt = Annotated[Optional[Path], typer.Option(help="run directory (default results/<command>/<model>-<time>)")]
SeedOpt = Annotated[Optional[int], typer.Option(help="sampling seed")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="continue the run in --out (or the latest run)")]
CfgOpt = Annotated[bool, typer.Option("--cfg", help="print the composed config and exit")]
ProtocolOpt = Annotated[Optional[str], typer.Option(help="solve | self_verify | vr_loop | s2r_attempts")]
SamplesOpt = Annotated[Optional[Path], typer.Option(help="judge the responses in this JSONL file, generate none")]
VerifierOpt = Annotated[Optional[str], typer.Option(help="verifier model (alias, directory or hub id); default: the model")]


@app.callback()
def _root() -> None:
    """Experiments on LLM self-verification. Each command takes trailing Hydra overrides (key=value)."""


def model_overrides(model: str, key: str = "model") -> list[str]:
    """``--model``: an alias selects ``conf/model/<alias>.yaml``; a directory or hub id goes through ``local``.
    With ``key="verifier"`` (or ``"judge_model"``) the same model config goes to that node instead."""
    from verireason.config import group_options

    aliases = [a for a in group_options("model") if a != "local"]
    select = "model=" if key == "model" else f"+model@{key}="
    if model in aliases:
        return [f"{select}{model}"]
    if Path(model).expanduser().is_dir() or re.fullmatch(r"[\w.-]+/[\w.-]+", model):
        name = Path(model.rstrip("/")).name
        return [f"{select}local", f"{key}.path='{model}'", f"{key}.name='{name}'"]
    raise UserError(f"unknown model {model!r}; valid: {', '.join(aliases)}, a local model directory, "
                    "or a hub id (org/name)")


def _extra_overrides(args: list[str]) -> list[str]:
    for arg in args:
        if arg.startswith("-") or ("=" not in arg and not arg.startswith("~")):
            raise UserError(f"unexpected argument {arg!r}: options come before key=value config overrides "
                            "(see --help)")
    return list(args)


def _common_overrides(model, bench, limit, data_dir, out, seed, resume) -> list[str]:
    overrides = model_overrides(model) if model else []
    if bench:
        overrides.append(f"bench=[{','.join(b.strip() for b in bench.split(',') if b.strip())}]")
    pairs = {"limit": limit, "data_dir": data_dir, "out": out, "seed": seed}
    overrides += [f"{k}='{v}'" if isinstance(v, Path) else f"{k}={v}" for k, v in pairs.items() if v is not None]
    return overrides + (["resume=true"] if resume else [])


def _prepare_run_dir(command: str, cfg) -> Path:
    """The run directory: ``--out``, the latest run for a bare ``--resume``, or a new one; config saved in it. Every
    external piece the run needs is checked first (``preflight``): a bad one leaves no run directory behind."""
    from verireason import preflight
    from verireason.config import save_resolved
    from verireason.tracking import check_resumable, latest_run_dir, new_run_dir

    preflight.check(command, cfg)

    run_dir = Path(cfg.out) if cfg.out else (latest_run_dir(command) if cfg.resume else new_run_dir(command, cfg.model.name))
    hold(run_dir)
    outputs = [run_dir / name for name in ("samples.jsonl", "verifications.jsonl", "chains.jsonl", "asymmetry.csv",
                                           "metrics.jsonl")]
    has_results = any(p.exists() and p.stat().st_size > 0 for p in outputs)
    if cfg.resume and (run_dir / "config.yaml").exists():
        check_resumable(run_dir, cfg)
    elif has_results:
        raise UserError(f"{run_dir} already holds results: pass --resume to continue it, or choose another --out")
    save_resolved(cfg, run_dir, sys.argv, command)
    return run_dir


@app.command("eval", context_settings=OVERRIDES)
def evaluate(ctx: typer.Context, model: ModelOpt = None, bench: BenchOpt = None, limit: LimitOpt = None,
             data_dir: DataDirOpt = None, out: OutOpt = None, seed: SeedOpt = None, resume: ResumeOpt = False,
             protocol: ProtocolOpt = None, samples: SamplesOpt = None, verifier: VerifierOpt = None,
             cfg: CfgOpt = False) -> None:
    """Sample, grade and score a model on benchmarks: solve, self-verify, verify-refine loops, S²R attempts."""
    with _user_errors():
        from omegaconf import OmegaConf

        from verireason.config import compose, to_object

        extra = [f"protocol={protocol}"] if protocol else []
        extra += [f"samples='{samples}'"] if samples else []
        extra += model_overrides(verifier, "verifier") if verifier else []
        composed = compose("eval", _common_overrides(model, bench, limit, data_dir, out, seed, resume) + extra
                           + _extra_overrides(ctx.args))
        if cfg:
            typer.echo(OmegaConf.to_yaml(composed))
            return
        from verireason.recipes import evaluate as recipe

        if composed.protocol not in recipe.PROTOCOLS:
            raise UserError(f"unknown protocol {composed.protocol!r}; valid: {', '.join(recipe.PROTOCOLS)}")
        run_dir = _prepare_run_dir("eval", composed)
        typer.echo(f"run directory: {run_dir}")
        recipe.run(to_object(composed), run_dir)


RunArg = Annotated[Path, typer.Argument(help="an eval run directory (samples.jsonl and config.yaml)")]
BinsOutOpt = Annotated[Path, typer.Option(help="where the bin files go (read them with --data-dir)")]
HardBelowOpt = Annotated[float, typer.Option(help="Hard bin: 0 < pass rate < this (STV: 0.2)")]


@app.command("bins")
def bins(run: RunArg, out: BinsOutOpt = Path("data"), hard_below: HardBelowOpt = 0.2) -> None:
    """STV's difficulty bins from an eval run: Hardest (0 of k correct) and Hard (0 < pass rate < 0.2)."""
    with _user_errors():
        from verireason.bins import write_bins

        if not 0 < hard_below <= 1:
            raise UserError(f"--hard-below={hard_below} is out of range: it must be in (0, 1]")
        written = write_bins(run, out, hard_below)
        typer.echo("| bench | bin | problems | file |\n|---|---|---|---|")
        for (bench, name), count in written.items():
            typer.echo(f"| {bench} | {name} | {count} | {out / f'{bench}_{name}.jsonl'} |")


CheckpointsOpt = Annotated[Optional[str], typer.Option(
    help="comma list of model dirs or aliases, or a training run folder (its checkpoints in step order)")]
FromCsvOpt = Annotated[Optional[Path], typer.Option(help="redraw the figure from this asymmetry.csv and exit")]


@app.command("asymmetry-probe", context_settings=OVERRIDES)
def asymmetry_probe(ctx: typer.Context, checkpoints: CheckpointsOpt = None, model: ModelOpt = None,
                    bench: BenchOpt = None, limit: LimitOpt = None, data_dir: DataDirOpt = None, out: OutOpt = None,
                    seed: SeedOpt = None, resume: ResumeOpt = False, from_csv: FromCsvOpt = None,
                    cfg: CfgOpt = False) -> None:
    """Generation vs self-verification accuracy across checkpoints: asymmetry.csv and a figure (paper 1)."""
    with _user_errors():
        from omegaconf import OmegaConf

        from verireason.config import compose, to_object

        extra = [f"checkpoints=[{','.join(repr(c.strip()) for c in checkpoints.split(',') if c.strip())}]"
                 if checkpoints else None, f"from_csv='{from_csv}'" if from_csv else None]
        composed = compose("asymmetry-probe", _common_overrides(model, bench, limit, data_dir, out, seed, resume)
                           + [e for e in extra if e] + _extra_overrides(ctx.args))
        if cfg:
            typer.echo(OmegaConf.to_yaml(composed))
            return
        from verireason.recipes import asymmetry_probe as recipe

        if from_csv:
            recipe.run(to_object(composed), Path(from_csv).parent)
            return
        run_dir = _prepare_run_dir("asymmetry-probe", composed)
        typer.echo(f"run directory: {run_dir}")
        recipe.run(to_object(composed), run_dir)


EvalBenchOpt = Annotated[Optional[str], typer.Option(help="held-out benchmark(s) evaluated during training")]
ScheduleOpt = Annotated[Optional[str], typer.Option(help="generate | verify_only | verify_init | verify_alter | mixed")]
StepsOpt = Annotated[Optional[int], typer.Option(help="training steps (trainer.max_steps)")]


def _train(command: str, ctx: typer.Context, model, bench, eval_bench, limit, data_dir, out, seed, resume, steps,
           schedule, cfg: bool) -> None:
    """rl-gen and rl-verify: the same options and recipe, a different default schedule."""
    with _user_errors():
        from omegaconf import OmegaConf

        from verireason.config import compose, to_object

        extra = [f"bench@eval_bench=[{eval_bench}]"] if eval_bench else []
        extra += [f"trainer.max_steps={steps}"] if steps is not None else []
        extra += [f"schedule.name={schedule}"] if schedule else []
        composed = compose(command, _common_overrides(model, bench, limit, data_dir, out, seed, resume) + extra
                           + _extra_overrides(ctx.args))
        if cfg:
            typer.echo(OmegaConf.to_yaml(composed))
            return
        from verireason.recipes import rl_train

        typed = to_object(composed)
        rl_train.check(typed, command)
        run_dir = _prepare_run_dir(command, composed)
        typer.echo(f"run directory: {run_dir}")
        rl_train.run(typed, run_dir, command)


@app.command("rl-gen", context_settings=OVERRIDES)
def rl_gen(ctx: typer.Context, model: ModelOpt = None, bench: BenchOpt = None, eval_bench: EvalBenchOpt = None,
           limit: LimitOpt = None, data_dir: DataDirOpt = None, out: OutOpt = None, seed: SeedOpt = None,
           resume: ResumeOpt = False, steps: StepsOpt = None, cfg: CfgOpt = False) -> None:
    """RL on generation (GRPO/DAPO, paper 1's Learn to Generate): metrics, rollouts, checkpoints, curves."""
    _train("rl-gen", ctx, model, bench, eval_bench, limit, data_dir, out, seed, resume, steps, None, cfg)


@app.command("rl-verify", context_settings=OVERRIDES)
def rl_verify(ctx: typer.Context, model: ModelOpt = None, bench: BenchOpt = None, eval_bench: EvalBenchOpt = None,
              limit: LimitOpt = None, data_dir: DataDirOpt = None, out: OutOpt = None, seed: SeedOpt = None,
              resume: ResumeOpt = False, steps: StepsOpt = None, schedule: ScheduleOpt = None,
              cfg: CfgOpt = False) -> None:
    """RL on self-verification (paper 1): verify_only, verify_init, verify_alter or mixed with generation."""
    _train("rl-verify", ctx, model, bench, eval_bench, limit, data_dir, out, seed, resume, steps, schedule, cfg)


MethodOpt = Annotated[Optional[str], typer.Option(help="sft | verdict_rl | opd | stv")]
CandidatesOpt = Annotated[Optional[Path], typer.Option(
    help="an eval run (or its samples.jsonl) of the generator on --bench: the candidates; default: sampled live")]


def _run_command(command: str, overrides: list[str], cfg: bool, recipe_name: str) -> None:
    """Compose ``command``'s config, print it (``--cfg``) or check it, make the run directory and run the recipe."""
    from importlib import import_module

    from omegaconf import OmegaConf

    from verireason.config import compose, to_object

    composed = compose(command, overrides)
    if cfg:
        typer.echo(OmegaConf.to_yaml(composed))
        return
    recipe = import_module(f"verireason.recipes.{recipe_name}")
    typed = to_object(composed)
    recipe.check(typed)
    run_dir = _prepare_run_dir(command, composed)
    typer.echo(f"run directory: {run_dir}")
    recipe.run(typed, run_dir)


@app.command("stv", context_settings=OVERRIDES)
def stv(ctx: typer.Context, model: ModelOpt = None, method: MethodOpt = None, bench: BenchOpt = None,
        eval_bench: EvalBenchOpt = None, samples: CandidatesOpt = None, limit: LimitOpt = None,
        data_dir: DataDirOpt = None, out: OutOpt = None, seed: SeedOpt = None, resume: ResumeOpt = False,
        steps: StepsOpt = None, cfg: CfgOpt = False) -> None:
    """Train a verifier (paper 2): sft, verdict_rl, opd (on-policy distillation from the reference-informed self),
    or stv (opd + verdict-RL); its checkpoints serve `eval --verifier`."""
    with _user_errors():
        extra = [f"method={method}"] if method else []
        extra += [f"bench@eval_bench=[{eval_bench}]"] if eval_bench else []
        extra += [f"candidates.samples='{samples}'"] if samples else []
        extra += [f"trainer.max_steps={steps}"] if steps is not None else []
        _run_command("stv", _common_overrides(model, bench, limit, data_dir, out, seed, resume) + extra
                     + _extra_overrides(ctx.args), cfg, "stv")


ModeOpt = Annotated[Optional[str], typer.Option(help="online (V-R episodes) | prompts (next turn of a V-R eval run)")]
ChainsOpt = Annotated[Optional[Path], typer.Option(help="prompts mode: a `eval --protocol vr_loop` run on --bench")]


@app.command("vil", context_settings=OVERRIDES)
def vil(ctx: typer.Context, model: ModelOpt = None, verifier: VerifierOpt = None, bench: BenchOpt = None,
        eval_bench: EvalBenchOpt = None, mode: ModeOpt = None, chains: ChainsOpt = None, limit: LimitOpt = None,
        data_dir: DataDirOpt = None, out: OutOpt = None, seed: SeedOpt = None, resume: ResumeOpt = False,
        steps: StepsOpt = None, cfg: CfgOpt = False) -> None:
    """RL of the generator inside verify-refine loops with a frozen verifier (paper 2's ViL); held-out round-0 and
    final pass@1."""
    with _user_errors():
        extra = model_overrides(verifier, "verifier") if verifier else []
        extra += [f"bench@eval_bench=[{eval_bench}]"] if eval_bench else []
        extra += [f"vil.mode={mode}"] if mode else []
        extra += [f"vil.chains='{chains}'"] if chains else []
        extra += [f"trainer.max_steps={steps}"] if steps is not None else []
        _run_command("vil", _common_overrides(model, bench, limit, data_dir, out, seed, resume) + extra
                     + _extra_overrides(ctx.args), cfg, "vil")


StageOpt = Annotated[Optional[str], typer.Option(help="data | bi | orl | prl")]
JudgeOpt = Annotated[Optional[str], typer.Option(help="data stage: the judge model (alias, directory or hub id); "
                                                      "default: the model; an endpoint: construct.judge.url=...")]
S2RDataOpt = Annotated[Optional[Path], typer.Option(
    "--data", help="bi: a `s2r --stage data` run (or its sft.jsonl); orl/prl: that run (or its rl.jsonl)")]


@app.command("s2r", context_settings=OVERRIDES)
def s2r(ctx: typer.Context, stage: StageOpt = None, model: ModelOpt = None, judge: JudgeOpt = None,
        data: S2RDataOpt = None, bench: BenchOpt = None, eval_bench: EvalBenchOpt = None, limit: LimitOpt = None,
        data_dir: DataDirOpt = None, out: OutOpt = None, seed: SeedOpt = None, resume: ResumeOpt = False,
        steps: StepsOpt = None, cfg: CfgOpt = False) -> None:
    """S²R (paper 3): build trial-and-error trajectories (data), behaviour-initialization SFT (bi), then
    outcome-level (orl) or process-level (prl) RL."""
    with _user_errors():
        extra = [f"stage={stage}"] if stage else []
        extra += model_overrides(judge, "judge_model") if judge else []
        extra += [f"data='{data}'"] if data else []
        extra += [f"bench@eval_bench=[{eval_bench}]"] if eval_bench else []
        extra += [f"trainer.max_steps={steps}", f"bi.max_steps={steps}"] if steps is not None else []  # bi | orl/prl
        _run_command("s2r", _common_overrides(model, bench, limit, data_dir, out, seed, resume) + extra
                     + _extra_overrides(ctx.args), cfg, "s2r")


DataOpt = Annotated[Optional[Path], typer.Option(help="JSONL of messages, prompt/completion or prompt/segments")]


@app.command("sft-init", context_settings=OVERRIDES)
def sft_init(ctx: typer.Context, model: ModelOpt = None, data: DataOpt = None, out: OutOpt = None,
             seed: SeedOpt = None, resume: ResumeOpt = False, steps: StepsOpt = None, cfg: CfgOpt = False) -> None:
    """Supervised fine-tuning with per-segment loss masks and KL to the initial model (S²R behaviour init)."""
    with _user_errors():
        from omegaconf import OmegaConf

        from verireason.config import compose, to_object

        overrides = (model_overrides(model) if model else []) + ([f"data='{data}'"] if data else [])
        overrides += [f"{k}={v}" if not isinstance(v, Path) else f"{k}='{v}'" for k, v in
                      {"out": out, "seed": seed, "max_steps": steps}.items() if v is not None]
        composed = compose("sft-init", overrides + (["resume=true"] if resume else []) + _extra_overrides(ctx.args))
        if cfg:
            typer.echo(OmegaConf.to_yaml(composed))
            return
        if OmegaConf.is_missing(composed, "data"):
            raise UserError("sft-init needs --data FILE (a JSONL of training examples)")
        from verireason.recipes import sft_init as recipe

        run_dir = _prepare_run_dir("sft-init", composed)
        typer.echo(f"run directory: {run_dir}")
        recipe.run(to_object(composed), run_dir)


GpusOpt = Annotated[int, typer.Option(min=1, help="GPUs per node")]
NodesOpt = Annotated[int, typer.Option(min=1, help="nodes")]
GpuMemOpt = Annotated[Optional[float], typer.Option(help="GB per GPU (default: the --gpu kind's)")]
GpuOpt = Annotated[str, typer.Option(help="h100 | h200 | a100 (bandwidth, FLOP/s and memory)")]
PromptTokensOpt = Annotated[int, typer.Option(min=1, help="prompt tokens assumed per sequence")]
EngineOpt = Annotated[str, typer.Option(help="rollout engine on the GPUs: vllm | hf")]


@app.command("plan", context_settings=OVERRIDES)
def plan(ctx: typer.Context, command: Annotated[str, typer.Argument(help="rl-gen | rl-verify | sft-init | stv | vil "
                                                                         "| s2r")],
         model: ModelOpt = None, method: MethodOpt = None, stage: StageOpt = None, schedule: ScheduleOpt = None,
         verifier: VerifierOpt = None, gpus: GpusOpt = 1, nodes: NodesOpt = 1, gpu_memory: GpuMemOpt = None,
         gpu: GpuOpt = "h100", prompt_tokens: PromptTokensOpt = 200, engine: EngineOpt = "vllm") -> None:
    """Per-GPU memory of a training run, term by term, its predicted step time and whether it fits (nothing loads)."""
    with _user_errors():
        from verireason.config import compose, to_object
        from verireason.recipes import plan as recipe

        if command not in recipe.TRAINING:
            raise UserError(f"unknown command {command!r} to plan; valid: {', '.join(recipe.TRAINING)}")
        if engine not in ("vllm", "hf"):
            raise UserError(f"unknown --engine {engine!r}; valid: vllm, hf")
        overrides = model_overrides(model) if model else []
        overrides += model_overrides(verifier, "verifier") if verifier else []
        for key, value in (("method", method), ("stage", stage), ("schedule.name", schedule)):
            overrides += [f"{key}={value}"] if value else []
        overrides += ["data=unread"] if command == "sft-init" else []  # a plan reads no data (an override wins)
        cfg = to_object(compose(command, overrides + _extra_overrides(ctx.args)))
        typer.echo(recipe.report(command, cfg, gpus, nodes, recipe.pick_gpu(gpu, gpu_memory), prompt_tokens, engine))


RunsArg = Annotated[Optional[list[str]], typer.Argument(help="training run directories (their final checkpoints), "
                                                                "model directories or aliases; then key=value overrides")]
ReportVerifierOpt = Annotated[Optional[str], typer.Option(
    help="the one verifier of every V-R loop (alias, directory or hub id); default: the first run's initial model")]
ReportOutOpt = Annotated[Optional[Path], typer.Option(
    help="where report.md and the evaluations go (default results/report; finished evaluations there are reused)")]


@app.command("report", context_settings=OVERRIDES)
def report(ctx: typer.Context, runs: RunsArg = None, bench: BenchOpt = None, limit: LimitOpt = None,
           verifier: ReportVerifierOpt = None, data_dir: DataDirOpt = None, out: ReportOutOpt = None,
           seed: SeedOpt = None, model: ModelOpt = None, cfg: CfgOpt = False) -> None:
    """Finished runs side by side on one protocol layer (same problems, grader, budget, one verifier), beside the
    papers' headline numbers: report.md, report.json, report.png."""
    with _user_errors():
        from omegaconf import OmegaConf

        from verireason.config import compose, save_resolved, to_object

        words = list(runs or []) + list(ctx.args)
        overrides = [w for w in words if "=" in w and not Path(w).exists()]
        entries = [w for w in words if w not in overrides]
        extra = [f"runs=[{','.join(repr(e) for e in entries)}]"] if entries else []
        extra += model_overrides(verifier, "verifier") if verifier else []
        composed = compose("report", _common_overrides(model, bench, limit, data_dir, out or Path("results/report"),
                                                       seed, False) + extra + _extra_overrides(overrides))
        if cfg:
            typer.echo(OmegaConf.to_yaml(composed))
            return
        from verireason.data import load_problems
        from verireason.recipes import report as recipe
        from verireason.run_info import read_runs

        settings = to_object(composed)
        read_runs(list(settings.runs), settings.model)  # every entry and benchmark checked before anything loads
        for name, bench_cfg in settings.bench.items():
            load_problems(name, bench_cfg, settings.data_dir, settings.limit)
        run_dir = Path(settings.out)
        hold(run_dir)
        save_resolved(composed, run_dir, sys.argv, "report")
        recipe.run(settings, run_dir)


def main() -> None:
    """Console-script entry point."""
    app()
