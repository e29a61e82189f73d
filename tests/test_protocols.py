"""Protocols with scripted engines: verification batches, V-R chains (accept, reject then refine, max rounds,
unparseable verdicts) and S²R splitting."""

from __future__ import annotations

import re

from verireason.config import PromptCfg, SamplingCfg
from verireason.grading import Grader
from verireason.prompts import parse_verdict
from verireason.protocols import run_vr_chains, split_s2r, verify
from verireason.records import Judged, Problem

PROBLEMS = [Problem(f"p{i}", f"Question {i}: what is {i} + {i}?", str(2 * i), "t") for i in range(5)]
ONE = SamplingCfg(n=1, temperature=0.6)


def test_verify_keeps_order_batches_and_parses(fn_generator):
    judged = [Judged(p, "t", 0, f"\\boxed{{{p.answer}}}", True) for p in reversed(PROBLEMS)]
    answers = {"p0": "Answer: \\boxed{Yes}", "p1": "Answer: \\boxed{No}", "p2": "hmm", "p3": "\\boxed{yes}",
               "p4": "\\boxed{NO}"}
    engine = fn_generator(lambda prompt, i: next(v for k, v in answers.items()
                                                  if f"Question {k[1]}:" in prompt), per_call=2)
    verdicts = verify(engine, judged, PromptCfg(verdict="boxed_yes_no_lenient"), None, SamplingCfg(n=2), seed=0)
    assert [vs[0].problem_id for vs in verdicts] == ["p4", "p3", "p2", "p1", "p0"]
    assert [vs[0].claimed for vs in verdicts] == [False, True, None, False, True]
    assert all(len(vs) == 2 and vs[1].verify_index == 1 for vs in verdicts)
    assert engine.calls == 3  # 5 prompts, 2 per call
    order = [int(re.search(r"Question (\d):", p).group(1)) for p in engine.prompts]
    assert order == [0, 1, 2, 3, 4]  # sorted by problem, so shared prefixes sit together


def test_stop_at_verdict_asks_the_engine_to_end_after_each_verdict_form(fn_generator):
    seen = []

    class Recording(fn_generator):
        def generate(self, prompts, sampling, seed):
            seen.append(sampling)
            return super().generate(prompts, sampling, seed)

    judged = [Judged(PROBLEMS[0], "t", 0, "\\boxed{1}", True)]
    for kind, forms in (("boxed_yes_no", ["\\boxed{Yes}", "\\boxed{No}", "\\boxed{\\textbf{Yes}}"]),
                        ("boxed_yes_no_lenient", ["\\boxed{Yes}", "\\boxed{no}", "\\boxed{\\text{yes}}"]),
                        ("s2r_sentence", ["the answer is correct", "the answer is incorrect"])):
        seen.clear()
        verify(Recording(lambda p, i: "ok"), judged, PromptCfg(verdict=kind), None, SamplingCfg(), 0, True)
        assert all(form in seen[0].stop_after for form in forms) and seen[0].stop == []
        for form in forms:  # every stop string completes a verdict its parser reads
            assert parse_verdict(f"so {form}", kind) is not None
    seen.clear()
    verify(Recording(lambda p, i: "ok"), judged, PromptCfg(), None, SamplingCfg(), 0)
    assert seen[0].stop_after == []  # off by default: the papers read whole verifications


def chains_with(fn_generator, solver, judge, rounds=3, chains=2):
    generator = fn_generator(solver, per_call=4)
    verifier = fn_generator(judge, per_call=4)
    grader = Grader("math_verify", 5.0)
    try:
        out = run_vr_chains(generator, verifier, [("t", p) for p in PROBLEMS[1:3]], PromptCfg(), (None, None),
                            ONE, ONE, rounds, chains, grader, seed=0)
    finally:
        grader.close()
    return out, generator, verifier


def test_accepted_at_the_first_check(fn_generator):
    out, gen, _ = chains_with(fn_generator, lambda p, i: "\\boxed{2}" if "1 + 1" in p else "\\boxed{4}",
                              lambda p, i: "Answer: \\boxed{Yes}")
    assert len(out) == 4
    assert all(c.accepted_round == 0 and len(c.rounds) == 1 and c.rounds[0].correct for c in out)
    assert all(c.rounds[0].verified and c.rounds[0].verdict is True for c in out)
    assert gen.calls == 1  # round 0 only: nothing to refine


def test_rejected_then_refined_then_accepted(fn_generator):
    def solver(prompt, i):
        if "A reviewer's feedback" in prompt:
            assert "You added wrong." in prompt and "\\boxed{99}" in prompt
            return "\\boxed{2}" if "1 + 1" in prompt else "\\boxed{4}"
        return "\\boxed{99}"

    def judge(prompt, i):
        return "You added wrong.\nAnswer: \\boxed{No}" if "Answer: 99" in prompt else "Answer: \\boxed{Yes}"

    out, _, verifier = chains_with(fn_generator, solver, judge)
    for chain in out:
        assert [r.correct for r in chain.rounds] == [False, True]
        assert [r.verdict for r in chain.rounds] == [False, True]
        assert chain.accepted_round == 1
    assert len(verifier.prompts) == 8  # 4 chains × 2 checks


def test_max_rounds_and_unparseable_verdicts_are_rejections(fn_generator):
    out, _, verifier = chains_with(fn_generator, lambda p, i: "\\boxed{0}",
                                   lambda p, i: "I am not sure." if "Question 1" in p else "\\boxed{No}", rounds=3)
    for chain in out:
        assert chain.accepted_round is None and len(chain.rounds) == 4  # round 0 + 3 refinements
        assert [r.verified for r in chain.rounds] == [True, True, True, False]
    unsure = [c for c in out if c.problem_id == "p1"]
    assert all(r.verdict is None for c in unsure for r in c.rounds)
    assert len(verifier.prompts) == 12


def test_split_s2r():
    response = ("First try \\boxed{3}.\n\nWait, let me recheck my solution.\n\nPlugging in fails. Therefore, the "
                "answer is incorrect.\n\nLet me try again.\n\nSecond try \\boxed{4}.\n\nWait, let me recheck my "
                "solution.\n\nIt checks. Therefore, the answer is correct.")
    kinds = [k for k, _ in split_s2r(response)]
    assert kinds == ["solve", "verify", "solve", "verify"]
    assert split_s2r("just \\boxed{1}") == [("solve", "just \\boxed{1}")]
