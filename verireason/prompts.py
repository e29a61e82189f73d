"""Prompt rendering: a ``Problem`` becomes chat messages, and the tokenizer's chat template turns them into text.

The templates themselves are data (``conf/prompt/*.yaml``) so the papers' verbatim strings are versioned with the
configs: ``boxed_cot`` is paper 1's generation prompt (papers.md §1.3); ``qwen25_math_cot`` is the Qwen2.5-Math
toolkit prompt that S²R evaluates with (§3.6).
"""

from __future__ import annotations

from verireason.config import PromptCfg
from verireason.records import Problem


def solve_messages(problem: Problem, prompt: PromptCfg, model_system: str | None = None) -> list[dict[str, str]]:
    """The chat turns that ask for a solution. ``{problem}`` is replaced literally, so LaTeX braces survive."""
    system = prompt.system if prompt.system is not None else model_system
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": prompt.user.replace("{problem}", problem.problem)})
    return messages


def chat_text(tokenizer, messages: list[dict[str, str]]) -> str:
    """The prompt text with the assistant turn opened; plain concatenation for tokenizers without a template."""
    if tokenizer.chat_template:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return "\n\n".join(m["content"] for m in messages) + "\n\n"
