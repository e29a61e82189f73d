"""What a training run will need per GPU, term by term, before anything loads (``verireason plan``; every training
command runs the same check at start on the GPUs it finds).

The terms follow the suite's own training engine (not a generic formula), for none / fsdp2 / ZeRO-3 sharding and
with or without LoRA:

* **policy weights**: fp32 master weights (``training_dtype``), sharded 1/N under fsdp2 and ZeRO-3; under LoRA the
  frozen base (fp32 as well: ``adapters.policy_and_initial`` loads it in the training dtype) plus the adapters.
* **gradients** (fp32) and **AdamW m and v** (2 × fp32) of the trainable parameters, sharded likewise.
* **FSDP2 replica**: ``sharding.py``'s unsharded copy that generation, the weight push and checkpoints read (under
  ZeRO-3 the same size, gathered while sampling, pushing or saving).
* **frozen initial model** (KL reference, STV's teacher, S²R's reference): a whole fp32 copy on each process; none
  under LoRA (the policy with its adapters off). **ViL verifier**: a second model when ``verifier`` is set.
* **activations** of one micro-batch (``micro_batch_tokens``, or ``micro_batch_size`` × the longest sequence): the
  tensors each decoder block saves for backward, per token (``block_bytes``); with gradient checkpointing only
  each block's input is kept, plus one block recomputed at a time.
* **logits** of one micro-batch: the completion positions' [rows, C, V] head output and its fp32 copy, the
  log-softmax's gradient and the entropy diagnostic (``LOGIT_BYTES`` per position and vocabulary entry); with a
  distillation term the teacher's fp32 logits too.
* **generation KV cache** (transformers engine: ``engine.batch_size`` sequences of the full length) or the
  **vLLM share** (``engine.train_gpu_memory_utilization`` of the GPU; the KV cache its lengths need is checked
  against what is left of it after the engine's own weights).

The step time uses docs/scaling.md's model with stated hardware constants: generation = L_max · (weight bytes / BW
+ B · KV bytes per step / BW), update = (6 + 2 for old log-probs) · N · tokens / (MFU · FLOP/s · GPUs).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

GiB = 2**30
FP32, BF16 = 4, 2
LOGIT_BYTES = 14  # per [row, position, vocab] entry: bf16 head output (2) + its fp32 copy (4) + grad (4) + entropy (4)
LORA_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class Arch:
    """A decoder's shape, from its ``config.json`` or the alias's ``arch`` in ``conf/model/``."""

    hidden: int
    layers: int
    intermediate: int
    heads: int
    kv_heads: int
    vocab: int
    tied: bool
    head_dim: int | None = None

    @property
    def hd(self) -> int:
        return self.head_dim or self.hidden // self.heads

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in, out) of each linear layer of one block."""
        h, q, kv, i = self.hidden, self.heads * self.hd, self.kv_heads * self.hd, self.intermediate
        return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h), "gate_proj": (h, i),
                "up_proj": (h, i), "down_proj": (i, h)}

    @property
    def params(self) -> int:
        block = sum(a * b for a, b in self.linear_shapes().values()) + 2 * self.hidden
        return self.vocab * self.hidden * (1 if self.tied else 2) + self.layers * block + self.hidden

    def lora_params(self, rank: int, targets: tuple[str, ...]) -> int:
        shapes = self.linear_shapes()
        names = LORA_LINEARS if "all-linear" in targets else [t for t in targets if t in shapes]
        return self.layers * sum(rank * (shapes[n][0] + shapes[n][1]) for n in names)

    @property
    def kv_bytes_per_token(self) -> int:
        """bf16 K and V of every layer for one token."""
        return self.layers * 2 * self.kv_heads * self.hd * BF16

    def block_bytes(self, act: int) -> int:
        """Bytes one decoder block saves for backward per token, with ``act``-byte activations (2 under bf16
        autocast, 4 in fp32): two RMSNorms (fp32 input and normalized output: 4 × 4h), the q/k/v/o, gate/up/down
        inputs (each linear keeps its own cast of its input), q, k, v before and after the rotary embedding, the
        attention output, and the MLP's gate, up, activation and product."""
        h, q, kv, i = self.hidden, self.heads * self.hd, self.kv_heads * self.hd, self.intermediate
        return 16 * h + act * (5 * h + 4 * q + 4 * kv + 4 * i)

    @classmethod
    def from_config(cls, c: dict) -> "Arch":
        text = c.get("text_config", c)
        return cls(hidden=text["hidden_size"], layers=text["num_hidden_layers"],
                   intermediate=text["intermediate_size"], heads=text["num_attention_heads"],
                   kv_heads=text.get("num_key_value_heads") or text["num_attention_heads"], vocab=text["vocab_size"],
                   tied=bool(c.get("tie_word_embeddings", text.get("tie_word_embeddings", False))),
                   head_dim=text.get("head_dim"))


@dataclass(frozen=True)
class GPU:
    name: str
    memory_gb: float
    bandwidth: float  # bytes/s of HBM
    flops: float  # dense bf16 FLOP/s


