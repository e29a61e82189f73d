"""asymmetry-probe over a training-run folder of two tiny checkpoints: CSV, figure, resume and --from-csv."""

from __future__ import annotations

import csv

from typer.testing import CliRunner

from verireason.cli import app
from verireason.config import ModelCfg
from verireason.recipes.asymmetry_probe import find_checkpoints
from tests.conftest import build_tiny_model


def test_checkpoints_are_found_in_step_order(tmp_path):
    for name in ("step_000100", "step_000020", "checkpoint-3"):
        (tmp_path / "run" / "ckpt" / name).mkdir(parents=True)
        (tmp_path / "run" / "ckpt" / name / "config.json").write_text("{}")
    found = find_checkpoints([str(tmp_path / "run")], ModelCfg(path="x"))
    assert [step for step, _ in found] == [3, 20, 100]
    assert found[0][1].path.endswith("checkpoint-3")


def test_probe_writes_csv_and_png_and_redraws(tmp_path):
    run = tmp_path / "train"
    build_tiny_model(run / "step_000000", seed=0)
    build_tiny_model(run / "step_000010", seed=1)
    out = tmp_path / "probe"
    args = ["asymmetry-probe", "--checkpoints", str(run), "--bench", "arith", "--limit", "4", "--out", str(out),
            "sampling.n=2", "sampling.max_tokens=6", "verify.sampling.max_tokens=6", "engine=hf", "progress=false"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((out / "asymmetry.csv").open()))
    assert [r["step"] for r in rows] == ["0", "10"]
    assert all(0.0 <= float(r["gen_accuracy"]) <= 1.0 and int(r["samples"]) == 8 for r in rows)
    png = out / "asymmetry.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "step_000010" / "samples.jsonl").is_file()
    again = CliRunner().invoke(app, args + ["--resume"])
    assert again.exit_code == 0 and len(list(csv.DictReader((out / "asymmetry.csv").open()))) == 2
    png.unlink()
    redraw = CliRunner().invoke(app, ["asymmetry-probe", "--from-csv", str(out / "asymmetry.csv")])
    assert redraw.exit_code == 0, redraw.output
    assert png.is_file()
