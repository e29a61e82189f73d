"""Generation engines behind one interface: ``generate(prompts, sampling, seed) -> list[list[Completion]]``.

* ``hf``: transformers ``generate``, batched (many prompts × n samples per call, left padding, KV cache), prompts
  sorted by length so a batch wastes little on padding; CPU or CUDA.
* ``vllm``: vLLM's offline ``LLM`` (GPU), n samples per prompt in one request, prefix caching on, so the many
  samples of one prompt (and prompts that share a prefix) reuse its KV cache.

Both take already-templated prompt text, tokenize it without adding special tokens (the chat template has them),
and both ignore the model's ``generation_config`` sampling defaults, so the config alone decides how we sample.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Protocol

from verireason.config import EngineCfg, ModelCfg, SamplingCfg
from verireason.errors import UserError
from verireason.records import Completion


class Generator(Protocol):
    tokenizer: object
    progress: Callable[[int], None] | None  # if set, called with the number of sequences finished since last call

    def generate(self, prompts: list[str], sampling: SamplingCfg, seed: int) -> list[list[Completion]]:
        """``sampling.n`` completions for each prompt, in prompt order."""
        ...

    def prompts_per_call(self, sampling: SamplingCfg) -> int:
        """How many prompts one ``generate`` call should get: callers write results after each call."""
        ...


def cut_at_stop(text: str, stop: list[str], stop_after: list[str] = ()) -> str | None:
    """``text`` cut at the earliest stop: before a ``stop`` string, after a ``stop_after`` string; None if none
    occurs."""
    hits = [(i, i) for i in (text.find(s) for s in stop) if i >= 0]
    hits += [(i, i + len(s)) for s, i in ((s, text.find(s)) for s in stop_after) if i >= 0]
    return text[: min(hits)[1]] if hits else None


def _finished_counter(end_ids: list[int], batch: int, device, report: Callable[[int], None]):
    """A transformers stopping criterion that stops nothing: it reports how many sequences of the batch have ended
    (an end token or padding after a stop string) since its last call, so progress moves within one ``generate``."""
    import torch
    from transformers import StoppingCriteria

    class FinishedCounter(StoppingCriteria):
        def __init__(self):
            self.ends = torch.tensor(end_ids, device=device)
            self.seen = torch.zeros(batch, dtype=torch.bool, device=device)

        def __call__(self, input_ids, scores, **kwargs):
            done = torch.isin(input_ids[:, -1], self.ends)
            new = int((done & ~self.seen).sum())
            self.seen |= done
            if new:
                report(new)
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

        def finish(self) -> None:
            """Report the sequences that ran to the token limit (or ended on the last step)."""
            if int((~self.seen).sum()):
                report(int((~self.seen).sum()))

    return FinishedCounter()


def _logprob_recorder(temperature: float = 1.0):
    """A transformers logits processor that changes nothing and records, for every generated position, the
    log-probability of the token that was chosen under the raw distribution divided by ``temperature`` (1: the raw
    distribution; transformers applies temperature and top-p after user processors, so the scores here are raw):
    at each call it reads the token picked from the previous call's scores, so it holds one [rows, vocab]
    log-softmax at a time."""
    import torch
    from transformers import LogitsProcessor

    class Recorder(LogitsProcessor):
        def __init__(self):
            self.last: torch.Tensor | None = None  # [rows, V] log-softmax of the latest scores
            self.steps: list[torch.Tensor] = []  # [rows] per generated position

        def __call__(self, input_ids, scores):
            self._take(input_ids[:, -1])
            self.last = torch.log_softmax(scores.float() / temperature, dim=-1)
            return scores

        def _take(self, chosen) -> None:
            if self.last is not None:
                self.steps.append(self.last.gather(-1, chosen.unsqueeze(-1)).squeeze(-1))

        def finish(self, generated) -> torch.Tensor:
            """[rows, L] log-probs of ``generated`` [rows, L] (L generated positions)."""
            self._take(generated[:, -1])
            self.last = None
            return torch.stack(self.steps, dim=1)[:, : generated.shape[1]]

    return Recorder()


class HFGenerator:
    """Batched sampling with transformers ``generate``. ``record_logprobs``: also return each sampled token's
    log-probability (``Completion.logprobs``), as training's rollout engine does, under the distribution named by
    ``logprob_temperature`` (``sampling``: the logits divided by the call's temperature; ``raw``: as they are)."""

    record_logprobs = False
    logprob_temperature = "raw"

    def __init__(self, path: str, *, dtype: str = "auto", device: str = "auto", batch_size: int = 64,
                 max_context: int = 4096):
        import torch

        from verireason.models import load_causal_lm, load_tokenizer

        device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        self._bind(load_causal_lm(path, dtype, device), load_tokenizer(path), device, batch_size, max_context)

    @classmethod
    def from_model(cls, model, tokenizer, *, batch_size: int = 64, max_context: int = 4096,
                   record_logprobs: bool = False, logprob_temperature: str = "raw") -> "HFGenerator":
        """An engine over a model already in memory: RL rollouts sample from the live policy (no weight copy)."""
        engine = cls.__new__(cls)
        engine._bind(model, tokenizer, str(next(model.parameters()).device), batch_size, max_context)
        engine.record_logprobs = record_logprobs
        engine.logprob_temperature = logprob_temperature
        return engine

    def _bind(self, model, tokenizer, device: str, batch_size: int, max_context: int) -> None:
        self.device = device
        self.progress = None
        self.tokenizer = tokenizer
        self.model = model
        self.batch_size = batch_size
        self.max_context = max_context
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos]) | {self.tokenizer.eos_token_id}
        self.eos_ids.discard(None)

    def prompts_per_call(self, sampling: SamplingCfg) -> int:
        return max(1, self.batch_size // (1 if sampling.temperature == 0 else sampling.n))

    def generate(self, prompts: list[str], sampling: SamplingCfg, seed: int) -> list[list[Completion]]:
        encoded = [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        per_prompt = 1 if sampling.temperature == 0 else sampling.n  # greedy samples are identical: decode once
        prompts_per_call = self.prompts_per_call(sampling)
        order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
        results: list[list[Completion]] = [[] for _ in prompts]
        for start in range(0, len(order), prompts_per_call):
            chunk = order[start : start + prompts_per_call]
            outputs = self._generate_batch([encoded[i] for i in chunk], sampling, per_prompt, seed + start)
            for i, completions in zip(chunk, outputs):
                results[i] = completions * (sampling.n // per_prompt)
        return results

    def _generate_batch(self, ids: list[list[int]], sampling: SamplingCfg, n: int, seed: int) -> list[list[Completion]]:
        import torch
        from transformers import LogitsProcessorList, StoppingCriteriaList

        width = max(len(x) for x in ids)
        max_new = min(sampling.max_tokens, self.max_context - width)
        if max_new < 1:
            raise UserError(f"a prompt of {width} tokens leaves no room in model.max_context={self.max_context}")
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in ids], device=self.device)  # [B, T]
        attention = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids], device=self.device)
        torch.manual_seed(seed)
        sample_kwargs = {"do_sample": True, "temperature": sampling.temperature, "top_p": sampling.top_p, "top_k": 0}
        stops = [*sampling.stop, *sampling.stop_after]
        counter = None if self.progress is None else _finished_counter(
            sorted(self.eos_ids | {pad}), len(ids) * n, self.device, self.progress)
        scale = sampling.temperature if self.logprob_temperature == "sampling" and sampling.temperature > 0 else 1.0
        recorder = _logprob_recorder(scale) if self.record_logprobs else None
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=input_ids, attention_mask=attention, max_new_tokens=max_new, num_return_sequences=n,
                pad_token_id=pad, eos_token_id=sorted(self.eos_ids), repetition_penalty=1.0,
                stop_strings=stops or None, tokenizer=self.tokenizer if stops else None,
                stopping_criteria=StoppingCriteriaList([counter]) if counter is not None else None,
                logits_processor=LogitsProcessorList([recorder]) if recorder is not None else None,
                **(sample_kwargs if sampling.temperature > 0 else {"do_sample": False}),
            )  # [B * n, T + L]
        if counter is not None:
            counter.finish()
        generated = out[:, width:]
        logps = recorder.finish(generated).tolist() if recorder is not None else [None] * len(generated)
        rows = [self._completion(row, lp, max_new, sampling) for row, lp in zip(generated.tolist(), logps)]
        return [rows[i * n : (i + 1) * n] for i in range(len(ids))]

    def _completion(self, row: list[int], logprobs: list[float] | None, max_new: int,
                    sampling: SamplingCfg) -> Completion:
        """Cut one generated row at EOS (or padding after a stop string) and classify how it ended."""
        end = next((i for i, t in enumerate(row) if t in self.eos_ids or t == self.tokenizer.pad_token_id), None)
        tokens = len(row) if end is None else min(end + 1, len(row))
        text = self.tokenizer.decode(row[: end if end is not None else len(row)], skip_special_tokens=True)
        ids = tuple(row[:tokens])
        lp = tuple(logprobs[:tokens]) if logprobs is not None else None
        cut = cut_at_stop(text, list(sampling.stop), list(sampling.stop_after))
        if cut is not None:
            return Completion(cut, tokens, "stop", ids, lp)
        finish = "length" if end is None and len(row) >= max_new else "stop"
        return Completion(text, tokens, finish, ids, lp)


