"""S²R's rules against the released code (papers.md §3.9, ``NineAbyss/S2R`` at d354940).

Each ``official_*`` function is our own transcription of the code's rule, written from reading it
(``generate_experience_incot_splitmask`` and ``…_rloo`` of ``code/src/rloo_trainer.py``: the '_'-joined id string,
``re.split``, the merge, the per-token rewards, masks and part indices, the prefix statistics; its PRL loss
``compute_loss_splitpart_inkl_sentence``; ``get_veri_answer``; ``process_lines`` of
``tools/3_contruct_muliti_turn_data.py``). The suite's functions must agree with it on generated responses. Ids are
three-digit numbers, so the code's string matching cannot match inside an id (its defect, which the suite fixes,
is tested on its own).
"""

from __future__ import annotations

import random
import re
from collections import defaultdict

import pytest
import torch

from verireason.losses import part_pg_loss
from verireason.papers.s2r import PrefixBaseline, filter_verdict, history_keys, load_prefix_whitelist
from verireason.papers.s2r_actions import code_verdict, score_actions, split_actions
from verireason.papers.s2r_rl import part_kl, part_tokens, prl_advantages

CHECK, RETRY, EOS = (201, 202), (203, 204, 205), 299
RIGHT = 210  # a solve piece containing this id is graded correct
WORDS = {221: "Therefore, the answer is correct.", 222: "Therefore, the answer is incorrect.",
         223: " It is correct", 224: " cannot verify", 225: " is indeed", 226: " x", 227: "Therefore, the answer is 5."}


def decode(ids) -> str:
    return "".join(WORDS.get(i, f" t{i}") for i in ids)


def grade(ids) -> bool:
    return RIGHT in ids


# --- transcriptions -----------------------------------------------------------------------------------------


def official_veri_answer(subtext: str, is_last: bool) -> str:
    result = re.findall(re.compile(r"Therefore, the answer is (.+?)\."), subtext)
    for res in result[::-1]:
        if res in ["correct", "incorrect"]:
            return res
    if "is incorrect" in subtext or "cannot verify" in subtext:
        return "incorrect"
    if "is correct" in subtext or "is indeed" in subtext or "verified to be correct" in subtext \
            or "verified as correct" in subtext:
        return "correct"
    return "correct" if is_last else "incorrect"


def official_split(response: list[int], merge: bool) -> list[str]:
    s = "_".join(str(t) for t in response).split(str(EOS))[0].strip("_")
    check, retry = "_".join(map(str, CHECK)), "_".join(map(str, RETRY))
    pieces = re.split(f"({check}|{retry})", s)
    if not merge:
        return pieces
    out, last, current = [], None, ""
    for text in pieces:
        if text in (check, retry):
            if last == text:
                current += text
            else:
                out += [current, text]
                current, last = "", text
        else:
            current += text
    if current:
        out.append(current)
    return out


def _ids(piece: str) -> list[int]:
    return [int(t) for t in piece.strip("_").split("_") if t]


