"""Numeric settings out of range are refused for every command, before anything loads or any directory is made.

The ranges are declared once, beside the schema (``config.bounded``); these tests walk every declared field of every
command, so a field added later is covered without a new test.
"""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf
from typer.testing import CliRunner

from verireason.cli import app
from verireason.config import SCHEMAS, Range, bounded_fields, compose
from verireason.errors import UserError

runner = CliRunner()


def bounded_keys(node) -> list[tuple[str, Range, bool]]:
    """Every (dotted key, range, whether an integer) of a composed config whose field declares a range."""
    return [(key, spec.metadata["range"], "int" in str(spec.type)) for key, _, spec in bounded_fields(node)]


def outside(valid: Range, integer: bool) -> list[float]:
    """Values just outside a range: its open ends themselves, and one step past each end."""
    step = 1 if integer else 0.5
    values = []
    if valid.low is not None:
        values += [valid.low] if valid.low_open else []
        values.append(valid.low - step)
    if valid.high is not None:
        values += [valid.high] if valid.high_open else []
        values.append(valid.high + step)
    return values


@pytest.mark.parametrize("command", sorted(SCHEMAS))
def test_every_declared_range_is_enforced(command):
    cfg = compose(command, ["data=x.jsonl"] if command == "sft-init" else [])
    keys = bounded_keys(cfg)
    assert len(keys) >= 5, keys
    for key, valid, integer in keys:
        for value in outside(valid, integer):
            with pytest.raises(UserError, match=rf"^{key}={value:g}.* is out of range: it must be"):
                compose(command, [f"{key}={value}"])


@pytest.mark.parametrize("command", sorted(SCHEMAS))
def test_every_default_is_in_range(command):
    cfg = compose(command, [])
    for key, valid, _ in bounded_keys(cfg):
        value = OmegaConf.select(cfg, key)
        assert value is None or value in valid, (key, value, str(valid))


@pytest.mark.parametrize("command,override,message", [
    ("eval", "sampling.temperature=-1", "sampling.temperature=-1.0 is out of range: it must be >= 0"),
    ("eval", "sampling.top_p=1.5", "sampling.top_p=1.5 is out of range: it must be in (0, 1]"),
    ("eval", "verify.sampling.max_tokens=0", "verify.sampling.max_tokens=0 is out of range: it must be >= 1"),
    ("eval", "grader.timeout_s=0", "grader.timeout_s=0.0 is out of range: it must be > 0"),
    ("asymmetry-probe", "sampling.n=0", "sampling.n=0 is out of range: it must be >= 1"),
    ("rl-gen", "optim.lr=-1", "optim.lr=-1.0 is out of range: it must be > 0"),
    ("rl-gen", "algo.clip_high=1.2", "algo.clip_high=1.2 is out of range: it must be in (0, 1)"),
    ("rl-verify", "algo.kl_coef=-0.1", "algo.kl_coef=-0.1 is out of range: it must be >= 0"),
    ("rl-verify", "trainer.eval_every=-1", "trainer.eval_every=-1 is out of range: it must be >= 0"),
    ("sft-init", "optim.lr=0", "optim.lr=0.0 is out of range: it must be > 0"),
    ("sft-init", "batch_size=0", "batch_size=0 is out of range: it must be >= 1"),
])
def test_out_of_range_is_one_line_exit_2_and_no_run_dir(tmp_path, command, override, message):
    extra = ["--data", str(tmp_path / "d.jsonl")] if command == "sft-init" else []
    result = runner.invoke(app, [command, "--out", str(tmp_path / "run"), *extra, override])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines == [f"error: {message}"], result.output
    assert not (tmp_path / "run").exists()
