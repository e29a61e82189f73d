"""``verireason report`` on tiny runs: every model on the same problems with one verifier, the numbers equal to what
the evaluation folders hold, the papers' rows matched by command and variant, evaluations reused by a second report
and resumed after a cut, and bad entries refused before anything loads."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.test_paper2_commands import STV
from tests.test_rl import SMALL, toy_args
from tests.test_rl import toy_dir  # noqa: F401 - a fixture used here
from verireason.checkpoint import STATE_FILE
from verireason.cli import app
from verireason.config import ModelCfg, PromptCfg, compose, to_object
from verireason.metrics import bootstrap_mean, paired_difference
from verireason.recipes.report import plan_jobs
from verireason.records import Chain, Sample
from verireason.report_tables import HEADLINES, matching_headlines
from verireason.run_info import TRAINING, RunInfo, read_runs
from verireason.tracking import RecordLog

runner = CliRunner()
BUDGET = ["sampling.n=2", "sampling.max_tokens=12", "verify.chains=2", "verify.rounds=1",
          "verify.sampling.max_tokens=12", "engine.batch_size=32", "progress=false"]


def _report_args(toy: Path, out: Path, *entries) -> list[str]:
    return ["report", *map(str, entries), "--bench", "custom", "--data-dir", str(toy), "--limit", "4", "--out",
            str(out), "bench.custom.file=toy.jsonl", *BUDGET]


@pytest.fixture(scope="module")
def report(primed_model_dir, toy_dir, tmp_path_factory):  # noqa: F811
    work = tmp_path_factory.mktemp("report")
    for command, extra in (("rl-gen", SMALL), ("stv", ["--method", "stv", *STV])):
        args = [command, *toy_args(primed_model_dir, toy_dir, work / command), *extra, "trainer.eval_every=0",
                "trainer.probe_every=0"]
        done = runner.invoke(app, args)
        assert done.exit_code == 0, done.output
    result = runner.invoke(app, _report_args(toy_dir, work / "out", work / "rl-gen", work / "stv"))
    assert result.exit_code == 0, result.output
    return work, result.output


def _folders(out: Path) -> list[Path]:
    return sorted(p for p in (out / "evals").iterdir() if p.is_dir())


def test_every_model_is_evaluated_on_the_same_problems_with_one_verifier(report, primed_model_dir):
    work, output = report
    out = work / "out"
    data = json.loads((out / "report.json").read_text())
    assert data["verifier"]["path"] == str(primed_model_dir)  # the first run's initial model
    problems = set()
    for folder in _folders(out):
        cfg = yaml.safe_load((folder / "config.yaml").read_text())
        assert cfg["limit"] == 4 and cfg["sampling"]["max_tokens"] == 12 and cfg["grader"]["name"] == "math_verify"
        records = (RecordLog(folder / "chains.jsonl", Chain) if cfg["protocol"] == "vr_loop"
                   else RecordLog(folder / "samples.jsonl", Sample)).read()
        problems.add(frozenset(r.problem_id for r in records))
        if cfg["protocol"] == "vr_loop":  # the common verifier, or the model itself when it is that verifier
            judge = (cfg["verifier"] or cfg["model"])["path"]
            stv_final = str((work / "stv" / "checkpoints" / "step_000002").resolve())
            assert judge in (str(primed_model_dir), stv_final)
    assert len(problems) == 1 and len(next(iter(problems))) == 4
    for role in ("final", "initial"):  # trained and untrained verifier judge with the prompt STV trains on
        judged = yaml.safe_load(next((out / "evals").glob(f"stv_{role}-vr_verifier-*/config.yaml")).read_text())
        assert judged["prompt"]["name"] == "stv"
    assert all(yaml.safe_load((f / "config.yaml").read_text())["prompt"]["name"] == "boxed_cot"
               for f in _folders(out) if "vr_verifier" not in f.name)
    # rl-gen final, stv final (3 protocols each), the shared initial model (3), V-R loops of the stv run's generator
    # judged by its trained verifier and by its untrained self under the stv prompts
    assert len(_folders(out)) == 11
    assert "11 evaluations (0 reused)" in output


def test_numbers_are_those_of_the_evaluation_folders(report):
    out = report[0] / "out"
    data = json.loads((out / "report.json").read_text())
    final = next(m for m in data["models"] if m["name"].startswith("rl-gen@"))
    folder = Path(data["evals"][final["evals"][0]])
    samples = RecordLog(folder / "samples.jsonl", Sample).read()
    per_problem = {}
    for s in samples:
        per_problem.setdefault(s.problem_id, []).append(s.correct)
    expected = sum(sum(v) / len(v) for v in per_problem.values()) / len(per_problem)
    assert final["pass@1"][0] == pytest.approx(expected)
    assert final["pass@1"][1] <= final["pass@1"][0] <= final["pass@1"][2]
    chains = RecordLog(Path(data["evals"][final["evals"][1]]) / "chains.jsonl", Chain).read()
    assert final["vr_final"][0] == pytest.approx(sum(c.rounds[-1].correct for c in chains) / len(chains))
    change = sum(c.rounds[-1].correct - c.rounds[0].correct for c in chains) / len(chains)  # paired over problems
    assert final["vr_change"][0] == pytest.approx(change) and final["vr_change"][3] == 4
    assert final["vr_change"][1] <= final["vr_change"][0] <= final["vr_change"][2]
    assert final["vr_curve"][-1][0] == pytest.approx(sum(c.tokens for c in chains) / len(chains))
    assert final["steps"] == 2 and final["role"] == "final"


def test_report_sets_each_run_beside_its_papers_rows_and_names_its_sources(report):
    work, _ = report
    out = work / "out"
    text = (out / "report.md").read_text()
    data = json.loads((out / "report.json").read_text())
    rows = {(p["paper"], p["row"], p["label"]) for p in data["papers"]}
    assert rows == {("L2SV", 1, "rl-gen"), ("STV", 11, "stv"), ("STV", 8, "stv")}
    stv = next(p for p in data["papers"] if p["row"] == 11)
    assert stv["ours_metric"].startswith("V-R final pass@1, initial model generating")
    assert len(stv["evals"]) == 2 and "change" in stv
    assert Path(data["evals"][stv["evals"][1]]).name.startswith("stv_initial-vr_verifier")  # untrained, same prompt
    for section in ("## (a)", "## (b)", "### Accuracy against tokens", "## (c)", "report.png"):
        assert section in text
    assert "verireason rl-gen" in text or "rl-gen" in data["runs"][0]["command"]
    assert data["runs"][0]["command"] == "rl-gen" and data["runs"][1]["variant"] == "stv"
    assert all(f"**{name}**" in text for name in data["evals"])
    assert (out / "report.png").stat().st_size > 10_000


def test_a_second_report_reuses_and_a_cut_evaluation_resumes(report, toy_dir, monkeypatch):  # noqa: F811
    work, _ = report
    out = work / "out"
    before = {f: (f / "key.json").read_text() for f in _folders(out)}
    from verireason.recipes import evaluate

    def refuse(*args, **kwargs):
        raise AssertionError("a finished evaluation was run again")

    monkeypatch.setattr(evaluate, "run", refuse)
    again = runner.invoke(app, _report_args(toy_dir, out, work / "rl-gen", work / "stv"))
    assert again.exit_code == 0, again.output
    assert "11 evaluations (11 reused)" in again.output
    monkeypatch.undo()
    cut = next(f for f in _folders(out) if f.name.startswith("rl-gen_final-solve"))
    (cut / "key.json").unlink()
    lines = (cut / "samples.jsonl").read_text().splitlines(keepends=True)
    (cut / "samples.jsonl").write_text("".join(lines[:3]) + lines[3][:20])  # killed mid-line
    resumed = runner.invoke(app, _report_args(toy_dir, out, work / "rl-gen", work / "stv"))
    assert resumed.exit_code == 0, resumed.output
    assert "10 reused" in resumed.output and {f: (f / "key.json").read_text() for f in _folders(out)} == before
    assert len((cut / "samples.jsonl").read_text().splitlines()) == len(lines)


@pytest.mark.parametrize("entry,message", [
    ("missing", "is neither a run directory (config.yaml), a model directory (config.json) nor a model alias"),
    ("eval", "is not a training run (eval); valid: the run directories of rl-gen"),
    ("unfinished", "holds no finished checkpoint"),
])
def test_bad_entries_are_one_line_before_anything_loads(tmp_path, entry, message):
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "config.yaml").write_text("protocol: solve\nmodel: {name: m, path: p}\n")
    (tmp_path / "eval" / "run.json").write_text(json.dumps({"command": "eval", "argv": []}))
    (tmp_path / "unfinished" / "checkpoints" / "step_000002").mkdir(parents=True)
    (tmp_path / "unfinished" / "config.yaml").write_text("schedule: {name: generate}\nmodel: {name: m, path: p}\n")
    result = runner.invoke(app, ["report", str(tmp_path / entry), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_headline_rows_match_by_command_and_variant():
    rows = yaml.safe_load(HEADLINES.read_text())
    assert all(h["for"]["command"] in TRAINING and h["ours"] in ("solve", "vr_final", "vr_verifier", "greedy")
               for h in rows)

    def run(command, variant):
        return RunInfo("r", command, variant, None, None, 1, None, "")

    assert [h["row"] for h in matching_headlines(run("rl-verify", "verify_alter"), rows)] == [5]
    assert [h["row"] for h in matching_headlines(run("s2r", "orl"), rows)] == [15, 16]
    assert matching_headlines(run("s2r", "data"), rows) == [] and matching_headlines(run("sft-init", None), rows) == []
    assert {h["row"] for h in matching_headlines(run("vil", None), rows)} == {12, 13}


def test_intervals_are_percentile_bootstraps_over_problems():
    rng = random.Random(0)
    values = [float(rng.random() < 0.3) for _ in range(200)]
    mean, lo, hi = bootstrap_mean(values)
    assert mean == sum(values) / 200 and lo < mean < hi
    assert 0.10 < hi - lo < 0.16  # about 2 × 1.96 × sqrt(0.3 × 0.7 / 200) = 0.127
    assert bootstrap_mean([1.0] * 5) == (1.0, 1.0, 1.0)
    before = {i: v for i, v in enumerate(values)}
    after = {i: 1.0 for i in range(150)}  # paired over the 150 shared problems only
    delta = paired_difference(after, before)
    assert delta[3] == 150 and delta[0] == pytest.approx(1 - sum(values[:150]) / 150)


def test_a_missing_benchmark_is_one_line_before_anything_loads(primed_model_dir, tmp_path):
    result = runner.invoke(app, ["report", str(primed_model_dir), "--bench", "math500", "--data-dir",
                                 str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "does not exist" in result.output, result.output
    assert not (tmp_path / "out").exists()


def _prompt(name: str) -> PromptCfg:
    return to_object(compose("report", [f"prompt={name}"])).prompt


@pytest.mark.parametrize("run_prompts", [True, False])
def test_each_model_is_prompted_as_its_run_prompted_it(tmp_path, run_prompts):
    cfg = to_object(compose("report", [f"run_prompts={str(run_prompts).lower()}"]))
    boxed, stv, s2r = _prompt("boxed_cot"), _prompt("stv"), _prompt("s2r")

    def run(label, command, variant, prompt):
        return RunInfo(label, command, variant, ModelCfg(name=f"{label}-final", path=f"{label}-final"),
                       ModelCfg(name=f"{label}-init", path=f"{label}-init"), 5, None, "", prompt)

    runs = [run("gen", "rl-gen", "generate", boxed), run("stv", "stv", "stv", stv), run("prl", "s2r", "prl", s2r)]
    verifier, jobs = plan_jobs(cfg, runs, tmp_path)
    assert verifier.path == "gen-init" and len({j.key for j in jobs.values()}) == 3 * 2 * 3 + 2
    prompt = {key: job.cfg.prompt for key, job in jobs.items()}
    if not run_prompts:
        assert all(p == cfg.prompt for p in prompt.values())
        return
    for kind in ("solve", "vr_loop", "s2r_attempts"):  # S²R's model answers under its system prompt ...
        assert prompt[("prl:final", kind)].system == s2r.system and prompt[("prl:final", kind)].user == "{problem}"
        assert prompt[("prl:final", kind)].verify_user == boxed.verify_user  # ... and the common verifier judges
        assert prompt[("prl:final", kind)].name == "s2r+boxed_cot"
        assert prompt[("stv:initial", kind)] == boxed  # STV's generation prompt is paper 1's: one evaluation
        assert prompt[("gen:final", kind)] == boxed
    assert prompt[("stv:final", "vr_verifier")] == stv  # the trained verifier reads the whole solution, as trained
    assert jobs[("stv:final", "vr_verifier")].verifier.path == "stv-final"
    assert prompt[("stv:initial", "vr_verifier")] == stv and jobs[("stv:initial", "vr_verifier")].cfg.verifier is None


def test_initial_models_are_named_so_that_rows_can_be_told_apart(tmp_path):
    def run(name: str, start: Path) -> Path:
        folder = tmp_path / name
        (folder / "checkpoints" / "step_000002").mkdir(parents=True)
        (folder / "checkpoints" / "step_000002" / STATE_FILE).write_text(json.dumps({"step": 2}))
        (folder / "config.yaml").write_text(f"schedule: {{name: generate}}\nmodel: {{name: init, path: '{start}'}}\n")
        return folder

    entries = [run("a", tmp_path / "one" / "init"), run("b", tmp_path / "two" / "init"),
               run("c", tmp_path / "bi" / "checkpoints" / "step_000019")]
    names = [r.initial.name for r in read_runs([str(e) for e in entries], ModelCfg())]
    assert names == ["one/init", "two/init", "bi@step_000019"]
    assert read_runs([str(entries[0])], ModelCfg())[0].initial.name == "init"  # alone: its own name
