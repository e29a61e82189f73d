"""Shared fixtures: a tiny random Llama with a byte-level tokenizer built in code, a scripted engine, paths.

Nothing here touches the network: the hub is switched off for the whole session.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
BENCHMARKS = SHARED / "benchmarks"

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_model(path: Path, seed: int = 0) -> Path:
    """A 2-layer random Llama (hidden 64, one 64-dim head: a size vLLM's CPU kernels accept) and a byte-level
    tokenizer, saved as a model directory."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "<|im_end|>", "<|im_start|>"]
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {tok: i for i, tok in enumerate(specials + alphabet)}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.add_special_tokens(specials)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", bos_token="<s>",
                                        eos_token="<|im_end|>")
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=1, num_key_value_heads=1, max_position_embeddings=2048,
                         pad_token_id=0, bos_token_id=1, eos_token_id=2)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


class ScriptedGenerator:
    """An engine that answers from a script: ``answers[problem text]`` is a list of completions, cycled."""

    def __init__(self, answers: dict[str, list[str]]):
        from transformers import PreTrainedTokenizerFast  # noqa: F401 - only the chat template is needed

        self.answers = answers
        self.calls = 0
        self.tokenizer = _PlainTokenizer()

    def prompts_per_call(self, sampling) -> int:
        return 2

    def generate(self, prompts, sampling, seed):
        from verireason.records import Completion

        self.calls += 1
        out = []
        for prompt in prompts:
            key = next(k for k in self.answers if k in prompt)
            script = self.answers[key]
            out.append([Completion(script[i % len(script)], 10 + i, "stop" if i % 2 == 0 else "length")
                        for i in range(sampling.n)])
        return out


class _PlainTokenizer:
    chat_template = None


@pytest.fixture
def scripted():
    return ScriptedGenerator


@pytest.fixture
def shared_benchmarks() -> Path:
    if not BENCHMARKS.is_dir():
        pytest.skip("../shared/benchmarks is not beside the checkout")
    return BENCHMARKS


class FnGenerator:
    """An engine whose completion for (prompt, sample i) is ``fn(prompt, i)``; it counts calls and prompts."""

    def __init__(self, fn, per_call: int = 3):
        self.fn, self.per_call = fn, per_call
        self.calls, self.prompts = 0, []
        self.tokenizer = _PlainTokenizer()

    def prompts_per_call(self, sampling) -> int:
        return self.per_call

    def generate(self, prompts, sampling, seed):
        from verireason.records import Completion

        assert len(prompts) <= self.per_call
        self.calls += 1
        self.prompts += prompts
        return [[Completion(self.fn(p, i), 5, "stop") for i in range(sampling.n)] for p in prompts]


@pytest.fixture
def fn_generator():
    return FnGenerator


def write_toy_bench(path: Path, n: int = 16, answers: tuple[str, ...] = ("1", "2")) -> Path:
    """A problem file whose gold answers cycle through ``answers`` (a task a primed tiny model can score on)."""
    import json

    rows = [{"id": f"toy-{i}", "problem": f"Toy question {i}: is the answer 1 or 2?", "answer": answers[i % len(answers)]}
            for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def prime_tiny_model(base: Path, work: Path, steps: int = 60) -> Path:
    """The tiny model after a short ``sft-init`` on the toy task's two formats: solutions "\\boxed{1}" or
    "\\boxed{2}" (also after a previous attempt and feedback, as V-R refinements ask) and verdicts
    "Answer: \\boxed{Yes}" or "\\boxed{No}" (also under STV's student and teacher prompts), each chosen at
    random. Its rollouts are then boxed, half right, and its verdicts parseable: RL has signal to act on."""
    import json
    import random

    from verireason.config import ModelCfg, OptimCfg, PromptCfg, SFTCfg, compose, to_object
    from verireason.prompts import informed_verify_messages, verify_messages
    from verireason.recipes import sft_init
    from verireason.records import Problem

    rng, prompt, rows = random.Random(0), PromptCfg(), []
    stv = to_object(compose("eval", ["prompt=stv"])).prompt
    for i in range(64):
        question = f"Toy question {i}: is the answer 1 or 2?"
        rows.append({"prompt": prompt.user.replace("{problem}", question), "completion": f"\\boxed{{{rng.choice('12')}}}"})
        judged = prompt.verify_user.replace("{problem}", question).replace("{response}", rng.choice("12"))
        rows.append({"prompt": judged, "completion": f"Answer: \\boxed{{{rng.choice(['Yes', 'No'])}}}"})
        if i % 2 == 0:  # refinements (V-R loops, ViL): the same boxed answers after a previous attempt and feedback
            refine = prompt.refine_user.replace("{problem}", question).replace("{response}", rng.choice("12"))
            rows.append({"prompt": refine.replace("{feedback}", "Check the last step."),
                         "completion": f"\\boxed{{{rng.choice('12')}}}"})
        else:  # STV's student and informed-teacher verification prompts (paper 2): the same random verdicts
            problem, response = Problem(f"toy-{i}", question, "1", "toy"), f"\\boxed{{{rng.choice('12')}}}"
            for messages in (verify_messages(problem, response, stv), informed_verify_messages(
                    problem, response, rng.random() < 0.5, stv)):
                rows.append({"prompt": messages[-1]["content"],
                             "completion": f"Answer: \\boxed{{{rng.choice(['Yes', 'No'])}}}"})
    data = work / "prime.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = SFTCfg(model=ModelCfg(name="tiny", path=str(base)), data=str(data), epochs=100, batch_size=16,
                 max_steps=steps, save_every=steps, progress=False, device="cpu",
                 optim=OptimCfg(lr=3e-3, weight_decay=0.0, warmup_steps=0, micro_batch_size=16))
    return sft_init.run(cfg, work / "run")


@pytest.fixture(scope="session")
def primed_model_dir(tiny_model_dir, tmp_path_factory) -> Path:
    return prime_tiny_model(tiny_model_dir, tmp_path_factory.mktemp("primed"))
