"""Config: every primary config composes with every option of every group; bad keys and types are rejected."""

from __future__ import annotations

import pytest

from verireason.config import COMMAND_PRESETS, GROUPS, compose, group_options, to_object
from verireason.errors import UserError


def test_every_group_option_composes():
    for group in GROUPS:
        if group == "preset":  # training presets belong to the training commands
            continue
        for option in group_options(group):
            overrides = [f"{group}=[{option}]" if group == "bench" else f"{group}={option}"]
            if option == "local":
                overrides.append("model.path=/some/dir")
            cfg = to_object(compose("eval", overrides))
            assert cfg.model.path


def test_several_benchmarks_merge():
    cfg = to_object(compose("eval", ["bench=[math500,aime24,arith]"]))
    assert list(cfg.bench) == ["math500", "aime24", "arith"]
    assert cfg.bench["math500"].level_field == "level"
    assert cfg.bench["aime24"].split == "train"


def test_presets_carry_the_papers_settings():
    acc16 = to_object(compose("eval", ["sampling=acc16"])).sampling
    assert (acc16.n, acc16.temperature, acc16.top_p, acc16.max_tokens) == (16, 0.6, 0.95, 10240)
    greedy = to_object(compose("eval", ["sampling=greedy", "prompt=qwen25_math_cot"]))
    assert greedy.sampling.temperature == 0.0
    assert greedy.prompt.system == "Please reason step by step, and put your final answer within \\boxed{}."
    assert to_object(compose("eval", [])).prompt.user.endswith("put your final answer within \\boxed{}.")


@pytest.mark.parametrize("override,message", [
    ("sampling.nn=3", "unknown key 'sampling.nn'; valid keys of sampling: n, temperature"),
    ("nonsense=1", "unknown key 'nonsense'"),
    ("sampling.n=many", "could not be converted to Integer"),
    ("model=gpt5", "unknown model 'gpt5'; valid: "),
    ("bench=[math500,nope]", "unknown bench 'nope'; valid: aime24"),
])
def test_bad_overrides_are_one_line_errors(override, message):
    with pytest.raises(UserError, match=message.replace("[", r"\[")) as err:
        compose("eval", [override])
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("command", ["rl-gen", "rl-verify", "stv", "vil"])
def test_training_commands_compose_with_each_of_their_presets(command):
    for preset in COMMAND_PRESETS[command]:
        cfg = to_object(compose(command, [f"preset={preset}"]))
        assert cfg.optim.lr > 0


def test_every_preset_belongs_to_a_command_and_others_are_refused():
    assert set(group_options("preset")) == {p for presets in COMMAND_PRESETS.values() for p in presets}
    with pytest.raises(UserError, match="preset 'stv' is not for rl-gen; valid: cpu_small, paper1"):
        compose("rl-gen", ["preset=stv"])


def test_paper1_preset_carries_the_papers_settings():
    cfg = to_object(compose("rl-verify", ["preset=paper1"]))
    assert cfg.schedule.name == "verify_only"
    assert (cfg.trainer.prompts_per_step, cfg.trainer.group_size, cfg.optim.lr) == (128, 8, 1e-6)
    assert (cfg.algo.clip_low, cfg.algo.clip_high, cfg.algo.kl_coef, cfg.sampling.max_tokens) == (0.2, 0.28, 0.0, 10240)
    assert cfg.sampling.temperature == 1.0 and cfg.grader.name == "dapo_strict"
