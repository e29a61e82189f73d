"""Trackers, reward plug-ins, benchmarks as files and the checks before a run starts (issue: live runs in the
tools researchers watch). Runs are real: `rl-gen` on the primed tiny model, read back from TensorBoard's event
files, W&B's offline run files and Trackio's local store, compared with ``metrics.jsonl``."""

from __future__ import annotations

import importlib.util
import json
import struct
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import write_toy_bench
from tests.test_rl import SMALL, metrics, toy_args
from verireason.cli import app

runner = CliRunner()
HAS = {name: importlib.util.find_spec(name) is not None for name in ("tensorboard", "wandb", "trackio")}
needs_tb_wandb = pytest.mark.skipif(not (HAS["tensorboard"] and HAS["wandb"]),
                                    reason="tensorboard and wandb are the trackers extra (pip install -e '.[trackers]')")


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("toy")
    write_toy_bench(folder / "toy.jsonl", 16)
    return folder


def tensorboard_scalars(run: Path, key: str) -> dict[int, float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    return {e.step: e.value for e in acc.Scalars(key)}


def wandb_history(run: Path) -> dict[int, dict]:
    """Every history record of the run's offline W&B files (a LevelDB-style log of protobuf records after a
    7-byte header), by step; a resumed run's later file wins."""
    from wandb.proto import wandb_internal_pb2

    out: dict[int, dict] = {}
    for file in sorted(run.glob("wandb/offline-run-*/run-*.wandb")):
        data, pos, records, partial = file.read_bytes(), 7, [], b""
        while pos + 7 <= len(data):
            left = 32768 - pos % 32768
            if left < 7:
                pos += left
                continue
            _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
            pos += 7
            if kind == 0 and length == 0:
                pos += left - 7
                continue
            chunk, pos = data[pos : pos + length], pos + length
            if kind == 1:
                records.append(chunk)
            elif kind == 2:
                partial = chunk
            elif kind == 3:
                partial += chunk
            elif kind == 4:
                records.append(partial + chunk)
        for raw in records:
            record = wandb_internal_pb2.Record()
            record.ParseFromString(raw)
            if record.WhichOneof("record_type") == "history":
                items = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item}
                out[int(items["_step"])] = items
    return out


def trackio_logs(run: Path, project: str = "verireason") -> dict[int, dict]:
    from trackio.sqlite_storage import SQLiteStorage

    out: dict[int, dict] = {}
    for row in SQLiteStorage.get_logs(project, run=run.name):  # a step logged twice (metrics, then a figure): merged
        out.setdefault(int(row["step"]), {}).update({k: v for k, v in row.items() if v is not None})
    return out


def run_rl_gen(model, toy_dir, out, steps, *extra, resume=False):
    args = ["rl-gen", *toy_args(model, toy_dir, out, steps), *SMALL, "trainer.save_every=1", *extra]
    result = runner.invoke(app, args + (["--resume"] if resume else []))
    assert result.exit_code == 0, result.output
    return result


