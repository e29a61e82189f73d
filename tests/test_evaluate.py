"""The eval recipe with a scripted engine: exact metrics, batched writes, and resume after a kill."""

from __future__ import annotations

import json

import pytest

from verireason import arith
from verireason.config import compose, to_object
from verireason.recipes import evaluate


def make_cfg(limit=4, n=3):
    cfg = to_object(compose("eval", ["bench=[arith]", f"limit={limit}", f"sampling.n={n}", "progress=false"]))
    return cfg


def script_for(problems):
    """Problem i gets i correct samples out of 3 (cycled), so accuracy is known in advance."""
    answers = {}
    for i, p in enumerate(problems):
        right = f"so \\boxed{{{p.answer}}}"
        wrong = f"so \\boxed{{{int(p.answer) + 1}}}"
        answers[p.problem] = [right if j < i % 4 else wrong for j in range(3)]
    return answers


def test_scripted_eval_gives_hand_computed_metrics(tmp_path, scripted):
    cfg = make_cfg()
    problems = arith.generate(4)
    summary = evaluate.run(cfg, tmp_path, generator=scripted(script_for(problems)))["arith"]
    # problems have 0, 1, 2, 3 correct of 3
    assert summary["accuracy"] == pytest.approx(6 / 12)
    assert summary["pass@1"] == pytest.approx(6 / 12)
    assert summary["pass@3"] == pytest.approx(3 / 4)
    assert summary["maj@3"] == pytest.approx(2 / 4)
    assert summary["truncated"] == pytest.approx(4 / 12)  # the scripted engine marks sample 1 of 3 "length"
    assert summary["mean_tokens"] == pytest.approx(11)


def test_resume_after_a_kill_finishes_without_duplicates(tmp_path, scripted):
    cfg = make_cfg(limit=6)
    problems = arith.generate(6)
    engine = scripted(script_for(problems))
    evaluate.run(cfg, tmp_path, generator=engine)
    full = (tmp_path / "samples.jsonl").read_text().splitlines()
    # A kill after the first batch, in the middle of writing a line of the second:
    (tmp_path / "samples.jsonl").write_text("\n".join(full[:6]) + "\n" + full[6][:40])
    resumed = scripted(script_for(problems))
    summary = evaluate.run(cfg, tmp_path, generator=resumed)["arith"]
    lines = [json.loads(x) for x in (tmp_path / "samples.jsonl").read_text().splitlines()]
    keys = [(x["problem_id"], x["sample_index"]) for x in lines]
    assert len(keys) == len(set(keys)) == 18
    assert resumed.calls == 2  # 4 problems left, 2 per call: the 2 finished problems were not redone
    assert summary["samples"] == 18


def test_resume_drops_partial_groups(tmp_path, scripted):
    cfg = make_cfg(limit=2)
    problems = arith.generate(2)
    evaluate.run(cfg, tmp_path, generator=scripted(script_for(problems)))
    lines = (tmp_path / "samples.jsonl").read_text().splitlines()
    (tmp_path / "samples.jsonl").write_text("\n".join(lines[:4]) + "\n")  # one whole group + 1 of the next
    engine = scripted(script_for(problems))
    summary = evaluate.run(cfg, tmp_path, generator=engine)["arith"]
    assert engine.calls == 1 and summary["samples"] == 6
