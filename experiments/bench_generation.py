"""Generation throughput of each available engine on one fixed workload, appended to docs/benchmarks.md.

Workload: the embedded model (SmolLM2-135M-Instruct), 16 ``arith`` prompts × 4 samples × up to 128 new tokens,
temperature 0.6, top-p 0.95. Engines: ``hf`` (one batched ``generate`` call for all 64 sequences), transformers'
own continuous batching (``generate_batch``: paged attention, requests join and leave the batch as they finish),
the naive baseline (one ``generate`` call per sample, measured on the first ``--naive-samples`` samples; its rate
is per sample, so a subset measures it), and ``vllm`` when importable. Tokens/s counts generated tokens only; the
row for each engine also has its peak GPU memory on CUDA. The machine's description goes into the table heading.

Run: ``python experiments/bench_generation.py`` (or ``make bench``).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import datetime
from pathlib import Path

import torch

from verireason import arith
from verireason.config import SamplingCfg, compose, to_object
from verireason.generation import HFGenerator, VLLMGenerator, pick_engine
from verireason.models import resolve_model_path
from verireason.prompts import chat_text, solve_messages

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def measure(engine, prompts: list[str], sampling: SamplingCfg) -> tuple[int, float, float | None]:
    start, _ = time.perf_counter(), reset_peak()
    out = engine.generate(prompts, sampling, seed=0)
    seconds = time.perf_counter() - start
    return sum(c.tokens for cs in out for c in cs), seconds, peak_gib()


def reset_peak() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak_gib() -> float | None:
    """Peak GPU memory allocated by torch since ``reset_peak`` (GiB); None on CPU."""
    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None


def measure_continuous(hf: HFGenerator, prompts: list[str], sampling: SamplingCfg) -> tuple[int, float, float | None]:
    """transformers' continuous batching on the same model, prompts and sampling: every sample its own request."""
    from transformers import GenerationConfig

    ids = [hf.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts for _ in range(sampling.n)]
    config = GenerationConfig(max_new_tokens=sampling.max_tokens, do_sample=True, temperature=sampling.temperature,
                              top_p=sampling.top_p, top_k=0, eos_token_id=sorted(hf.eos_ids),
                              pad_token_id=hf.tokenizer.pad_token_id)
    hf.model.generate_batch(inputs=ids[:2], generation_config=config, max_new_tokens=4)  # warm-up
    start, _ = time.perf_counter(), reset_peak()
    out = hf.model.generate_batch(inputs=ids, generation_config=config)
    seconds = time.perf_counter() - start
    return sum(len(o.generated_tokens) for o in out.values()), seconds, peak_gib()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--naive-samples", type=int, default=8)
    parser.add_argument("--vllm-memory", type=float, default=0.85,
                        help="vLLM gpu_memory_utilization (on vLLM's CPU build: the share of RAM, e.g. 0.3)")
    parser.add_argument("--dtype", default="auto", help="auto (bf16 on GPU, fp32 on CPU) | float32 | bfloat16")
    parser.add_argument("--no-continuous", action="store_true", help="skip transformers' continuous batching")
    parser.add_argument("--no-write", action="store_true", help="print only; do not append to docs/benchmarks.md")
    args = parser.parse_args()

    cfg = to_object(compose("eval", []))
    path = resolve_model_path(cfg.model)
    sampling = SamplingCfg(n=args.samples, temperature=0.6, top_p=0.95, max_tokens=args.max_tokens)
    hf = HFGenerator(path, dtype=args.dtype, device="cpu" if not torch.cuda.is_available() else "cuda",
                     batch_size=args.prompts * args.samples, max_context=cfg.model.max_context)
    args.dtype = str(next(hf.model.parameters()).dtype).removeprefix("torch.")
    prompts = [chat_text(hf.tokenizer, solve_messages(p, cfg.prompt)) for p in arith.generate(args.prompts)]
    hf.generate(prompts[:1], SamplingCfg(n=1, max_tokens=4), seed=0)  # warm-up

    rows = {}
    rows["hf (batched)"] = measure(hf, prompts, sampling)
    if not args.no_continuous:
        rows["hf continuous batching (generate_batch)"] = measure_continuous(hf, prompts, sampling)
    naive = HFGenerator(path, device=hf.device, batch_size=1, max_context=cfg.model.max_context)
    one = SamplingCfg(n=1, temperature=0.6, top_p=0.95, max_tokens=args.max_tokens)
    naive_prompts = [p for p in prompts for _ in range(args.samples)][: args.naive_samples]
    rows["naive (1 sample per call)"] = measure(naive, naive_prompts, one)
    if pick_engine("auto") == "vllm":
        vllm = VLLMGenerator(path, dtype=args.dtype, max_context=2048, seed=0,
                             gpu_memory_utilization=args.vllm_memory)
        vllm.generate(prompts[:1], SamplingCfg(n=1, max_tokens=4), seed=0)  # warm-up (startup not timed)
        rows["vllm"] = measure(vllm, prompts, sampling)
    report(rows, args)


def machine() -> str:
    """The machine in words: architecture, accelerator (or CPU cores), torch and transformers versions."""
    import transformers

    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        device = (f"{torch.cuda.device_count()} × {props.name} ({props.total_memory / 2**30:.0f} GiB), "
                  f"CUDA {torch.version.cuda}")
    else:
        device = f"CPU, {os.cpu_count()} cores, {torch.get_num_threads()} threads"
    return (f"{platform.machine()} {platform.system()}, {device}, torch {torch.__version__}, "
            f"transformers {transformers.__version__}")


def report(rows: dict[str, tuple[int, float, float | None]], args) -> None:
    base = rows["naive (1 sample per call)"]
    base_rate = base[0] / base[1]
    lines = [
        f"\n## Generation throughput, {datetime.now():%Y-%m-%d %H:%M}",
        f"\nMachine: {machine()}. Workload: SmolLM2-135M-Instruct ({args.dtype}), {args.prompts} arith "
        f"prompts × {args.samples} samples × up to {args.max_tokens} new tokens, T=0.6, top-p 0.95 "
        f"(naive baseline: first {args.naive_samples} samples).",
        "Command: `python experiments/bench_generation.py`\n",
        "| engine | generated tokens | seconds | tokens/s | vs naive | peak GPU memory |",
        "|---|---|---|---|---|---|",
    ]
    for name, (tokens, seconds, peak) in rows.items():
        lines.append(f"| {name} | {tokens} | {seconds:.1f} | {tokens / seconds:.1f} | "
                     f"{tokens / seconds / base_rate:.1f}× | {'-' if peak is None else f'{peak:.2f} GiB'} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        if not DOC.exists():
            DOC.write_text("# Benchmarks\n\nEach section is appended by the script it names; rerun it to add a row.\n")
        with DOC.open("a") as handle:
            handle.write(text)


if __name__ == "__main__":
    main()
