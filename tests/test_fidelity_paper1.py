"""Paper 1's rules against the released code (papers.md §1.6b, ``chenyuxin1999/Learning-to-Self-Verify`` at 1c6f762).

Each ``official_*`` function below is our own transcription of the code's rule, written from reading it (the
grader's ``compute_score`` / ``is_correct_strict_box`` / ``last_boxed_only_string``, the reward manager's
overlong penalty, the ``verification`` scorer, ``_create_verification_prompts``' pools and fills, verl's warmup),
and the suite's function must agree with it on thousands of generated inputs, edge cases included.
"""

from __future__ import annotations

import random

import pytest
import torch

from verireason.balance import balanced_set
from verireason.config import PromptCfg
from verireason.dapo_strict import answer_shown, grade_dapo_strict, normalize_final_answer
from verireason.losses import pg_loss
from verireason.prompts import parse_verdict, verify_messages
from verireason.records import Problem, Sample
from verireason.rewards import solve_reward, verify_reward

# --- transcriptions of the official rules ---------------------------------------------------------------------


def official_last_boxed_only_string(string: str):
    idx = string.rfind("\\boxed{")
    if idx < 0:
        return None
    depth, i = 0, idx
    while i < len(string):
        if string[i] == "{":
            depth += 1
        if string[i] == "}":
            depth -= 1
            if depth == 0:
                return string[idx : i + 1]
        i += 1
    return None


def official_compute_score(solution: str, ground_truth: str) -> dict:
    pred = solution[-300:][-200:]
    boxed = official_last_boxed_only_string(pred)
    extracted = boxed[len("\\boxed{") : -1] if boxed is not None else None
    extracted = normalize_final_answer(extracted) if extracted is not None else None
    correct = extracted == normalize_final_answer(ground_truth)
    return {"score": 1.0 if correct else 0.0, "pred": extracted if extracted is not None else "[INVALID]",
            "valid": 1.0 if extracted is not None else 0.0}


def official_answer_text(response: str) -> str:
    boxed = official_last_boxed_only_string(response[-300:])
    return normalize_final_answer(boxed[len("\\boxed{") : -1])


def official_reward(score: float, length: int, max_len: int, buffer: int, factor: float) -> float:
    exceed = length - (max_len - buffer)
    return score + min(-exceed / buffer * factor, 0)


def official_verification_reward(text: str, label: str, pass_rate: float) -> float:
    return official_compute_score(text, label)["score"] * min(pass_rate, 0.5)


def official_balance(items: list[tuple[str, bool, float]], rng: random.Random):
    """``_create_verification_prompts`` on (uid, valid, reward) rows in batch order: the chosen row indices with
    their labels (No list first, then shuffled), and target_half_size."""
    groups: dict[str, list[tuple[int, float]]] = {}
    for i, (uid, valid, reward) in enumerate(items):
        if valid:
            groups.setdefault(uid, []).append((i, reward))
    half = len(groups) // 2
    zero, one, final_zero, final_one = [], [], [], []
    for samples in groups.values():
        flags = [r >= 0.5 for _, r in samples]
        if not all(f == 0 for f in flags) and not all(f == 1 for f in flags):
            pos = [(i, r) for i, r in samples if r >= 0.5]
            neg = [(i, r) for i, r in samples if r < 0.5]
            final_one.append(pos.pop(rng.randrange(len(pos)))[0])
            final_zero.append(neg.pop(rng.randrange(len(neg)))[0])
            if pos:
                one.append(rng.choice(pos)[0])
            if neg:
                zero.append(rng.choice(neg)[0])
        elif all(f == 0 for f in flags):
            continue
        else:
            one.append(rng.choice(samples)[0])

    def fill(final, pool, replacement):
        if not pool or half - len(final) <= 0:
            return
        needed = half - len(final)
        final.extend(rng.choices(pool, k=needed) if replacement else rng.sample(pool, min(needed, len(pool))))

    fill(final_zero, zero, False)
    fill(final_one, one, False)
    fill(final_zero, zero, True)
    fill(final_one, one, True)
    chosen = [(i, False) for i in final_zero[:half]] + [(i, True) for i in final_one[:half]]
    rng.shuffle(chosen)
    return chosen, half


# --- generated inputs -----------------------------------------------------------------------------------------

_PIECES = ["\\boxed{", "\\boxed ", "\\fbox{", "{", "}", "}}", "Yes", "No", "yes", "NO", "\\textbf{Yes}", "Answer=Yes",
           "\\text{No}", "42", "\\frac{1}{2}", "1/2", "x = 3", "$", " ", "\n", "The answer is ", "correct"]


def _text(rng: random.Random) -> str:
    out = []
    for _ in range(rng.randint(0, 12)):
        if rng.random() < 0.3:
            out.append("".join(rng.choice("abc xyz.,\n") for _ in range(rng.choice([1, 5, 40, 120, 260]))))
        else:
            out.append(rng.choice(_PIECES))
    return "".join(out)