GPUS = {"h100": GPU("H100 SXM", 80, 3.35e12, 989e12), "h200": GPU("H200", 141, 4.8e12, 989e12),
        "a100": GPU("A100 80GB", 80, 2.0e12, 312e12)}


@dataclass(frozen=True)
class Workload:
    """What one run does, as its config says (``recipes.plan.workload`` builds it)."""

    command: str
    arch: Arch
    world: int = 1  # processes (GPUs) over all nodes
    sharding: str = "none"  # none | fsdp2 | zero3
    lora_rank: int = 0
    lora_targets: tuple[str, ...] = ("all-linear",)
    keeps_initial: bool = False  # a frozen copy of the initial model (reference, teacher)
    verifier: Arch | None = None  # ViL's separate verifier
    micro_rows: int = 1  # sequences in the largest micro-batch
    micro_len: int = 1  # the longest sequence in it (prompt + completion)
    completion: int = 1  # completion positions per row (the logits' C)
    checkpointing: bool = False
    bf16: bool = True  # autocast: activations in bf16
    distill: bool = False  # a teacher's logits beside the student's
    engine: str = "hf"  # hf | vllm
    gen_batch: int = 64  # sequences one generate call decodes together (hf)
    vllm_share: float = 0.0  # engine.train_gpu_memory_utilization
    rollouts: int = 1  # sequences per step (prompts × group), over all processes
    prompt: int = 200
    max_tokens: int = 1024
    mean_tokens: int | None = None  # mean response length (None: half of max_tokens)
    old_logprobs: bool = False  # a no-grad forward per update (PPO mini-batches, a KL reference)


@dataclass
class Term:
    name: str
    bytes: float
    note: str = ""


@dataclass
class Plan:
    workload: Workload
    gpu: GPU
    terms: list[Term] = field(default_factory=list)
    step: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return sum(t.bytes for t in self.terms)

    @property
    def fits(self) -> bool:
        return self.total <= self.gpu.memory_gb * 1e9 * 0.95  # 5 % for the CUDA context and fragmentation

    @property
    def largest(self) -> Term:
        return max(self.terms, key=lambda t: t.bytes)


def memory_terms(w: Workload, gpu_memory: float) -> list[Term]:
    a, shard = w.arch, w.world if w.sharding in ("fsdp2", "zero3") else 1
    p = a.params
    trainable = a.lora_params(w.lora_rank, w.lora_targets) if w.lora_rank else p
    where = f"1/{shard} of " if shard > 1 else ""
    whole = p + (trainable if w.lora_rank else 0)  # the policy's parameters, adapters included
    terms = [Term("policy weights", whole * FP32 / shard,
                  f"{where}{p / 1e9:.2f} B fp32" + (f" + {trainable / 1e6:.1f} M adapter" if w.lora_rank else "")),
             Term("gradients", trainable * FP32 / shard, f"{where}fp32 of {trainable / 1e6:.1f} M trainable"),
             Term("AdamW m, v", trainable * 2 * FP32 / shard, f"{where}2 × fp32")]
    if w.sharding == "fsdp2":
        terms.append(Term("FSDP2 replica", whole * FP32,
                          "whole fp32 copy for generation, push, checkpoints"))
    elif w.sharding == "zero3":  # GatheredParameters for sampling, the push and checkpoints: the whole model at once
        terms.append(Term("ZeRO-3 gathered weights", whole * FP32,
                          "whole fp32 weights while sampling, pushing, saving"))
    if w.keeps_initial and not w.lora_rank:
        terms.append(Term("frozen initial model", p * FP32, "whole fp32 copy per process"))
    if w.verifier is not None:
        terms.append(Term("ViL verifier", w.verifier.params * FP32, "whole fp32 copy per process"))
    tokens, act = w.micro_rows * w.micro_len, BF16 if w.bf16 else FP32
    block = a.block_bytes(act)
    if w.checkpointing:
        acts = tokens * (a.layers * a.hidden * FP32 + block)
        note = f"{tokens} tokens: block inputs + one block recomputed"
    else:
        acts = tokens * a.layers * block
        note = f"{tokens} tokens × {a.layers} blocks × {block / 1e3:.1f} kB"
    terms.append(Term("activations", acts, note + (" (checkpointing)" if w.checkpointing else "")))
    positions = w.micro_rows * w.completion
    terms.append(Term("logits", positions * a.vocab * (LOGIT_BYTES + (FP32 if w.distill else 0)),
                      f"{w.micro_rows} × {w.completion} × {a.vocab}" + (" + teacher's" if w.distill else "")))
    if w.engine == "vllm":
        share = w.vllm_share * gpu_memory * 1e9
        room = max(share - p * BF16, 0) / (a.kv_bytes_per_token * (w.prompt + w.max_tokens))
        terms.append(Term("vLLM share", share, f"engine.train_gpu_memory_utilization={w.vllm_share}: KV room for "
                          f"{room:.0f} full-length sequences beside its bf16 weights (the step samples "
                          f"{w.rollouts / w.world:.0f} per GPU)"))
    elif w.gen_batch:
        terms.append(Term("generation KV cache", w.gen_batch * (w.prompt + w.max_tokens) * a.kv_bytes_per_token,
                          f"{w.gen_batch} sequences × {w.prompt + w.max_tokens} tokens"))
    return terms