def official_prl(response: list[int], no_eos: bool, sums, counts, local_sums, local_counts, use_bonus=True,
                 use_veri_bonus=True):
    """Per response token: (token reward, answer mask, part idx); the prefix statistics of the batch in
    ``local_*`` (the global ones are read, as before the batch)."""
    check, retry = "_".join(map(str, CHECK)), "_".join(map(str, RETRY))
    split = official_split(response, merge=True)

    def base(prefix):
        return sums[prefix] / counts[prefix] if counts[prefix] >= 10 else 0.0

    prefix = ""
    first = _ids(split[0])
    raw = 1 if grade(first) else -1
    reward = raw - base(prefix)
    local_sums[prefix] += raw
    local_counts[prefix] += 1
    prefix += f"R{raw}"
    rewards, mask, parts = [reward] * len(first), [1] * len(first), [1] * len(first)
    last_raw, last_split = raw, None
    for i, piece in enumerate(split[1:]):
        punish = no_eos and i == len(split) - 2
        if piece in (check, retry):
            last_split = piece
            continue
        ids = _ids(piece)
        if last_split == check:
            answer = official_veri_answer(decode(ids), is_last=i == len(split[1:]) - 1)
            raw_v = 1 if (last_raw > 0 and answer == "correct" or last_raw < 0 and answer == "incorrect") else -1
            value = raw_v - base(prefix)
            local_sums[prefix] += raw_v
            local_counts[prefix] += 1
            prefix += f"V{raw_v}"
            if use_veri_bonus and last_raw > 0:
                value *= 2
        else:
            raw_s = 1 if grade(ids) else -1
            value = raw_s - base(prefix)
            local_sums[prefix] += raw_s
            local_counts[prefix] += 1
            prefix += f"R{raw_s}"
            if use_bonus and raw_s != last_raw:
                value *= 2
            last_raw = raw_s
        delim = _ids(last_split)
        rewards += [0] * len(delim) + [-1 if punish else value] * len(ids)
        mask += [1] * len(delim) + [1] * len(ids)
        parts += [0] * len(delim) + [i + 2] * len(ids)
    return rewards, mask, parts


def official_orl_last(response: list[int]) -> bool:
    check, retry = "_".join(map(str, CHECK)), "_".join(map(str, RETRY))
    split = official_split(response, merge=False)
    last = grade(_ids(split[0]))
    after = None
    for piece in split[1:]:
        if piece in (check, retry):
            after = piece
        elif after == retry:
            last = grade(_ids(piece))
    return last


def official_prl_loss(logp, old, token_rewards, part_idx, mask, kl_coef=0.0, clip=0.2):
    total, part_num = 0, torch.zeros(logp.shape[0])
    kl = old - old  # the KL terms are tested through the advantages; here a zero KL
    for p in torch.unique(part_idx):
        part_mask = (part_idx == p) * mask
        part_num += (part_mask.sum(-1) > 0).float()
        if not part_mask.any():
            continue
        part_rewards = (token_rewards * part_mask).sum(-1) / (part_mask.sum(-1) + 1e-10)
        adv = part_rewards - kl_coef * (kl * part_mask).sum(-1)
        part_logprob = (logp * part_mask).sum(-1) / (part_mask.sum(-1) + 1e-10)
        old_logprob = (old * part_mask).sum(-1) / (part_mask.sum(-1) + 1e-10)
        ratio = torch.clamp(part_logprob - old_logprob, min=-10, max=10).exp()
        total = total - torch.minimum(adv * ratio, adv * torch.clip(ratio, 1 - clip, 1 + clip))
    return (total / (part_num + 1e-10)).mean()


def official_filter(verification: str):
    """``process_lines``' verdict for one verification: (veri_answer or None when skipped, kept text)."""
    incorrect = ["is incorrect", "is likely incorrect", "is unlikely correct", "answer is wrong", "incorrect answer",
                 "not the correct answer", "answer is not correct", "solution is incorrect", "calculation is wrong",
                 "result is incorrect"]
    correct = ["is correct", "appears to be correct", "answer is reasonable", "solution is correct",
               "calculation is correct", "result is correct", "correctly solved", "answer checks out"]

    def is_inc(s):
        return any(p in s.lower() for p in incorrect)

    def is_cor(s):
        return any(p in s.lower() for p in correct)

    sentences = verification.lower().strip().split(".")
    last = sentences[-2] if verification.endswith(".") else sentences[-1]
    answer = ""
    if is_inc(last):
        answer = "incorrect"
    elif is_cor(last):
        answer = "correct"
    elif "plausible" in last.lower():
        answer = "correct"
        verification = verification.replace("is plausible", "is correct")
    elif "cannot" in last.lower() and "verif" in last.lower():
        return None, verification
    elif len(sentences) >= 3:
        second = sentences[-3] if verification.endswith(".") else sentences[-2]
        if is_inc(second):
            answer = "incorrect"
            verification = ".".join(verification.split(".")[:-1]) + "."
        elif is_cor(second):
            answer = "correct"
            verification = ".".join(verification.split(".")[:-1]) + "."
    else:
        return None, verification
    return (answer or None), verification