def test_strict_grader_matches_the_code_on_generated_responses():
    rng = random.Random(0)
    golds = ["42", "Yes", "No", "\\frac{1}{2}", "3"]
    for _ in range(5000):
        text, gold = _text(rng), rng.choice(golds)
        ours, theirs = grade_dapo_strict(text, gold), official_compute_score(text, gold)
        assert (ours.correct, ours.formatted) == (theirs["score"] == 1.0, theirs["valid"] == 1.0), text
        assert (ours.extracted if ours.extracted is not None else "[INVALID]") == theirs["pred"], text


@pytest.mark.parametrize("text,correct,valid", [
    ("\\boxed{42}" + "x" * 150, True, True),
    ("\\boxed{42}" + "x" * 195, False, False),  # starts 205 characters before the end: outside the 200 window
    ("\\fbox{42}", False, False),
    ("\\boxed 42", False, False),
    ("\\boxed{42", False, False),  # never closed
])
def test_strict_grader_edge_cases(text, correct, valid):
    g = grade_dapo_strict(text, "42")
    assert (g.correct, g.formatted) == (correct, valid)


def test_verdicts_match_the_codes_verification_score():
    rng = random.Random(1)
    for _ in range(5000):
        text = _text(rng)
        yes, no = official_compute_score(text, "Yes")["score"], official_compute_score(text, "No")["score"]
        expected = True if yes else False if no else None
        assert parse_verdict(text, "boxed_yes_no") is expected, text


@pytest.mark.parametrize("text,verdict", [
    ("so \\boxed{Yes}", True), ("\\boxed{No}", False), ("\\boxed{no}", None), ("\\boxed{YES}", None),
    ("Answer: No", None), ("\\boxed{\\textbf{Yes}}", True), ("\\boxed{Answer=Yes}", True),
    ("\\boxed{Correct}", None), ("\\boxed{Yes}" + "." * 201, None),
])
def test_verdict_edge_cases(text, verdict):
    assert parse_verdict(text, "boxed_yes_no") is verdict


def test_lenient_verdicts_are_an_option():
    assert parse_verdict("\\boxed{no}", "boxed_yes_no_lenient") is False
    assert parse_verdict("Answer: Yes", "boxed_yes_no_lenient") is True


def test_answer_shown_to_the_verifier_matches_the_code():
    rng = random.Random(2)
    for _ in range(3000):
        text = _text(rng)
        if official_last_boxed_only_string(text[-300:]) is None:
            assert answer_shown(text) is None
        else:
            assert answer_shown(text) == official_answer_text(text), text


def test_verification_prompt_bytes():
    """The released template: an indented triple-quoted string, only its ends stripped (§1.6b)."""
    expected = ("You are a teacher that is evaluating a student's answer to a question. Your task is to determine "
                "whether the answer is correct or incorrect. " + "\n\n" + " " * 8 + "Question: What is 6*7?\n"
                + " " * 8 + "Student's Answer: 42\n\n" + " " * 8 + "First explain your analysis over the student's "
                "answer, the last line of your response should be of the form Answer: \\boxed{Yes/No} where 'Yes' "
                "means the solution is correct and 'No' means the solution is incorrect.\n" + " " * 8 + "\n\n"
                "Please reason step by step, and put your final answer within \\boxed{}.")
    problem = Problem(id="p", problem="What is 6*7?", answer="42", source="b")
    messages = verify_messages(problem, "so it is \\boxed{42}.", PromptCfg())
    assert messages == [{"role": "user", "content": expected}]


def test_overlong_reward_and_label_match_the_reward_manager():
    rng = random.Random(3)
    for _ in range(3000):
        max_len, buffer = rng.choice([(10240, 512), (128, 32), (64, 64)])
        length, correct = rng.randint(1, max_len), rng.random() < 0.5
        theirs = official_reward(1.0 if correct else 0.0, length, max_len, buffer, 1.0)
        ours = solve_reward(correct, length, max_len, overlong_buffer=buffer)
        assert ours == pytest.approx(theirs)
        assert (ours >= 0.5) == (theirs >= 0.5)
    # the example of §1.6b: a correct answer of 10,100 tokens earns 0.27 and is labelled No
    assert solve_reward(True, 10_100, 10_240, overlong_buffer=512) == pytest.approx(0.2734375)


def test_verification_reward_matches_the_scorer_with_pass_rate_and_overlong():
    rng = random.Random(4)
    for _ in range(3000):
        text, label = _text(rng), rng.random() < 0.5
        rate, tokens = rng.choice([1 / 8, 3 / 8, 4 / 8, 7 / 8]), rng.randint(1, 1024)
        theirs = official_reward(official_verification_reward(text, "Yes" if label else "No", rate), tokens, 1024,
                                 256, 1.0)
        ours = verify_reward(parse_verdict(text, "boxed_yes_no"), label, rate, tokens=tokens, max_tokens=1024,
                             overlong_buffer=256)
        assert ours == pytest.approx(theirs)