class VLLMGenerator:
    """vLLM offline inference (``pip install -e '.[vllm]'``). ``record_logprobs``: also return each sampled token's
    log-probability, under the distribution the engine's ``logprobs_mode`` names (the colocated training engine
    sets it to the one the trainer computes: ``raw_logprobs``, or ``processed_logprobs`` for logits / temperature).
    ``llm_kwargs`` go to ``vllm.LLM`` as they are (the colocated training engine adds its own)."""

    def __init__(self, path: str, *, dtype: str = "auto", max_context: int = 4096, seed: int = 0,
                 gpu_memory_utilization: float = 0.85, tensor_parallel_size: int = 1,
                 enable_prefix_caching: bool = True, record_logprobs: bool = False, **llm_kwargs):
        from vllm import LLM
        from vllm.platforms import current_platform

        from verireason.models import not_available

        try:
            self.llm = LLM(model=path, dtype=dtype, max_model_len=max_context, seed=seed,
                           gpu_memory_utilization=gpu_memory_utilization, tensor_parallel_size=tensor_parallel_size,
                           enable_prefix_caching=enable_prefix_caching, generation_config="vllm", **llm_kwargs)
        except OSError as exc:
            raise not_available(path, exc) from None
        self.tokenizer = self.llm.get_tokenizer()
        self.progress = None
        self.record_logprobs = record_logprobs
        # Per-request seeds break vLLM's CPU build ("CPU Generator does not use offset"): there randomness comes
        # from the engine's seed alone; elsewhere each prompt gets ``seed + its index``.
        self.per_request_seeds = not current_platform.is_cpu()

    def prompts_per_call(self, sampling: SamplingCfg) -> int:
        return 1024  # vLLM schedules continuously: large calls keep the GPU full; results are written per call

    def generate(self, prompts: list[str], sampling: SamplingCfg, seed: int) -> list[list[Completion]]:
        from vllm import SamplingParams

        # stop_after strings are kept in the text: vLLM keeps every stop string then, so plain ones are cut after.
        def params(request_seed: int | None):
            return SamplingParams(n=sampling.n, temperature=sampling.temperature, top_p=sampling.top_p, top_k=-1,
                                  max_tokens=sampling.max_tokens, stop=[*sampling.stop, *sampling.stop_after] or None,
                                  include_stop_str_in_output=bool(sampling.stop_after), seed=request_seed,
                                  logprobs=0 if self.record_logprobs else None)

        per_prompt = [params(seed + i) for i in range(len(prompts))] if self.per_request_seeds else params(None)
        requests = [{"prompt_token_ids": self.tokenizer(p, add_special_tokens=False)["input_ids"]} for p in prompts]
        outputs = self.llm.generate(requests, per_prompt, use_tqdm=False)
        completions = [[self._completion(o, sampling) for o in out.outputs] for out in outputs]
        if self.progress is not None:
            self.progress(sum(len(cs) for cs in completions))
        return completions

    @staticmethod
    def _completion(output, sampling: SamplingCfg) -> Completion:
        text = output.text
        if sampling.stop_after:
            text = cut_at_stop(text, list(sampling.stop), list(sampling.stop_after)) or text
        finish = "length" if output.finish_reason == "length" else "stop"
        ids = tuple(output.token_ids)
        logprobs = None
        if output.logprobs is not None:  # one {token id: Logprob} per position, the sampled token among them
            logprobs = tuple(float(pos[t].logprob) for pos, t in zip(output.logprobs, ids))
        return Completion(text, len(ids), finish, ids, logprobs)