# --- generated responses ------------------------------------------------------------------------------------


def _response(rng: random.Random) -> tuple[list[int], bool]:
    out = []
    for _ in range(rng.randint(0, 9)):
        r = rng.random()
        if r < 0.2:
            out += CHECK
        elif r < 0.35:
            out += RETRY
        else:
            out += [rng.choice([RIGHT, 221, 222, 223, 224, 225, 226, 227, 230, 231])]
    finished = rng.random() < 0.6
    return out + ([EOS] if finished else []), finished


def test_prl_rewards_masks_and_parts_match_the_code():
    rng = random.Random(0)
    baseline = PrefixBaseline(min_count=10)
    sums, counts = defaultdict(float), defaultdict(float)
    for batch in range(60):
        # an empty response (EOS alone) crashes the code (no piece at all); ours has no action: left out here
        responses = [r for r in (_response(rng) for _ in range(16)) if r[0] and r[0][0] != EOS]
        local_s, local_c = defaultdict(float), defaultdict(float)
        theirs = [official_prl(ids, not fin, sums, counts, local_s, local_c) for ids, fin in responses]
        for key in local_s:
            sums[key] += local_s[key]
            counts[key] += local_c[key]
        scored, rollout_parts = [], []
        for ids, fin in responses:
            actions = split_actions(ids, CHECK, RETRY, EOS, merge=True)
            solved = [grade(ids[a.start : a.end]) for a in actions if a.kind == "solve"]
            scored.append(score_actions(ids, actions, decode, solved, fin))
            rollout_parts.append(part_tokens(actions, len(ids)))
        kl = [[0.0] * len(s.actions) for s in scored]
        adv = prl_advantages(scored, kl, baseline, 0.0)
        for (ids, _), s, (parts, trained), per, (rewards, mask, their_parts) in zip(
                responses, scored, rollout_parts, adv, theirs):
            n = len(mask)
            assert list(trained[:n]) == [bool(m) for m in mask] and not any(trained[n:]), ids
            tokens = [0.0] * len(ids)
            for a, value in zip(s.actions, per):
                tokens[a.start : a.end] = [value] * (a.end - a.start)
            assert tokens[:n] == pytest.approx(rewards), ids
            # the same partition of trained tokens into parts (the code's indices differ: 0 pools delimiters)
            ours = {}
            for t in range(n):
                ours.setdefault(parts[t], set()).add(t)
            code = {}
            for t in range(n):
                code.setdefault(their_parts[t], set()).add(t)
            assert sorted(map(sorted, ours.values())) == sorted(map(sorted, code.values())), ids
        assert baseline.counts == {k: int(v) for k, v in counts.items() if v}
        assert baseline.sums == pytest.approx({k: v for k, v in sums.items() if counts[k]})


def test_orl_last_attempt_matches_the_code():
    rng = random.Random(1)
    for _ in range(3000):
        ids, fin = _response(rng)
        actions = split_actions(ids, CHECK, RETRY, EOS, merge=False)
        solved = [grade(ids[a.start : a.end]) for a in actions if a.kind == "solve"]
        assert score_actions(ids, actions, decode, solved, fin).last_correct == official_orl_last(ids), ids
    # a trailing "Let me try again." leaves an empty final attempt, graded wrong
    ids = [RIGHT, *RETRY, EOS]
    actions = split_actions(ids, CHECK, RETRY, EOS, merge=False)
    assert score_actions(ids, actions, decode, [True, False], True).last_correct is False


def test_whole_id_matching_fixes_the_codes_string_defect():
    """With "Wait," = [14190, 11], the code's string "5_314190_11_7" contains "14190_11" inside id 314190."""
    actions = split_actions([5, 314190, 11, 7], (14190, 11), (999,), None)
    assert [a.kind for a in actions] == ["solve"] and (actions[0].start, actions[0].end) == (0, 4)


