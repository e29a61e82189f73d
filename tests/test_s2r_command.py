"""``verireason s2r`` end to end on a tiny model primed on S²R-format responses: the data stage against a loopback
judge endpoint, 2 steps of BI, ORL and PRL, PRL resumed step for step with its prefix baseline, one-line errors
before any run directory exists, and the full-scale presets composing."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from tests.test_rl import metrics, untimed, weights
from tests.test_s2r_data import _Stub
from verireason.cli import app
from verireason.data import read_jsonl_problems
from verireason.examples import read_examples
from verireason.papers.s2r import RECHECK, RETRY, SYSTEM

runner = CliRunner()
RL = ["sampling.max_tokens=80", "eval_sampling.max_tokens=80", "eval_limit=4", "trainer.prompts_per_step=4",
      "trainer.group_size=4", "trainer.save_every=1", "trainer.eval_every=2", "optim.lr=1e-3", "optim.warmup_steps=0",
      "optim.micro_batch_size=8", "engine.batch_size=32", "trainer.device=cpu", "progress=false", "algo.mini_batches=2"]


def _response(rng: random.Random) -> str:
    """A toy S²R response: an attempt, its verification, and on "incorrect" a retry (verdicts at random)."""
    text = ""
    for attempt in range(2):
        verdict = rng.choice(["correct", "incorrect"]) if attempt == 0 else "correct"
        text += f"\\boxed{{{rng.choice('12')}}}{RECHECK}Therefore, the answer is {verdict}."
        if verdict == "correct":
            return text
        text += RETRY
    return text


@pytest.fixture(scope="module")
def s2r_model(tiny_model_dir, tmp_path_factory) -> Path:
    from verireason.config import ModelCfg, OptimCfg, SFTCfg
    from verireason.recipes import sft_init

    work, rng = tmp_path_factory.mktemp("s2r-primed"), random.Random(0)
    rows = [{"messages": [{"role": "system", "content": SYSTEM},
                          {"role": "user", "content": f"Toy question {i}: is the answer 1 or 2?"},
                          {"role": "assistant", "content": _response(rng)}]} for i in range(64)]
    (work / "prime.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = SFTCfg(model=ModelCfg(name="tiny", path=str(tiny_model_dir)), data=str(work / "prime.jsonl"), epochs=100,
                 batch_size=16, max_steps=80, save_every=80, progress=False, device="cpu",
                 optim=OptimCfg(lr=3e-3, weight_decay=0.0, warmup_steps=0, micro_batch_size=16))
    return sft_init.run(cfg, work / "run")


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory) -> Path:
    from tests.conftest import write_toy_bench

    folder = tmp_path_factory.mktemp("toy3")
    write_toy_bench(folder / "toy.jsonl", 16)
    return folder


def _oracle(body: dict) -> dict:
    """The toy task's judge: gold is 1 for even question numbers, 2 for odd ones."""
    prompt = body["messages"][-1]["content"]
    index = int(re.search(r"Toy question (\d+)", prompt).group(1))
    answer = prompt.split("* Answer:\n")[1].split("\n")[0]
    verdict = "correct" if answer == ("1" if index % 2 == 0 else "2") else "incorrect"
    return {"choices": [{"message": {"content": f"Substituting {answer} back. The answer is {verdict}."}}]}


def _args(model: Path, toy: Path, out: Path, stage: str, *extra: str) -> list[str]:
    return ["s2r", "--stage", stage, "--model", str(model), "--bench", "custom", "--eval-bench", "custom",
            "--data-dir", str(toy), "--out", str(out), "bench.custom.file=toy.jsonl", "eval_bench.custom.file=toy.jsonl",
            *extra]


@pytest.fixture(scope="module")
def data_run(s2r_model, toy_dir, tmp_path_factory) -> Path:
    stub, out = _Stub(_oracle), tmp_path_factory.mktemp("s2r-data") / "run"
    try:
        result = runner.invoke(app, _args(s2r_model, toy_dir, out, "data", "--limit", "8", "construct.sampling.n=5",
                                          "construct.sampling.max_tokens=40", f"construct.judge.url={stub.url}",
                                          "construct.decontaminate=false", "progress=false"))
    finally:
        stub.close()
    assert result.exit_code == 0, result.output
    return out


