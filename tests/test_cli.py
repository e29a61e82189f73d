"""The CLI through Typer's runner: help, config printing, eval end to end, resume, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from verireason.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, list(args))


def test_help_is_instant_and_imports_no_torch():
    code = "import sys, verireason.cli; verireason.cli.app(['--help'], standalone_mode=False); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "eval" in out and out.strip().endswith("False")


def test_cfg_prints_the_composed_config():
    result = invoke("eval", "--bench", "math500,aime24", "--limit", "3", "sampling=acc16", "--cfg")
    assert result.exit_code == 0, result.output
    assert "math500:" in result.output and "aime24:" in result.output and "limit: 3" in result.output
    assert "max_tokens: 10240" in result.output


@pytest.mark.parametrize("args,message", [
    (["--model", "gpt-17"], "unknown model 'gpt-17'; valid:"),
    (["--bench", "math500,mmlu"], "unknown bench 'mmlu'; valid:"),
    (["sampling.temp=1"], "unknown key 'sampling.temp'"),
    (["--bogus"], "unexpected argument '--bogus'"),
    (["--model", "/no/such/dir/", "--bench", "arith"], "unknown model"),
])
def test_bad_input_is_one_line_and_exit_2(args, message, tmp_path):
    result = invoke("eval", "--out", str(tmp_path / "run"), *args)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.output
    assert "Traceback" not in result.output


def test_malformed_data_file_reports_file_and_line(tmp_path, tiny_model_dir):
    data = tmp_path / "data"
    data.mkdir()
    (data / "gsm8k.jsonl").write_text('{"id": 1, "problem": "p", "answer": "1"}\nnot json\n')
    result = invoke("eval", "--model", str(tiny_model_dir), "--bench", "gsm8k", "--data-dir", str(data),
                    "--out", str(tmp_path / "run"))
    assert result.exit_code == 2
    assert "gsm8k.jsonl:2: malformed JSON" in result.output
    assert not (tmp_path / "run").exists()  # checked before the run directory is made


@pytest.mark.parametrize("command,args", [
    ("eval", ["--bench", "custom", "bench.custom.file=b.jsonl"]),
    ("rl-gen", ["--bench", "arith", "--eval-bench", "custom", "eval_bench.custom.file=b.jsonl"]),
    ("stv", ["--bench", "custom", "bench.custom.file=b.jsonl"]),
])
def test_a_bad_benchmark_file_is_one_line_and_makes_no_run_dir(command, args, tmp_path, tiny_model_dir):
    (tmp_path / "b.jsonl").write_text('{"id": 1, "problem": "p", "answer": "1"}\n{"id": 2, "problem": "q"}\n')
    result = invoke(command, "--model", str(tiny_model_dir), "--data-dir", str(tmp_path), "--out",
                    str(tmp_path / "run"), *args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "b.jsonl:2: missing field(s) answer" in lines[0], result.output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("flag", ["--model", "--verifier"])
def test_a_model_neither_local_nor_downloadable_is_one_line_and_makes_no_run_dir(flag, tmp_path, tiny_model_dir,
                                                                                 monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    extra = ["--model", str(tiny_model_dir), "--protocol", "self_verify"] if flag == "--verifier" else []
    result = invoke("eval", *extra, flag, "nobody-here/no-such-model", "--bench", "arith", "--limit", "1",
                    "--out", str(tmp_path / "run"))
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "'nobody-here/no-such-model' is not available locally" in lines[0], result.output
    assert not (tmp_path / "run").exists()


def read_samples(run_dir):
    return [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]


def test_eval_end_to_end_on_a_tiny_model(tmp_path, tiny_model_dir):
    out = tmp_path / "run"
    result = invoke("eval", "--model", str(tiny_model_dir), "--bench", "arith", "--limit", "3", "--out", str(out),
                    "sampling.n=2", "sampling.max_tokens=8", "engine=hf", "progress=false")
    assert result.exit_code == 0, result.output
    for name in ("config.yaml", "run.json", "samples.jsonl", "summary.json", "summary.md"):
        assert (out / name).is_file(), name
    samples = read_samples(out)
    assert len(samples) == 6
    required = {"bench", "problem_id", "prompt", "completion", "extracted", "correct", "tokens", "finish_reason"}
    assert required <= set(samples[0])
    assert all(1 <= s["tokens"] <= 8 for s in samples)
    summary = json.loads((out / "summary.json").read_text())["arith"]
    assert (summary["problems"], summary["samples"]) == (3, 6)
    assert {"accuracy", "pass@1", "pass@2", "maj@2", "mean_tokens", "truncated"} <= set(summary)
    assert "| arith |" in result.output  # the summary is printed
    assert "model:" in (out / "config.yaml").read_text()
    assert json.loads((out / "run.json").read_text())["argv"]


def test_existing_run_needs_resume(tmp_path, tiny_model_dir):
    out = tmp_path / "run"
    args = ["eval", "--model", str(tiny_model_dir), "--bench", "arith", "--limit", "1", "--out", str(out),
            "sampling.max_tokens=4", "progress=false"]
    assert invoke(*args).exit_code == 0
    again = invoke(*args)
    assert again.exit_code == 2 and "--resume" in again.output
    changed = invoke(*args, "--resume", "sampling.temperature=1.0")
    assert changed.exit_code == 2 and "different sampling" in changed.output


def test_unknown_protocol_makes_no_run_dir(tmp_path):
    result = invoke("eval", "--protocol", "debate", "--out", str(tmp_path / "run"))
    assert result.exit_code == 2 and "unknown protocol 'debate'; valid: solve, self_verify" in result.output
    assert not (tmp_path / "run").exists()
