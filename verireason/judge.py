"""Judges: a model that answers single-turn prompts, either an engine (any model the engines load) or an
OpenAI-compatible chat-completions endpoint over HTTP (S²R built its verifications through one, papers.md §3.3).

Both take a list of user prompts and return one text per prompt, in order. The HTTP judge keeps a bounded number
of requests in flight, bounds each request's time, retries a failed request a few times with a growing pause, and
fails with one clear line when the endpoint cannot be used. Only the standard library is used for HTTP.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Protocol

from verireason.config import SamplingCfg
from verireason.errors import UserError
from verireason.generation import Generator
from verireason.prompts import chat_text
from verireason.protocols import generate_batched


class Judge(Protocol):
    def answer(self, prompts: list[str], seed: int) -> list[str]: ...


@dataclass
class EngineJudge:
    """A judge over a loaded engine: each prompt is the user turn of a chat with the model's own template."""

    engine: Generator
    sampling: SamplingCfg
    system: str | None = None

    def answer(self, prompts: list[str], seed: int) -> list[str]:
        turns = [[{"role": "system", "content": self.system}] if self.system else [] for _ in prompts]
        texts = [chat_text(self.engine.tokenizer, t + [{"role": "user", "content": p}]) for t, p in zip(turns, prompts)]
        return [cs[0].text for cs in generate_batched(self.engine, texts, replace(self.sampling, n=1), seed)]


@dataclass
class HTTPJudge:
    """An OpenAI-compatible ``/v1/chat/completions`` endpoint (vLLM's server, OpenAI, …). ``url`` is the base
    (``http://host:port/v1``); the API key, if any, is read from the environment variable ``api_key_env``."""

    url: str
    model: str
    sampling: SamplingCfg
    api_key_env: str | None = "OPENAI_API_KEY"
    timeout_s: float = 120.0
    concurrency: int = 8
    retries: int = 3

    def answer(self, prompts: list[str], seed: int) -> list[str]:
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(lambda ip: self._ask(ip[1], seed + ip[0]), enumerate(prompts)))

    def _ask(self, prompt: str, seed: int) -> str:
        body = {"model": self.model, "messages": [{"role": "user", "content": prompt}],
                "temperature": self.sampling.temperature, "top_p": self.sampling.top_p,
                "max_tokens": self.sampling.max_tokens, "n": 1, "seed": seed}
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(f"{self.url.rstrip('/')}/chat/completions", json.dumps(body).encode(),
                                         headers, method="POST")
        for attempt in range(self.retries + 1):
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    return _content(json.loads(response.read()), self.url)
            except urllib.error.HTTPError as exc:
                if exc.code < 500 and exc.code != 429 or attempt == self.retries:
                    raise UserError(f"judge endpoint {self.url} answered HTTP {exc.code}: "
                                    f"{exc.read(200).decode(errors='replace').strip()}") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                if attempt == self.retries:
                    raise UserError(f"judge endpoint {self.url} cannot be reached ({getattr(exc, 'reason', exc)}); "
                                    "check judge.url (an OpenAI-compatible base URL such as http://host:8000/v1)") from None
            time.sleep(min(2 ** attempt, 10))
        raise AssertionError("unreachable")


def _content(reply: dict, url: str) -> str:
    try:
        return reply["choices"][0]["message"]["content"] or ""
    except (KeyError, IndexError, TypeError):
        raise UserError(f"judge endpoint {url} did not answer like an OpenAI chat completion "
                        f"(no choices[0].message.content): {json.dumps(reply)[:200]}") from None