ENGINES = ("auto", "hf", "vllm")


def pick_engine(name: str) -> str:
    """``auto`` is vllm when it is importable, else hf."""
    if name not in ENGINES:
        raise UserError(f"unknown engine {name!r}; valid: {', '.join(ENGINES)}")
    if name == "auto":
        return "vllm" if importlib.util.find_spec("vllm") is not None else "hf"
    if name == "vllm" and importlib.util.find_spec("vllm") is None:
        raise UserError("engine=vllm needs vLLM: pip install -e '.[vllm]' (or use engine=hf)")
    return name


def pick_training_engine(name: str) -> str:
    """Training's rollout engine: ``auto`` is vllm where vLLM is importable and a GPU is present (on CPU, vLLM's
    1-2 minute start and per-step weight pushes buy little over ``generate`` on the live policy), else hf;
    ``vllm`` asks for it anywhere (its CPU build included)."""
    if name == "auto":
        import torch

        return "vllm" if pick_engine("auto") == "vllm" and torch.cuda.is_available() else "hf"
    return pick_engine(name)


def build_generator(engine: EngineCfg, model: ModelCfg, path: str, seed: int) -> Generator:
    """The engine named by ``engine.name`` for the model at ``path``."""
    if pick_engine(engine.name) == "vllm":
        return VLLMGenerator(path, dtype=model.dtype, max_context=model.max_context, seed=seed,
                             gpu_memory_utilization=engine.gpu_memory_utilization,
                             tensor_parallel_size=engine.tensor_parallel_size,
                             enable_prefix_caching=engine.enable_prefix_caching)
    return HFGenerator(path, dtype=model.dtype, device=engine.device, batch_size=engine.batch_size,
                       max_context=model.max_context)