def _sample(uid: str, k: int, valid: bool, reward: float) -> Sample:
    return Sample(bench="b", problem_id=uid, sample_index=k, prompt="", completion="", extracted="1" if valid else None,
                  correct=reward >= 0.5, formatted=valid, tokens=1, finish_reason="stop", gold="1",
                  meta={"label": valid and reward >= 0.5, "row": None})


def test_balanced_set_matches_the_code_draw_for_draw():
    gen = random.Random(5)
    for case in range(1500):
        rows, samples = [], []
        for g in range(gen.randint(0, 12)):
            size = gen.choice([1, 2, 4, 8])
            kind = gen.random()
            for k in range(size):
                valid = gen.random() > 0.15
                right = gen.random() < (0.0 if kind < 0.2 else 1.0 if kind > 0.8 else 0.5)
                reward = gen.choice([0.27, 1.0]) if right else 0.0  # 0.27: correct but deep in the overlong buffer
                rows.append((f"u{g}", valid, reward))
                samples.append(_sample(f"u{g}", k, valid, reward))
        for i, s in enumerate(samples):
            s.meta["row"] = i
        theirs, half = official_balance(rows, random.Random(case))
        groups: dict[str, list[Sample]] = {}
        for s in samples:
            groups.setdefault(s.problem_id, []).append(s)
        ours = balanced_set(list(groups.values()), random.Random(case), label=lambda s: s.meta["label"])
        assert [(s.meta["row"], label) for s, label in ours.pairs] == theirs
        assert ours.target_size == 2 * half


# --- verl's optimizer cadence and KL -----------------------------------------------------------------------------


def test_warmup_starts_at_zero_and_steps_once_per_update(tiny_model_dir):
    """verl's get_constant_schedule_with_warmup, stepped once per update_actor call: every optimizer step of the
    k-th update (k from 0) uses lr · min(1, k / warmup)."""
    from accelerate import Accelerator

    from verireason.models import load_causal_lm, load_tokenizer
    from verireason.records import Rollout
    from verireason.trainer import Learner

    model = load_causal_lm(str(tiny_model_dir), "float32", "cpu").train()
    learner = Learner(Accelerator(cpu=True), model, load_tokenizer(str(tiny_model_dir)), lr=1e-3, weight_decay=0.0,
                      warmup_steps=3, grad_clip=1.0, micro_batch_size=8, mini_batches=4, lr_step="update")
    seen = []
    step = learner.optimizer.step

    def record(*args, **kwargs):
        seen.append(learner.optimizer.param_groups[0]["lr"])
        return step(*args, **kwargs)

    learner.optimizer.step = record
    rollouts = [Rollout("generate", f"g{i // 2}", "", "", (1, 2), (3, 4), float(i % 2), "stop") for i in range(8)]
    for _ in range(5):
        learner.update(rollouts)
    expected = [1e-3 * min(1.0, k / 3) for k in range(5) for _ in range(4)]
    assert seen == pytest.approx(expected)


def test_fixed_size_mini_batches_like_verls_split(tiny_model_dir):
    from accelerate import Accelerator

    from verireason.models import load_causal_lm, load_tokenizer
    from verireason.records import Rollout
    from verireason.trainer import Learner

    model = load_causal_lm(str(tiny_model_dir), "float32", "cpu")
    learner = Learner(Accelerator(cpu=True), model, load_tokenizer(str(tiny_model_dir)), lr=1e-3, weight_decay=0.0,
                      warmup_steps=0, grad_clip=1.0, micro_batch_size=8, mini_batch_prompts=32)
    rollouts = [Rollout("verify", f"v{i // 8}", "", "", (1,), (2,), 0.0, "stop") for i in range(800)]
    sizes = [len(m) for m in learner._mini_batches(rollouts, torch.Generator().manual_seed(0))]
    assert sizes == [256, 256, 256, 32]
    chosen = sorted(i for m in learner._mini_batches(rollouts, torch.Generator().manual_seed(0)) for i in m)
    assert chosen == list(range(800))


def test_k3_kl_is_clamped_like_verls_low_var_kl():
    gen = torch.Generator().manual_seed(0)
    logp = torch.randn(4, 6, generator=gen) * 8
    ref = torch.randn(4, 6, generator=gen) * 8
    mask = torch.ones(4, 6)
    adv = torch.zeros(4)
    _, stats = pg_loss(logp, logp.detach(), adv, mask, ref_logp=ref, kl_coef=1.0, kl_clamp=10.0)
    kl = ref - logp
    theirs = torch.clamp(torch.exp(kl) - kl - 1, min=-10, max=10)
    assert stats["kl"] == pytest.approx(float(theirs.mean()), rel=1e-5)
