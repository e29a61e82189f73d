"""STV's difficulty bins (papers.md §2.8) from an eval run: the bin rules, and files that --data-dir reads back."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from verireason.bins import bin_of
from verireason.cli import app
from verireason.config import BenchCfg, compose, save_resolved, to_object
from verireason.data import load_problems

runner = CliRunner()


@pytest.mark.parametrize("correct,k,expected", [
    (0, 32, "hardest"), (1, 32, "hard"), (6, 32, "hard"), (7, 32, None),  # the paper's k = 32: Hard = 1-6 of 32
    (0, 5, "hardest"), (1, 5, None), (1, 6, "hard"), (5, 5, None),  # 1/5 = 0.2 is not below 0.2
])
def test_bin_rules(correct, k, expected):
    assert bin_of(correct, k) == expected


def test_bins_from_an_eval_run_round_trip_through_data_dir(tmp_path, fn_generator):
    from verireason.recipes import evaluate

    problems = load_problems("arith", BenchCfg(generator="arith", size=6))
    right = [0, 1, 2, 0, 8, 1]  # correct samples of 8, per problem

    def answer(prompt, i):
        k = next(j for j, p in enumerate(problems) if p.problem in prompt)
        return f"\\boxed{{{problems[k].answer if i < right[k] else '-1'}}}"

    run = tmp_path / "run"
    cfg = compose("eval", ["bench=[arith]", "bench.arith.size=6", "sampling.n=8", f"out={run}", "progress=false"])
    save_resolved(cfg, run, [])
    evaluate.run(to_object(cfg), run, generator=fn_generator(answer))
    result = runner.invoke(app, ["bins", str(run), "--out", str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    assert "| arith | hardest | 2 |" in result.output and "| arith | hard | 2 |" in result.output
    hard = load_problems("custom", BenchCfg(file="arith_hard.jsonl"), str(tmp_path / "data"))
    assert sorted(p.id for p in hard) == sorted(problems[k].id for k in (1, 5))
    assert all(p.solution for p in hard)  # the STV teacher's reference comes along
    rows = [json.loads(line) for line in (tmp_path / "data" / "arith_hardest.jsonl").read_text().splitlines()]
    assert [(r["pass_rate"], r["k"]) for r in rows] == [(0.0, 8), (0.0, 8)]


def test_bins_refuses_what_is_not_an_eval_run(tmp_path):
    result = runner.invoke(app, ["bins", str(tmp_path)])
    assert result.exit_code == 2 and "is not an eval run" in result.output
    result = runner.invoke(app, ["bins", str(tmp_path), "--hard-below", "0"])
    assert result.exit_code == 2 and "--hard-below=0.0 is out of range" in result.output
