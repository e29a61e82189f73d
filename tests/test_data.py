"""Data: the arith generator, normalized JSONL files with clear errors, the shared benchmarks, hub fallbacks."""

from __future__ import annotations

import pytest

from verireason import arith
from verireason.config import BenchCfg
from verireason.data import ANSWER_TRANSFORMS, load_problems, read_jsonl_problems
from verireason.errors import UserError
from verireason.grading import last_boxed


def test_arith_is_seeded_and_levelled():
    first, again = arith.generate(50, seed=3), arith.generate(50, seed=3)
    assert first == again
    assert arith.generate(50, seed=4) != first
    assert [p.level for p in first[:5]] == ["1", "2", "3", "4", "5"]
    assert len({p.id for p in first}) == 50


def test_arith_solutions_end_in_the_answer_and_steps_match_the_level():
    for p in arith.generate(100, seed=0):
        assert last_boxed(p.solution) == p.answer
        assert int(p.answer) >= 0
        assert len(p.solution.splitlines()) == int(p.level) + 2  # start, one line per operation, conclusion


def test_arith_steps_are_arithmetically_right():
    import re

    for p in arith.generate(60, seed=1):
        for a, op, b, c in re.findall(r"(\d+) ([-+×÷]) (\d+) = (\d+)", p.solution):
            a, b, c = int(a), int(b), int(c)
            assert {"+": a + b, "-": a - b, "×": a * b, "÷": a // b}[op] == c
            if op == "÷":
                assert a % b == 0


def test_limit_and_empty_selection(tmp_path):
    assert len(load_problems("arith", BenchCfg(generator="arith", size=30), limit=7)) == 7
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(UserError, match="selected no problems"):
        load_problems("empty", BenchCfg(), data_dir=str(tmp_path))
    with pytest.raises(UserError, match="at least 1"):
        load_problems("arith", BenchCfg(generator="arith"), limit=0)


def test_malformed_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "a", "problem": "p", "answer": "1"}\n{"id": "b", "problem": \n')
    with pytest.raises(UserError, match=r"bad.jsonl:2: malformed JSON"):
        read_jsonl_problems(path, "bad")
    path.write_text('{"id": "a", "problem": "p"}\n')
    with pytest.raises(UserError, match=r"bad.jsonl:1: missing field\(s\) answer"):
        read_jsonl_problems(path, "bad")
    path.write_text('{"id": "a", "problem": "p", "answer": 1}\n{"id": "a", "problem": "q", "answer": 2}\n')
    with pytest.raises(UserError, match="duplicate id"):
        read_jsonl_problems(path, "bad")


def test_local_file_wins_and_missing_everything_is_one_clear_error(tmp_path):
    (tmp_path / "mine.jsonl").write_text('{"id": "x", "problem": "1+1?", "answer": 2, "solution": null}\n')
    [p] = load_problems("mine", BenchCfg(hub="nobody/nothing"), data_dir=str(tmp_path))
    assert (p.id, p.answer, p.source, p.solution) == ("x", "2", "mine", None)
    with pytest.raises(UserError, match="could not be loaded"):
        load_problems("math500", BenchCfg(hub="HuggingFaceH4/MATH-500"), data_dir=str(tmp_path))
    with pytest.raises(UserError, match="does not exist"):
        load_problems("math500", BenchCfg(hub="x/y"), data_dir=str(tmp_path / "nope"))


def test_answer_transforms():
    assert ANSWER_TRANSFORMS["after_hash"]("He has 3+4=7 so #### 1,072") == "1072"
    assert ANSWER_TRANSFORMS["last_boxed"]("so $\\boxed{\\frac{1}{2}}$.") == "\\frac{1}{2}"
    assert ANSWER_TRANSFORMS["first"](["5", "6"]) == "5"


@pytest.mark.parametrize("name,rows", [("aime24", 30), ("aime25", 30), ("amc23", 40), ("math500", 500),
                                       ("gsm8k", 1319), ("minerva_math", 272), ("olympiadbench", 675)])
def test_shared_benchmarks_load(shared_benchmarks, name, rows):
    problems = load_problems(name, BenchCfg(), data_dir=str(shared_benchmarks))
    assert len(problems) == rows
    assert all(p.problem and p.answer and p.source == name for p in problems)