def test_data_stage_builds_files_sft_init_and_rl_read(data_run, s2r_model):
    from verireason.models import load_tokenizer

    samples = (data_run / "samples.jsonl").read_text().splitlines()
    assert len(samples) == 8 * 5
    judgements = [json.loads(line) for line in (data_run / "judgements.jsonl").read_text().splitlines()]
    assert judgements and all(j["kept"] == (j["verdict"] == j["truth"]) for j in judgements)
    summary = json.loads((data_run / "data_summary.json").read_text())
    assert summary["trajectories"] >= 1 and summary["problems"] == 8
    examples = read_examples(data_run / "sft.jsonl", load_tokenizer(str(s2r_model)))
    assert len(examples) == summary["trajectories"] and all(any(e.trained) for e in examples)
    assert len(read_jsonl_problems(data_run / "rl.jsonl", "s2r")) == 8


def test_data_stage_resumes_without_sampling_or_judging_again(data_run, s2r_model, toy_dir):
    stub = _Stub(_oracle)
    before = (data_run / "samples.jsonl").read_text(), (data_run / "judgements.jsonl").read_text()
    try:
        result = runner.invoke(app, _args(s2r_model, toy_dir, data_run, "data", "--limit", "8", "--resume",
                                          "construct.sampling.n=5", "construct.sampling.max_tokens=40",
                                          f"construct.judge.url={stub.url}", "construct.decontaminate=false",
                                          "progress=false"))
    finally:
        stub.close()
    assert result.exit_code == 0, result.output
    assert stub.requests == [] and before == ((data_run / "samples.jsonl").read_text(),
                                              (data_run / "judgements.jsonl").read_text())


def test_bi_stage_two_steps_with_kl(data_run, s2r_model, toy_dir, tmp_path):
    out = tmp_path / "bi"
    result = runner.invoke(app, ["s2r", "--stage", "bi", "--model", str(s2r_model), "--data", str(data_run),
                                 "--out", str(out), "--steps", "2", "bi.batch_size=2", "bi.kl_coef=0.1",
                                 "optim.lr=1e-3", "optim.warmup_steps=0", "trainer.device=cpu", "progress=false"])
    assert result.exit_code == 0, result.output
    rows = metrics(out)
    assert [r["step"] for r in rows] == [1, 2] and all(r["sft/kl"] >= 0 for r in rows)
    assert (out / "checkpoints" / "step_000002" / "model.safetensors").is_file()


@pytest.mark.parametrize("stage,expect", [
    ("orl", ["s2r/reward", "s2r/kl", "s2r/attempts", "update/clip_frac"]),
    ("prl", ["s2r/verify_accuracy", "s2r/error_recall", "s2r/incorrect_to_correct", "update/loss"]),
])
def test_two_rl_steps(data_run, s2r_model, toy_dir, tmp_path, stage, expect):
    out = tmp_path / stage
    result = runner.invoke(app, _args(s2r_model, toy_dir, out, stage, "--data", str(data_run), "--steps", "2", *RL))
    assert result.exit_code == 0, result.output
    rows = metrics(out)
    assert [r["step"] for r in rows] == [0, 1, 2]
    seen = {k for r in rows for k in r}
    assert all(key in seen for key in expect), sorted(seen)
    assert "heldout/accuracy" in rows[0] and "heldout/accuracy" in rows[2]
    assert rows[1]["s2r/kl"] == pytest.approx(0.0, abs=1e-4)  # step 1 samples from the reference itself
    a, b = weights(s2r_model), weights(out / "checkpoints" / "step_000002")
    assert any(not torch.equal(a[k], b[k]) for k in a), "no weight changed"
    step1 = [json.loads(line) for line in (out / "rollouts" / "step_000001.jsonl").read_text().splitlines()]
    assert len(step1) == 16 and all(r["parts"] and r["token_advantages"] for r in step1)
    assert all(not r["trained"][-1] for r in step1 if r["finish_reason"] == "stop")  # the EOS is never a label
    if stage == "orl":  # one part; one advantage per response
        assert all(set(r["parts"]) <= {0, -1} and len(set(r["token_advantages"])) == 1 for r in step1)
    else:
        state = json.loads((out / "checkpoints" / "step_000002" / "trainer_state.json").read_text())
        assert sum(state["prefix_baseline"]["counts"].values()) > 0