@needs_tb_wandb
def test_trackers_get_the_metrics_and_a_resumed_run_continues_them(primed_model_dir, toy_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("TRACKIO_DIR", str(tmp_path / "trackio"))
    names = ["tensorboard", "wandb"] + (["trackio"] if HAS["trackio"] else [])
    trackers = [f"log.trackers=[{','.join(names)}]", "log.samples_every=1"]
    run = tmp_path / "run"
    run_rl_gen(primed_model_dir, toy_dir, run, 2, *trackers)
    first_id = (run / "wandb_id.txt").read_text()
    run_rl_gen(primed_model_dir, toy_dir, run, 3, *trackers, resume=True)
    rows = {r["step"]: r for r in metrics(run)}
    assert sorted(rows) == [0, 1, 2, 3]
    key = "generate/reward"
    expected = {s: r[key] for s, r in rows.items() if key in r}
    assert tensorboard_scalars(run, key) == pytest.approx(expected)  # step 3 once: the resumed events purge after 2
    history = wandb_history(run)
    assert {s: h[key] for s, h in history.items() if key in h} == pytest.approx(expected)
    assert (run / "wandb_id.txt").read_text() == first_id  # the same W&B run, resumed
    assert len(list(run.glob("wandb/offline-run-*"))) == 2
    logged = {k.split("/")[0] for h in history.values() for k in h}
    assert {"samples", "training"} <= logged  # the table of sampled completions, the final figure
    if HAS["trackio"]:
        logs = trackio_logs(run)
        assert {s: l[key] for s, l in logs.items() if key in l} == pytest.approx(expected)


def test_unknown_or_missing_tracker_is_one_line_before_the_run_directory(primed_model_dir, toy_dir, tmp_path,
                                                                         monkeypatch):
    out = tmp_path / "never"
    result = runner.invoke(app, ["rl-gen", *toy_args(primed_model_dir, toy_dir, out, 1), "log.trackers=[mlflow]"])
    assert result.exit_code == 2 and "unknown log.trackers entry 'mlflow'" in result.output and not out.exists()
    import verireason.trackers as trackers

    monkeypatch.setattr(trackers.importlib.util, "find_spec", lambda name: None)
    result = runner.invoke(app, ["rl-gen", *toy_args(primed_model_dir, toy_dir, out, 1), "log.trackers=[wandb]"])
    assert result.exit_code == 2 and "wandb is not installed" in result.output and not out.exists()


PLUGIN = '''
def quarter(problem, completion, grade):
    return 0.25

def half(problem, completion, grade):
    return 0.5

def broken(problem, completion, grade):
    raise ValueError("no luck")

def words(problem, completion, grade):
    return "many"

def slow(problem, completion, grade):
    import time
    time.sleep(60)
    return 0.0
'''


def test_reward_plugins_replace_and_add_terms(primed_model_dir, toy_dir, tmp_path):
    plugin = tmp_path / "myrewards.py"
    plugin.write_text(PLUGIN)
    plain = run_rl_gen(primed_model_dir, toy_dir, tmp_path / "plain", 1, "trainer.eval_every=0")
    replaced = run_rl_gen(primed_model_dir, toy_dir, tmp_path / "fn", 1, "trainer.eval_every=0",
                          f"reward.fn={plugin}:quarter", f"reward.extra=[{plugin}:half]")
    assert plain.exit_code == replaced.exit_code == 0
    base = metrics(tmp_path / "plain")[-1]["generate/reward"]
    assert metrics(tmp_path / "fn")[-1]["generate/reward"] == pytest.approx(0.75)  # 0.25 replaces, 0.5 adds
    added = run_rl_gen(primed_model_dir, toy_dir, tmp_path / "extra", 1, "trainer.eval_every=0",
                       f"reward.extra=[{plugin}:half]")
    assert added.exit_code == 0
    assert metrics(tmp_path / "extra")[-1]["generate/reward"] == pytest.approx(base + 0.5)


@pytest.mark.parametrize("name,message", [("broken", "raised ValueError: no luck"),
                                          ("words", "returned 'many'; it must return a finite number"),
                                          ("slow", "took longer than grader.timeout_s=1 s")])
def test_a_failing_plugin_is_one_line_naming_it(primed_model_dir, toy_dir, tmp_path, name, message):
    plugin = tmp_path / "myrewards.py"
    plugin.write_text(PLUGIN)
    args = ["rl-gen", *toy_args(primed_model_dir, toy_dir, tmp_path / name, 1), *SMALL, "trainer.eval_every=0",
            f"reward.extra=[{plugin}:{name}]", "grader.timeout_s=1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and message in result.output and f"{plugin}:{name}" in result.output
    assert "Traceback" not in result.output


def test_plugin_that_cannot_load_is_refused_before_the_run_directory(primed_model_dir, toy_dir, tmp_path):
    out = tmp_path / "never"
    result = runner.invoke(app, ["rl-gen", *toy_args(primed_model_dir, toy_dir, out, 1), "reward.extra=[nosuch:fn]"])
    assert result.exit_code == 2 and "reward plug-in 'nosuch:fn' could not be imported" in result.output
    assert not out.exists()


def test_a_users_benchmark_file_end_to_end(primed_model_dir, tmp_path):
    """The README's custom-benchmark example: a JSONL file of id/problem/answer, `--bench custom`."""
    data = tmp_path / "data"
    data.mkdir()
    rows = [{"id": f"q{i}", "problem": f"Answer with {1 + i % 2}.", "answer": str(1 + i % 2), "level": 1}
            for i in range(6)]
    (data / "mybench.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "eval"
    result = runner.invoke(app, ["eval", "--model", str(primed_model_dir), "--bench", "custom", "--data-dir", str(data),
                                 "--out", str(out), "bench.custom.file=mybench.jsonl", "sampling.n=2",
                                 "sampling.max_tokens=12", "engine.device=cpu", "progress=false"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["custom"]["problems"] == 6 and summary["custom"]["samples"] == 12
    assert summary["custom"]["accuracy"] > 0  # the primed model answers the toy task


def test_external_pieces_are_checked_before_the_run_directory(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"foo": 1}\n')
    cases = [
        (["s2r", "--stage", "data", "--bench", "arith", "construct.judge.url=not-a-url"], "is not an http(s) URL"),
        (["s2r", "--stage", "data", "--bench", "arith", "construct.judge.url=http://127.0.0.1:9/v1"],
         "cannot be reached"),
        (["eval", "--protocol", "self_verify", "--samples", str(bad)], "line 1 has fields {foo}; expected"),
        (["stv", "--bench", "arith", f"candidates.samples={bad}"], "line 1 has fields {foo}; expected"),
        (["vil", "--bench", "arith", "vil.mode=prompts", f"vil.chains={bad}"], "line 1 has fields {foo}; expected"),
        (["sft-init", "--data", str(bad)], "line 1 has fields {foo}; expected"),
        (["s2r", "--stage", "orl", "--data", str(bad)], "expected {answer, problem}"),
    ]
    for args, message in cases:
        out = tmp_path / "never"
        result = runner.invoke(app, [*args, "--out", str(out)] if args[0] != "sft-init" else
                               [*args, f"out={out}"])
        assert result.exit_code == 2 and message in result.output, (args, result.output)
        assert not out.exists(), args


def test_the_judge_is_asked_once_for_its_models_with_the_key(tmp_path, monkeypatch):
    """One cheap request before the sampling pass: GET /models, with the key where one is set."""
    import http.server
    import threading

    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            seen.append((self.path, self.headers.get("Authorization")))
            status = 200 if self.headers.get("Authorization") == "Bearer sk-good" else 401
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b'{"data": []}')

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    from verireason.config import JudgeCfg
    from verireason.errors import UserError
    from verireason.preflight import check_judge

    try:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-good")
        check_judge(JudgeCfg(url=url))
        monkeypatch.setenv("OPENAI_API_KEY", "sk-bad")
        with pytest.raises(UserError, match="HTTP 401 to GET /models: the key was refused"):
            check_judge(JudgeCfg(url=url))
    finally:
        server.shutdown()
    assert seen == [("/v1/models", "Bearer sk-good"), ("/v1/models", "Bearer sk-bad")]
