"""Multi-turn protocols over any engine: self-verification, verify-refine chains, and S²R response splitting.

Shared by ``eval`` now and by the training recipes later. Every round sends all of its prompts to the engine in
batches of ``prompts_per_call`` (never one call per sample), ordered by problem so prompts that share a prefix sit
together and vLLM's prefix cache reuses it.

* ``verify``: the model (or another verifier) judges responses (papers.md §1.3-1.4 answer-only; §3.3 S²R).
* ``run_vr_chains``: the V-R loop of STV (§2.2): round 0 solves; each round verifies the current response, stops on
  accept, and on reject (or an unparseable verdict) refines with the verifier's feedback, up to R rounds.
* ``split_s2r``: S²R's action sequence (§3.2) split into solve and verify segments.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import replace

from verireason.config import PromptCfg, SamplingCfg
from verireason.generation import Generator
from verireason.grading import Grader
from verireason.prompts import (
    VERDICT_STOPS,
    chat_text,
    feedback_of,
    parse_verdict,
    refine_messages,
    solve_messages,
    verify_messages,
)
from verireason.records import Chain, Completion, Judged, Problem, Round, Verdict


def generate_batched(generator: Generator, prompts: list[str], sampling: SamplingCfg, seed: int,
                     on_batch: Callable[[int, int], None] | None = None) -> list[list[Completion]]:
    """``generator.generate`` in calls of ``prompts_per_call`` prompts; ``on_batch(done, total)`` after each."""
    size = generator.prompts_per_call(sampling)
    out: list[list[Completion]] = []
    for start in range(0, len(prompts), size):
        out += generator.generate(prompts[start : start + size], sampling, seed + start)
        if on_batch is not None:
            on_batch(len(out), len(prompts))
    return out


def verify(verifier: Generator, judged: Sequence[Judged], prompt: PromptCfg, system: str | None,
           sampling: SamplingCfg, seed: int, stop_at_verdict: bool = False) -> list[list[Verdict]]:
    """``sampling.n`` verifications of each judged response, in input order; with ``stop_at_verdict`` each ends
    as soon as its verdict is complete (the verdict kept)."""
    if stop_at_verdict:
        sampling = replace(sampling, stop_after=[*sampling.stop_after, *VERDICT_STOPS[prompt.verdict]])
    order = sorted(range(len(judged)), key=lambda i: judged[i].problem.id)  # shared prefixes side by side
    texts = [chat_text(verifier.tokenizer, verify_messages(judged[i].problem, judged[i].response, prompt, system))
             for i in order]
    outputs = generate_batched(verifier, texts, sampling, seed)
    verdicts: list[list[Verdict]] = [[] for _ in judged]
    for i, text, completions in zip(order, texts, outputs):
        j = judged[i]
        verdicts[i] = [Verdict(bench=j.bench, problem_id=j.problem.id, sample_index=j.sample_index, verify_index=k,
                               prompt=text, verification=c.text, claimed=parse_verdict(c.text, prompt.verdict),
                               truth=j.correct, tokens=c.tokens, finish_reason=c.finish_reason, level=j.problem.level)
                       for k, c in enumerate(completions)]
    return verdicts


def _graded_rounds(completions: Sequence[Completion], problems: Sequence[Problem], grader: Grader) -> list[Round]:
    grades = grader.grade_many([(c.text, p.answer) for c, p in zip(completions, problems)])
    return [Round(response=c.text, extracted=g.extracted, correct=g.correct, tokens=c.tokens)
            for c, g in zip(completions, grades)]


def run_vr_chains(generator: Generator, verifier: Generator, problems: Sequence[tuple[str, Problem]],
                  prompt: PromptCfg, systems: tuple[str | None, str | None], solve: SamplingCfg,
                  check: SamplingCfg, rounds: int, chains: int, grader: Grader, seed: int,
                  stop_at_verdict: bool = False, on_phase: Callable[[str], None] | None = None,
                  on_turn: Callable[[int, str, Completion], None] | None = None) -> list[Chain]:
    """``chains`` independent V-R chains per problem, up to ``rounds`` verify(-refine) rounds each.

    ``systems`` is (generator system prompt, verifier system prompt). Verifications and refinements are sampled
    once per chain per round with ``check`` and ``solve`` (its ``n`` is ignored: one continuation each);
    ``stop_at_verdict`` ends each verification at its verdict. ``on_phase(label)`` is called as each phase
    starts ("round 0: solve 16", "round 1: verify 16", "round 1: refine 9"), for progress displays;
    ``on_turn(chain, prompt, completion)`` sees every generator turn (chain = index in the returned list), for
    training on the generator's own tokens (ViL, papers.md §2.4).
    """
    gen_system, ver_system = systems
    phase = on_phase or (lambda label: None)
    phase(f"round 0: solve {len(problems) * chains}")
    texts = [chat_text(generator.tokenizer, solve_messages(p, prompt, gen_system)) for _, p in problems]
    first = generate_batched(generator, texts, replace(solve, n=chains), seed)
    out, by_chain = [], []
    turn = on_turn or (lambda chain, text, completion: None)
    for (bench, p), text, completions in zip(problems, texts, first):
        for k, (r, c) in enumerate(zip(_graded_rounds(completions, [p] * len(completions), grader), completions)):
            turn(len(out), text, c)
            out.append(Chain(bench=bench, problem_id=p.id, chain=k, level=p.level, rounds=[r]))
            by_chain.append(p)
    one_solve, one_check = replace(solve, n=1), replace(check, n=1)
    for r in range(1, rounds + 1):
        active = [i for i, c in enumerate(out) if c.accepted_round is None]
        if not active:
            break
        phase(f"round {r}: verify {len(active)}")
        judged = [Judged(by_chain[i], out[i].bench, i, out[i].rounds[-1].response, out[i].rounds[-1].correct)
                  for i in active]
        verdicts = verify(verifier, judged, prompt, ver_system, one_check, seed + 7919 * r, stop_at_verdict)
        rejected = []
        for i, [v] in zip(active, verdicts):
            last = out[i].rounds[-1]
            last.verdict, last.verified, last.verification, last.verify_tokens = v.claimed, True, v.verification, v.tokens
            if v.claimed is True:
                out[i].accepted_round = len(out[i].rounds) - 1
            else:
                rejected.append(i)
        phase(f"round {r}: refine {len(rejected)}")
        refine = [chat_text(generator.tokenizer, refine_messages(by_chain[i], out[i].rounds[-1].response,
                                                                feedback_of(out[i].rounds[-1].verification),
                                                                prompt, gen_system)) for i in rejected]
        revised = generate_batched(generator, refine, one_solve, seed + 7919 * r + 1)
        new_rounds = _graded_rounds([cs[0] for cs in revised], [by_chain[i] for i in rejected], grader)
        for i, text, [c], new in zip(rejected, refine, revised, new_rounds):
            turn(i, text, c)
            out[i].rounds.append(new)
    return out


RECHECK = "Wait, let me recheck my solution."
RETRY = "Let me try again."
_S2R_SPLIT = re.compile(r"(Wait, let me recheck my solution\.|Let me try again\.)")


def split_s2r(response: str) -> list[tuple[str, str]]:
    """S²R segments (papers.md §3.2): ``("solve" | "verify", text)`` in order; "Wait, let me recheck my
    solution." opens a verification, "Let me try again." opens a new solution attempt."""
    parts = _S2R_SPLIT.split(response)
    segments = [("solve", parts[0].strip())]
    for marker, text in zip(parts[1::2], parts[2::2]):
        segments.append(("verify" if marker == RECHECK else "solve", text.strip()))
    return [(kind, text) for kind, text in segments if text or kind == "solve"]