def step_seconds(w: Workload, gpu: GPU, bw_eff: float = 0.6, mfu: float = 0.4) -> dict[str, float]:
    """docs/scaling.md's synchronous step on ``w.world`` GPUs, each with its own engine."""
    a, n = w.arch, w.arch.params
    mean = w.mean_tokens or w.max_tokens / 2
    per_engine = w.rollouts / w.world
    weight_read = n * BF16 / (gpu.bandwidth * bw_eff)
    kv_read = (w.prompt + mean / 2) * a.kv_bytes_per_token / (gpu.bandwidth * bw_eff) * (mean / w.max_tokens)
    gen = w.max_tokens * (weight_read + per_engine * kv_read)
    backward = 4 if w.lora_rank else 6  # LoRA: no weight gradients of the base, its activation gradients still
    tokens = w.rollouts * (w.prompt + mean)
    update = ((backward + (2 if w.old_logprobs else 0)) * n * tokens / (gpu.flops * mfu * w.world)
              * (4 / 3 if w.checkpointing else 1))
    return {"generation": gen, "update": update, "total": gen + update}


def make_plan(w: Workload, gpu: GPU) -> Plan:
    return Plan(w, gpu, memory_terms(w, gpu.memory_gb), step_seconds(w, gpu))


def cheapest_fix(w: Workload, gpu: GPU, gpus_per_node: int) -> str | None:
    """The fitting variant of ``w`` that changes least, preferring (in this order) no LoRA (it changes the method),
    the fewest GPUs (FSDP2 over more of them), no gradient checkpointing (a third more compute), then the largest
    micro-batch; described as the settings to change."""
    rows = [w.micro_rows]
    while rows[-1] > 1:
        rows.append(rows[-1] // 2)
    worlds = [w.world] + [n for n in (2, 4, 8, 16, 32, 64) if n > w.world]
    best = None
    for lora in ((w.lora_rank,) if w.lora_rank else (0, 16)):
        for world in worlds:
            for sharding in ((w.sharding,) if world == 1 or w.sharding != "none" else ("none", "fsdp2")):
                for ckpt in ((True,) if w.checkpointing else (False, True)):
                    for r in rows:
                        candidate = replace(w, lora_rank=lora, world=world, checkpointing=ckpt, micro_rows=r,
                                            sharding=sharding if world == w.world else "fsdp2")
                        key = (lora, world, candidate.sharding != w.sharding, ckpt, -r)
                        if (best is None or key < best[0]) and make_plan(candidate, gpu).fits:
                            best = (key, candidate)
    if best is None:
        return None
    c, changes = best[1], []
    if c.lora_rank != w.lora_rank:
        changes.append(f"lora.rank={c.lora_rank}")
    if c.sharding != w.sharding:
        changes.append(f"trainer.sharding={c.sharding}")
    if c.world != w.world:
        nodes = -(-c.world // gpus_per_node)
        changes.append(f"{c.world} GPUs" + (f" ({nodes} nodes of {gpus_per_node})" if nodes > 1 else ""))
    if c.checkpointing != w.checkpointing:
        changes.append("trainer.gradient_checkpointing=true")
    if c.micro_rows != w.micro_rows:
        changes.append(f"optim.micro_batch_tokens={c.micro_rows * c.micro_len} ({c.micro_rows} "
                       f"sequence{'s' if c.micro_rows > 1 else ''} of {c.micro_len} tokens per micro-batch)")
    return ", ".join(changes)


def render(plan: Plan, fix: str | None) -> str:
    w, gpu = plan.workload, plan.gpu
    lines = [f"{w.command}: {w.arch.params / 1e9:.2f} B parameters, {w.world} × {gpu.name} "
             f"({gpu.memory_gb:g} GB), sharding={w.sharding}" + (f", LoRA rank {w.lora_rank}" if w.lora_rank else ""),
             "", "| term | GiB per GPU | |", "|---|---|---|"]
    lines += [f"| {t.name} | {t.bytes / GiB:.2f} | {t.note} |" for t in plan.terms]
    lines.append(f"| **total** | **{plan.total / GiB:.2f}** | of {gpu.memory_gb * 1e9 / GiB:.1f} GiB |")
    s = plan.step
    lines += ["", f"predicted step (docs/scaling.md's model, {gpu.name}, 60 % of HBM bandwidth, 40 % MFU): "
              f"generation {s['generation']:.1f} s + update {s['update']:.1f} s = {s['total']:.1f} s"]
    if plan.fits:
        lines.append(f"verdict: fits ({plan.total / GiB:.1f} GiB; the largest term is {plan.largest.name}, "
                     f"{plan.largest.bytes / GiB:.1f} GiB)")
    else:
        lines.append(f"verdict: does not fit ({plan.total / GiB:.1f} GiB > 95 % of {gpu.memory_gb:g} GB; the largest "
                     f"term is {plan.largest.name}, {plan.largest.bytes / GiB:.1f} GiB); "
                     + (f"the cheapest change that fits: {fix}" if fix else "nothing tried fits"))
    return "\n".join(lines)