def test_prl_loss_averages_parts_per_sequence_then_sequences():
    gen = torch.Generator().manual_seed(2)
    for _ in range(200):
        rows, width = 5, 9
        part_idx = torch.randint(0, 4, (rows, width), generator=gen)
        mask = (torch.rand(rows, width, generator=gen) > 0.3).float()
        rewards = torch.randn(rows, 4, generator=gen).gather(1, part_idx)  # constant within a part
        logp = torch.randn(rows, width, generator=gen, requires_grad=True)
        old = logp.detach() + 0.3 * torch.randn(rows, width, generator=gen)
        theirs = official_prl_loss(logp, old, rewards, part_idx, mask)
        (g_theirs,) = torch.autograd.grad(theirs, logp)
        ours, _ = part_pg_loss(logp, old, rewards, mask, part_idx, clip_low=0.2, clip_high=0.2, per_sequence=True)
        (g_ours,) = torch.autograd.grad(ours, logp)
        assert float(ours.detach()) == pytest.approx(float(theirs.detach()), rel=1e-5, abs=1e-7)
        assert torch.allclose(g_ours, g_theirs, atol=1e-6)


def test_pooled_delimiter_part_carries_the_pools_kl():
    ids = [230, *CHECK, 221, *RETRY, RIGHT, *CHECK, 221, EOS]
    actions = split_actions(ids, CHECK, RETRY, EOS)
    parts, _ = part_tokens(actions, len(ids))
    delta = torch.arange(len(ids), dtype=torch.float)
    kl = part_kl(delta, parts, actions)
    pool = sum(float(delta[t]) for t, p in enumerate(parts) if p == parts[1])
    assert [k for a, k in zip(actions, kl) if a.kind == "delimiter"] == [pool, pool, pool]


_VERDICT_BITS = ["Therefore, the answer is correct.", "Therefore, the answer is incorrect.",
                 "therefore, the answer is correct.", "Therefore, the answer is 5.", "The answer is incorrect",
                 " cannot verify", " is indeed", " verified as correct", " is correct", " Is Correct", " so", " ."]


def test_verify_verdict_matches_get_veri_answer():
    rng = random.Random(3)
    for _ in range(5000):
        text = "".join(rng.choice(_VERDICT_BITS) for _ in range(rng.randint(0, 5)))
        last = rng.random() < 0.5
        assert code_verdict(text, last) == (official_veri_answer(text, last) == "correct"), text


_FILTER_BITS = ["The answer is correct", "the answer is incorrect", "It seems plausible", "This is plausible",
                "I cannot verify it", "We check", "So the result is correct", "It is not the correct answer", ".",
                ". ", ".\n", " ", "x = 3", "Thus"]


def test_verdict_filter_matches_process_lines():
    rng = random.Random(4)
    for _ in range(5000):
        text = "".join(rng.choice(_FILTER_BITS) for _ in range(rng.randint(1, 7)))
        answer, kept = official_filter(text)
        verdict, ours_kept = filter_verdict(text)
        assert verdict == (None if answer is None else answer == "correct"), text
        if verdict is not None:
            assert ours_kept == kept, text


def test_prefix_whitelist_never_tracks_other_prefixes(tmp_path):
    source = tmp_path / "rloo_trainer.py"
    source.write_text("x = 1\n            key_list = ['', 'R1', 'R-1']\nmore = 2\n")
    tracked = load_prefix_whitelist(str(source))
    assert tracked == {"", "R1", "R-1"}
    baseline = PrefixBaseline(min_count=1, tracked=tracked)
    batch = list(zip(history_keys([("solve", -1.0), ("verify", 1.0), ("solve", 1.0)]), [-1.0, 1.0, 1.0]))
    baseline.advantages(batch)
    assert set(baseline.counts) == {"", "R-1"}  # "R-1V1" is outside the list
    assert baseline.value("R-1V1") == 0.0
