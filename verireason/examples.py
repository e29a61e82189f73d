"""Supervised examples for ``sft-init``: JSONL records → token ids with a per-token loss flag.

Three record shapes are accepted (one per line):

* ``{"prompt": "...", "completion": "..."}``: the prompt becomes a user turn; the whole completion is trained.
* ``{"prompt": "...", "segments": [{"text": "...", "train": true}, ...]}``: the completion is the concatenation
  of the segments, and only segments with ``train: true`` are trained. S²R's behaviour initialization (papers.md
  §3.4) trains the verifications and the final correct attempt and masks the wrong attempts.
* ``{"messages": [{"role": ..., "content": ...}, ...]}``: a chat; the last message must be the assistant's and
  is the completion. Its ``content`` may be a string or a list of segments as above.

The prompt goes through the model's chat template (generation prompt opened); the completion ends with the EOS
token, trained when the last segment is. Segments are tokenized one by one, so a flag never straddles a token.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from verireason.errors import UserError
from verireason.prompts import chat_text


@dataclass(frozen=True)
class Example:
    prompt_ids: tuple[int, ...]
    completion_ids: tuple[int, ...]
    trained: tuple[bool, ...]  # one flag per completion token


def _segments(record: dict, where: str) -> tuple[list[dict[str, str]], list[tuple[str, bool]]]:
    """(prompt chat turns, completion segments) of one record."""
    if "messages" in record:
        messages = record["messages"]
        if not messages or messages[-1].get("role") != "assistant":
            raise UserError(f"{where}: the last message must be the assistant's (the completion)")
        turns, content = messages[:-1], messages[-1]["content"]
    elif "prompt" in record and ("completion" in record or "segments" in record):
        turns, content = [{"role": "user", "content": record["prompt"]}], record.get("segments", record.get("completion"))
    else:
        raise UserError(f"{where}: expected 'messages', or 'prompt' with 'completion' or 'segments'")
    if isinstance(content, str):
        return turns, [(content, True)]
    try:
        return turns, [(seg["text"], bool(seg.get("train", True))) for seg in content]
    except (TypeError, KeyError):
        raise UserError(f"{where}: segments must be objects with 'text' (and optional 'train')") from None


def encode(record: dict, tokenizer, where: str = "example", max_length: int = 8000) -> Example:
    turns, segments = _segments(record, where)
    prompt_ids = tuple(tokenizer(chat_text(tokenizer, turns), add_special_tokens=False)["input_ids"])
    completion, flags = [], []
    for text, train in segments:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        completion += ids
        flags += [train] * len(ids)
    completion.append(tokenizer.eos_token_id)
    flags.append(segments[-1][1])
    room = max(max_length - len(prompt_ids), 1)  # long examples lose their tail, never their prompt
    return Example(prompt_ids, tuple(completion[:room]), tuple(flags[:room]))


def read_examples(path: Path, tokenizer, max_length: int = 8000) -> list[Example]:
    """Every record of a JSONL file, encoded; a malformed line fails with its file:line."""
    if not path.is_file():
        raise UserError(f"sft data file not found: {path}")
    examples = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}:{lineno}: not JSON ({exc.msg})") from None
        examples.append(encode(record, tokenizer, f"{path}:{lineno}", max_length))
    if not examples:
        raise UserError(f"{path}: no examples")
    return examples
