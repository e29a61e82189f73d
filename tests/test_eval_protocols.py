"""eval's self_verify, vr_loop and s2r_attempts protocols end to end with scripted engines, and --samples."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from verireason import arith
from verireason.cli import app
from verireason.config import compose, to_object
from verireason.recipes import evaluate


def cfg_for(*overrides):
    return to_object(compose("eval", ["bench=[arith]", "progress=false", *overrides]))


def solver(problems, right):
    """Answers problem i correctly on samples j < right[i]."""
    by_text = {p.problem: (p, right[i]) for i, p in enumerate(problems)}

    def answer(prompt, j):
        p, k = next(v for text, v in by_text.items() if text in prompt)
        return f"\\boxed{{{p.answer}}}" if j < k else f"\\boxed{{{int(p.answer) + 1}}}"
    return answer


def honest_judge(problems):
    answers = {p.problem: p.answer for p in problems}

    def judge(prompt, j):
        text = next(t for t in answers if t in prompt)
        return "Answer: \\boxed{Yes}" if f"Student's Answer: {answers[text]}\n" in prompt else "Answer: \\boxed{No}"
    return judge


def test_self_verify_scores_the_verifier_and_resumes(tmp_path, fn_generator):
    problems = arith.generate(4)
    cfg = cfg_for("limit=4", "sampling.n=3", "protocol=self_verify")
    gen = fn_generator(solver(problems, [0, 1, 2, 3]))
    judge = fn_generator(honest_judge(problems))
    summary = evaluate.run(cfg, tmp_path, generator=gen, verifier=judge)
    row = summary["arith"]
    assert row["verifications"] == 12
    assert row["verify_accuracy"] == 1.0 and row["verify_balanced_accuracy"] == 1.0
    assert row["vmaj@3"] == pytest.approx(3 / 4)  # every problem with a correct sample; maj@3 is 2/4
    assert row["maj@3"] == pytest.approx(2 / 4)
    assert {"arith/1", "arith/4"} <= set(summary)  # per-level rows
    assert "OUR interpretation" in (tmp_path / "summary.md").read_text()
    lines = (tmp_path / "verifications.jsonl").read_text().splitlines()
    (tmp_path / "verifications.jsonl").write_text("\n".join(lines[:5]) + "\n" + lines[5][:30])
    again = fn_generator(honest_judge(problems))
    evaluate.run(cfg, tmp_path, generator=gen, verifier=again)
    assert len(again.prompts) == 7  # 5 kept, 7 redone (written 3 per engine call)
    assert len((tmp_path / "verifications.jsonl").read_text().splitlines()) == 12


def test_vr_loop_writes_chains_and_per_round_metrics(tmp_path, fn_generator):
    problems = arith.generate(3)

    def solve(prompt, j):
        p = next(p for p in problems if p.problem in prompt)
        return f"\\boxed{{{p.answer}}}" if "reviewer's feedback" in prompt else "\\boxed{-1}"

    cfg = cfg_for("limit=3", "protocol=vr_loop", "verify.chains=2", "verify.rounds=2")
    summary = evaluate.run(cfg, tmp_path, generator=fn_generator(solve), verifier=fn_generator(honest_judge(problems)))
    row = summary["arith"]
    assert row["chains"] == 6 and row["problems"] == 3
    assert (row["round0/accuracy"], row["round1/accuracy"], row["final_pass@1"]) == (0.0, 1.0, 1.0)
    assert (row["round1/accept"], row["round2/accept"]) == (0.0, 1.0)
    assert row["round2/precision"] == 1.0 and row["matched_n"] >= 1
    chains = [json.loads(x) for x in (tmp_path / "chains.jsonl").read_text().splitlines()]
    assert len(chains) == 6 and all(c["accepted_round"] == 1 for c in chains)
    assert summary["arith/2"]["final_pass@1"] == 1.0  # per-level rows


def test_s2r_attempts(tmp_path, fn_generator):
    problems = arith.generate(2)

    def respond(prompt, j):
        p = next(p for p in problems if p.problem in prompt)
        return (f"\\boxed{{{int(p.answer) + 1}}}\n\nWait, let me recheck my solution.\n\nTherefore, the answer is "
                f"incorrect.\n\nLet me try again.\n\n\\boxed{{{p.answer}}}\n\nWait, let me recheck my solution.\n\n"
                "Therefore, the answer is correct.")

    summary = evaluate.run(cfg_for("limit=2", "protocol=s2r_attempts"), tmp_path, generator=fn_generator(respond))
    row = summary["arith"]
    assert row["accuracy"] == 1.0 and row["mean_attempts"] == 2
    assert row["incorrect_to_correct"] == 1.0 and row["verify_accuracy"] == 1.0
    assert (tmp_path / "attempts.jsonl").is_file()
    assert summary["arith/1"]["incorrect_to_correct"] == 1.0  # per-level rows


def test_samples_file_needs_no_model(tmp_path, shared_benchmarks):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["eval", "--samples", str(shared_benchmarks / "qwen25math_math_cot_samples.jsonl"),
                                      "--limit", "10", "--out", str(out), "--model", "/does-not/exist-but-unused",
                                      "progress=false"])
    assert result.exit_code == 2  # an unknown model path is still refused up front
    result = CliRunner().invoke(app, ["eval", "--samples", str(shared_benchmarks / "qwen25math_math_cot_samples.jsonl"),
                                      "--limit", "10", "--out", str(out), "progress=false"])
    assert result.exit_code == 0, result.output
    row = json.loads((out / "summary.json").read_text())["qwen25math_math_cot_samples"]
    assert (row["problems"], row["samples"]) == (10, 80)


def test_self_verify_on_a_samples_file_with_a_tiny_model(tmp_path, tiny_model_dir, shared_benchmarks):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["eval", "--protocol", "self_verify", "--model", str(tiny_model_dir),
                                      "--samples", str(shared_benchmarks / "qwen25math_math_cot_samples.jsonl"),
                                      "--limit", "2", "--out", str(out), "verify.sampling.max_tokens=6",
                                      "engine=hf", "progress=false"])
    assert result.exit_code == 0, result.output
    row = json.loads((out / "summary.json").read_text())["qwen25math_math_cot_samples"]
    assert row["verifications"] == 16 and "verify_balanced_accuracy" in row
    assert row["unparseable"] > 0.5  # a random model rarely writes a verdict: counted, not guessed
