"""Every external piece a run needs, checked before any model loads and before its run directory is made
(``cli._prepare_run_dir`` calls ``check``): a bad one is one line and exit 2, not a traceback an hour in.

* trackers (``log.trackers``): known and installed;
* reward plug-ins (``reward.fn`` / ``reward.extra``): importable and callable;
* the S²R judge endpoint (``construct.judge.url``): a well-formed http(s) URL, then one cheap request (``GET
  {url}/models``, with the key where one is set) that must answer;
* input files (``eval --samples``, ``stv`` candidates, ``vil.chains``, ``s2r --data``, ``sft-init --data``): there,
  valid JSON, and their first record of a shape the reader takes (the message names the fields expected);
* benchmarks (``--bench``, ``--eval-bench``: built-in, ``--data-dir`` files, ``bench.<name>.file``): read whole, as
  the run will read them, so a malformed line is reported with its file and line number;
* models (``--model``, ``--verifier``, ``--judge``, ``asymmetry-probe --checkpoints``): a local model directory, the
  embedded model's package, or a hub id whose ``config.json`` is cached or answers one HEAD request
  (``models.check_available``).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from verireason.errors import UserError

SAMPLES_LAYOUTS = ({"id", "problem", "answer", "responses"}, {"bench", "problem_id", "problem", "completion", "gold",
                                                              "correct"})
EVAL_SAMPLES = ({"bench", "problem_id", "sample_index", "problem", "completion", "correct", "gold"},)
CHAINS = ({"bench", "problem_id", "chain", "rounds"},)
SFT_RECORDS = ({"messages"}, {"prompt", "completion"}, {"prompt", "segments"})
RL_PROBLEMS = ({"problem", "answer"},)


def _fields(layouts) -> str:
    return " or ".join("{" + ", ".join(sorted(layout)) + "}" for layout in layouts)


def check_jsonl(path: str | Path, what: str, layouts, name: str | None = None) -> Path:
    """``path`` (or ``path/name`` for a run directory): exists, its first record is JSON with every field of one of
    ``layouts``. Returns the file."""
    path = Path(path).expanduser()
    file = path / name if name and path.is_dir() else path
    if not file.is_file():
        raise UserError(f"{what}: {file} does not exist" + (f"; pass a run directory or its {name}" if name else ""))
    with file.open(encoding="utf-8", errors="replace") as handle:
        first = next((line for line in handle if line.strip()), None)
    if first is None:
        raise UserError(f"{what}: {file} is empty")
    try:
        record = json.loads(first)
    except json.JSONDecodeError as exc:
        raise UserError(f"{what}: {file} line 1 is not JSON ({exc.msg})") from None
    if not isinstance(record, dict) or not any(layout <= set(record) for layout in layouts):
        found = ", ".join(sorted(record)) if isinstance(record, dict) else type(record).__name__
        raise UserError(f"{what}: {file} line 1 has fields {{{found}}}; expected {_fields(layouts)}")
    return file


def check_judge(judge) -> None:
    """The judge endpoint's URL form, then ``GET {url}/models`` (OpenAI-compatible servers list their models)."""
    url = judge.url
    parts = urllib.parse.urlparse(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UserError(f"construct.judge.url={url!r} is not an http(s) URL; expected an OpenAI-compatible base "
                        "such as http://localhost:8000/v1")
    headers = {}
    key = os.environ.get(judge.api_key_env) if judge.api_key_env else None
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(f"{url.rstrip('/')}/models", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=min(judge.timeout_s, 15.0)) as response:
            response.read(1 << 16)
    except urllib.error.HTTPError as exc:
        hint = {401: "the key was refused", 403: "the key was refused",
                404: "no /models there: is the base URL right (it usually ends in /v1)?"}.get(exc.code, "")
        raise UserError(f"judge endpoint {url} answered HTTP {exc.code} to GET /models" + (f": {hint}" if hint else "")
                        ) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
        raise UserError(f"judge endpoint {url} cannot be reached ({getattr(exc, 'reason', exc)}); check "
                        "construct.judge.url") from None


def check(command: str, cfg) -> None:
    """All of the above that ``cfg`` uses (and the precision and sharding settings, read before any model loads)."""
    from verireason.precision import PRECISIONS
    from verireason.sharding import SHARDINGS

    trainer = getattr(cfg, "trainer", None)
    for key, valid in (("mixed_precision", PRECISIONS), ("sharding", SHARDINGS)):  # read before any model loads
        setting = getattr(trainer if trainer is not None else cfg, key, None)
        if setting is not None and setting not in valid:
            where = f"trainer.{key}" if trainer is not None else key
            raise UserError(f"unknown {where}={setting!r}; valid: {', '.join(valid)}")
    log = getattr(cfg, "log", None)
    if log is not None and log.trackers:
        from verireason.trackers import check as check_trackers

        check_trackers(log.trackers)
    reward = getattr(cfg, "reward", None)
    if reward is not None and (getattr(reward, "fn", None) or getattr(reward, "extra", None)):
        from verireason.plugins import load

        for spec in [reward.fn, *reward.extra] if reward.fn else reward.extra:
            load(spec)
    _check_inputs(command, cfg)
    _check_benchmarks(command, cfg)
    from verireason.recipes.plan import check_fits

    check_fits(command, cfg)  # on GPUs: a run that cannot fit is refused here (trainer.check_memory=false: go ahead)
    _check_models(command, cfg)  # last: the one check that may ask the network


def _check_inputs(command: str, cfg) -> None:
    if command == "eval" and cfg.samples:
        check_jsonl(cfg.samples, "--samples", SAMPLES_LAYOUTS)
    elif command == "stv":
        for key in ("samples", "heldout_samples"):
            if getattr(cfg.candidates, key):
                check_jsonl(getattr(cfg.candidates, key), f"candidates.{key} (an eval run)", EVAL_SAMPLES,
                            "samples.jsonl")
    elif command == "vil" and cfg.vil.mode == "prompts" and cfg.vil.chains:
        check_jsonl(cfg.vil.chains, "vil.chains (an `eval --protocol vr_loop` run)", CHAINS, "chains.jsonl")
    elif command == "sft-init":
        check_jsonl(cfg.data, "--data", SFT_RECORDS)
    elif command == "s2r":
        if cfg.stage == "data" and cfg.construct.judge.url and not cfg.construct.import_dir:
            check_judge(cfg.construct.judge)
        if cfg.data and cfg.stage in ("bi", "orl", "prl"):
            bi = cfg.stage == "bi"
            check_jsonl(cfg.data, "--data", SFT_RECORDS if bi else RL_PROBLEMS, "sft.jsonl" if bi else "rl.jsonl")


def _benchmarks(command: str, cfg) -> list[tuple[str, object, int | None]]:
    """``(name, bench config, limit)`` of every benchmark the run will read."""
    train = [(n, b, cfg.limit) for n, b in (getattr(cfg, "bench", None) or {}).items()]
    held = [(n, b, cfg.eval_limit) for n, b in (getattr(cfg, "eval_bench", None) or {}).items()]
    if command == "eval":
        return [] if cfg.samples and cfg.protocol != "vr_loop" else train
    if command == "asymmetry-probe":
        return train
    if command in ("rl-gen", "rl-verify", "stv", "vil"):
        return train + held
    if command == "s2r":
        if cfg.stage == "data":
            return [] if cfg.construct.import_dir else train + (held if cfg.construct.decontaminate else [])
        if cfg.stage in ("orl", "prl"):
            return ([] if cfg.data else train) + held
    return []


def _check_benchmarks(command: str, cfg) -> None:
    """Every benchmark read as the run will read it (a bad line names its file and line)."""
    from verireason.data import load_problems

    for name, bench, limit in _benchmarks(command, cfg):
        load_problems(name, bench, cfg.data_dir, limit)


def _models(command: str, cfg) -> list:
    """The model configs the run will load."""
    if command == "eval":
        judging = cfg.protocol in ("self_verify", "vr_loop")
        generating = not cfg.samples or cfg.protocol == "vr_loop"
        return ([cfg.model] if generating else []) + ([cfg.verifier or cfg.model] if judging else [])
    if command == "vil":
        return [cfg.model] + ([cfg.verifier] if cfg.verifier else [])
    if command == "s2r" and cfg.stage == "data":
        if cfg.construct.import_dir:
            return []  # imports files, loads no model
        return [cfg.model] + ([cfg.judge_model] if cfg.judge_model and not cfg.construct.judge.url else [])
    if command == "asymmetry-probe":
        return []  # its checkpoints are checked one by one in _check_models
    return [cfg.model]


def _check_models(command: str, cfg) -> None:
    """Every model the run loads can be loaded (``models.check_available``), before any of them is."""
    from verireason.config import to_object
    from verireason.models import check_available

    for model in _models(command, cfg):
        check_available(to_object(model))
    if command == "asymmetry-probe" and cfg.checkpoints and not getattr(cfg, "from_csv", None):
        from verireason.recipes.asymmetry_probe import find_checkpoints

        for _, model in find_checkpoints(list(cfg.checkpoints), to_object(cfg.model)):
            check_available(model)