def test_prl_resumes_step_for_step(data_run, s2r_model, toy_dir, tmp_path):
    whole, split = tmp_path / "whole", tmp_path / "split"
    args = ["--data", str(data_run), *RL, "trainer.eval_every=0"]
    assert runner.invoke(app, _args(s2r_model, toy_dir, whole, "prl", "--steps", "2", *args)).exit_code == 0
    assert runner.invoke(app, _args(s2r_model, toy_dir, split, "prl", "--steps", "1", *args)).exit_code == 0
    result = runner.invoke(app, _args(s2r_model, toy_dir, split, "prl", "--steps", "2", "--resume", *args))
    assert result.exit_code == 0, result.output
    assert untimed(split) == untimed(whole)


def test_prl_sharded_equals_unsharded_and_runs_with_lora(data_run, s2r_model, toy_dir, tmp_path):
    """2 processes over gloo: PRL with FSDP2 equals PRL under DDP; with LoRA (the reference: adapters off) it runs."""
    from tests.test_sharding import _same_rows, _same_weights, torchrun

    args = ["--data", str(data_run), "--steps", "2", *RL, "trainer.eval_every=0"]
    for name, extra in (("none", []), ("fsdp2", []), ("lora", ["lora.rank=4", "lora.alpha=8"])):
        sharding = "none" if name == "none" else "fsdp2"
        torchrun(_args(s2r_model, toy_dir, tmp_path / name, "prl", *args, f"trainer.sharding={sharding}", *extra),
                 tmp_path)
    _same_rows(untimed(tmp_path / "none"), untimed(tmp_path / "fsdp2"), rel=1e-3)
    _same_weights(tmp_path / "none" / "checkpoints" / "step_000002", tmp_path / "fsdp2" / "checkpoints" / "step_000002",
                  1e-4)
    assert metrics(tmp_path / "lora")[-1]["step"] == 2
    assert (tmp_path / "lora" / "checkpoints" / "step_000002" / "adapter" / "adapter_config.json").is_file()


@pytest.mark.parametrize("args,message", [
    (["--stage", "nope"], "unknown stage 'nope'; valid: data, bi, orl, prl"),
    (["--stage", "bi"], "needs --data"),
    (["--stage", "orl", "--data", "/nonexistent/run"], "no rl.jsonl there"),
    (["--stage", "prl", "algo.loss_agg=token_mean"], "algo.loss_agg must be one of part_mean, seq_part_mean"),
    (["--stage", "orl", "algo.kl_coef=0.1"], "set rl.kl_coef"),
    (["--stage", "data", "construct.import_dir=/nonexistent"], "is not a folder"),
    (["preset=stv"], "preset 'stv' is not for s2r"),
])
def test_bad_input_is_one_line_before_any_run_directory(tmp_path, args, message):
    out = tmp_path / "run"
    result = runner.invoke(app, ["s2r", *args, "--out", str(out)])
    assert result.exit_code == 2 and message in result.output, result.output
    assert not out.exists()


@pytest.mark.parametrize("args,expect", [
    (["--model", "qwen2.5-math-7b", "preset=s2r_bi", "bi.kl_coef=0.01"], {"stage": "bi", "kl_coef": 0.01, "lr": 5e-6}),
    (["--model", "qwen2-7b-instruct", "preset=s2r_orl"], {"stage": "orl", "kl_coef": 0.01, "lr": 5e-7}),
    (["--model", "llama-3.1-8b-instruct", "preset=s2r_prl"], {"stage": "prl", "kl_coef": 0.05, "lr": 5e-7}),
])
def test_full_scale_presets_compose(args, expect):
    from omegaconf import OmegaConf

    result = runner.invoke(app, ["s2r", *args, "--cfg"])
    assert result.exit_code == 0, result.output
    cfg = OmegaConf.create(result.output)
    section = cfg.bi if expect["stage"] == "bi" else cfg.rl
    assert cfg.stage == expect["stage"] and section.kl_coef == expect["kl_coef"] and cfg.optim.lr == expect["lr"]
    if expect["stage"] != "bi":
        assert (cfg.trainer.prompts_per_step, cfg.trainer.group_size, cfg.trainer.max_steps) == (64, 4, 500)
        assert cfg.sampling.temperature == 0.7 and cfg.algo.loss_agg == "seq_part_mean"


def test_eval_preset_is_s2r_protocol():
    from omegaconf import OmegaConf

    result = runner.invoke(app, ["eval", "preset=s2r_eval", "--cfg"])
    cfg = OmegaConf.create(result.output)
    assert cfg.protocol == "s2r_attempts" and cfg.sampling.temperature == 0 and cfg.sampling.max_tokens == 8000
    assert cfg.prompt.name == "qwen25_math_cot"
