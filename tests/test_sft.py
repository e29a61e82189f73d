"""sft-init: record shapes, per-segment loss flags, and a CLI run with KL that changes the weights."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from verireason.cli import app
from verireason.errors import UserError
from verireason.examples import encode, read_examples

runner = CliRunner()

RECORDS = [
    {"prompt": "What is 2+3?", "completion": "\\boxed{5}"},
    {"prompt": "What is 4+4?", "segments": [{"text": "It is 9. ", "train": False},
                                             {"text": "Wait, let me recheck my solution. It is 8.", "train": True}]},
    {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "1+1?"},
                  {"role": "assistant", "content": "\\boxed{2}"}]},
]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from verireason.models import load_tokenizer

    return load_tokenizer(str(tiny_model_dir))


def test_segment_flags_follow_the_segments(tokenizer):
    ex = encode(RECORDS[1], tokenizer)
    wrong = len(tokenizer("It is 9. ", add_special_tokens=False)["input_ids"])
    assert ex.trained[:wrong] == (False,) * wrong
    assert all(ex.trained[wrong:]) and ex.completion_ids[-1] == tokenizer.eos_token_id
    assert len(ex.trained) == len(ex.completion_ids)
    prompt = tokenizer.decode(ex.prompt_ids)
    assert "What is 4+4?" in prompt and prompt.endswith("<|im_start|>assistant\n")


def test_messages_keep_the_system_turn_and_cut_long_examples(tokenizer):
    ex = encode(RECORDS[2], tokenizer)
    assert "Be brief." in tokenizer.decode(ex.prompt_ids) and all(ex.trained)
    short = encode(RECORDS[0], tokenizer, max_length=len(encode(RECORDS[0], tokenizer).prompt_ids) + 3)
    assert len(short.completion_ids) == 3


@pytest.mark.parametrize("line,message", [
    ('{"text": "x"}', "expected 'messages', or 'prompt' with 'completion' or 'segments'"),
    ('{"messages": [{"role": "user", "content": "x"}]}', "the last message must be the assistant's"),
    ("not json", "not JSON"),
])
def test_bad_records_name_their_line(tokenizer, tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(RECORDS[0]) + "\n" + line + "\n")
    with pytest.raises(UserError, match=f"bad.jsonl:2: .*{message[:20]}"):
        read_examples(path, tokenizer)


def test_sft_init_runs_with_kl_and_changes_weights(tiny_model_dir, tmp_path):
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    out = tmp_path / "run"
    result = runner.invoke(app, ["sft-init", "--model", str(tiny_model_dir), "--data", str(data), "--out", str(out),
                                 "batch_size=2", "epochs=2", "kl_coef=0.1", "optim.lr=1e-3", "optim.micro_batch_size=1",
                                 "save_every=2", "device=cpu", "progress=false"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4] and [r["epoch"] for r in rows] == [0, 0, 1, 1]
    assert all(math.isfinite(r["sft/loss"]) for r in rows) and rows[-1]["sft/kl"] > 0
    before = load_file(str(tiny_model_dir / "model.safetensors"))
    after = load_file(str(out / "checkpoints" / "step_000004" / "model.safetensors"))
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert not (out / "checkpoints" / "step_000002" / "rank0.pt").exists()  # optimizer state: latest only
    assert (out / "checkpoints" / "step_000004" / "rank0.pt").is_file() and (out / "training.png").is_file()


def test_sft_init_without_data_is_a_one_line_error(tmp_path):
    result = runner.invoke(app, ["sft-init", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "needs --data FILE" in result.output
